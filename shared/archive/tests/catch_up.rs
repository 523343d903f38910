//! Catch-up subscriptions (`quote_archive::catch_up::ArchiveSource`) on the in-memory stream
//! and archive: a shard's archived records first, then the stream right after the last of
//! them — with records the stream no longer has, with records both hold (no duplicate at the
//! seam), from a checkpoint inside the archive, for a shard only the archive still has, after
//! the backfill of the history from before the archiver, and through a running worker.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use kinesis_consumer::lease_table::InMemoryLeaseTable;
use kinesis_consumer::source::memory::InMemoryStream;
use kinesis_consumer::source::{RecordSource, StartPosition};
use kinesis_consumer::{
    CheckpointPolicy, Checkpointer, ProcessorError, Record, RecordProcessor, Worker, WorkerConfig,
};
use quote_archive::catch_up::ArchiveSource;
use quote_archive::{ArchiverConfig, InMemoryManifest, InMemoryObjects, Manifest, ShardWriter};
use tokio_util::sync::CancellationToken;

const SHARD: &str = "shardId-000000000000";

fn record(sequence: &str, data: &str) -> Record {
    Record {
        sequence_number: sequence.to_owned(),
        sub_sequence_number: 0,
        partition_key: "quote#1".to_owned(),
        data: data.as_bytes().to_vec(),
        approximate_arrival: None,
    }
}

struct Setup {
    stream: InMemoryStream,
    objects: Arc<InMemoryObjects>,
    manifest: Arc<InMemoryManifest>,
}

impl Setup {
    fn new() -> Self {
        Self {
            stream: InMemoryStream::new(1),
            objects: Arc::new(InMemoryObjects::new()),
            manifest: Arc::new(InMemoryManifest::new()),
        }
    }

    /// Archives `records` of `shard` in segments of two, as the archiver would.
    async fn archive(&self, shard: &str, parents: &[&str], records: &[Record], ended: bool) {
        let config = Arc::new(ArchiverConfig {
            stream: "quote-events".to_owned(),
            prefix: "events/".to_owned(),
            segment_bytes: 1,
            segment_age: Duration::from_secs(60),
        });
        let mut writer =
            ShardWriter::new(self.objects.clone(), self.manifest.clone(), config, shard);
        let parents: Vec<String> = parents.iter().map(|p| (*p).to_owned()).collect();
        writer.claim(1, &parents).await.expect("claim");
        for record in records {
            writer.add(record);
            writer.close_if_due(false);
            writer.store_closed().await.expect("commit");
        }
        if ended {
            writer.end().await.expect("end");
        }
    }

    fn source(&self) -> ArchiveSource {
        ArchiveSource::new(
            Arc::new(self.stream.clone()),
            self.objects.clone(),
            self.manifest.clone(),
            "quote-events",
        )
    }

    fn put(&self, data: &str) -> Record {
        let (_, sequence) = self.stream.put("quote#1", data.to_owned());
        record(&sequence, data)
    }
}

/// Reads `shard` from `start` until `count` records or the shard's end.
async fn read(
    source: &ArchiveSource,
    shard: &str,
    start: StartPosition,
    count: usize,
) -> (Vec<String>, Option<Vec<String>>) {
    let mut reader = source.open(shard, start).await.expect("open");
    let mut seen = Vec::new();
    for _ in 0..50 {
        let batch = reader.next_batch().await.expect("batch");
        seen.extend(
            batch
                .records
                .iter()
                .map(|r| String::from_utf8_lossy(&r.data).into_owned()),
        );
        if batch.shard_end.is_some() {
            return (seen, batch.shard_end);
        }
        if seen.len() >= count {
            break;
        }
    }
    (seen, None)
}

