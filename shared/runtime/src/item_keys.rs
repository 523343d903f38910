//! Key material for DynamoDB items that the adapters and the benchmarks' baselines must
//! compute alike: a hash that spreads an index's writes over buckets the same way in every
//! build and process, and a timestamp text that sorts by time.

use time::OffsetDateTime;

/// FNV-1a of `key`: stable across builds, processes and platforms (unlike `std`'s hasher).
pub fn stable_hash(key: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in key.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The bucket (`0..buckets`, as text) of an index partitioned over `buckets` keys.
pub fn bucket(key: &str, buckets: u64) -> String {
    (stable_hash(key) % buckets.max(1)).to_string()
}

/// Fixed-width UTC timestamp (`2026-11-27T16:29:25.123456Z`, RFC 3339), so strings sort by
/// time.
pub fn sortable_timestamp(at: OffsetDateTime) -> String {
    let utc = at.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        utc.year(),
        u8::from(utc.month()),
        utc.day(),
        utc.hour(),
        utc.minute(),
        utc.second(),
        utc.microsecond()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_stable_and_in_range() {
        // FNV-1a's published test vector: the empty string hashes to the offset basis.
        assert_eq!(stable_hash(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(stable_hash("a"), 0xaf63_dc4c_8601_ec8c);
        let b: u64 = bucket("quote#1", 8).parse().expect("number");
        assert!(b < 8);
        assert_eq!(bucket("quote#1", 8), bucket("quote#1", 8));
    }

    #[test]
    fn timestamps_sort_as_text_like_time() {
        let a = OffsetDateTime::from_unix_timestamp_nanos(1_790_000_000_000_000_000).expect("a");
        let b = a + time::Duration::microseconds(1);
        let c = a + time::Duration::days(400);
        let (ta, tb, tc) = (
            sortable_timestamp(a),
            sortable_timestamp(b),
            sortable_timestamp(c),
        );
        assert!(ta < tb && tb < tc, "{ta} {tb} {tc}");
        assert_eq!(ta.len(), tc.len());
        assert!(OffsetDateTime::parse(&ta, &time::format_description::well_known::Rfc3339).is_ok());
    }
}
