//! Typed errors of the event store port.

use crate::store::IdempotencyRecord;

/// Why an event store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another writer appended first: the stream is not at the expected version.
    #[error("stream {stream_id} is at version {actual}, not the expected {expected}")]
    WrongExpectedVersion {
        /// The stream appended to.
        stream_id: String,
        /// The version the caller expected.
        expected: u64,
        /// The version the stream is at (as read right after the failed append).
        actual: u64,
    },
    /// The idempotency key was already used; the earlier record is returned.
    #[error("idempotency key {} was already used", .0.key)]
    IdempotencyKeyUsed(Box<IdempotencyRecord>),
    /// An append must carry at least one event.
    #[error("an append must carry at least one event")]
    EmptyAppend,
    /// Too many events for one atomic append.
    #[error("{count} events in one append; at most {limit} are atomic")]
    TooManyEvents {
        /// Events in the request.
        count: usize,
        /// The limit for this request.
        limit: usize,
    },
    /// One event is larger than a stored item may be.
    #[error("event {event_id} is {bytes} bytes; at most {limit} bytes fit in one item")]
    EventTooLarge {
        /// The offending event.
        event_id: uuid::Uuid,
        /// Its encoded size.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// A stored item could not be decoded.
    #[error("stored item is corrupt: {0}")]
    Corrupt(String),
    /// The backend failed (after the SDK's own retries for throttling and 5xx).
    #[error("event store backend failed: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl StoreError {
    /// Wraps a backend error.
    pub fn backend(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Backend(Box::new(err))
    }
}
