//! The in-memory event store: the embedded mode's store and the fast tests' reference.
//!
//! It keeps the same guarantees as the DynamoDB adapter (atomic appends, exact expected-version
//! checks, idempotency records with expiry, the publication outbox) behind one mutex.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::envelope::EventEnvelope;
use crate::error::StoreError;
use crate::snapshot::{Snapshot, SnapshotStore};
use crate::store::{
    AppendOutcome, AppendRequest, EventPage, EventStore, IdempotencyRecord, ScanCursor, ScanPage,
    ScanPart, StreamHead,
};

#[derive(Debug, Default)]
struct Stream {
    events: Vec<EventEnvelope>,
    published_version: u64,
    pending_since: Option<OffsetDateTime>,
    publish_failures: u32,
}

#[derive(Debug, Default)]
struct State {
    streams: BTreeMap<String, Stream>,
    idempotency: HashMap<String, IdempotencyRecord>,
    snapshots: BTreeMap<(String, u64), Snapshot>,
}

/// An event store held in process memory.
#[derive(Debug, Default)]
pub struct InMemoryEventStore {
    state: Mutex<State>,
}

impl InMemoryEventStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave a half-applied append (appends mutate only
        // after every check passed), so a poisoned lock is safe to keep using.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn head_of(stream_id: &str, stream: &Stream) -> StreamHead {
    StreamHead {
        stream_id: stream_id.to_owned(),
        version: stream.events.len() as u64,
        published_version: stream.published_version,
        pending_since: stream.pending_since,
        publish_failures: stream.publish_failures,
    }
}

#[async_trait]
impl EventStore for InMemoryEventStore {
    #[tracing::instrument(name = "append", skip(self, request), fields(stream_id = %request.stream_id, expected = request.expected_version, events = request.events.len()))]
    async fn append(&self, request: AppendRequest) -> Result<AppendOutcome, StoreError> {
        let now = OffsetDateTime::now_utc();
        let committed = request.commit_envelopes(now)?;
        let mut state = self.lock();
        if let Some(record) = &request.idempotency {
            if let Some(existing) = state.idempotency.get(&record.key) {
                if existing.expires_at > now {
                    return Err(StoreError::IdempotencyKeyUsed(Box::new(existing.clone())));
                }
            }
        }
        let actual = state
            .streams
            .get(&request.stream_id)
            .map(|s| s.events.len() as u64)
            .unwrap_or(0);
        if actual != request.expected_version {
            return Err(StoreError::WrongExpectedVersion {
                stream_id: request.stream_id,
                expected: request.expected_version,
                actual,
            });
        }
        let stream = state.streams.entry(request.stream_id.clone()).or_default();
        stream.events.extend(committed.iter().cloned());
        stream.pending_since.get_or_insert(now);
        if let Some(record) = request.idempotency {
            state.idempotency.insert(record.key.clone(), record);
        }
        Ok(AppendOutcome { events: committed })
    }

    async fn read_page(
        &self,
        stream_id: &str,
        after_version: u64,
        up_to_version: Option<u64>,
        limit: usize,
    ) -> Result<EventPage, StoreError> {
        let state = self.lock();
        let Some(stream) = state.streams.get(stream_id) else {
            return Ok(EventPage {
                events: Vec::new(),
                next_after: None,
            });
        };
        let end = up_to_version
            .unwrap_or(u64::MAX)
            .min(stream.events.len() as u64);
        let start = after_version.min(end);
        let take = ((end - start) as usize).min(limit.max(1));
        let events: Vec<EventEnvelope> =
            stream.events[start as usize..start as usize + take].to_vec();
        let last = start + take as u64;
        let next_after = (last < end).then_some(last);
        Ok(EventPage { events, next_after })
    }

    async fn stream_head(&self, stream_id: &str) -> Result<Option<StreamHead>, StoreError> {
        let state = self.lock();
        Ok(state.streams.get(stream_id).map(|s| head_of(stream_id, s)))
    }

    fn snapshots(&self) -> Option<&dyn crate::snapshot::SnapshotStore> {
        Some(self)
    }