#[tokio::test]
async fn records_only_the_archive_has_come_first_then_the_stream_after_them() {
    let setup = Setup::new();
    // Records the stream dropped long ago (lower sequence numbers than any it holds now).
    let old: Vec<Record> = (1..=4)
        .map(|n| record(&format!("{n}00"), &format!("old-{n}")))
        .collect();
    setup.archive(SHARD, &[], &old, false).await;
    for n in 1..=3 {
        setup.put(&format!("new-{n}"));
    }
    let (seen, end) = read(&setup.source(), SHARD, StartPosition::TrimHorizon, 7).await;
    assert_eq!(
        seen,
        ["old-1", "old-2", "old-3", "old-4", "new-1", "new-2", "new-3"]
    );
    assert!(end.is_none());
}

#[tokio::test]
async fn records_both_hold_are_read_once_and_a_checkpoint_inside_the_archive_resumes_there() {
    let setup = Setup::new();
    let on_stream: Vec<Record> = (1..=6).map(|n| setup.put(&format!("r{n}"))).collect();
    // The archive has caught up to r4; the stream still holds everything.
    setup.archive(SHARD, &[], &on_stream[..4], false).await;
    let source = setup.source();
    let (seen, _) = read(&source, SHARD, StartPosition::TrimHorizon, 6).await;
    assert_eq!(
        seen,
        ["r1", "r2", "r3", "r4", "r5", "r6"],
        "no gap, no duplicate at the seam"
    );
    let after_r2 = StartPosition::AfterSequence(on_stream[1].sequence_number.clone());
    let (seen, _) = read(&source, SHARD, after_r2, 4).await;
    assert_eq!(seen, ["r3", "r4", "r5", "r6"]);
    // A checkpoint past the archive reads the stream alone.
    let after_r5 = StartPosition::AfterSequence(on_stream[4].sequence_number.clone());
    let (seen, _) = read(&source, SHARD, after_r5, 1).await;
    assert_eq!(seen, ["r6"]);
}

#[tokio::test]
async fn a_shard_only_the_archive_has_is_listed_read_and_ended_with_its_children() {
    let setup = Setup::new();
    let parent = "shardId-000000000042";
    let records: Vec<Record> = (1..=3)
        .map(|n| record(&format!("{n}0"), &format!("p{n}")))
        .collect();
    setup.archive(parent, &[], &records, true).await;
    setup
        .archive(
            "shardId-000000000043",
            &[parent],
            &[record("90", "c1")],
            false,
        )
        .await;
    let source = setup.source();
    let shards = source.list_shards().await.expect("list");
    let listed = shards
        .iter()
        .find(|s| s.shard_id == parent)
        .expect("the archived parent");
    assert!(listed.closed);
    assert!(
        !shards.iter().any(|s| s.shard_id == "shardId-000000000043"),
        "an archived shard that has not ended is not listed (the stream lists its live shards)"
    );
    let (seen, end) = read(&source, parent, StartPosition::TrimHorizon, 10).await;
    assert_eq!(seen, ["p1", "p2", "p3"]);
    assert_eq!(end, Some(vec!["shardId-000000000043".to_owned()]));
    assert!(
        setup
            .manifest
            .shards("quote-events")
            .await
            .expect("heads")
            .len()
            == 2
    );
}

#[derive(Debug, Default, Clone)]
struct Seen(Arc<Mutex<Vec<String>>>);

struct Recorder(Seen);

#[async_trait]
impl RecordProcessor for Recorder {
    async fn process_records(
        &mut self,
        records: &[Record],
        _: &mut Checkpointer,
    ) -> Result<(), ProcessorError> {
        self.0 .0.lock().unwrap_or_else(|p| p.into_inner()).extend(
            records
                .iter()
                .map(|r| String::from_utf8_lossy(&r.data).into_owned()),
        );
        Ok(())
    }
}

