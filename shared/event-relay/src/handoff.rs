//! One copy per event: which of a stream's committed events a hint's relay publishes, and when
//! it waits for another relay instead (ADR 0002, "One copy per event").
//!
//! Two processes that append to one stream at nearly the same time (the vehicle enricher and
//! the driver-history service on one quote) each hint their own relay. A relay publishes only
//! up to the last version **its** hint names; the later versions belong to their own committers'
//! hints (or, should those die, to the sweep). A relay whose hinted events follow earlier
//! versions that are still unpublished, committed moments ago, **parks** the stream: the earlier
//! commit's relay is publishing them now, and publishing them here too would put a second copy
//! on the stream. A parked stream's head is read again after 20 ms, then 40, 80, 160 ms; once
//! the earlier versions are published its own go out. Should the head still show them
//! unpublished when `handoff_wait` has passed since the hint (their relay died or is stuck), or
//! should they have waited longer than that already, the relay publishes them itself, in
//! order, before its own: order and losslessness never depend on the other relay, only the
//! number of copies does.
//!
//! A new hint for a parked stream joins it and has the head read again at once: in one process
//! the later commit's hint may reach the relay first.

use std::collections::HashMap;
use std::time::Duration;

use event_store::{EventEnvelope, StreamHead};
use time::OffsetDateTime;
use tokio::time::Instant;

/// First wait of a parked stream; doubles up to [`LONGEST_CHECK`].
const FIRST_CHECK: Duration = Duration::from_millis(20);
/// Longest wait between two reads of a parked stream's head.
const LONGEST_CHECK: Duration = Duration::from_millis(160);

/// What to do with a stream's hinted events, given its head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Nothing left: every hinted version is published already (or the stream is gone).
    Done,
    /// Publish the hinted events after version `after` (the head's published version): the
    /// hinted events follow it without a gap.
    Publish {
        /// The head's published version.
        after: u64,
    },
    /// Earlier versions are unpublished and were committed moments ago: their relay is on
    /// them; look again later.
    Wait,
    /// Read the versions `after + 1 ..= up_to` from the store and publish them (the earlier
    /// versions' relay is gone or slow, or the hinted events have gaps).
    Load {
        /// The head's published version.
        after: u64,
        /// The last hinted version.
        up_to: u64,
    },
}

/// Decides for `hinted` (one stream's events, sorted by version, deduplicated, not empty).
/// `may_wait` is false once the stream has waited `handoff_wait`; `now` is the wall clock the
/// head's `pending_since` is compared with.
pub(crate) fn decide(
    head: Option<&StreamHead>,
    hinted: &[EventEnvelope],
    may_wait: bool,
    handoff_wait: Duration,
    now: OffsetDateTime,
) -> Decision {
    let (Some(first), Some(last)) = (hinted.first(), hinted.last()) else {
        return Decision::Done;
    };
    let Some(head) = head else {
        return Decision::Done;
    };
    if head.published_version >= last.version {
        return Decision::Done;
    }
    let after = head.published_version;
    let gapless = hinted
        .iter()
        .filter(|e| e.version > after)
        .zip(after + 1..)
        .all(|(event, expected)| event.version == expected);
    if first.version <= after + 1 && gapless {
        return Decision::Publish { after };
    }
    let predecessors_unpublished = first.version > after + 1;
    let committed_moments_ago = head
        .pending_since
        .is_some_and(|since| since + handoff_wait > now);
    if may_wait && predecessors_unpublished && committed_moments_ago {
        Decision::Wait
    } else {
        Decision::Load {
            after,
            up_to: last.version,
        }
    }
}

/// Streams parked until an earlier commit's relay has published.
#[derive(Debug, Default)]
pub(crate) struct Handoffs {
    parked: HashMap<String, Parked>,
}

/// One parked stream.
#[derive(Debug)]
pub(crate) struct Parked {
    /// Its hinted events, sorted by version, deduplicated.
    pub events: Vec<EventEnvelope>,
    /// When it stops waiting.
    pub deadline: Instant,
    next_check: Instant,
    delay: Duration,
}

impl Parked {
    /// A stream hinted now that may wait until `now + handoff_wait`.
    pub fn new(events: Vec<EventEnvelope>, now: Instant, handoff_wait: Duration) -> Self {
        Self {
            events,
            deadline: now + handoff_wait,
            next_check: now,
            delay: FIRST_CHECK,
        }
    }

    /// True while it may wait.
    pub fn may_wait(&self, now: Instant) -> bool {
        now < self.deadline
    }
}

impl Handoffs {
    /// When the next parked stream is due for a look.
    pub fn next_check(&self) -> Option<Instant> {
        self.parked.values().map(|p| p.next_check).min()
    }

    /// Adds hinted events to a parked stream (due at once); returns them back when the stream
    /// is not parked.
    pub fn join(
        &mut self,
        stream_id: &str,
        events: Vec<EventEnvelope>,
    ) -> Option<Vec<EventEnvelope>> {
        match self.parked.get_mut(stream_id) {
            Some(parked) => {
                parked.events.extend(events);
                parked.events.sort_by_key(|e| e.version);
                parked.events.dedup_by_key(|e| e.version);
                parked.next_check = Instant::now();
                None
            }
            None => Some(events),
        }
    }

