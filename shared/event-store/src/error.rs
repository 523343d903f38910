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
    /// One event (payload and metadata) is larger than a Kinesis record or a DynamoDB item may
    /// be: it could never be stored or published, so it is refused before anything is written.
    #[error("event {event_id} is {bytes} bytes as {limit}; at most {} bytes fit", .limit.bytes())]
    EventTooLarge {
        /// The offending event.
        event_id: uuid::Uuid,
        /// Its size as measured for `limit`.
        bytes: usize,
        /// The limit it breaks.
        limit: SizeLimit,
    },
    /// The idempotency record, or the items of one append together, exceed what one DynamoDB
    /// item or transaction may hold.
    #[error("the append needs {bytes} bytes where at most {limit} fit (DynamoDB item or transaction limit)")]
    AppendTooLarge {
        /// The aggregate size of the append's items.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// A stored item could not be decoded, or an event could not be encoded into one.
    #[error("stored item is corrupt: {what}")]
    Corrupt {
        /// Which attribute or value.
        what: String,
        /// The parser's or encoder's own error, when there is one.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// The backend failed (after the SDK's own retries for throttling and 5xx).
    #[error("event store backend failed: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl StoreError {
    /// A corrupt item whose attribute `what` is missing or has the wrong type.
    pub fn corrupt(what: impl Into<String>) -> Self {
        StoreError::Corrupt {
            what: what.into(),
            source: None,
        }
    }

    /// The value `what` failed to parse or encode, for the reason `source`.
    pub fn unreadable(
        what: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        StoreError::Corrupt {
            what: what.into(),
            source: Some(Box::new(source)),
        }
    }

    /// A `map_err` adapter for [`StoreError::unreadable`] with a fixed description.
    pub fn corrupt_by<E>(what: &'static str) -> impl FnOnce(E) -> Self
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        move |source| Self::unreadable(what, source)
    }
}

/// The size limits an event must meet (see [`crate::limits`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeLimit {
    /// A Kinesis record: the envelope's JSON plus the partition key.
    KinesisRecord,
    /// A DynamoDB item of the events table: attribute names and values.
    DynamoDbItem,
}

impl SizeLimit {
    /// The limit in bytes.
    pub fn bytes(self) -> usize {
        match self {
            SizeLimit::KinesisRecord => crate::limits::MAX_RECORD_BYTES,
            SizeLimit::DynamoDbItem => crate::limits::MAX_ITEM_BYTES,
        }
    }
}

impl std::fmt::Display for SizeLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SizeLimit::KinesisRecord => "a Kinesis record (envelope JSON and partition key)",
            SizeLimit::DynamoDbItem => "a DynamoDB item (attribute names and values)",
        })
    }
}

impl StoreError {
    /// Wraps a backend error.
    pub fn backend(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Backend(Box::new(err))
    }
}
