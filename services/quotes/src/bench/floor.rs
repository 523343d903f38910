//! The floor of `quotes bench pipeline`'s process modes: how soon a bare record put on the
//! run's Kinesis endpoint can be read back, measured in the same run, while the pipeline is
//! under load, so every hop can be compared with what the stream itself allows.
//!
//! A probe stream of its own (one shard, `<run>-floor`) gets one small record at a time
//! (`PutRecord`, a random 100–300 ms apart, so records land at every phase of a reader's
//! cadence), each carrying the instant it was put. Two bare readers take them back:
//!
//! - **polling**: `GetRecords` at the consumers' own cadence (`POLL_INTERVAL_MS`: the next call
//!   starts one interval after the previous one started, sooner only while behind the tip), so
//!   its latency is the call's plus the wait for the next call, half an interval on average;
//! - **fan-out**: one `SubscribeToShard` subscription of a registered consumer (renewed from
//!   its continuation when the emulator or Kinesis ends it).
//!
//! Put-to-get is measured on this process's monotonic clock: the instant before `PutRecord` to
//! the instant the reader has the record. No SDK wrapper of ours is in the way: the floor is the
//! stream's and the client's, and the distance from it is the platform's.

use std::time::Duration;

use anyhow::Context;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{ShardIteratorType, StartingPosition, SubscribeToShardEventStream};
use aws_sdk_kinesis::Client;
use hdrhistogram::Histogram;
use kinesis_consumer::source::fanout::{FanOutConfig, KinesisFanOut};
use kinesis_consumer::source::polling::list_all_shards;
use rand::Rng;
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::hops::ms;

/// Highest latency tracked, in microseconds (1 minute).
const MAX_MICROS: u64 = 60_000_000;
/// Least and most time between two probe records.
const GAP_MS: std::ops::RangeInclusive<u64> = 100..=300;
/// Least time between two `GetRecords` calls (Kinesis's 5 calls/s per shard).
const MIN_CALL_INTERVAL: Duration = Duration::from_millis(200);
/// How long a stopped probe waits for records still on their way to its readers.
const DRAIN: Duration = Duration::from_secs(3);
/// How long the probe waits for its subscription to start.
const SETUP_TIMEOUT: Duration = Duration::from_secs(60);

/// A running floor probe; [`FloorProbe::stop`] ends it and reports.
#[derive(Debug)]
pub struct FloorProbe {
    kinesis: Client,
    stream: String,
    shutdown: CancellationToken,
    readers: CancellationToken,
    writer: JoinHandle<anyhow::Result<Histogram<u64>>>,
    polling: JoinHandle<anyhow::Result<Histogram<u64>>>,
    fanout: JoinHandle<anyhow::Result<Histogram<u64>>>,
    read_interval: Duration,
}

/// The probe's clock: microseconds since it started, carried in each record.
#[derive(Clone, Copy)]
struct Clock(Instant);

impl Clock {
    fn now_micros(self) -> u64 {
        u64::try_from(self.0.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// Microseconds from the instant a record carries to now, or `None` for a foreign record.
    fn latency_of(self, data: &[u8]) -> Option<u64> {
        let sent: [u8; 8] = data.get(..8)?.try_into().ok()?;
        Some(
            self.now_micros()
                .saturating_sub(u64::from_be_bytes(sent))
                .max(1),
        )
    }
}

fn histogram() -> anyhow::Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1, MAX_MICROS, 3)?)
}

