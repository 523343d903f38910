//! The event store port: what every adapter (DynamoDB, in-memory) provides.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::envelope::{EventEnvelope, NewEvent};
use crate::error::StoreError;
use crate::limits;

/// DynamoDB transactions take at most 100 actions; one goes to the stream head and one to the
/// idempotency record, so at most 98 events are appended atomically when a key is given and 99
/// without. The port enforces the same limit on every adapter.
pub const MAX_TRANSACTION_ACTIONS: usize = 100;

/// The largest number of events one append may carry (without an idempotency record).
pub const MAX_EVENTS_PER_APPEND: usize = MAX_TRANSACTION_ACTIONS - 1;

/// A request to append events to one stream.
#[derive(Debug, Clone)]
pub struct AppendRequest {
    /// The stream to append to.
    pub stream_id: String,
    /// The version the stream must be at: 0 for a stream that must not exist yet.
    pub expected_version: u64,
    /// The events, in order; they get versions `expected_version + 1 ..`.
    pub events: Vec<NewEvent>,
    /// Recorded in the same transaction, so a retried request writes nothing new.
    pub idempotency: Option<IdempotencyRecord>,
    /// The customer the stream belongs to, indexed so a customer's events can be listed.
    pub customer_id: Option<String>,
}

impl AppendRequest {
    /// The most events this request may carry atomically.
    pub fn event_limit(&self) -> usize {
        MAX_TRANSACTION_ACTIONS - 1 - usize::from(self.idempotency.is_some())
    }

    /// Checks the limits every adapter enforces on the request itself (event count).
    pub fn validate(&self) -> Result<(), StoreError> {
        if self.events.is_empty() {
            return Err(StoreError::EmptyAppend);
        }
        let limit = self.event_limit();
        if self.events.len() > limit {
            return Err(StoreError::TooManyEvents {
                count: self.events.len(),
                limit,
            });
        }
        Ok(())
    }

    /// The envelopes this append commits if it succeeds (versions after `expected_version`,
    /// recorded at `recorded_at`), after checking every limit: the event count, each whole
    /// envelope against the Kinesis record and DynamoDB item limits, and the transaction's
    /// aggregate size ([`crate::limits`]). Every adapter calls this before writing anything.
    pub fn commit_envelopes(
        &self,
        recorded_at: OffsetDateTime,
    ) -> Result<Vec<EventEnvelope>, StoreError> {
        self.validate()?;
        let envelopes: Vec<EventEnvelope> = self
            .events
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, event)| {
                event.into_envelope(
                    &self.stream_id,
                    self.expected_version + 1 + i as u64,
                    recorded_at,
                )
            })
            .collect();
        let mut transaction_bytes = crate::dynamodb::head_item_bytes(&self.stream_id);
        for envelope in &envelopes {
            let item_bytes =
                crate::dynamodb::event_item_bytes(envelope, self.customer_id.as_deref())?;
            limits::check_event(envelope, item_bytes)?;
            transaction_bytes = transaction_bytes.saturating_add(item_bytes);
        }
        if let Some(record) = &self.idempotency {
            let item_bytes = crate::dynamodb::idempotency_item_bytes(record)?;
            transaction_bytes = transaction_bytes.saturating_add(item_bytes);
            if item_bytes > limits::MAX_ITEM_BYTES {
                return Err(StoreError::AppendTooLarge {
                    bytes: item_bytes,
                    limit: limits::MAX_ITEM_BYTES,
                });
            }
        }
        if transaction_bytes > limits::MAX_TRANSACTION_BYTES {
            return Err(StoreError::AppendTooLarge {
                bytes: transaction_bytes,
                limit: limits::MAX_TRANSACTION_BYTES,
            });
        }
        Ok(envelopes)
    }
}

/// What a successful append committed.
#[derive(Debug, Clone, PartialEq)]
pub struct AppendOutcome {
    /// The committed envelopes, in version order.
    pub events: Vec<EventEnvelope>,
}

impl AppendOutcome {
    /// The stream's version after the append.
    pub fn last_version(&self) -> u64 {
        self.events.last().map(|e| e.version).unwrap_or(0)
    }
}

