//! Kinesis enhanced fan-out (EFO): `SubscribeToShard` push delivery behind [`RecordSource`].
//!
//! # Design
//! - **Consumer.** [`KinesisFanOut::register`] resolves the stream ARN (`DescribeStreamSummary`),
//!   registers the named consumer (`RegisterStreamConsumer`; `ResourceInUseException` means it
//!   exists, so `DescribeStreamConsumer` finds it), waits until it is `ACTIVE` and caches the ARN.
//!   It is idempotent and safe to call from many workers; [`RecordSource::open`] calls it too.
//! - **One pump task per reader.** `open` spawns a task that owns the subscription and feeds a
//!   small bounded channel (`prefetch_events` events, so at most that many events are read
//!   ahead). [`ShardReader::next_batch`] only awaits that channel, bounded by `idle_timeout`
//!   (then it returns an empty batch so callers can do housekeeping). Awaiting a channel is
//!   cancel-safe: a caller may drop a `next_batch` future (e.g. in `select!`) without losing an
//!   event, which would not hold for a half-read HTTP event stream. Dropping the reader aborts
//!   the task, which closes the subscription.
//! - **Renewal.** Kinesis ends a subscription after 5 minutes. The pump renews it earlier, after
//!   `renew_after ± renew_jitter` (4 min 30 s ± 15 s: readers opened together do not resubscribe
//!   together), and resubscribes the same way when the event stream ends or fails. Every
//!   resubscription starts `AFTER_SEQUENCE_NUMBER` the last `ContinuationSequenceNumber` (or the
//!   last record), so nothing is lost; as a second guard, records at or below the last delivered
//!   sequence number are dropped, so nothing is delivered twice across a renewal.
//! - **Pacing.** At most one `SubscribeToShard` per shard per `min_resubscribe_interval` (Kinesis
//!   allows one per second per consumer and shard). After a failure the next attempt also waits
//!   a full-jitter backoff ([`Backoff`]). `ResourceInUseException` (the previous subscription is
//!   still held, typically for a moment after a renewal) is retried quietly.
//! - **Errors.** Failures the pump retries by itself (throttling, transport errors, internal
//!   failures, a subscription held elsewhere for long) are still reported once through
//!   `next_batch` as [`SourceError::Throttled`] / [`SourceError::Backend`] when the channel has
//!   room; the reader stays usable. `ResourceNotFoundException` for the shard ends the reader with
//!   [`SourceError::NotFound`]; access, argument and KMS errors end it with
//!   [`SourceError::Backend`]. Later calls repeat the final error.
//! - **Shard end.** Kinesis marks the last event of a closed shard by omitting
//!   `ContinuationSequenceNumber` (the SDK models it as a required string and yields `""`) and
//!   listing `ChildShards`; the batch then carries `shard_end: Some(children)`. Emulators that
//!   never send that event (kinesis-mock 0.6 always sends a continuation and no child shards)
//!   are covered by a probe: while caught up, at most every `closed_shard_probe`, the pump lists
//!   the shards; once its shard is closed it resubscribes, and the first caught-up empty event
//!   of a subscription made after the closure was seen proves the shard drained (no record can
//!   be added to a closed shard), so the reader ends with the children from `ListShards`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_kinesis::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_kinesis::operation::subscribe_to_shard::SubscribeToShardError;
use aws_sdk_kinesis::types::error::SubscribeToShardEventStreamError;
use aws_sdk_kinesis::types::{
    ConsumerStatus, ShardIteratorType, StartingPosition, SubscribeToShardEvent,
    SubscribeToShardEventStream,
};
use aws_sdk_kinesis::Client;
use quote_runtime::backoff::Backoff;
use rand::Rng;
use time::OffsetDateTime;
use tokio::sync::{mpsc, OnceCell};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::polling::list_all_shards;
use super::{Batch, RecordSource, ShardInfo, ShardReader, SourceError, StartPosition};
use crate::lease::compare_sequence_numbers;
use crate::record::Record;
use quote_runtime::error_chain::chain;

