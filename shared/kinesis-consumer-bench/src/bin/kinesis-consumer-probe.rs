//! `kinesis-consumer-probe`: a consumer application that records what it processes.
//!
//! It runs one worker on a Kinesis stream (polling) with a DynamoDB lease table and appends a
//! line per processed record and per checkpoint to a file, so crash tests (and people) can see
//! exactly what was delivered, by whom, and what was checkpointed:
//!
//! ```text
//! R <worker> <shard> <sequence number> <fencing token> <data>
//! C <worker> <shard> <sequence number>
//! ```
//!
//! Configuration (environment): `STREAM_NAME`, `LEASE_TABLE`, `WORKER_ID`, `PROBE_OUTPUT`
//! (file to append to), `CHECKPOINT_EVERY` (records, default 20), `POISON` (a payload the
//! processor always fails on), `DEAD_LETTER_TABLE` (dead-letter after 3 attempts when set),
//! `LEASE_DURATION_MS` (default 6,000), `SHARD_SYNC_INTERVAL_MS` (default 30,000), plus the AWS
//! SDK's variables. SIGTERM stops it gracefully.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use kinesis_consumer::dead_letter::DynamoDeadLetters;
use kinesis_consumer::lease_table::DynamoLeaseTable;
use kinesis_consumer::source::polling::{KinesisPolling, PollingConfig};
use kinesis_consumer::{
    CheckpointPolicy, Checkpointer, FailurePolicy, ProcessorError, Record, RecordProcessor,
    ShardContext, Worker, WorkerConfig,
};

struct Probe {
    worker: String,
    shard: String,
    fencing_token: u64,
    output: Arc<Mutex<std::fs::File>>,
    checkpoint_every: u64,
    since_checkpoint: u64,
    poison: Option<String>,
}

impl Probe {
    fn write(&self, text: &str) -> Result<(), ProcessorError> {
        let mut file = self.output.lock().map_err(|_| "output lock poisoned")?;
        file.write_all(text.as_bytes())?;
        file.flush()?;
        Ok(())
    }

    async fn checkpoint(&mut self, checkpointer: &mut Checkpointer) -> Result<(), ProcessorError> {
        checkpointer.checkpoint().await?;
        if let Some(sequence) = checkpointer.last_delivered() {
            self.write(&format!("C {} {} {sequence}\n", self.worker, self.shard))?;
        }
        self.since_checkpoint = 0;
        Ok(())
    }
}

#[async_trait]
impl RecordProcessor for Probe {
    async fn initialize(&mut self, shard: &ShardContext) -> Result<(), ProcessorError> {
        self.fencing_token = shard.fencing_token;
        Ok(())
    }

    async fn process_records(
        &mut self,
        records: &[Record],
        checkpointer: &mut Checkpointer,
    ) -> Result<(), ProcessorError> {
        let mut lines = String::new();
        for record in records {
            let data = String::from_utf8_lossy(&record.data);
            if self.poison.as_deref() == Some(data.as_ref()) {
                return Err(format!("poison record {data}").into());
            }
            lines.push_str(&format!(
                "R {} {} {} {} {data}\n",
                self.worker, self.shard, record.sequence_number, self.fencing_token
            ));
        }
        self.write(&lines)?;
        self.since_checkpoint += records.len() as u64;
        if self.since_checkpoint >= self.checkpoint_every {
            self.checkpoint(checkpointer).await?;
        }
        Ok(())
    }

    async fn shutdown_requested(
        &mut self,
        checkpointer: &mut Checkpointer,
    ) -> Result<(), ProcessorError> {
        self.checkpoint(checkpointer).await
    }
}

fn required(name: &str) -> anyhow::Result<String> {
    quote_runtime::env::optional(name).ok_or_else(|| anyhow::anyhow!("{name} must be set"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = quote_runtime::telemetry::init(
        "kinesis-consumer-probe",
        &quote_runtime::telemetry::LogConfig::from_rust_log(),
    );
    let stream = required("STREAM_NAME")?;
    let lease_table = required("LEASE_TABLE")?;
    let output_path = required("PROBE_OUTPUT")?;
    let checkpoint_every = quote_runtime::env::parse_or("CHECKPOINT_EVERY", 20u64)?;
    let poison = quote_runtime::env::optional("POISON");
    let sdk = quote_runtime::aws::load_sdk_config().await;
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);

    let mut config = WorkerConfig::new("probe");
    if let Some(id) = quote_runtime::env::optional("WORKER_ID") {
        config.worker_id = id;
    }
    config.checkpoint = CheckpointPolicy::MANUAL;
    config.lease_duration =
        Duration::from_millis(quote_runtime::env::parse_or("LEASE_DURATION_MS", 6000u64)?);
    config.renew_interval = config.lease_duration / 3;
    config.shard_sync_interval = Duration::from_millis(quote_runtime::env::parse_or(
        "SHARD_SYNC_INTERVAL_MS",
        30_000u64,
    )?);
    if let Some(table) = quote_runtime::env::optional("DEAD_LETTER_TABLE") {
        config.failure = FailurePolicy::DeadLetter {
            max_attempts: 3,
            store: Arc::new(DynamoDeadLetters::new(dynamo.clone(), table)),
        };
        config.retry_base = Duration::from_millis(20);
        config.retry_cap = Duration::from_millis(100);
    }
    let output = Arc::new(Mutex::new(
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&output_path)?,
    ));
    let worker_id = config.worker_id.clone();
    let factory = move |shard: &str| -> Box<dyn RecordProcessor> {
        Box::new(Probe {
            worker: worker_id.clone(),
            shard: shard.to_owned(),
            fencing_token: 0,
            output: output.clone(),
            checkpoint_every,
            since_checkpoint: 0,
            poison: poison.clone(),
        })
    };
    let source = KinesisPolling::new(
        aws_sdk_kinesis::Client::new(&sdk),
        stream,
        PollingConfig {
            read_interval: Duration::from_millis(500),
            ..PollingConfig::default()
        },
    );
    let worker = Worker::new(
        config,
        Arc::new(DynamoLeaseTable::new(dynamo, lease_table)),
        Arc::new(source),
        Arc::new(factory),
    );
    worker.run(quote_runtime::shutdown::on_signal()).await;
    Ok(())
}