/// A worker of a new application on the setup's archive source, recording what it processes.
struct Application {
    seen: Seen,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Application {
    fn start(setup: &Setup, name: &str) -> Self {
        let seen = Seen::default();
        let recorder = seen.clone();
        let config = WorkerConfig {
            worker_id: format!("{name}-1"),
            scan_interval: Duration::from_millis(100),
            checkpoint: CheckpointPolicy {
                every_records: Some(1),
                every: None,
            },
            ..WorkerConfig::new(name)
        };
        let worker = Worker::new(
            config,
            Arc::new(InMemoryLeaseTable::new()),
            Arc::new(setup.source()),
            Arc::new(move |_: &str| -> Box<dyn RecordProcessor> {
                Box::new(Recorder(recorder.clone()))
            }),
        );
        let stop = CancellationToken::new();
        let task = tokio::spawn(worker.run(stop.clone()));
        Self { seen, stop, task }
    }

    fn processed(&self) -> Vec<String> {
        self.seen
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Waits (up to 10 s) until `count` records were processed.
    async fn wait_for(&self, count: usize) {
        for _ in 0..200 {
            if self.processed().len() >= count {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the worker; what it processed.
    async fn stop(self) -> Vec<String> {
        self.stop.cancel();
        let processed = self.seen.clone();
        self.task.await.expect("worker");
        let all = processed
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        all
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_application_processes_the_archive_then_the_stream() {
    let setup = Setup::new();
    let old: Vec<Record> = (1..=5)
        .map(|n| record(&format!("{n}00"), &format!("old-{n}")))
        .collect();
    setup.archive(SHARD, &[], &old, false).await;
    for n in 1..=3 {
        setup.put(&format!("new-{n}"));
    }
    let application = Application::start(&setup, "new-application");
    application.wait_for(8).await;
    setup.put("new-4");
    application.wait_for(9).await;
    assert_eq!(
        application.stop().await,
        ["old-1", "old-2", "old-3", "old-4", "old-5", "new-1", "new-2", "new-3", "new-4"]
    );
}

fn backfill_shard() -> String {
    format!("{}1790000000000", quote_archive::BACKFILL_SHARD_PREFIX)
}

#[tokio::test]
async fn a_finished_backfill_comes_before_every_root_shard() {
    let setup = Setup::new();
    let backfill = backfill_shard();
    let history: Vec<Record> = (1..=3)
        .map(|n| record(&n.to_string(), &format!("history-{n}")))
        .collect();
    setup.archive(&backfill, &[], &history, true).await;
    setup
        .archive(SHARD, &[], &[record("100", "old-1")], false)
        .await;

    let shards = setup.source().list_shards().await.expect("shards");
    let root = shards.iter().find(|s| s.shard_id == SHARD).expect("root");
    assert_eq!(root.parent_shard_ids, vec![backfill.clone()]);
    let listed = shards
        .iter()
        .find(|s| s.shard_id == backfill)
        .expect("backfill");
    assert!(listed.closed && listed.parent_shard_ids.is_empty());

    let (seen, end) = read(&setup.source(), &backfill, StartPosition::TrimHorizon, 10).await;
    assert_eq!(seen, ["history-1", "history-2", "history-3"]);
    assert_eq!(end, Some(vec![SHARD.to_owned()]));
    // A checkpoint inside the backfill resumes there.
    let (seen, _) = read(
        &setup.source(),
        &backfill,
        StartPosition::AfterSequence("2".to_owned()),
        10,
    )
    .await;
    assert_eq!(seen, ["history-3"]);
}

#[tokio::test]
async fn a_backfill_still_running_is_not_listed() {
    let setup = Setup::new();
    setup
        .archive(&backfill_shard(), &[], &[record("1", "history-1")], false)
        .await;
    let shards = setup.source().list_shards().await.expect("shards");
    assert!(shards.iter().all(|s| s.shard_id != backfill_shard()));
    assert!(shards.iter().all(|s| s.parent_shard_ids.is_empty()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_application_processes_the_backfill_then_the_archive_then_the_stream() {
    let setup = Setup::new();
    setup
        .archive(
            &backfill_shard(),
            &[],
            &[record("1", "history-1"), record("2", "history-2")],
            true,
        )
        .await;
    setup
        .archive(
            SHARD,
            &[],
            &[record("100", "old-1"), record("200", "old-2")],
            false,
        )
        .await;
    setup.put("new-1");
    let application = Application::start(&setup, "newer-application");
    application.wait_for(5).await;
    assert_eq!(
        application.stop().await,
        ["history-1", "history-2", "old-1", "old-2", "new-1"]
    );
}
