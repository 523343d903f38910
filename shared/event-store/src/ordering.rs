//! Per-stream position tracking for consumers of the published events.
//!
//! The relay guarantees that the *first* copy of each version reaches Kinesis after every lower
//! version of the same stream; copies may repeat. A consumer feeds every record it sees to
//! [`StreamPositions::observe`] and learns whether to apply it, skip it as a duplicate, or fill a
//! gap from the event store first (which only happens when the guarantee was broken, e.g. by a
//! record trimmed from the stream before it was read).

use std::collections::HashMap;

/// What a consumer should do with a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observation {
    /// The next version: apply it.
    Next,
    /// Already seen: skip it.
    Duplicate,
    /// Versions `from..=to` are missing before this record: load them from the store first.
    Gap {
        /// First missing version.
        from: u64,
        /// Last missing version.
        to: u64,
    },
}

/// The last applied version of each stream a consumer has seen.
#[derive(Debug, Default, Clone)]
pub struct StreamPositions {
    applied: HashMap<String, u64>,
}

impl StreamPositions {
    /// Classifies a record without changing the positions.
    pub fn observe(&self, stream_id: &str, version: u64) -> Observation {
        let last = self.applied.get(stream_id).copied().unwrap_or(0);
        if version <= last {
            Observation::Duplicate
        } else if version == last + 1 {
            Observation::Next
        } else {
            Observation::Gap {
                from: last + 1,
                to: version - 1,
            }
        }
    }

    /// Records that `version` (and everything before it) was applied.
    pub fn applied(&mut self, stream_id: &str, version: u64) {
        let entry = self.applied.entry(stream_id.to_owned()).or_insert(0);
        *entry = (*entry).max(version);
    }

    /// The last applied version of a stream (0 when none).
    pub fn last_applied(&self, stream_id: &str) -> u64 {
        self.applied.get(stream_id).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_next_duplicate_and_gap() {
        let mut positions = StreamPositions::default();
        assert_eq!(positions.observe("s", 1), Observation::Next);
        positions.applied("s", 1);
        assert_eq!(positions.observe("s", 1), Observation::Duplicate);
        assert_eq!(positions.observe("s", 2), Observation::Next);
        assert_eq!(
            positions.observe("s", 5),
            Observation::Gap { from: 2, to: 4 }
        );
        positions.applied("s", 5);
        assert_eq!(positions.last_applied("s"), 5);
        assert_eq!(
            positions.observe("other", 2),
            Observation::Gap { from: 1, to: 1 }
        );
    }
}
