//! Kinesis `GetRecords` polling, at a fixed cadence at the tip and within the per-shard limits.
//!
//! Pacing of one shard's reader (ADR 0013):
//! - while `MillisBehindLatest > 0` it re-polls as soon as the previous call returned, but never
//!   sooner than `min_call_interval` after the previous call (5 calls/s per shard is the limit
//!   shared by every application reading the shard);
//! - at the tip (an empty batch, or `MillisBehindLatest = 0` whether or not records came) it
//!   calls again `read_interval` after the previous call started: a fixed cadence, so a record
//!   waits at most one interval (half of one on average) before it is read, and the application
//!   costs `1 / read_interval` calls per second per shard, idle or busy. There is no idle
//!   backoff: a backed-off reader makes the first record after a quiet spell wait longest, and
//!   `GetRecords` calls are not billed;
//! - after a response of `large_response_bytes` or more it pauses `large_response_pause`
//!   (Kinesis throttles a shard for 5 s after a 10 MB read);
//! - an expired iterator (5 minutes old) is renewed from the last record delivered;
//! - throttling and 5xx are retried by the SDK's retry policy first; what is left reaches the
//!   shard task, which retries with backoff while it holds the lease (`worker/shard.rs`).

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_kinesis::error::DisplayErrorContext;
use aws_sdk_kinesis::operation::get_records::GetRecordsError;
use aws_sdk_kinesis::operation::get_shard_iterator::GetShardIteratorError;
use aws_sdk_kinesis::types::ShardIteratorType;
use aws_sdk_kinesis::Client;
use time::OffsetDateTime;
use tokio::time::Instant;

use super::{Batch, RecordSource, ShardInfo, ShardReader, SourceError, StartPosition};
use crate::record::Record;

/// Default [`PollingConfig::read_interval`], in milliseconds: the platform's six applications
/// polling a shard at this cadence use 4 of its 5 calls/s, leaving room for catching up
/// (ADR 0013).
pub const DEFAULT_READ_INTERVAL_MS: u64 = 1500;

/// Pacing of polling readers.
#[derive(Debug, Clone)]
pub struct PollingConfig {
    /// Records per `GetRecords` call (Kinesis allows 10,000).
    pub max_records: i32,
    /// Least time between two calls on one shard (200 ms = the 5 calls/s limit).
    pub min_call_interval: Duration,
    /// Time from one call's start to the next while the reader is at the tip of the shard: the
    /// application's read cadence (ADR 0013). Every application polling a shard shares its 5
    /// calls/s, so keep the sum of `1 / read_interval` over them at or below 5.
    pub read_interval: Duration,
    /// Pause after a throttled call (on top of the SDK's own retries).
    pub throttle_pause: Duration,
    /// A response at least this large triggers `large_response_pause`.
    pub large_response_bytes: usize,
    /// Pause after a large response.
    pub large_response_pause: Duration,
}

impl Default for PollingConfig {
    fn default() -> Self {
        Self {
            max_records: 10_000,
            min_call_interval: Duration::from_millis(200),
            read_interval: Duration::from_millis(DEFAULT_READ_INTERVAL_MS),
            throttle_pause: Duration::from_secs(1),
            large_response_bytes: 9 * 1024 * 1024,
            large_response_pause: Duration::from_secs(5),
        }
    }
}

/// Polls a Kinesis data stream.
#[derive(Debug, Clone)]
pub struct KinesisPolling {
    client: Client,
    stream_name: String,
    config: PollingConfig,
}

impl KinesisPolling {
    /// A source for the named stream.
    pub fn new(client: Client, stream_name: impl Into<String>, config: PollingConfig) -> Self {
        Self {
            client,
            stream_name: stream_name.into(),
            config,
        }
    }
}

fn to_offset(dt: &aws_sdk_kinesis::primitives::DateTime) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(dt.secs())
        .ok()
        .map(|t| t + time::Duration::nanoseconds(i64::from(dt.subsec_nanos())))
}

fn to_smithy(at: OffsetDateTime) -> aws_sdk_kinesis::primitives::DateTime {
    aws_sdk_kinesis::primitives::DateTime::from_secs_and_nanos(at.unix_timestamp(), at.nanosecond())
}

