//! The recipient's side of a graceful steal: after asking an owner to hand a lease over
//! (`handoffOwner`), a worker reads just that lease (a consistent `get`) every renew interval
//! and adopts it as soon as it is handed over, instead of waiting for its next full scan.
//!
//! Adopting promptly matters beyond latency: a handed-over lease is renewed by nobody until its
//! new owner adopts it, so a third worker that saw the handoff's counter would judge the lease
//! expired if adoption took a lease duration (found by the 1,000-shard simulation at ≥ 60
//! workers, when scans were 6–12 s apart).

use std::time::Duration;

use tokio::time::Instant;

use crate::lease::Lease;

/// What to do with a lease this worker asked for, given its current state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandoffPoll {
    /// Still owned by the worker asked, with our request pending: read it again next round.
    Wait,
    /// Handed to us (or released): take it now with a conditional write on the counter read.
    Adopt,
    /// Gone, finished, taken or asked for by someone else, or asked too long ago: stop polling
    /// (a scan still adopts a lease handed over later).
    Forget,
}

/// Decides on a lease `me` asked for at `asked_at`, read as `current` at `now`.
pub fn decide_handoff(
    me: &str,
    current: Option<&Lease>,
    asked_at: Instant,
    now: Instant,
    lease_duration: Duration,
) -> HandoffPoll {
    let Some(lease) = current else {
        return HandoffPoll::Forget;
    };
    if lease.is_finished() {
        return HandoffPoll::Forget;
    }
    match lease.lease_owner.as_deref() {
        None => HandoffPoll::Adopt,
        Some(owner) if owner == me => HandoffPoll::Adopt,
        Some(_)
            if lease.handoff_owner.as_deref() == Some(me)
                && now.saturating_duration_since(asked_at) < lease_duration =>
        {
            HandoffPoll::Wait
        }
        Some(_) => HandoffPoll::Forget,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lease::Checkpoint;

    fn lease(owner: Option<&str>, handoff: Option<&str>, checkpoint: Checkpoint) -> Lease {
        Lease {
            lease_owner: owner.map(str::to_owned),
            handoff_owner: handoff.map(str::to_owned),
            lease_counter: 7,
            ..Lease::new("shardId-000000000001", checkpoint)
        }
    }

    #[tokio::test(start_paused = true)]
    async fn decisions() {
        use HandoffPoll::{Adopt, Forget, Wait};
        let duration = Duration::from_secs(6);
        let seq = || Checkpoint::Sequence("42".into());
        let cases: Vec<(&str, Option<Lease>, u64, HandoffPoll)> = vec![
            ("lease deleted", None, 0, Forget),
            (
                "handed to me",
                Some(lease(Some("me"), None, seq())),
                0,
                Adopt,
            ),
            (
                "handed to me, asked long ago",
                Some(lease(Some("me"), None, seq())),
                60_000,
                Adopt,
            ),
            (
                "released by its owner",
                Some(lease(None, None, seq())),
                0,
                Adopt,
            ),
            (
                "owner still working, our request pending",
                Some(lease(Some("w2"), Some("me"), seq())),
                5_999,
                Wait,
            ),
            (
                "our request pending for a lease duration",
                Some(lease(Some("w2"), Some("me"), seq())),
                6_000,
                Forget,
            ),
            (
                "someone else's request pending",
                Some(lease(Some("w2"), Some("w3"), seq())),
                0,
                Forget,
            ),
            (
                "request cleared (taken or handed elsewhere)",
                Some(lease(Some("w3"), None, seq())),
                0,
                Forget,
            ),
            (
                "finished while we waited",
                Some(lease(Some("me"), None, Checkpoint::ShardEnd)),
                0,
                Forget,
            ),
            (
                "finished and released",
                Some(lease(None, None, Checkpoint::ShardEnd)),
                0,
                Forget,
            ),
        ];
        let asked = Instant::now();
        for (name, current, after_ms, expected) in cases {
            let now = asked + Duration::from_millis(after_ms);
            assert_eq!(
                decide_handoff("me", current.as_ref(), asked, now, duration),
                expected,
                "{name}"
            );
        }
    }
}