impl FloorProbe {
    /// Creates the probe's stream and consumer on `kinesis`, starts both readers at the
    /// stream's tip, then the writer.
    pub async fn start(
        kinesis: Client,
        run: &str,
        read_interval: Duration,
    ) -> anyhow::Result<Self> {
        let stream = format!("{run}-floor");
        crate::bootstrap::ensure_stream(&kinesis, &stream, 1)
            .await
            .context("creating the floor probe's stream")?;
        let shard_id = list_all_shards(&kinesis, &stream)
            .await
            .context("listing the floor probe's shard")?
            .into_iter()
            .next()
            .context("the floor probe's stream has no shard")?
            .shard_id;
        let consumer_arn = KinesisFanOut::new(
            kinesis.clone(),
            stream.clone(),
            stream.clone(),
            FanOutConfig::default(),
        )
        .register()
        .await
        .context("registering the floor probe's consumer")?;
        let clock = Clock(Instant::now());
        let shutdown = CancellationToken::new();
        let readers = CancellationToken::new();

        let iterator = kinesis
            .get_shard_iterator()
            .stream_name(&stream)
            .shard_id(&shard_id)
            .shard_iterator_type(ShardIteratorType::Latest)
            .send()
            .await
            .context("GetShardIterator (floor probe)")?
            .shard_iterator
            .context("no shard iterator (floor probe)")?;
        let polling = tokio::spawn(poll(
            kinesis.clone(),
            iterator,
            read_interval,
            clock,
            readers.clone(),
        ));
        let (subscribed_tx, subscribed) = tokio::sync::oneshot::channel();
        let fanout = tokio::spawn(subscribe(
            kinesis.clone(),
            consumer_arn,
            shard_id,
            clock,
            readers.clone(),
            subscribed_tx,
        ));
        tokio::time::timeout(SETUP_TIMEOUT, subscribed)
            .await
            .context("the floor probe's subscription did not start")?
            .context("the floor probe's subscriber ended before it subscribed")?;
        let writer = tokio::spawn(write(
            kinesis.clone(),
            stream.clone(),
            clock,
            shutdown.clone(),
        ));
        Ok(Self {
            kinesis,
            stream,
            shutdown,
            readers,
            writer,
            polling,
            fanout,
            read_interval,
        })
    }

    /// Stops the writer, lets the last records reach the readers, stops them, deletes the probe's
    /// stream and reports `put` (the `PutRecord` call), `polling` and `fanout` put-to-get
    /// latencies.
    pub async fn stop(self) -> anyhow::Result<Floor> {
        self.shutdown.cancel();
        let put = self.writer.await.context("floor writer")??;
        tokio::time::sleep(DRAIN.max(self.read_interval * 2)).await;
        self.readers.cancel();
        let polling = self.polling.await.context("floor poller")??;
        let fanout = self.fanout.await.context("floor subscriber")??;
        // The probe's stream and its consumer go; a failure leaves them to the emulator's end.
        if let Err(err) = self
            .kinesis
            .delete_stream()
            .stream_name(&self.stream)
            .enforce_consumer_deletion(true)
            .send()
            .await
        {
            eprintln!(
                "quotes bench pipeline: could not delete the floor probe's stream {}: {}",
                self.stream,
                aws_sdk_kinesis::error::DisplayErrorContext(&err)
            );
        }
        Ok(Floor {
            read_interval: self.read_interval,
            put,
            polling,
            fanout,
        })
    }
}

/// What the probe measured.
#[derive(Debug)]
pub struct Floor {
    read_interval: Duration,
    put: Histogram<u64>,
    polling: Histogram<u64>,
    fanout: Histogram<u64>,
}

/// A latency summary with the number of records it holds.
fn summary(h: &Histogram<u64>) -> Value {
    let mut summary = super::hops::summary(h);
    summary["records"] = json!(h.len());
    summary
}

impl Floor {
    /// Median put-to-get of the polling reader, in milliseconds.
    pub fn polling_p50_ms(&self) -> f64 {
        ms(self.polling.value_at_quantile(0.50))
    }

    /// Median put-to-get of the subscription, in milliseconds.
    pub fn fanout_p50_ms(&self) -> f64 {
        ms(self.fanout.value_at_quantile(0.50))
    }

    /// The report's `floor` object.
    pub fn report(&self) -> Value {
        let mut polling = summary(&self.polling);
        polling["read_interval_ms"] = json!(self.read_interval.as_millis());
        json!({
            "put": summary(&self.put),
            "polling": polling,
            "fanout": summary(&self.fanout),
        })
    }
}