/// Lists every shard of a stream through `ListShards`, following `NextToken` pages.
pub async fn list_all_shards(
    client: &Client,
    stream_name: &str,
) -> Result<Vec<ShardInfo>, SourceError> {
    let mut shards = Vec::new();
    let mut next_token: Option<String> = None;
    loop {
        // With a NextToken the stream name must not be sent.
        let request = match &next_token {
            Some(token) => client.list_shards().next_token(token),
            None => client.list_shards().stream_name(stream_name),
        };
        let output = request.max_results(1000).send().await.map_err(|e| {
            SourceError::Backend(format!("ListShards: {}", DisplayErrorContext(&e)))
        })?;
        for shard in output.shards() {
            let mut parents = Vec::new();
            parents.extend(shard.parent_shard_id().map(str::to_owned));
            parents.extend(shard.adjacent_parent_shard_id().map(str::to_owned));
            let range = shard.hash_key_range();
            shards.push(ShardInfo {
                shard_id: shard.shard_id().to_owned(),
                parent_shard_ids: parents,
                starting_hash_key: range
                    .map(|r| r.starting_hash_key().to_owned())
                    .unwrap_or_default(),
                ending_hash_key: range
                    .map(|r| r.ending_hash_key().to_owned())
                    .unwrap_or_default(),
                closed: shard
                    .sequence_number_range()
                    .and_then(|r| r.ending_sequence_number())
                    .is_some(),
            });
        }
        match output.next_token() {
            Some(token) if !token.is_empty() => next_token = Some(token.to_owned()),
            _ => return Ok(shards),
        }
    }
}

#[async_trait]
impl RecordSource for KinesisPolling {
    async fn list_shards(&self) -> Result<Vec<ShardInfo>, SourceError> {
        list_all_shards(&self.client, &self.stream_name).await
    }

    async fn open(
        &self,
        shard_id: &str,
        start: StartPosition,
    ) -> Result<Box<dyn ShardReader>, SourceError> {
        let mut reader = PollingReader {
            client: self.client.clone(),
            stream_name: self.stream_name.clone(),
            shard_id: shard_id.to_owned(),
            config: self.config.clone(),
            start,
            last_sequence: None,
            iterator: None,
            next_call_at: Instant::now(),
            finished: false,
        };
        reader.iterator = Some(reader.fresh_iterator().await?);
        Ok(Box::new(reader))
    }
}

/// Reads one shard with `GetRecords`.
#[derive(Debug)]
pub struct PollingReader {
    client: Client,
    stream_name: String,
    shard_id: String,
    config: PollingConfig,
    start: StartPosition,
    last_sequence: Option<String>,
    iterator: Option<String>,
    next_call_at: Instant,
    finished: bool,
}

impl PollingReader {
    /// An iterator positioned after the last delivered record, or at the start position.
    async fn fresh_iterator(&self) -> Result<String, SourceError> {
        let request = self
            .client
            .get_shard_iterator()
            .stream_name(&self.stream_name)
            .shard_id(&self.shard_id);
        let position = match &self.last_sequence {
            Some(sequence) => StartPosition::AfterSequence(sequence.clone()),
            None => self.start.clone(),
        };
        let request = match position {
            StartPosition::TrimHorizon => {
                request.shard_iterator_type(ShardIteratorType::TrimHorizon)
            }
            StartPosition::Latest => request.shard_iterator_type(ShardIteratorType::Latest),
            StartPosition::AtTimestamp(at) => request
                .shard_iterator_type(ShardIteratorType::AtTimestamp)
                .timestamp(to_smithy(at)),
            StartPosition::AfterSequence(sequence) => request
                .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                .starting_sequence_number(sequence),
        };
        let output = request.send().await.map_err(|e| {
            // The text keeps the error code and its causes (the bare service error's `Display`
            // is "unhandled error" for a code the model does not name, or a dispatch failure).
            let described = format!(
                "GetShardIterator {}: {}",
                self.shard_id,
                DisplayErrorContext(&e)
            );
            match e.into_service_error() {
                GetShardIteratorError::ResourceNotFoundException(_) => {
                    SourceError::NotFound(self.shard_id.clone())
                }
                GetShardIteratorError::ProvisionedThroughputExceededException(_) => {
                    SourceError::Throttled(described)
                }
                _ => SourceError::Backend(described),
            }
        })?;
        output
            .shard_iterator
            .ok_or_else(|| SourceError::Backend(format!("no iterator for {}", self.shard_id)))
    }
}

/// How long after a call's start the next one may start, given what it returned (module
/// docs): a large response pauses; at the tip the cadence is `read_interval`; behind it,
/// `min_call_interval`.
fn pause_after(
    config: &PollingConfig,
    empty: bool,
    bytes: usize,
    millis_behind: Option<u64>,
) -> Duration {
    let at_tip = empty || millis_behind == Some(0);
    let pause = if bytes >= config.large_response_bytes {
        config.large_response_pause
    } else if at_tip {
        config.read_interval
    } else {
        Duration::ZERO
    };
    config.min_call_interval.max(pause)
}

