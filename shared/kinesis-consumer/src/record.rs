//! A record as delivered to processors.

use time::OffsetDateTime;

/// One Kinesis record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Its sequence number in the shard (a decimal string of up to 128 bits).
    pub sequence_number: String,
    /// Position inside an aggregated record (0 when not aggregated).
    pub sub_sequence_number: u64,
    /// The partition key the producer chose (for us: the event stream id).
    pub partition_key: String,
    /// The payload.
    pub data: Vec<u8>,
    /// When Kinesis received it.
    pub approximate_arrival: Option<OffsetDateTime>,
}

impl Record {
    /// Size counted against buffers: payload plus key.
    pub fn size(&self) -> usize {
        self.data.len() + self.partition_key.len()
    }
}