/// Tuning of enhanced fan-out readers.
#[derive(Debug, Clone)]
pub struct FanOutConfig {
    /// Renew a subscription this long after subscribing (Kinesis ends it after 5 minutes).
    pub renew_after: Duration,
    /// Random spread of `renew_after`, in both directions.
    pub renew_jitter: Duration,
    /// Least time between two `SubscribeToShard` calls for one shard (Kinesis: 1 per second).
    pub min_resubscribe_interval: Duration,
    /// First ceiling of the full-jitter backoff after a failed subscription.
    pub retry_base: Duration,
    /// Highest ceiling of that backoff.
    pub retry_cap: Duration,
    /// `next_batch` returns an empty batch after waiting this long for an event.
    pub idle_timeout: Duration,
    /// Events read ahead of `next_batch` (at least 1).
    pub prefetch_events: usize,
    /// While caught up, check this often whether the shard was closed (for sources that do not
    /// end a closed shard's subscription with its children; real Kinesis does). `None`: never.
    pub closed_shard_probe: Option<Duration>,
    /// How long `register` waits for the consumer to become `ACTIVE`.
    pub register_timeout: Duration,
    /// How often `register` checks the consumer's status while waiting.
    pub register_poll_interval: Duration,
}

impl Default for FanOutConfig {
    fn default() -> Self {
        Self {
            renew_after: Duration::from_secs(270),
            renew_jitter: Duration::from_secs(15),
            min_resubscribe_interval: Duration::from_secs(1),
            retry_base: Duration::from_secs(1),
            retry_cap: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(1),
            prefetch_events: 4,
            closed_shard_probe: Some(Duration::from_secs(60)),
            register_timeout: Duration::from_secs(120),
            register_poll_interval: Duration::from_secs(1),
        }
    }
}

/// Reads a Kinesis data stream through an enhanced fan-out consumer.
#[derive(Debug, Clone)]
pub struct KinesisFanOut {
    client: Client,
    stream_name: String,
    consumer_name: String,
    config: FanOutConfig,
    consumer_arn: Arc<OnceCell<String>>,
}

/// The text of an SDK error with its causes.
fn describe<E: std::error::Error>(err: &E) -> String {
    DisplayErrorContext(err).to_string()
}

impl KinesisFanOut {
    /// A source for the named stream, reading as the named consumer.
    pub fn new(
        client: Client,
        stream_name: impl Into<String>,
        consumer_name: impl Into<String>,
        config: FanOutConfig,
    ) -> Self {
        Self {
            client,
            stream_name: stream_name.into(),
            consumer_name: consumer_name.into(),
            config,
            consumer_arn: Arc::new(OnceCell::new()),
        }
    }

    /// The consumer ARN, once [`register`](Self::register) succeeded.
    pub fn consumer_arn(&self) -> Option<&str> {
        self.consumer_arn.get().map(String::as_str)
    }

    /// Registers the consumer (or finds it), waits until it is `ACTIVE`, and returns its ARN.
    /// Idempotent: later calls return the cached ARN.
    pub async fn register(&self) -> Result<String, SourceError> {
        self.consumer_arn
            .get_or_try_init(|| self.register_uncached())
            .await
            .cloned()
    }