/// The stored result of a request made with an `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    /// The key, scoped by the caller (e.g. `<principal>#<Idempotency-Key>`).
    pub key: String,
    /// Fingerprint of the request body, to tell a retry from a reuse of the key.
    pub request_hash: String,
    /// The stream the request appended to.
    pub stream_id: String,
    /// The response to replay, opaque to the store.
    pub response: serde_json::Value,
    /// When the record was written.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// After this instant the key may be used again (DynamoDB TTL deletes the item).
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// The head of a stream: its committed version and how far it has been published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamHead {
    /// The stream.
    pub stream_id: String,
    /// The last committed version.
    pub version: u64,
    /// Every version up to this one has been acknowledged by the publication target.
    pub published_version: u64,
    /// When the oldest unpublished commit happened, or until when its publication was
    /// deferred after failures ([`EventStore::defer_publication`]) or claimed by a sweep
    /// ([`EventStore::claim_publication`]); `None` when fully published.
    pub pending_since: Option<OffsetDateTime>,
    /// Consecutive sweeps that failed to publish the stream (reset by any progress); the relay
    /// backs the stream off longer after each.
    pub publish_failures: u32,
}

impl StreamHead {
    /// True when committed events await publication.
    pub fn has_unpublished(&self) -> bool {
        self.published_version < self.version
    }
}

/// How far to read a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadBound {
    /// Every event.
    Latest,
    /// Events up to and including this version.
    UpToVersion(u64),
    /// The state as of an instant: events in version order up to the first one recorded after
    /// the instant (a prefix of the stream, so the result is a state that really existed).
    AsOf(OffsetDateTime),
}

/// One page of a stream.
#[derive(Debug, Clone, PartialEq)]
pub struct EventPage {
    /// Events in version order.
    pub events: Vec<EventEnvelope>,
    /// When more events may follow, the version to continue after.
    pub next_after: Option<u64>,
}

/// Default page size for loads.
pub const DEFAULT_PAGE_SIZE: usize = 500;

/// One part of a scan of every stream ([`EventStore::scan_events`]): part `segment` of
/// `total`, as DynamoDB's parallel scan divides a table by partition key. Every stream falls
/// in exactly one part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanPart {
    /// This part, `0..total`.
    pub segment: u32,
    /// How many parts the scan has (at least 1).
    pub total: u32,
}

impl ScanPart {
    /// The whole store as one part.
    pub const WHOLE: ScanPart = ScanPart {
        segment: 0,
        total: 1,
    };

    /// Part `segment` of `total`, or `None` unless `segment < total`.
    pub fn new(segment: u32, total: u32) -> Option<Self> {
        (segment < total).then_some(Self { segment, total })
    }
}

impl ScanPart {
    /// Whether `stream_id` falls in this part (the in-memory adapter's division; DynamoDB
    /// divides by its own hash of the partition key).
    pub(crate) fn holds(&self, stream_id: &str) -> bool {
        self.total <= 1
            || quote_runtime::item_keys::stable_hash(stream_id) % u64::from(self.total)
                == u64::from(self.segment)
    }
}

/// Where a scan part stopped: it resumes after this position. Kept by callers that must
/// survive a crash (a rebuild, a backfill), so it is plain data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanCursor {
    /// The stream of the last position read.
    pub stream_id: String,
    /// Its item's version key: an event's version, 0 for the stream's head, negative for a
    /// snapshot (the DynamoDB adapter keeps them in the same table).
    pub version: i64,
}

/// One page of a scan part.
#[derive(Debug, Clone, PartialEq)]
pub struct ScanPage {
    /// Events in scan order: a stream's events together and in version order.
    pub events: Vec<EventEnvelope>,
    /// Where to continue, or `None` when the part is done. A page may be empty and still have
    /// a next position (the backend read only heads).
    pub next: Option<ScanCursor>,
}

/// The event store port.
#[async_trait]
pub trait EventStore: Send + Sync + std::fmt::Debug {
    /// Appends events atomically if the stream is at `expected_version`.
    async fn append(&self, request: AppendRequest) -> Result<AppendOutcome, StoreError>;

    /// Reads up to `limit` events with versions in `(after_version, up_to_version]`.
    async fn read_page(
        &self,
        stream_id: &str,
        after_version: u64,
        up_to_version: Option<u64>,
        limit: usize,
    ) -> Result<EventPage, StoreError>;

    /// The stream's head, or `None` when the stream does not exist.
    async fn stream_head(&self, stream_id: &str) -> Result<Option<StreamHead>, StoreError>;

