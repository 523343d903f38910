//! A complete consumer application in one file: counts records per partition key.
//!
//! Runs on the in-memory stream and lease table by default, so it needs nothing installed:
//!
//! ```sh
//! cargo run -p kinesis-consumer --example count_by_key
//! ```
//!
//! With `STREAM_NAME` and `LEASE_TABLE` set it reads a real Kinesis stream (or the emulators,
//! through the SDK's `AWS_ENDPOINT_URL_*` variables) with a DynamoDB lease table; start it
//! several times to see leases spread, and stop one with Ctrl-C to see it hand its leases over.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use kinesis_consumer::lease_table::{create_lease_table, DynamoLeaseTable, InMemoryLeaseTable};
use kinesis_consumer::source::memory::InMemoryStream;
use kinesis_consumer::source::polling::{KinesisPolling, PollingConfig};
use kinesis_consumer::source::RecordSource;
use kinesis_consumer::{
    Checkpointer, LeaseTable, ProcessorError, Record, RecordProcessor, ShardContext, Worker,
    WorkerConfig,
};

/// Counts records per partition key; checkpoints are left to the library's default policy
/// (every 1,000 records or 5 seconds, at shard end and at shutdown).
struct CountByKey {
    counts: Arc<Mutex<HashMap<String, u64>>>,
}

#[async_trait]
impl RecordProcessor for CountByKey {
    async fn initialize(&mut self, shard: &ShardContext) -> Result<(), ProcessorError> {
        println!(
            "{} starts {} at {}",
            shard.worker_id, shard.shard_id, shard.checkpoint
        );
        Ok(())
    }

    async fn process_records(
        &mut self,
        records: &[Record],
        _checkpointer: &mut Checkpointer,
    ) -> Result<(), ProcessorError> {
        let mut counts = self.counts.lock().map_err(|_| "counts lock poisoned")?;
        for record in records {
            *counts.entry(record.partition_key.clone()).or_default() += 1;
        }
        Ok(())
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = quote_runtime::telemetry::init(
        "count-by-key",
        &quote_runtime::telemetry::LogConfig::from_rust_log(),
    );
    let counts = Arc::new(Mutex::new(HashMap::new()));
    let (table, source): (Arc<dyn LeaseTable>, Arc<dyn RecordSource>) =
        match (std::env::var("STREAM_NAME"), std::env::var("LEASE_TABLE")) {
            (Ok(stream), Ok(lease_table)) => {
                let sdk = quote_runtime::aws::load_sdk_config().await;
                let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
                create_lease_table(&dynamo, &lease_table).await?;
                (
                    Arc::new(DynamoLeaseTable::new(dynamo, lease_table)),
                    Arc::new(KinesisPolling::new(
                        aws_sdk_kinesis::Client::new(&sdk),
                        stream,
                        PollingConfig::default(),
                    )),
                )
            }
            _ => {
                let stream = InMemoryStream::new(4);
                for n in 0..10_000 {
                    stream.put(&format!("customer-{}", n % 7), format!("event {n}"));
                }
                (Arc::new(InMemoryLeaseTable::new()), Arc::new(stream))
            }
        };
    let factory_counts = counts.clone();
    let worker = Worker::new(
        WorkerConfig::new("count-by-key"),
        table,
        source,
        Arc::new(move |_shard: &str| -> Box<dyn RecordProcessor> {
            Box::new(CountByKey {
                counts: factory_counts.clone(),
            })
        }),
    );
    let metrics = worker.metrics();
    let shutdown = quote_runtime::shutdown::on_signal();
    let stop_after = shutdown.clone();
    if std::env::var("STREAM_NAME").is_err() {
        // The in-memory demo stops by itself once everything was read.
        tokio::spawn(async move {
            while metrics.snapshot().records_processed < 10_000 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            stop_after.cancel();
        });
    }
    worker.run(shutdown).await;
    let mut counts: Vec<(String, u64)> = counts
        .lock()
        .map_err(|_| anyhow::anyhow!("counts lock poisoned"))?
        .clone()
        .into_iter()
        .collect();
    counts.sort();
    for (key, count) in counts {
        println!("{key}: {count}");
    }
    Ok(())
}