/// Puts one record at a time until `shutdown`; returns the `PutRecord` latencies.
async fn write(
    kinesis: Client,
    stream: String,
    clock: Clock,
    shutdown: CancellationToken,
) -> anyhow::Result<Histogram<u64>> {
    let mut put = histogram()?;
    while !shutdown.is_cancelled() {
        let sent = clock.now_micros();
        kinesis
            .put_record()
            .stream_name(&stream)
            .partition_key("floor")
            .data(Blob::new(sent.to_be_bytes().to_vec()))
            .send()
            .await
            .context("PutRecord (floor probe)")?;
        put.saturating_record(clock.now_micros().saturating_sub(sent).max(1));
        let gap = rand::thread_rng().gen_range(GAP_MS);
        tokio::select! {
            () = shutdown.cancelled() => {}
            () = tokio::time::sleep(Duration::from_millis(gap)) => {}
        }
    }
    Ok(put)
}

/// Reads with `GetRecords` at `read_interval` until `stop`.
async fn poll(
    kinesis: Client,
    mut iterator: String,
    read_interval: Duration,
    clock: Clock,
    stop: CancellationToken,
) -> anyhow::Result<Histogram<u64>> {
    let mut latencies = histogram()?;
    while !stop.is_cancelled() {
        let called_at = Instant::now();
        let page = kinesis
            .get_records()
            .shard_iterator(&iterator)
            .send()
            .await
            .context("GetRecords (floor probe)")?;
        for record in page.records() {
            if let Some(latency) = clock.latency_of(record.data().as_ref()) {
                latencies.saturating_record(latency);
            }
        }
        let behind = !page.records().is_empty() && page.millis_behind_latest() != Some(0);
        iterator = page
            .next_shard_iterator
            .context("the floor probe's shard closed")?;
        let next = called_at
            + if behind {
                MIN_CALL_INTERVAL
            } else {
                read_interval
            };
        tokio::select! {
            () = stop.cancelled() => {}
            () = tokio::time::sleep_until(next) => {}
        }
    }
    Ok(latencies)
}

/// Reads through `SubscribeToShard` until `stop`, resubscribing after the continuation when a
/// subscription ends; `subscribed` fires once the first subscription is live.
async fn subscribe(
    kinesis: Client,
    consumer_arn: String,
    shard_id: String,
    clock: Clock,
    stop: CancellationToken,
    subscribed: tokio::sync::oneshot::Sender<()>,
) -> anyhow::Result<Histogram<u64>> {
    let mut latencies = histogram()?;
    let mut subscribed = Some(subscribed);
    let mut continuation: Option<String> = None;
    while !stop.is_cancelled() {
        let position = match &continuation {
            Some(sequence) => StartingPosition::builder()
                .r#type(ShardIteratorType::AfterSequenceNumber)
                .sequence_number(sequence)
                .build(),
            None => StartingPosition::builder()
                .r#type(ShardIteratorType::Latest)
                .build(),
        }
        .context("starting position (floor probe)")?;
        let mut events = kinesis
            .subscribe_to_shard()
            .consumer_arn(&consumer_arn)
            .shard_id(&shard_id)
            .starting_position(position)
            .send()
            .await
            .context("SubscribeToShard (floor probe)")?
            .event_stream;
        loop {
            let next = tokio::select! {
                () = stop.cancelled() => return Ok(latencies),
                next = events.recv() => next,
            };
            match next {
                Ok(Some(SubscribeToShardEventStream::SubscribeToShardEvent(event))) => {
                    if let Some(live) = subscribed.take() {
                        let _ = live.send(());
                    }
                    for record in event.records() {
                        if let Some(latency) = clock.latency_of(record.data().as_ref()) {
                            latencies.saturating_record(latency);
                        }
                    }
                    if !event.continuation_sequence_number().is_empty() {
                        continuation = Some(event.continuation_sequence_number().to_owned());
                    }
                }
                Ok(Some(_)) => {}
                // Ended (Kinesis ends a subscription after 5 minutes) or failed: resubscribe
                // after the continuation, no sooner than Kinesis allows (1/s per shard).
                Ok(None) | Err(_) => break,
            }
        }
        tokio::select! {
            () = stop.cancelled() => {}
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
    Ok(latencies)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_record_carries_the_instant_it_was_put() {
        let clock = Clock(Instant::now());
        let data = clock.now_micros().to_be_bytes();
        tokio::time::advance(Duration::from_millis(120)).await;
        assert_eq!(clock.latency_of(&data), Some(120_000));
        assert_eq!(clock.latency_of(b"short"), None, "a foreign record");
    }
}