    async fn scan_events(
        &self,
        part: ScanPart,
        after: Option<&ScanCursor>,
        limit: usize,
    ) -> Result<ScanPage, StoreError> {
        let state = self.lock();
        let limit = limit.max(1);
        let from = after.map_or(std::ops::Bound::Unbounded, |cursor| {
            std::ops::Bound::Included(cursor.stream_id.clone())
        });
        let mut events = Vec::new();
        for (stream_id, stream) in state
            .streams
            .range((from, std::ops::Bound::Unbounded))
            .filter(|(stream_id, _)| part.holds(stream_id))
        {
            let skip = match after {
                Some(cursor) if &cursor.stream_id == stream_id => {
                    u64::try_from(cursor.version).unwrap_or(0)
                }
                _ => 0,
            };
            for event in stream.events.iter().skip(skip as usize) {
                if events.len() == limit {
                    let next = events.last().map(|last: &EventEnvelope| ScanCursor {
                        stream_id: last.stream_id.clone(),
                        version: i64::try_from(last.version).unwrap_or(i64::MAX),
                    });
                    return Ok(ScanPage { events, next });
                }
                events.push(event.clone());
            }
        }
        Ok(ScanPage { events, next: None })
    }

    async fn idempotency_record(&self, key: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        let now = OffsetDateTime::now_utc();
        let state = self.lock();
        Ok(state
            .idempotency
            .get(key)
            .filter(|r| r.expires_at > now)
            .cloned())
    }

    async fn unpublished_streams(
        &self,
        pending_before: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<StreamHead>, StoreError> {
        let state = self.lock();
        let mut heads: Vec<StreamHead> = state
            .streams
            .iter()
            .filter(|(_, s)| s.pending_since.is_some_and(|since| since < pending_before))
            .map(|(id, s)| head_of(id, s))
            .collect();
        heads.sort_by_key(|h| h.pending_since);
        heads.truncate(limit);
        Ok(heads)
    }

    async fn mark_published(&self, stream_id: &str, version: u64) -> Result<(), StoreError> {
        let mut state = self.lock();
        if let Some(stream) = state.streams.get_mut(stream_id) {
            let committed = stream.events.len() as u64;
            let target = version.min(committed);
            if target > stream.published_version {
                stream.published_version = target;
                stream.publish_failures = 0;
                // As on DynamoDB: newer commits get their own grace period from now.
                stream.pending_since = Some(OffsetDateTime::now_utc());
            }
            if stream.published_version == committed {
                stream.pending_since = None;
            }
        }
        Ok(())
    }

    async fn claim_publication(
        &self,
        stream_id: &str,
        seen: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let mut state = self.lock();
        let Some(stream) = state.streams.get_mut(stream_id) else {
            return Ok(false);
        };
        // Compared as DynamoDB stores the mark: whole microseconds.
        let micros = |t: OffsetDateTime| t.unix_timestamp_nanos() / 1_000;
        let unchanged = stream.pending_since.map(micros) == Some(micros(seen));
        if unchanged && stream.published_version < stream.events.len() as u64 {
            stream.pending_since = Some(until);
            return Ok(true);
        }
        Ok(false)
    }

    async fn defer_publication(
        &self,
        stream_id: &str,
        until: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let mut state = self.lock();
        if let Some(stream) = state.streams.get_mut(stream_id) {
            if stream.published_version < stream.events.len() as u64 {
                stream.pending_since = Some(until);
                stream.publish_failures = stream.publish_failures.saturating_add(1);
            }
        }
        Ok(())
    }
}

#[async_trait]
impl SnapshotStore for InMemoryEventStore {
    async fn save_snapshot(&self, snapshot: &Snapshot) -> Result<(), StoreError> {
        self.lock().snapshots.insert(
            (snapshot.stream_id.clone(), snapshot.version),
            snapshot.clone(),
        );
        Ok(())
    }

    async fn latest_snapshot(
        &self,
        stream_id: &str,
        at_or_below: u64,
    ) -> Result<Option<Snapshot>, StoreError> {
        Ok(self
            .lock()
            .snapshots
            .range((stream_id.to_owned(), 0)..=(stream_id.to_owned(), at_or_below))
            .next_back()
            .map(|(_, snapshot)| snapshot.clone()))
    }
}