    async fn register_uncached(&self) -> Result<String, SourceError> {
        let stream = &self.stream_name;
        let summary = self
            .client
            .describe_stream_summary()
            .stream_name(stream)
            .send()
            .await
            .map_err(|e| {
                let e = e.into_service_error();
                if e.is_resource_not_found_exception() {
                    SourceError::NotFound(format!("stream {stream}"))
                } else if e.is_limit_exceeded_exception() {
                    SourceError::Throttled(format!("DescribeStreamSummary {stream}: {e}"))
                } else {
                    SourceError::Backend(format!(
                        "DescribeStreamSummary {stream}: {}",
                        describe(&e)
                    ))
                }
            })?;
        let stream_arn = summary
            .stream_description_summary()
            .map(|s| s.stream_arn().to_owned())
            .ok_or_else(|| SourceError::Backend(format!("no summary for stream {stream}")))?;

        let registered = self
            .client
            .register_stream_consumer()
            .stream_arn(&stream_arn)
            .consumer_name(&self.consumer_name)
            .send()
            .await;
        let consumer_arn = match registered {
            Ok(output) => {
                let consumer = output.consumer().ok_or_else(|| {
                    SourceError::Backend(format!("no consumer in the answer for {stream}"))
                })?;
                tracing::info!(stream = %stream, consumer = %self.consumer_name, arn = consumer.consumer_arn(), "registered the enhanced fan-out consumer");
                consumer.consumer_arn().to_owned()
            }
            Err(err) => {
                let err = err.into_service_error();
                if !err.is_resource_in_use_exception() {
                    return Err(if err.is_resource_not_found_exception() {
                        SourceError::NotFound(format!("stream {stream}"))
                    } else if err.is_limit_exceeded_exception() {
                        SourceError::Throttled(format!("RegisterStreamConsumer {stream}: {err}"))
                    } else {
                        SourceError::Backend(format!(
                            "RegisterStreamConsumer {stream}: {}",
                            describe(&err)
                        ))
                    });
                }
                // Registered before (by us or another worker): look it up.
                let output = self
                    .client
                    .describe_stream_consumer()
                    .stream_arn(&stream_arn)
                    .consumer_name(&self.consumer_name)
                    .send()
                    .await
                    .map_err(|e| self.describe_consumer_error(e.into_service_error()))?;
                let description = output.consumer_description().ok_or_else(|| {
                    SourceError::Backend(format!(
                        "no description of consumer {}",
                        self.consumer_name
                    ))
                })?;
                tracing::debug!(stream = %stream, consumer = %self.consumer_name, arn = description.consumer_arn(), "the enhanced fan-out consumer exists");
                description.consumer_arn().to_owned()
            }
        };
        self.wait_active(&consumer_arn).await?;
        Ok(consumer_arn)
    }

    fn describe_consumer_error(
        &self,
        err: aws_sdk_kinesis::operation::describe_stream_consumer::DescribeStreamConsumerError,
    ) -> SourceError {
        let consumer = &self.consumer_name;
        if err.is_resource_not_found_exception() {
            SourceError::NotFound(format!("consumer {consumer}"))
        } else if err.is_limit_exceeded_exception() {
            SourceError::Throttled(format!("DescribeStreamConsumer {consumer}: {err}"))
        } else {
            SourceError::Backend(format!(
                "DescribeStreamConsumer {consumer}: {}",
                describe(&err)
            ))
        }
    }

    /// Polls `DescribeStreamConsumer` until the consumer is `ACTIVE`.
    async fn wait_active(&self, consumer_arn: &str) -> Result<(), SourceError> {
        let deadline = Instant::now() + self.config.register_timeout;
        let mut backoff = Backoff::new(self.config.register_poll_interval, self.config.retry_cap);
        loop {
            let answer = self
                .client
                .describe_stream_consumer()
                .consumer_arn(consumer_arn)
                .send()
                .await
                .map_err(|e| self.describe_consumer_error(e.into_service_error()));
            let mut delay = self.config.register_poll_interval;
            match answer {
                Ok(output) => {
                    let status = output
                        .consumer_description()
                        .map(|d| d.consumer_status().clone());
                    match status {
                        Some(ConsumerStatus::Active) => return Ok(()),
                        Some(ConsumerStatus::Deleting) => {
                            return Err(SourceError::Backend(format!(
                                "consumer {consumer_arn} is being deleted"
                            )))
                        }
                        status => {
                            tracing::debug!(consumer = %consumer_arn, ?status, "waiting for the consumer to become ACTIVE");
                        }
                    }
                }
                Err(SourceError::Throttled(message)) => {
                    tracing::debug!(consumer = %consumer_arn, %message, "throttled while waiting for the consumer");
                    delay = delay.max(backoff.next_delay());
                }
                Err(err) => return Err(err),
            }
            if Instant::now() + delay > deadline {
                return Err(SourceError::Backend(format!(
                    "consumer {consumer_arn} did not become ACTIVE within {:?}",
                    self.config.register_timeout
                )));
            }
            tokio::time::sleep(delay).await;
        }
    }

