//! What fits: the size limits an event must meet to be stored and published, checked on the
//! whole envelope (payload *and* metadata) before anything is written.
//!
//! A committed event becomes two things, each with a hard limit set by AWS:
//!
//! - a **Kinesis record**: the envelope's JSON plus the partition key (the stream id) may be at
//!   most [`MAX_RECORD_BYTES`] (1 MiB); a bigger record is refused whole, forever;
//! - a **DynamoDB item** of the events table: attribute names plus values, counted as DynamoDB
//!   counts them, at most [`MAX_ITEM_BYTES`] (400 KB). The items of one append (events, the
//!   idempotency record and the stream head) go in one transaction of at most
//!   [`MAX_TRANSACTION_BYTES`].
//!
//! Every adapter refuses an append that breaks one of them with
//! [`StoreError::EventTooLarge`] (or [`StoreError::AppendTooLarge`] for the transaction), so an
//! event that could never be published is never committed. The in-memory adapter measures the
//! same DynamoDB item the DynamoDB adapter writes, so both refuse exactly the same appends.

use std::io;

use aws_sdk_dynamodb::types::AttributeValue;

use crate::envelope::EventEnvelope;
use crate::error::{SizeLimit, StoreError};

/// The largest Kinesis record: data blob plus partition key (1 MiB).
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;

/// The longest Kinesis partition key, in characters (the stream id is the partition key).
pub const MAX_PARTITION_KEY_CHARS: usize = 256;

/// The largest DynamoDB item: attribute names and values (400 KB).
pub const MAX_ITEM_BYTES: usize = 400 * 1024;

/// The largest DynamoDB transaction: the aggregate size of its items (4 MB).
pub const MAX_TRANSACTION_BYTES: usize = 4 * 1000 * 1000;

/// Size of the envelope as a Kinesis record: its JSON encoding plus the partition key.
pub fn record_bytes(envelope: &EventEnvelope) -> usize {
    let mut counter = ByteCounter(0);
    match serde_json::to_writer(&mut counter, envelope) {
        Ok(()) => counter.0.saturating_add(envelope.stream_id.len()),
        // An envelope that does not encode can never be published.
        Err(_) => usize::MAX,
    }
}

/// Size of a DynamoDB item as DynamoDB counts it: for each attribute, the UTF-8 length of its
/// name plus the size of its value (see [`attribute_value_bytes`]).
pub fn item_bytes<'a>(
    attributes: impl IntoIterator<Item = (&'a String, &'a AttributeValue)>,
) -> usize {
    attributes
        .into_iter()
        .map(|(name, value)| name.len().saturating_add(attribute_value_bytes(value)))
        .fold(0, usize::saturating_add)
}

/// Size of one attribute value as DynamoDB counts it: strings and binaries by their length;
/// numbers 1 byte per two significant digits plus 1 (counted without trimming zeroes, so never
/// under); booleans and nulls 1 byte; lists and maps 3 bytes plus 1 per element plus the
/// elements (and, for maps, the keys); sets the sum of their elements.
pub fn attribute_value_bytes(value: &AttributeValue) -> usize {
    fn number(digits: &str) -> usize {
        digits
            .bytes()
            .filter(u8::is_ascii_digit)
            .count()
            .div_ceil(2)
            + 1
    }
    match value {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => number(n),
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::Ss(set) => set.iter().map(String::len).sum(),
        AttributeValue::Ns(set) => set.iter().map(|n| number(n)).sum(),
        AttributeValue::Bs(set) => set.iter().map(|b| b.as_ref().len()).sum(),
        AttributeValue::L(list) => list
            .iter()
            .map(|v| attribute_value_bytes(v) + 1)
            .fold(3, usize::saturating_add),
        AttributeValue::M(map) => map
            .iter()
            .map(|(k, v)| k.len() + attribute_value_bytes(v) + 1)
            .fold(3, usize::saturating_add),
        // A type this code does not write; count it as the limit so it is never let through.
        _ => MAX_ITEM_BYTES,
    }
}

/// Checks one committed envelope against the Kinesis record limit and the DynamoDB item limit
/// (`item_bytes`: the size of the item the DynamoDB adapter writes for it).
pub(crate) fn check_event(envelope: &EventEnvelope, item_bytes: usize) -> Result<(), StoreError> {
    let too_large = |bytes, limit| StoreError::EventTooLarge {
        event_id: envelope.event_id,
        bytes,
        limit,
    };
    let record = record_bytes(envelope);
    if record > MAX_RECORD_BYTES {
        return Err(too_large(record, SizeLimit::KinesisRecord));
    }
    if item_bytes > MAX_ITEM_BYTES {
        return Err(too_large(item_bytes, SizeLimit::DynamoDbItem));
    }
    Ok(())
}

/// Counts the bytes written to it.
struct ByteCounter(usize);

impl io::Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 = self.0.saturating_add(buf.len());
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(name: &str, value: AttributeValue) -> (String, AttributeValue) {
        (name.to_owned(), value)
    }

    #[test]
    fn items_count_names_and_values_as_dynamodb_does() {
        let item = [
            attr("stream_id", AttributeValue::S("quote#1".into())),
            attr("version", AttributeValue::N("12345".into())),
            attr("flag", AttributeValue::Bool(true)),
            attr(
                "tags",
                AttributeValue::L(vec![
                    AttributeValue::S("ab".into()),
                    AttributeValue::Null(true),
                ]),
            ),
        ];
        // 9+7, 7+(3+1), 4+1, 4+(3 + (2+1) + (1+1))
        let expected = 16 + 11 + 5 + 4 + 8;
        assert_eq!(item_bytes(item.iter().map(|(k, v)| (k, v))), expected);
        // Multi-byte characters count by their UTF-8 length.
        let accented = [attr("é", AttributeValue::S("ü".into()))];
        assert_eq!(item_bytes(accented.iter().map(|(k, v)| (k, v))), 4);
    }
}