    /// The record stored under an idempotency key, unless absent or expired.
    async fn idempotency_record(&self, key: &str) -> Result<Option<IdempotencyRecord>, StoreError>;

    /// Heads with unpublished events whose oldest pending commit is older than `pending_before`,
    /// oldest first, at most `limit`.
    async fn unpublished_streams(
        &self,
        pending_before: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<StreamHead>, StoreError>;

    /// Records that every version up to `version` was published (or, for a version that can
    /// never be published, set aside by the relay). Never moves backwards; clears the pending
    /// mark when the stream is fully published and the failure count on any progress.
    async fn mark_published(&self, stream_id: &str, version: u64) -> Result<(), StoreError>;

    /// Moves a stream whose publication failed out of the sweep's way until `until`: its
    /// pending mark becomes `until` (so [`unpublished_streams`](Self::unpublished_streams)
    /// skips it until then, in every process) and its `publish_failures` grows by one. Does
    /// nothing when the stream has no unpublished events (any more). The next progress
    /// ([`mark_published`](Self::mark_published)) resets the count.
    ///
    /// The default does nothing: for test doubles without an outbox.
    async fn defer_publication(
        &self,
        stream_id: &str,
        until: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let _ = (stream_id, until);
        Ok(())
    }

    /// Claims the publication of a swept stream for the caller until `until`, if the stream's
    /// pending mark is still `seen` (as [`unpublished_streams`](Self::unpublished_streams)
    /// returned it) and it still has unpublished events: the mark becomes `until`, so the other
    /// processes' sweeps skip the stream while the caller publishes it. `Ok(false)` when another
    /// process claimed it first, or it was published, deferred or marked meanwhile.
    ///
    /// A claim needs no release: the caller's progress ([`mark_published`](Self::mark_published))
    /// or failure ([`defer_publication`](Self::defer_publication)) moves the mark on, and the
    /// claim of a process that died expires at `until`. A sweep that runs longer renews its
    /// claim with `seen` = its current `until`.
    ///
    /// Required (no default): an adapter that granted every claim would silently bring back
    /// one copy per sweeping process.
    async fn claim_publication(
        &self,
        stream_id: &str,
        seen: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    /// Reads one page of at most `limit` positions of a scan of every stream's events, after
    /// `after` (from the start when `None`). In a part, streams come one after another (a
    /// stream's events are together and in version order, possibly over several pages) in an
    /// order that does not change between scans; every event committed before the scan began
    /// is in exactly one part, once. Events committed during the scan may or may not be.
    ///
    /// For the operations that visit the whole store (archive backfill, read-model rebuild);
    /// on DynamoDB a `Scan` with `Segment`/`TotalSegments`, strongly consistent.
    async fn scan_events(
        &self,
        part: ScanPart,
        after: Option<&ScanCursor>,
        limit: usize,
    ) -> Result<ScanPage, StoreError>;

    /// Where this store keeps aggregates' snapshots ([`crate::snapshot`]), if it keeps any.
    /// Both adapters do; a test double that does not simply loads without them.
    fn snapshots(&self) -> Option<&dyn crate::snapshot::SnapshotStore> {
        None
    }

    /// Checks that the backend answers (for readiness probes).
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Reads a stream up to a bound, page by page.
    async fn load(
        &self,
        stream_id: &str,
        bound: LoadBound,
    ) -> Result<Vec<EventEnvelope>, StoreError> {
        self.load_after(stream_id, 0, bound).await
    }

    /// Reads a stream after `after_version` up to a bound, page by page.
    async fn load_after(
        &self,
        stream_id: &str,
        after_version: u64,
        bound: LoadBound,
    ) -> Result<Vec<EventEnvelope>, StoreError> {
        let up_to = match bound {
            LoadBound::UpToVersion(v) => Some(v),
            _ => None,
        };
        let mut events = Vec::new();
        let mut after = after_version;
        loop {
            let page = self
                .read_page(stream_id, after, up_to, DEFAULT_PAGE_SIZE)
                .await?;
            for event in page.events {
                if let LoadBound::AsOf(instant) = bound {
                    if event.recorded_at > instant {
                        return Ok(events);
                    }
                }
                after = event.version;
                events.push(event);
            }
            match page.next_after {
                Some(next) if next >= after => after = next,
                _ => return Ok(events),
            }
        }
    }
}