    /// A reader of one shard from `start` (the concrete type behind [`RecordSource::open`]).
    pub async fn open_reader(
        &self,
        shard_id: &str,
        start: StartPosition,
    ) -> Result<FanOutReader, SourceError> {
        let consumer_arn = self.register().await?;
        let (tx, items) = mpsc::channel(self.config.prefetch_events.max(1));
        let subscriptions = Arc::new(AtomicU64::new(0));
        // Resuming after a checkpoint: nothing at or below it may be delivered, even if the
        // server does not know that sequence number and starts earlier.
        let delivered_up_to = match &start {
            StartPosition::AfterSequence(sequence) => Some(sequence.clone()),
            _ => None,
        };
        let pump = Pump {
            client: self.client.clone(),
            stream_name: self.stream_name.clone(),
            consumer_arn,
            shard_id: shard_id.to_owned(),
            config: self.config.clone(),
            position: start,
            delivered_up_to,
            subscriptions: subscriptions.clone(),
            tx,
            backoff: Backoff::new(self.config.retry_base, self.config.retry_cap),
            last_attempt: None,
            retry_delay: None,
            in_use_streak: 0,
            closed_children: None,
            // The first probe comes one interval after opening, not at once for every reader.
            last_probe: Some(Instant::now()),
        };
        let task = tokio::spawn(pump.run());
        Ok(FanOutReader {
            shard_id: shard_id.to_owned(),
            items,
            idle_timeout: self.config.idle_timeout,
            ended: None,
            subscriptions,
            task,
        })
    }
}

#[async_trait]
impl RecordSource for KinesisFanOut {
    async fn list_shards(&self) -> Result<Vec<ShardInfo>, SourceError> {
        list_all_shards(&self.client, &self.stream_name).await
    }

    async fn open(
        &self,
        shard_id: &str,
        start: StartPosition,
    ) -> Result<Box<dyn ShardReader>, SourceError> {
        Ok(Box::new(self.open_reader(shard_id, start).await?))
    }
}

/// What the pump hands to the reader.
#[derive(Debug)]
enum Item {
    /// One event's records.
    Batch(Batch),
    /// A failure the pump retries by itself, reported for visibility.
    Retrying(SourceError),
    /// A failure that stopped the pump.
    Fatal(SourceError),
}

/// How a reader ended.
#[derive(Debug)]
enum Ended {
    ShardEnd(Vec<String>),
    Failed(SourceError),
}

fn copy_error(err: &SourceError) -> SourceError {
    match err {
        SourceError::NotFound(m) => SourceError::NotFound(m.clone()),
        SourceError::Throttled(m) => SourceError::Throttled(m.clone()),
        SourceError::Backend(m) => SourceError::Backend(m.clone()),
    }
}

/// Reads one shard through `SubscribeToShard`; see the module documentation.
#[derive(Debug)]
pub struct FanOutReader {
    shard_id: String,
    items: mpsc::Receiver<Item>,
    idle_timeout: Duration,
    ended: Option<Ended>,
    subscriptions: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl FanOutReader {
    /// How many subscriptions this reader has opened so far (1 + renewals + resubscriptions).
    pub fn subscriptions(&self) -> u64 {
        self.subscriptions.load(Ordering::Relaxed)
    }
}

impl Drop for FanOutReader {
    fn drop(&mut self) {
        // Dropping the task's event stream closes the subscription.
        self.task.abort();
    }
}

#[async_trait]
impl ShardReader for FanOutReader {
    async fn next_batch(&mut self) -> Result<Batch, SourceError> {
        match &self.ended {
            Some(Ended::ShardEnd(children)) => {
                return Ok(Batch {
                    shard_end: Some(children.clone()),
                    ..Batch::default()
                })
            }
            Some(Ended::Failed(err)) => return Err(copy_error(err)),
            None => {}
        }
        match tokio::time::timeout(self.idle_timeout, self.items.recv()).await {
            Err(_idle) => Ok(Batch::default()),
            Ok(Some(Item::Batch(batch))) => {
                if let Some(children) = &batch.shard_end {
                    self.ended = Some(Ended::ShardEnd(children.clone()));
                }
                Ok(batch)
            }
            Ok(Some(Item::Retrying(err))) => Err(err),
            Ok(Some(Item::Fatal(err))) => {
                self.ended = Some(Ended::Failed(copy_error(&err)));
                Err(err)
            }
            Ok(None) => {
                let err = SourceError::Backend(format!(
                    "the fan-out reader of {} stopped",
                    self.shard_id
                ));
                self.ended = Some(Ended::Failed(copy_error(&err)));
                Err(err)
            }
        }
    }
}

/// Why a subscription attempt or an event stream failed.
#[derive(Debug)]
enum Failure {
    /// `ResourceInUseException`: the previous subscription is still held.
    InUse(String),
    /// Throttled (`LimitExceededException`, `KMSThrottlingException`).
    Throttled(String),
    /// Transport errors, internal failures, unknown errors: worth retrying.
    Transient(String),
    /// `ResourceNotFoundException` for the shard.
    NotFound(String),
    /// Access, argument, KMS errors, a missing consumer or stream: retrying will not help.
    Fatal(String),
}

/// The kind of a `SubscribeToShard` failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ErrorKind {
    InUse,
    Throttled,
    NotFound,
    Fatal,
    Transient,
}

