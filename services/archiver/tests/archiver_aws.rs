//! The archiver on the emulators: a Kinesis stream (kinesis-mock) archived exactly once into
//! S3 and the DynamoDB manifest (moto), a worker killed mid-segment included. (The adapters'
//! own contract suites are `shared/archive/tests/archive_aws.rs`.)

use std::sync::Arc;
use std::time::Duration;

use archiver::{Archiver, ArchiverConfig};
use kinesis_consumer::lease_table::{create_lease_table, DynamoLeaseTable};
use kinesis_consumer::source::polling::{KinesisPolling, PollingConfig};
use kinesis_consumer::{CheckpointPolicy, Worker, WorkerConfig};
use quote_archive::dynamodb::{create_manifest_table, DynamoManifest};
use quote_archive::reader::read_shard;
use quote_archive::s3::{create_bucket, S3Objects};
use quote_archive::{Manifest, ObjectStore};

mod common;

use common::Running;

async fn bucket() -> Arc<S3Objects> {
    let sdk = testkit::aws_config().await;
    let client = S3Objects::client(&sdk);
    let bucket = testkit::unique_name("archive");
    create_bucket(&client, &bucket).await.expect("bucket");
    Arc::new(S3Objects::new(client, bucket))
}

async fn manifest() -> Arc<DynamoManifest> {
    let sdk = testkit::aws_config().await;
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    let table = testkit::unique_name("archive-manifest");
    create_manifest_table(&client, &table).await.expect("table");
    Arc::new(DynamoManifest::new(client, table))
}

struct Archive {
    stream: String,
    kinesis: aws_sdk_kinesis::Client,
    objects: Arc<S3Objects>,
    manifest: Arc<DynamoManifest>,
    leases: Arc<DynamoLeaseTable>,
}

impl Archive {
    async fn new() -> Self {
        let sdk = testkit::aws_config().await;
        let kinesis = aws_sdk_kinesis::Client::new(&sdk);
        let stream = testkit::unique_name("archived");
        testkit::create_stream(&kinesis, &stream, 2).await;
        let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
        let lease_table = testkit::unique_name("archiver-leases");
        create_lease_table(&dynamo, &lease_table)
            .await
            .expect("lease table");
        Self {
            stream,
            kinesis,
            objects: bucket().await,
            manifest: manifest().await,
            leases: Arc::new(DynamoLeaseTable::new(dynamo, lease_table)),
        }
    }

    fn start(&self, worker: &str, segment_bytes: u64) -> Running {
        let archiver = Archiver::new(
            self.objects.clone(),
            self.manifest.clone(),
            ArchiverConfig {
                stream: self.stream.clone(),
                prefix: "events/".to_owned(),
                segment_bytes,
                segment_age: Duration::from_millis(500),
            },
        );
        let config = WorkerConfig {
            worker_id: worker.to_owned(),
            lease_duration: Duration::from_secs(2),
            renew_interval: Duration::from_millis(500),
            scan_interval: Duration::from_millis(200),
            shard_sync_interval: Duration::from_secs(1),
            checkpoint: CheckpointPolicy::MANUAL,
            deliver_empty_batches: true,
            retry_base: Duration::from_millis(20),
            retry_cap: Duration::from_millis(200),
            ..WorkerConfig::new("archiver")
        };
        let source = KinesisPolling::new(
            self.kinesis.clone(),
            self.stream.clone(),
            PollingConfig::default(),
        );
        let worker = Worker::new(
            config,
            self.leases.clone(),
            Arc::new(source),
            archiver.factory(),
        );
        Running::spawn(worker)
    }

    async fn put(&self, from: usize, to: usize) {
        for i in from..to {
            let key = format!("quote#{}", i % 11);
            self.kinesis
                .put_record()
                .stream_name(&self.stream)
                .partition_key(&key)
                .data(aws_sdk_kinesis::primitives::Blob::new(format!(
                    r#"{{"event_id":"{i}","stream_id":"{key}"}}"#
                )))
                .send()
                .await
                .expect("put record");
        }
    }

    async fn archived_count(&self) -> u64 {
        self.manifest
            .shards(&self.stream)
            .await
            .expect("heads")
            .iter()
            .map(|h| h.records)
            .sum()
    }

    async fn wait_archived(&self, total: u64) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let count = self.archived_count().await;
            if count >= total {
                assert_eq!(count, total, "more records archived than were written");
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "only {count} of {total} records archived"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The archive holds exactly the stream's records, shard by shard, in order, and no
    /// object outside the manifest.
    async fn assert_exactly_once(&self) {
        let on_stream = testkit::read_all_records(&self.kinesis, &self.stream).await;
        let mut committed = Vec::new();
        for head in self.manifest.shards(&self.stream).await.expect("heads") {
            let archived = read_shard(
                self.objects.as_ref(),
                self.manifest.as_ref(),
                &self.stream,
                &head.shard_id,
            )
            .await
            .expect("read back");
            let expected: Vec<(&str, &str, &[u8])> = on_stream
                .iter()
                .filter(|r| r.shard_id == head.shard_id)
                .map(|r| {
                    (
                        r.sequence_number.as_str(),
                        r.partition_key.as_str(),
                        r.data.as_slice(),
                    )
                })
                .collect();
            let got: Vec<(&str, &str, &[u8])> = archived
                .iter()
                .map(|r| {
                    (
                        r.sequence_number.as_str(),
                        r.partition_key.as_str(),
                        r.data.as_slice(),
                    )
                })
                .collect();
            assert_eq!(got, expected, "shard {}", head.shard_id);
            for segment in self
                .manifest
                .segments(&self.stream, &head.shard_id)
                .await
                .expect("segments")
            {
                committed.push(segment.key);
            }
        }
        committed.sort();
        let stored = self.objects.list("events/", None).await.expect("list");
        assert_eq!(stored, committed, "objects outside the manifest");
        let total: u64 = self.archived_count().await;
        assert_eq!(total, on_stream.len() as u64);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kinesis_stream_is_archived_exactly_once_across_a_killed_worker() {
    let archive = Archive::new().await;
    let first = archive.start("first", 1_000);
    archive.put(0, 60).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while archive.archived_count().await == 0 {
        assert!(tokio::time::Instant::now() < deadline, "nothing archived");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // As kill -9: no flush, no checkpoint, no release; its leases must expire.
    first.kill().await;
    archive.put(60, 90).await;
    let second = archive.start("second", 1_000);
    archive.wait_archived(90).await;
    second.stop().await;
    archive.assert_exactly_once().await;
}