#[async_trait]
impl ShardReader for PollingReader {
    async fn next_batch(&mut self) -> Result<Batch, SourceError> {
        if self.finished {
            return Ok(Batch {
                shard_end: Some(Vec::new()),
                ..Batch::default()
            });
        }
        tokio::time::sleep_until(self.next_call_at).await;
        let iterator = match self.iterator.take() {
            Some(iterator) => iterator,
            None => self.fresh_iterator().await?,
        };
        let called_at = Instant::now();
        let result = self
            .client
            .get_records()
            .shard_iterator(&iterator)
            .limit(self.config.max_records)
            .send()
            .await;
        let output = match result {
            Ok(output) => output,
            Err(err) => {
                self.next_call_at = called_at + self.config.min_call_interval;
                let described = format!(
                    "GetRecords {}: {}",
                    self.shard_id,
                    DisplayErrorContext(&err)
                );
                return match err.into_service_error() {
                    GetRecordsError::ExpiredIteratorException(_) => {
                        tracing::debug!(shard = %self.shard_id, "iterator expired; renewing from the last record");
                        self.iterator = Some(self.fresh_iterator().await?);
                        Ok(Batch::default())
                    }
                    GetRecordsError::ProvisionedThroughputExceededException(_) => {
                        self.iterator = Some(iterator);
                        self.next_call_at = called_at + self.config.throttle_pause;
                        Err(SourceError::Throttled(described))
                    }
                    GetRecordsError::ResourceNotFoundException(_) => {
                        Err(SourceError::NotFound(self.shard_id.clone()))
                    }
                    _ => {
                        self.iterator = Some(iterator);
                        Err(SourceError::Backend(described))
                    }
                };
            }
        };
        let millis_behind = output
            .millis_behind_latest()
            .and_then(|m| u64::try_from(m).ok());
        let mut bytes = 0usize;
        let records: Vec<Record> = output
            .records()
            .iter()
            .map(|r| {
                bytes += r.data().as_ref().len();
                Record {
                    sequence_number: r.sequence_number().to_owned(),
                    sub_sequence_number: 0,
                    partition_key: r.partition_key().unwrap_or_default().to_owned(),
                    data: r.data().as_ref().to_vec(),
                    approximate_arrival: r.approximate_arrival_timestamp().and_then(to_offset),
                }
            })
            .collect();
        if let Some(last) = records.last() {
            self.last_sequence = Some(last.sequence_number.clone());
        }
        let shard_end = match output.next_shard_iterator() {
            Some(next) => {
                self.iterator = Some(next.to_owned());
                None
            }
            None => {
                self.finished = true;
                Some(
                    output
                        .child_shards()
                        .iter()
                        .map(|c| c.shard_id().to_owned())
                        .collect::<Vec<_>>(),
                )
            }
        };
        self.next_call_at =
            called_at + pause_after(&self.config, records.is_empty(), bytes, millis_behind);
        Ok(Batch {
            records,
            millis_behind_latest: millis_behind,
            shard_end,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cadence_is_fixed_at_the_tip_whether_or_not_records_came() {
        let config = PollingConfig {
            read_interval: Duration::from_millis(300),
            ..PollingConfig::default()
        };
        let interval = Duration::from_millis(300);
        // Idle, again and again: no backoff, the same cadence.
        for _ in 0..5 {
            assert_eq!(pause_after(&config, true, 0, Some(0)), interval);
        }
        // Records at the tip (a slow, steady stream): the same cadence, not a longer wait.
        assert_eq!(pause_after(&config, false, 100, Some(0)), interval);
    }

    #[test]
    fn a_reader_behind_the_tip_reads_again_at_the_shard_limit() {
        let config = PollingConfig::default();
        for behind in [Some(5_000), None] {
            assert_eq!(
                pause_after(&config, false, 100, behind),
                config.min_call_interval
            );
        }
        // Never faster than the limit, even with a read interval below it.
        let eager = PollingConfig {
            read_interval: Duration::from_millis(50),
            ..PollingConfig::default()
        };
        assert_eq!(
            pause_after(&eager, true, 0, Some(0)),
            eager.min_call_interval
        );
    }

    #[test]
    fn a_large_response_pauses_the_shard() {
        let config = PollingConfig::default();
        assert_eq!(
            pause_after(&config, false, config.large_response_bytes, Some(60_000)),
            config.large_response_pause
        );
    }
}