/// Both error types of `SubscribeToShard` (the call's and the event stream's). Matched by
/// variant: exceptions sent inside the event stream carry no error code in their metadata.
trait SubscribeError: ProvideErrorMetadata + std::error::Error + 'static {
    fn kind(&self) -> ErrorKind;
}

impl SubscribeError for SubscribeToShardError {
    fn kind(&self) -> ErrorKind {
        if self.is_resource_in_use_exception() {
            ErrorKind::InUse
        } else if self.is_limit_exceeded_exception() || self.is_kms_throttling_exception() {
            ErrorKind::Throttled
        } else if self.is_resource_not_found_exception() {
            ErrorKind::NotFound
        } else if self.is_access_denied_exception()
            || self.is_invalid_argument_exception()
            || self.is_dry_run_operation_exception()
            || self.is_kms_disabled_exception()
            || self.is_kms_invalid_state_exception()
            || self.is_kms_access_denied_exception()
            || self.is_kms_not_found_exception()
            || self.is_kms_opt_in_required()
        {
            ErrorKind::Fatal
        } else {
            ErrorKind::Transient
        }
    }
}

impl SubscribeError for SubscribeToShardEventStreamError {
    fn kind(&self) -> ErrorKind {
        if self.is_resource_in_use_exception() {
            ErrorKind::InUse
        } else if self.is_kms_throttling_exception() {
            ErrorKind::Throttled
        } else if self.is_resource_not_found_exception() {
            ErrorKind::NotFound
        } else if self.is_kms_disabled_exception()
            || self.is_kms_invalid_state_exception()
            || self.is_kms_access_denied_exception()
            || self.is_kms_not_found_exception()
            || self.is_kms_opt_in_required()
        {
            ErrorKind::Fatal
        } else {
            ErrorKind::Transient
        }
    }
}

fn classify<E, R>(operation: &str, shard_id: &str, err: &SdkError<E, R>) -> Failure
where
    E: SubscribeError,
    R: std::fmt::Debug,
{
    let text = format!("{operation} {shard_id}: {}", describe(err));
    let Some(service) = err.as_service_error() else {
        return Failure::Transient(text);
    };
    match service.kind() {
        ErrorKind::InUse => Failure::InUse(text),
        ErrorKind::Throttled => Failure::Throttled(text),
        ErrorKind::NotFound => {
            // The same exception names a missing consumer or stream, which is no trimmed shard.
            let message = service.message().unwrap_or_default().to_ascii_lowercase();
            if message.contains("consumer")
                || (message.contains("stream") && !message.contains("shard"))
            {
                Failure::Fatal(text)
            } else {
                Failure::NotFound(text)
            }
        }
        ErrorKind::Fatal => Failure::Fatal(text),
        ErrorKind::Transient => Failure::Transient(text),
    }
}

/// What to do after an event.
#[derive(Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    Resubscribe,
    Stop,
}

fn to_offset(dt: &aws_sdk_kinesis::primitives::DateTime) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(dt.secs())
        .ok()
        .map(|t| t + time::Duration::nanoseconds(i64::from(dt.subsec_nanos())))
}

fn to_smithy(at: OffsetDateTime) -> aws_sdk_kinesis::primitives::DateTime {
    aws_sdk_kinesis::primitives::DateTime::from_secs_and_nanos(at.unix_timestamp(), at.nanosecond())
}

