//! Expiry of other workers' leases, judged by counters that stop moving.
//!
//! Every scan of the lease table is fed to [`ExpiryTracker::observe`]. For each lease it keeps
//! the counter last seen and the local monotonic instant it was first seen with that value. A
//! lease held by another worker is expired once its counter has not changed for the lease
//! duration. Clocks of different machines are never compared.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::lease::Lease;

#[derive(Debug, Clone, Copy)]
struct Seen {
    counter: u64,
    since: Instant,
}

/// Remembers when each lease's counter last moved.
#[derive(Debug, Default, Clone)]
pub struct ExpiryTracker {
    seen: HashMap<String, Seen>,
}

impl ExpiryTracker {
    /// An empty tracker.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a scan taken at `now`; forgets leases that no longer exist.
    pub fn observe(&mut self, leases: &[Lease], now: Instant) {
        let present: std::collections::HashSet<&str> = leases
            .iter()
            .map(|lease| lease.lease_key.as_str())
            .collect();
        self.seen.retain(|key, _| present.contains(key.as_str()));
        for lease in leases {
            let entry = self.seen.entry(lease.lease_key.clone()).or_insert(Seen {
                counter: lease.lease_counter,
                since: now,
            });
            if entry.counter != lease.lease_counter {
                *entry = Seen {
                    counter: lease.lease_counter,
                    since: now,
                };
            }
        }
    }

    /// True when `lease` has an owner whose counter has not moved for `duration`.
    ///
    /// A lease seen for the first time is never expired: its age is unknown, so the worker waits
    /// a full duration before taking it (as the KCL does).
    pub fn is_expired(&self, lease: &Lease, now: Instant, duration: Duration) -> bool {
        if lease.lease_owner.is_none() {
            return false;
        }
        match self.seen.get(&lease.lease_key) {
            Some(seen) if seen.counter == lease.lease_counter => {
                now.saturating_duration_since(seen.since) >= duration
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lease::Checkpoint;

    fn lease(key: &str, owner: Option<&str>, counter: u64) -> Lease {
        Lease {
            lease_owner: owner.map(str::to_owned),
            lease_counter: counter,
            ..Lease::new(key, Checkpoint::TrimHorizon)
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_counter_that_stops_moving_expires_after_the_duration() {
        let duration = Duration::from_secs(6);
        let mut tracker = ExpiryTracker::new();
        let start = Instant::now();
        tracker.observe(&[lease("s1", Some("w2"), 5)], start);
        assert!(!tracker.is_expired(&lease("s1", Some("w2"), 5), start, duration));

        tokio::time::advance(Duration::from_secs(3)).await;
        // The owner renewed: the clock restarts.
        tracker.observe(&[lease("s1", Some("w2"), 6)], Instant::now());
        tokio::time::advance(Duration::from_secs(5)).await;
        tracker.observe(&[lease("s1", Some("w2"), 6)], Instant::now());
        assert!(!tracker.is_expired(&lease("s1", Some("w2"), 6), Instant::now(), duration));

        tokio::time::advance(Duration::from_secs(1)).await;
        tracker.observe(&[lease("s1", Some("w2"), 6)], Instant::now());
        assert!(tracker.is_expired(&lease("s1", Some("w2"), 6), Instant::now(), duration));
        // A different counter than the one tracked is not expired.
        assert!(!tracker.is_expired(&lease("s1", Some("w2"), 7), Instant::now(), duration));
    }

    #[tokio::test(start_paused = true)]
    async fn unowned_and_unseen_leases_are_not_expired_and_gone_leases_are_forgotten() {
        let duration = Duration::from_secs(1);
        let mut tracker = ExpiryTracker::new();
        tracker.observe(
            &[lease("s1", None, 3), lease("s2", Some("w"), 1)],
            Instant::now(),
        );
        tokio::time::advance(Duration::from_secs(5)).await;
        let now = Instant::now();
        assert!(!tracker.is_expired(&lease("s1", None, 3), now, duration));
        assert!(!tracker.is_expired(&lease("s9", Some("w"), 0), now, duration));
        tracker.observe(&[lease("s1", None, 3)], now);
        tracker.observe(&[lease("s1", None, 3), lease("s2", Some("w"), 1)], now);
        assert!(!tracker.is_expired(&lease("s2", Some("w"), 1), now, duration));
    }
}
