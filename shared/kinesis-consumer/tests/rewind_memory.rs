//! `kinesis_consumer::rewind` with a live worker on the in-memory stream (tokio's paused
//! clock): the worker processing the shard is fenced at its next renewal, the lease is taken
//! again and the shard is processed from the rewind point: from the oldest record, after a
//! sequence number, or from an instant; a dry run changes nothing.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use kinesis_consumer::lease_table::InMemoryLeaseTable;
use kinesis_consumer::rewind::{rewind, RewindError, RewindTarget};
use kinesis_consumer::source::memory::InMemoryStream;
use kinesis_consumer::{
    Checkpoint, CheckpointPolicy, Checkpointer, LeaseTable, ProcessorError, Record,
    RecordProcessor, Worker, WorkerConfig,
};
use tokio_util::sync::CancellationToken;

/// Records processed, in order (their payloads).
#[derive(Debug, Default, Clone)]
struct Seen(Arc<Mutex<Vec<String>>>);

impl Seen {
    fn all(&self) -> Vec<String> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

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

struct Setup {
    stream: InMemoryStream,
    table: Arc<InMemoryLeaseTable>,
    seen: Seen,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

fn start() -> Setup {
    let stream = InMemoryStream::new(1);
    let table = Arc::new(InMemoryLeaseTable::new());
    let seen = Seen::default();
    let config = WorkerConfig {
        worker_id: "w1".into(),
        lease_duration: Duration::from_secs(6),
        renew_interval: Duration::from_secs(2),
        scan_interval: Duration::from_millis(200),
        checkpoint: CheckpointPolicy {
            every_records: Some(1),
            every: None,
        },
        ..WorkerConfig::new("rewound-app")
    };
    let recorder = seen.clone();
    let factory =
        move |_: &str| -> Box<dyn RecordProcessor> { Box::new(Recorder(recorder.clone())) };
    let worker = Worker::new(
        config,
        table.clone(),
        Arc::new(stream.clone()),
        Arc::new(factory),
    );
    let stop = CancellationToken::new();
    let task = tokio::spawn(worker.run(stop.clone()));
    Setup {
        stream,
        table,
        seen,
        stop,
        task,
    }
}

impl Setup {
    fn produce(&self, range: std::ops::Range<u32>) -> Vec<String> {
        range
            .map(|n| self.stream.put("quote#1", format!("r{n}")).1)
            .collect()
    }

    async fn until(&self, what: &str, done: impl Fn(&[String]) -> bool) {
        for _ in 0..3_000 {
            if done(&self.seen.all()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("timed out waiting until {what}: {:?}", self.seen.all());
    }

    async fn checkpoint(&self) -> Checkpoint {
        self.table.list().await.expect("list")[0].checkpoint.clone()
    }

    async fn stop(self) {
        self.stop.cancel();
        self.task.await.expect("worker");
    }
}

fn names(range: std::ops::Range<u32>) -> Vec<String> {
    range.map(|n| format!("r{n}")).collect()
}

#[tokio::test(start_paused = true)]
async fn a_live_worker_replays_from_the_rewind_point() {
    let setup = start();
    let sequences = setup.produce(0..10);
    setup.until("the first pass", |seen| seen.len() == 10).await;
    setup
        .until_checkpoint(&Checkpoint::Sequence(sequences[9].clone()))
        .await;

    // A dry run says what would happen and changes nothing.
    let planned = rewind(setup.table.as_ref(), &RewindTarget::TrimHorizon, None, true)
        .await
        .expect("dry run");
    assert_eq!(planned.len(), 1);
    assert!(planned[0].replays && planned[0].owner.as_deref() == Some("w1"));
    assert_eq!(planned[0].to, "TRIM_HORIZON");
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(setup.seen.all(), names(0..10), "a dry run replays nothing");

    // From the oldest record: every record again, in order, after the first pass.
    rewind(
        setup.table.as_ref(),
        &RewindTarget::TrimHorizon,
        None,
        false,
    )
    .await
    .expect("rewind");
    setup.until("the replay", |seen| seen.len() == 20).await;
    assert_eq!(setup.seen.all()[10..], names(0..10));
    setup
        .until_checkpoint(&Checkpoint::Sequence(sequences[9].clone()))
        .await;

    // After a sequence number: the records after it (one shard, named).
    let shard = setup.table.list().await.expect("list")[0].lease_key.clone();
    let unnamed = rewind(
        setup.table.as_ref(),
        &RewindTarget::AfterSequence(sequences[6].clone()),
        None,
        false,
    )
    .await;
    assert!(
        matches!(unnamed, Err(RewindError::SequenceNeedsShard)),
        "{unnamed:?}"
    );
    rewind(
        setup.table.as_ref(),
        &RewindTarget::AfterSequence(sequences[6].clone()),
        Some(&shard),
        false,
    )
    .await
    .expect("rewind to a sequence number");
    setup
        .until("the partial replay", |seen| seen.len() == 23)
        .await;
    assert_eq!(setup.seen.all()[20..], names(7..10));

    // From an instant: the records that arrived at or after it.
    std::thread::sleep(Duration::from_millis(5));
    let at = time::OffsetDateTime::now_utc();
    std::thread::sleep(Duration::from_millis(5));
    setup.produce(10..13);
    setup
        .until("the new records", |seen| seen.len() == 26)
        .await;
    rewind(
        setup.table.as_ref(),
        &RewindTarget::AtTimestamp(at),
        None,
        false,
    )
    .await
    .expect("rewind to an instant");
    setup
        .until("the replay from the instant", |seen| seen.len() == 29)
        .await;
    assert_eq!(setup.seen.all()[26..], names(10..13));
    setup.stop().await;
}

impl Setup {
    async fn until_checkpoint(&self, checkpoint: &Checkpoint) {
        for _ in 0..3_000 {
            if &self.checkpoint().await == checkpoint {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the checkpoint never reached {checkpoint}");
    }
}

#[tokio::test]
async fn targets_parse_from_the_command_line() {
    assert_eq!(
        RewindTarget::parse("TRIM_HORIZON"),
        Ok(RewindTarget::TrimHorizon)
    );
    assert_eq!(RewindTarget::parse("LATEST"), Ok(RewindTarget::Latest));
    assert!(matches!(
        RewindTarget::parse("AT_TIMESTAMP:2026-12-07T10:00:00Z"),
        Ok(RewindTarget::AtTimestamp(_))
    ));
    assert!(RewindTarget::parse("AT_TIMESTAMP:yesterday").is_err());
    assert_eq!(
        RewindTarget::parse("49660000000000000000000000000000000000000000000000000001"),
        Ok(RewindTarget::AfterSequence(
            "49660000000000000000000000000000000000000000000000000001".into()
        ))
    );
    assert!(RewindTarget::parse("EARLIEST").is_err());
    assert!(RewindTarget::parse("12a").is_err());
    assert!(RewindTarget::parse(&"9".repeat(129)).is_err());
}