fn starting_position(position: &StartPosition) -> Result<StartingPosition, SourceError> {
    let builder = StartingPosition::builder();
    let builder = match position {
        StartPosition::TrimHorizon => builder.r#type(ShardIteratorType::TrimHorizon),
        StartPosition::Latest => builder.r#type(ShardIteratorType::Latest),
        StartPosition::AtTimestamp(at) => builder
            .r#type(ShardIteratorType::AtTimestamp)
            .timestamp(to_smithy(*at)),
        StartPosition::AfterSequence(sequence) => builder
            .r#type(ShardIteratorType::AfterSequenceNumber)
            .sequence_number(sequence),
    };
    builder
        .build()
        .map_err(|e| SourceError::Backend(format!("starting position: {e}")))
}

/// `renew_after ± renew_jitter`, uniformly.
fn renewal_interval(config: &FanOutConfig) -> Duration {
    let jitter = u64::try_from(config.renew_jitter.as_millis()).unwrap_or(u64::MAX);
    if jitter == 0 {
        return config.renew_after;
    }
    let offset = rand::thread_rng().gen_range(0..=jitter.saturating_mul(2));
    (config.renew_after + Duration::from_millis(offset)).saturating_sub(config.renew_jitter)
}

type EventStream = aws_sdk_kinesis::primitives::event_stream::EventReceiver<
    SubscribeToShardEventStream,
    SubscribeToShardEventStreamError,
>;

/// Owns one shard's subscriptions and feeds the reader's channel.
#[derive(Debug)]
struct Pump {
    client: Client,
    stream_name: String,
    consumer_arn: String,
    shard_id: String,
    config: FanOutConfig,
    /// Where the next subscription starts.
    position: StartPosition,
    /// The duplicate guard: the last record delivered (or the checkpoint resumed from).
    delivered_up_to: Option<String>,
    subscriptions: Arc<AtomicU64>,
    tx: mpsc::Sender<Item>,
    backoff: Backoff,
    last_attempt: Option<Instant>,
    /// Set by a failure: wait at least this long before the next attempt.
    retry_delay: Option<Duration>,
    in_use_streak: u32,
    /// Set once the probe saw the shard closed: its children.
    closed_children: Option<Vec<String>>,
    last_probe: Option<Instant>,
}

impl Pump {
    #[tracing::instrument(name = "fanout", skip_all, fields(shard = %self.shard_id))]
    async fn run(mut self) {
        loop {
            self.pace().await;
            let after_close = self.closed_children.is_some();
            let renew_at = Instant::now() + renewal_interval(&self.config);
            let mut events = match self.subscribe().await {
                Ok(events) => events,
                Err(failure) => {
                    if self.on_failure(failure).await == Flow::Stop {
                        return;
                    }
                    continue;
                }
            };
            if self.drain(&mut events, renew_at, after_close).await == Flow::Stop {
                return;
            }
        }
    }

    /// Waits until the next subscription is allowed.
    async fn pace(&mut self) {
        let now = Instant::now();
        let mut at = self
            .last_attempt
            .map_or(now, |t| t + self.config.min_resubscribe_interval);
        if let Some(delay) = self.retry_delay.take() {
            at = at.max(now + delay);
        }
        tokio::time::sleep_until(at).await;
        self.last_attempt = Some(Instant::now());
    }

    async fn subscribe(&self) -> Result<EventStream, Failure> {
        let position =
            starting_position(&self.position).map_err(|e| Failure::Fatal(e.to_string()))?;
        let output = self
            .client
            .subscribe_to_shard()
            .consumer_arn(&self.consumer_arn)
            .shard_id(&self.shard_id)
            .starting_position(position)
            .send()
            .await
            .map_err(|e| classify("SubscribeToShard", &self.shard_id, &e))?;
        Ok(output.event_stream)
    }

