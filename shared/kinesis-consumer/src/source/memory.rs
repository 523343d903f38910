//! An in-process stream with Kinesis's shard model: records are routed by a 128-bit hash of the
//! partition key to the open shard whose hash range holds it; splits and merges close shards and
//! open children; readers see `shard_end` with the children once a closed shard is drained.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tokio::sync::Notify;

use super::{Batch, RecordSource, ShardInfo, ShardReader, SourceError, StartPosition};
use crate::record::Record;

#[derive(Debug)]
struct Shard {
    info: ShardInfo,
    start: u128,
    end: u128,
    records: Vec<Record>,
    children: Vec<String>,
}

#[derive(Debug, Default)]
struct State {
    shards: BTreeMap<String, Shard>,
    next_shard: u64,
    next_sequence: u128,
}

/// A stream held in memory.
#[derive(Debug, Clone)]
pub struct InMemoryStream {
    state: Arc<Mutex<State>>,
    appended: Arc<Notify>,
}

/// The hash key of a partition key (Kinesis uses MD5; any uniform 128-bit digest behaves alike).
pub fn hash_key(partition_key: &str) -> u128 {
    let digest = Sha256::digest(partition_key.as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    u128::from_be_bytes(bytes)
}

fn shard_id(n: u64) -> String {
    format!("shardId-{n:012}")
}

impl InMemoryStream {
    /// A stream with `shards` shards splitting the hash space evenly.
    pub fn new(shards: u64) -> Self {
        let stream = Self {
            state: Arc::new(Mutex::new(State {
                next_sequence: 49_000_000_000_000_000_000,
                ..State::default()
            })),
            appended: Arc::new(Notify::new()),
        };
        let shards = u128::from(shards.max(1));
        let width = u128::MAX / shards;
        for i in 0..shards {
            let start = i * width;
            let end = if i == shards - 1 {
                u128::MAX
            } else {
                start + width - 1
            };
            stream.open_shard(start, end, Vec::new());
        }
        stream
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn open_shard(&self, start: u128, end: u128, parents: Vec<String>) -> String {
        let mut state = self.lock();
        let id = shard_id(state.next_shard);
        state.next_shard += 1;
        state.shards.insert(
            id.clone(),
            Shard {
                info: ShardInfo {
                    shard_id: id.clone(),
                    parent_shard_ids: parents,
                    starting_hash_key: start.to_string(),
                    ending_hash_key: end.to_string(),
                    closed: false,
                },
                start,
                end,
                records: Vec::new(),
                children: Vec::new(),
            },
        );
        id
    }

    /// Appends a record; returns (shard id, sequence number).
    pub fn put(&self, partition_key: &str, data: impl Into<Vec<u8>>) -> (String, String) {
        let hash = hash_key(partition_key);
        let mut state = self.lock();
        state.next_sequence += 1;
        let sequence = state.next_sequence.to_string();
        let shard = state
            .shards
            .values_mut()
            .find(|s| !s.info.closed && s.start <= hash && hash <= s.end);
        let id = match shard {
            Some(shard) => {
                shard.records.push(Record {
                    sequence_number: sequence.clone(),
                    sub_sequence_number: 0,
                    partition_key: partition_key.to_owned(),
                    data: data.into(),
                    approximate_arrival: Some(OffsetDateTime::now_utc()),
                });
                shard.info.shard_id.clone()
            }
            None => String::new(),
        };
        drop(state);
        self.appended.notify_waiters();
        (id, sequence)
    }

    /// Splits an open shard at its hash midpoint; returns the two children.
    pub fn split(&self, shard_id: &str) -> Result<(String, String), SourceError> {
        let (start, end) = {
            let mut state = self.lock();
            let shard = state
                .shards
                .get_mut(shard_id)
                .filter(|s| !s.info.closed)
                .ok_or_else(|| SourceError::NotFound(shard_id.to_owned()))?;
            shard.info.closed = true;
            (shard.start, shard.end)
        };
        let middle = start + (end - start) / 2;
        let left = self.open_shard(start, middle, vec![shard_id.to_owned()]);
        let right = self.open_shard(middle + 1, end, vec![shard_id.to_owned()]);
        if let Some(shard) = self.lock().shards.get_mut(shard_id) {
            shard.children = vec![left.clone(), right.clone()];
        }
        self.appended.notify_waiters();
        Ok((left, right))
    }

    /// Merges two open, adjacent shards; returns the child.
    pub fn merge(&self, first: &str, second: &str) -> Result<String, SourceError> {
        let (start, end) = {
            let mut state = self.lock();
            let ranges: Vec<(u128, u128)> = [first, second]
                .iter()
                .map(|id| {
                    state
                        .shards
                        .get(*id)
                        .filter(|s| !s.info.closed)
                        .map(|s| (s.start, s.end))
                        .ok_or_else(|| SourceError::NotFound((*id).to_owned()))
                })
                .collect::<Result<_, _>>()?;
            let (a, b) = (ranges[0], ranges[1]);
            if a.1.checked_add(1) != Some(b.0) && b.1.checked_add(1) != Some(a.0) {
                return Err(SourceError::Backend(format!(
                    "{first} and {second} are not adjacent"
                )));
            }
            for id in [first, second] {
                if let Some(shard) = state.shards.get_mut(id) {
                    shard.info.closed = true;
                }
            }
            (a.0.min(b.0), a.1.max(b.1))
        };
        let child = self.open_shard(start, end, vec![first.to_owned(), second.to_owned()]);
        let mut state = self.lock();
        for id in [first, second] {
            if let Some(shard) = state.shards.get_mut(id) {
                shard.children = vec![child.clone()];
            }
        }
        drop(state);
        self.appended.notify_waiters();
        Ok(child)
    }

    /// Every record of a shard (for tests).
    pub fn records(&self, shard_id: &str) -> Vec<Record> {
        self.lock()
            .shards
            .get(shard_id)
            .map(|s| s.records.clone())
            .unwrap_or_default()
    }
}

#[async_trait]
impl RecordSource for InMemoryStream {
    async fn list_shards(&self) -> Result<Vec<ShardInfo>, SourceError> {
        Ok(self
            .lock()
            .shards
            .values()
            .map(|s| s.info.clone())
            .collect())
    }

    async fn open(
        &self,
        shard_id: &str,
        start: StartPosition,
    ) -> Result<Box<dyn ShardReader>, SourceError> {
        let state = self.lock();
        let shard = state
            .shards
            .get(shard_id)
            .ok_or_else(|| SourceError::NotFound(shard_id.to_owned()))?;
        let position = match &start {
            StartPosition::TrimHorizon => 0,
            StartPosition::Latest => shard.records.len(),
            StartPosition::AtTimestamp(at) => shard
                .records
                .iter()
                .position(|r| r.approximate_arrival.is_some_and(|t| t >= *at))
                .unwrap_or(shard.records.len()),
            StartPosition::AfterSequence(sequence) => shard
                .records
                .iter()
                .position(|r| {
                    crate::lease::compare_sequence_numbers(&r.sequence_number, sequence)
                        == std::cmp::Ordering::Greater
                })
                .unwrap_or(shard.records.len()),
        };
        Ok(Box::new(InMemoryReader {
            stream: self.clone(),
            shard_id: shard_id.to_owned(),
            position,
            max_records: 1000,
        }))
    }
}

/// Reads one in-memory shard.
#[derive(Debug)]
pub struct InMemoryReader {
    stream: InMemoryStream,
    shard_id: String,
    position: usize,
    max_records: usize,
}

/// As Kinesis reports it: how far behind the present the batch's last record is (at least 1 ms
/// while records remain after it).
fn millis_behind(last: Option<&Record>) -> u64 {
    let age = last
        .and_then(|record| record.approximate_arrival)
        .map_or(0, |arrival| {
            (OffsetDateTime::now_utc() - arrival).whole_milliseconds()
        });
    u64::try_from(age).unwrap_or(0).max(1)
}

/// How long an idle in-memory reader waits for new records before returning an empty batch.
const IDLE_WAIT: Duration = Duration::from_millis(200);

#[async_trait]
impl ShardReader for InMemoryReader {
    async fn next_batch(&mut self) -> Result<Batch, SourceError> {
        let appended = self.stream.appended.clone();
        let notified = appended.notified();
        let batch = {
            let state = self.stream.lock();
            let shard = state
                .shards
                .get(&self.shard_id)
                .ok_or_else(|| SourceError::NotFound(self.shard_id.clone()))?;
            let end = (self.position + self.max_records).min(shard.records.len());
            let records = shard.records[self.position..end].to_vec();
            self.position = end;
            let drained = self.position == shard.records.len();
            Batch {
                millis_behind_latest: Some(if drained {
                    0
                } else {
                    millis_behind(records.last())
                }),
                shard_end: (shard.info.closed && drained).then(|| shard.children.clone()),
                records,
            }
        };
        if batch.records.is_empty() && batch.shard_end.is_none() {
            let _ = tokio::time::timeout(IDLE_WAIT, notified).await;
        }
        Ok(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn records_route_by_hash_and_children_follow_a_split() {
        let stream = InMemoryStream::new(2);
        let mut by_shard: BTreeMap<String, usize> = BTreeMap::new();
        for i in 0..100 {
            let (shard, _) = stream.put(&format!("key-{i}"), vec![1]);
            *by_shard.entry(shard).or_default() += 1;
        }
        assert_eq!(by_shard.len(), 2);
        let first = shard_id(0);
        let (left, right) = stream.split(&first).expect("split");
        stream.put("after-split", vec![2]);
        let mut reader = stream
            .open(&first, StartPosition::TrimHorizon)
            .await
            .expect("open");
        let mut seen = 0;
        loop {
            let batch = reader.next_batch().await.expect("batch");
            seen += batch.records.len();
            if let Some(children) = batch.shard_end {
                assert_eq!(children, vec![left.clone(), right.clone()]);
                break;
            }
        }
        assert_eq!(seen, by_shard[&first]);
        let shards = stream.list_shards().await.expect("list");
        assert_eq!(shards.len(), 4);
        assert!(shards
            .iter()
            .any(|s| s.shard_id == left && s.parent_shard_ids == vec![first.clone()]));
        let merged = stream.merge(&left, &right).expect("merge");
        let info = stream.list_shards().await.expect("list");
        let child = info.iter().find(|s| s.shard_id == merged).expect("child");
        assert_eq!(child.parent_shard_ids, vec![left, right]);
    }

    #[tokio::test]
    async fn readers_resume_after_a_sequence_number() {
        let stream = InMemoryStream::new(1);
        let sequences: Vec<String> = (0..5).map(|i| stream.put("k", vec![i]).1).collect();
        let mut reader = stream
            .open(
                &shard_id(0),
                StartPosition::AfterSequence(sequences[2].clone()),
            )
            .await
            .expect("open");
        let batch = reader.next_batch().await.expect("batch");
        assert_eq!(
            batch
                .records
                .iter()
                .map(|r| r.sequence_number.clone())
                .collect::<Vec<_>>(),
            sequences[3..].to_vec()
        );
    }
}