    /// Takes out the parked streams due at `now`.
    pub fn take_due(&mut self, now: Instant) -> Vec<(String, Parked)> {
        let due: Vec<String> = self
            .parked
            .iter()
            .filter(|(_, p)| p.next_check <= now)
            .map(|(id, _)| id.clone())
            .collect();
        due.into_iter()
            .filter_map(|id| self.parked.remove(&id).map(|p| (id, p)))
            .collect()
    }

    /// Takes out every parked stream (shutdown).
    pub fn take_all(&mut self) -> Vec<(String, Parked)> {
        self.parked.drain().collect()
    }

    /// Parks `stream_id` (again), due after its next, doubled, wait.
    pub fn park(&mut self, stream_id: String, mut parked: Parked, now: Instant) {
        parked.next_check = (now + parked.delay).min(parked.deadline);
        parked.delay = (parked.delay * 2).min(LONGEST_CHECK);
        self.parked.insert(stream_id, parked);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use event_store::EventEnvelope;

    fn event(version: u64) -> EventEnvelope {
        EventEnvelope {
            event_id: uuid::Uuid::nil(),
            stream_id: "quote#1".to_owned(),
            version,
            event_type: "QuoteRequested".to_owned(),
            schema_version: 1,
            occurred_at: now(),
            recorded_at: now(),
            correlation_id: "c".to_owned(),
            causation_id: None,
            traceparent: None,
            tracestate: None,
            actor: "test".to_owned(),
            data: serde_json::Value::Null,
        }
    }

    fn head(version: u64, published: u64, pending_ago: Option<Duration>) -> StreamHead {
        StreamHead {
            stream_id: "quote#1".to_owned(),
            version,
            published_version: published,
            pending_since: pending_ago.map(|ago| now() - ago),
            publish_failures: 0,
        }
    }

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
    }

    const WAIT: Duration = Duration::from_secs(2);

    #[test]
    fn a_hint_that_follows_the_published_version_publishes_only_its_own_events() {
        // v3 was committed by another process meanwhile: not ours to publish.
        let h = head(3, 1, Some(Duration::from_millis(30)));
        assert_eq!(
            decide(Some(&h), &[event(2)], true, WAIT, now()),
            Decision::Publish { after: 1 }
        );
    }

    #[test]
    fn a_hint_behind_a_fresh_unpublished_commit_waits_for_its_relay() {
        let h = head(3, 1, Some(Duration::from_millis(30)));
        assert_eq!(
            decide(Some(&h), &[event(3)], true, WAIT, now()),
            Decision::Wait
        );
        // Published meanwhile: its own event goes out.
        let h = head(3, 2, Some(Duration::from_millis(5)));
        assert_eq!(
            decide(Some(&h), &[event(3)], true, WAIT, now()),
            Decision::Publish { after: 2 }
        );
    }

    #[test]
    fn a_stranded_predecessor_is_published_here_in_order() {
        // Waited long enough: load v2 and v3.
        let h = head(3, 1, Some(Duration::from_millis(30)));
        assert_eq!(
            decide(Some(&h), &[event(3)], false, WAIT, now()),
            Decision::Load { after: 1, up_to: 3 }
        );
        // Committed long ago: its relay is not coming.
        let h = head(3, 1, Some(Duration::from_secs(5)));
        assert_eq!(
            decide(Some(&h), &[event(3)], true, WAIT, now()),
            Decision::Load { after: 1, up_to: 3 }
        );
    }

    #[test]
    fn hinted_events_with_a_gap_are_loaded() {
        let h = head(4, 1, Some(Duration::from_millis(30)));
        assert_eq!(
            decide(Some(&h), &[event(2), event(4)], true, WAIT, now()),
            Decision::Load { after: 1, up_to: 4 }
        );
    }

    #[test]
    fn published_or_missing_streams_are_done() {
        let h = head(3, 3, None);
        assert_eq!(
            decide(Some(&h), &[event(2), event(3)], true, WAIT, now()),
            Decision::Done
        );
        assert_eq!(decide(None, &[event(1)], true, WAIT, now()), Decision::Done);
    }

    #[tokio::test(start_paused = true)]
    async fn parked_streams_are_looked_at_again_sooner_then_later_and_at_once_when_joined() {
        let mut handoffs = Handoffs::default();
        let start = Instant::now();
        let parked = Parked::new(vec![event(3)], start, WAIT);
        handoffs.park("quote#1".to_owned(), parked, start);
        assert_eq!(handoffs.next_check(), Some(start + FIRST_CHECK));
        assert!(handoffs.take_due(start).is_empty());
        let (id, parked) = handoffs.take_due(start + FIRST_CHECK).pop().unwrap();
        handoffs.park(id, parked, start + FIRST_CHECK);
        assert_eq!(handoffs.next_check(), Some(start + FIRST_CHECK * 3));
        // The earlier commit's hint arrives: joined, sorted, due at once.
        assert!(handoffs.join("quote#1", vec![event(2)]).is_none());
        let due = handoffs.take_due(Instant::now());
        let versions: Vec<u64> = due[0].1.events.iter().map(|e| e.version).collect();
        assert_eq!(versions, [2, 3]);
        assert!(handoffs.join("quote#2", vec![event(1)]).is_some());
        assert_eq!(handoffs.next_check(), None, "nothing parked");
    }
}