    /// Reads one subscription until it is due for renewal, ends, fails or the shard ends.
    async fn drain(
        &mut self,
        events: &mut EventStream,
        renew_at: Instant,
        after_close: bool,
    ) -> Flow {
        let mut first = true;
        loop {
            let next = tokio::select! {
                () = tokio::time::sleep_until(renew_at) => {
                    tracing::debug!(position = ?self.position, "renewing the subscription");
                    return Flow::Resubscribe;
                }
                next = events.recv() => next,
            };
            match next {
                Ok(Some(SubscribeToShardEventStream::SubscribeToShardEvent(event))) => {
                    if first {
                        // The subscription is live (an exception would have come instead).
                        first = false;
                        let count = self.subscriptions.fetch_add(1, Ordering::Relaxed) + 1;
                        tracing::debug!(position = ?self.position, subscription = count, "subscribed");
                    }
                    self.backoff.reset();
                    self.in_use_streak = 0;
                    match self.on_event(event, after_close).await {
                        Flow::Continue => {}
                        flow => return flow,
                    }
                }
                Ok(Some(other)) => {
                    tracing::debug!(event = ?other, "ignoring an unknown event");
                }
                Ok(None) => {
                    tracing::debug!(position = ?self.position, "the subscription ended; resubscribing");
                    return Flow::Resubscribe;
                }
                Err(err) => {
                    let failure = classify("SubscribeToShard event stream", &self.shard_id, &err);
                    return self.on_failure(failure).await;
                }
            }
        }
    }

    /// Schedules a retry, or reports a final failure (`Flow::Stop`).
    async fn on_failure(&mut self, failure: Failure) -> Flow {
        let report = match failure {
            Failure::InUse(message) => {
                self.in_use_streak += 1;
                if self.in_use_streak < 5 {
                    tracing::debug!(%message, attempt = self.in_use_streak, "the previous subscription is still held; retrying");
                    None
                } else {
                    tracing::warn!(%message, attempt = self.in_use_streak, "the shard's subscription is held elsewhere; retrying");
                    Some(SourceError::Backend(message))
                }
            }
            Failure::Throttled(message) => {
                tracing::warn!(%message, "subscription throttled; retrying");
                Some(SourceError::Throttled(message))
            }
            Failure::Transient(message) => {
                tracing::warn!(%message, "subscription failed; retrying");
                Some(SourceError::Backend(message))
            }
            Failure::NotFound(message) => {
                tracing::warn!(%message, "the shard does not exist");
                let _ = self
                    .tx
                    .send(Item::Fatal(SourceError::NotFound(self.shard_id.clone())))
                    .await;
                return Flow::Stop;
            }
            Failure::Fatal(message) => {
                tracing::error!(%message, "subscription failed; the reader stops");
                let _ = self
                    .tx
                    .send(Item::Fatal(SourceError::Backend(message)))
                    .await;
                return Flow::Stop;
            }
        };
        self.retry_delay = Some(self.backoff.next_delay());
        if let Some(err) = report {
            // Only for visibility: never wait for room.
            if let Err(mpsc::error::TrySendError::Closed(_)) = self.tx.try_send(Item::Retrying(err))
            {
                return Flow::Stop;
            }
        }
        Flow::Resubscribe
    }

    async fn on_event(&mut self, event: SubscribeToShardEvent, after_close: bool) -> Flow {
        let mut records = Vec::with_capacity(event.records().len());
        let mut duplicates = 0usize;
        for r in event.records() {
            let sequence = r.sequence_number();
            if let Some(last) = &self.delivered_up_to {
                if compare_sequence_numbers(sequence, last) != std::cmp::Ordering::Greater {
                    duplicates += 1;
                    continue;
                }
            }
            self.delivered_up_to = Some(sequence.to_owned());
            records.push(Record {
                sequence_number: sequence.to_owned(),
                sub_sequence_number: 0,
                partition_key: r.partition_key().unwrap_or_default().to_owned(),
                data: r.data().as_ref().to_vec(),
                approximate_arrival: r.approximate_arrival_timestamp().and_then(to_offset),
            });
        }
        if duplicates > 0 {
            tracing::warn!(duplicates, "dropped records delivered before");
        }
        let continuation = event.continuation_sequence_number();
        if !continuation.is_empty() {
            self.position = StartPosition::AfterSequence(continuation.to_owned());
        } else if let Some(last) = &self.delivered_up_to {
            self.position = StartPosition::AfterSequence(last.clone());
        }
        let millis_behind_latest = u64::try_from(event.millis_behind_latest()).ok();
        let caught_up = event.records().is_empty() && millis_behind_latest == Some(0);
        let children: Vec<String> = event
            .child_shards()
            .iter()
            .map(|c| c.shard_id().to_owned())
            .collect();

        let shard_end = if continuation.is_empty() || !children.is_empty() {
            Some(if children.is_empty() {
                self.children_from_listing().await.unwrap_or_default()
            } else {
                children
            })
        } else if caught_up && after_close {
            self.closed_children.clone()
        } else {
            None
        };
        let ended = shard_end.is_some();
        if let Some(children) = &shard_end {
            tracing::info!(?children, "shard end");
        }
        let batch = Batch {
            records,
            millis_behind_latest,
            shard_end,
        };
        if self.tx.send(Item::Batch(batch)).await.is_err() || ended {
            return Flow::Stop;
        }
        if caught_up && !after_close && self.probe_due() {
            if let Some(children) = self.probe_closed().await {
                tracing::info!(
                    ?children,
                    "the shard is closed; resubscribing to confirm it is drained"
                );
                self.closed_children = Some(children);
                return Flow::Resubscribe;
            }
        }
        Flow::Continue
    }

    fn probe_due(&mut self) -> bool {
        let Some(every) = self.config.closed_shard_probe else {
            return false;
        };
        let now = Instant::now();
        let due = self.last_probe.is_none_or(|at| now >= at + every);
        if due {
            self.last_probe = Some(now);
        }
        due
    }

    /// The children of this shard when `ListShards` shows it closed.
    async fn probe_closed(&self) -> Option<Vec<String>> {
        let shards = match list_all_shards(&self.client, &self.stream_name).await {
            Ok(shards) => shards,
            Err(err) => {
                tracing::debug!(error = %chain(&err), "closed-shard probe failed");
                return None;
            }
        };
        let closed = shards
            .iter()
            .any(|s| s.shard_id == self.shard_id && s.closed);
        closed.then(|| self.children_in(&shards))
    }

    fn children_in(&self, shards: &[ShardInfo]) -> Vec<String> {
        shards
            .iter()
            .filter(|s| s.parent_shard_ids.contains(&self.shard_id))
            .map(|s| s.shard_id.clone())
            .collect()
    }

    /// Children for a shard-end event that named none.
    async fn children_from_listing(&self) -> Option<Vec<String>> {
        match list_all_shards(&self.client, &self.stream_name).await {
            Ok(shards) => Some(self.children_in(&shards)),
            Err(err) => {
                tracing::warn!(error = %chain(&err), "could not list the children of the ended shard");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewals_stay_within_the_jitter_and_before_five_minutes() {
        let config = FanOutConfig::default();
        for _ in 0..1000 {
            let interval = renewal_interval(&config);
            assert!(interval >= Duration::from_secs(255), "{interval:?}");
            assert!(interval <= Duration::from_secs(285), "{interval:?}");
        }
        let fixed = FanOutConfig {
            renew_jitter: Duration::ZERO,
            ..FanOutConfig::default()
        };
        assert_eq!(renewal_interval(&fixed), fixed.renew_after);
    }

    #[test]
    fn start_positions_map_to_starting_positions() {
        let at = time::macros::datetime!(2024-05-06 07:08:09.5 UTC);
        let cases = [
            (StartPosition::TrimHorizon, ShardIteratorType::TrimHorizon),
            (StartPosition::Latest, ShardIteratorType::Latest),
            (
                StartPosition::AtTimestamp(at),
                ShardIteratorType::AtTimestamp,
            ),
            (
                StartPosition::AfterSequence("42".into()),
                ShardIteratorType::AfterSequenceNumber,
            ),
        ];
        for (start, kind) in cases {
            let position = starting_position(&start).expect("position");
            assert_eq!(position.r#type(), &kind);
            match start {
                StartPosition::AtTimestamp(at) => {
                    let ts = position.timestamp().expect("timestamp");
                    assert_eq!(to_offset(ts), Some(at));
                }
                StartPosition::AfterSequence(seq) => {
                    assert_eq!(position.sequence_number(), Some(seq.as_str()));
                }
                _ => assert!(position.sequence_number().is_none()),
            }
        }
    }

    #[test]
    fn copied_errors_keep_their_kind() {
        assert!(matches!(
            copy_error(&SourceError::NotFound("s".into())),
            SourceError::NotFound(m) if m == "s"
        ));
        assert!(matches!(
            copy_error(&SourceError::Throttled("t".into())),
            SourceError::Throttled(_)
        ));
        assert!(matches!(
            copy_error(&SourceError::Backend("b".into())),
            SourceError::Backend(_)
        ));
    }
}
