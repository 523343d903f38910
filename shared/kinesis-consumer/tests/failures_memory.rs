//! Transient and permanent processor failures on the in-memory stream, on tokio's paused
//! clock: a transient failure is waited out however long it lasts (nothing dead-lettered); a
//! permanent one is dead-lettered after the bounded attempts, and the later records of its
//! partition key are set aside behind it (also after a restart) while other keys go on;
//! shutdown and lease loss interrupt a transient wait.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use kinesis_consumer::dead_letter::InMemoryDeadLetters;
use kinesis_consumer::lease_table::InMemoryLeaseTable;
use kinesis_consumer::source::memory::InMemoryStream;
use kinesis_consumer::{
    CheckpointPolicy, Checkpointer, FailurePolicy, LeaseTable, ProcessorError, Record,
    RecordProcessor, Worker, WorkerConfig,
};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Attempts of a permanently failing record before it is dead-lettered.
const MAX_ATTEMPTS: u32 = 5;

/// What the processor does with each record, shared with the test.
#[derive(Debug, Default)]
struct Script {
    /// Records (`key:n`) that fail permanently.
    poison: Vec<String>,
    /// Until then, every batch fails transiently (a throttled dependency).
    outage_until: Option<Instant>,
    /// Batches that failed transiently.
    transient_failures: u64,
    /// Records processed, in order (`key:n`).
    processed: Vec<String>,
}

#[derive(Debug, Default, Clone)]
struct Shared(Arc<Mutex<Script>>);

impl Shared {
    fn with<T>(&self, f: impl FnOnce(&mut Script) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn processed(&self, key: &str) -> Vec<u64> {
        self.with(|s| {
            s.processed
                .iter()
                .filter_map(|r| r.split_once(':'))
                .filter(|(k, _)| *k == key)
                .filter_map(|(_, n)| n.parse().ok())
                .collect()
        })
    }
}

struct Scripted(Shared);

#[async_trait]
impl RecordProcessor for Scripted {
    async fn process_records(
        &mut self,
        records: &[Record],
        _: &mut Checkpointer,
    ) -> Result<(), ProcessorError> {
        let text = |r: &Record| String::from_utf8_lossy(&r.data).into_owned();
        self.0.with(|script| {
            if script
                .outage_until
                .is_some_and(|until| Instant::now() < until)
            {
                script.transient_failures += 1;
                return Err(ProcessorError::transient("ThrottlingException: slow down"));
            }
            if let Some(poison) = records.iter().map(text).find(|t| script.poison.contains(t)) {
                return Err(ProcessorError::permanent(format!("{poison} is invalid")));
            }
            script.processed.extend(records.iter().map(text));
            Ok(())
        })
    }
}

fn config() -> WorkerConfig {
    WorkerConfig {
        worker_id: "w1".into(),
        lease_duration: Duration::from_secs(6),
        renew_interval: Duration::from_secs(2),
        scan_interval: Duration::from_millis(200),
        shard_sync_interval: Duration::from_secs(5),
        checkpoint: CheckpointPolicy {
            every_records: Some(1),
            every: None,
        },
        // Today's budget: 5 attempts from a 100 ms base, about 3 s in all.
        retry_base: Duration::from_millis(100),
        retry_cap: Duration::from_secs(2),
        ..WorkerConfig::new("test-app")
    }
}

/// One worker over a one-shard stream, restartable on the same lease table and dead letters.
struct Setup {
    stream: InMemoryStream,
    table: Arc<InMemoryLeaseTable>,
    letters: Arc<InMemoryDeadLetters>,
    script: Shared,
    running: Option<(
        CancellationToken,
        tokio::task::JoinHandle<()>,
        Arc<kinesis_consumer::metrics::WorkerMetrics>,
    )>,
}

impl Setup {
    fn new() -> Self {
        Self {
            stream: InMemoryStream::new(1),
            table: Arc::new(InMemoryLeaseTable::new()),
            letters: Arc::new(InMemoryDeadLetters::new()),
            script: Shared::default(),
            running: None,
        }
    }

    fn start(&mut self) -> Arc<kinesis_consumer::metrics::WorkerMetrics> {
        let mut config = config();
        config.failure = FailurePolicy::DeadLetter {
            max_attempts: MAX_ATTEMPTS,
            store: self.letters.clone(),
        };
        let script = self.script.clone();
        let factory =
            move |_: &str| -> Box<dyn RecordProcessor> { Box::new(Scripted(script.clone())) };
        let worker = Worker::new(
            config,
            self.table.clone(),
            Arc::new(self.stream.clone()),
            Arc::new(factory),
        );
        let metrics = worker.metrics();
        let token = CancellationToken::new();
        let task = tokio::spawn(worker.run(token.clone()));
        self.running = Some((token, task, metrics.clone()));
        metrics
    }

    async fn stop(&mut self) {
        if let Some((token, task, _)) = self.running.take() {
            token.cancel();
            task.await.expect("worker task");
        }
    }

    fn produce(&self, key: &str, numbers: std::ops::Range<u64>) {
        for n in numbers {
            self.stream.put(key, format!("{key}:{n}"));
        }
    }

    /// Waits (on the paused clock) until `done` holds.
    async fn until(&self, what: &str, done: impl Fn(&Self) -> bool) {
        for _ in 0..2_000 {
            if done(self) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("timed out waiting until {what}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_transient_outage_longer_than_the_retry_budget_is_waited_out_and_nothing_is_dead_lettered(
) {
    let mut setup = Setup::new();
    // Throttled for a minute: twenty times today's whole retry budget.
    setup
        .script
        .with(|s| s.outage_until = Some(Instant::now() + Duration::from_secs(60)));
    let metrics = setup.start();
    setup.produce("quote#a", 0..5);
    setup.produce("quote#b", 0..5);

    tokio::time::sleep(Duration::from_secs(30)).await;
    let blocked = metrics.snapshot();
    assert!(
        blocked.blocked_seconds.values().any(|&s| s >= 20),
        "the shard shows it has been blocked: {:?}",
        blocked.blocked_seconds
    );
    assert!(setup.letters.letters().is_empty(), "nothing dead-lettered");

    setup
        .until("everything is processed", |s| {
            s.script.processed("quote#a").len() == 5 && s.script.processed("quote#b").len() == 5
        })
        .await;
    assert_eq!(setup.script.processed("quote#a"), vec![0, 1, 2, 3, 4]);
    assert_eq!(setup.script.processed("quote#b"), vec![0, 1, 2, 3, 4]);
    assert!(setup.letters.letters().is_empty(), "nothing dead-lettered");
    let after = metrics.snapshot();
    assert!(
        after.retries_transient > u64::from(MAX_ATTEMPTS),
        "retried past the permanent budget: {}",
        after.retries_transient
    );
    assert_eq!(after.retries_permanent, 0);
    assert!(after.blocked_seconds.is_empty(), "no longer blocked");
    setup.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_permanent_failure_is_dead_lettered_and_later_records_of_its_key_are_set_aside_behind_it()
{
    let mut setup = Setup::new();
    setup.script.with(|s| s.poison = vec!["quote#a:2".into()]);
    setup.start();
    setup.produce("quote#a", 0..5);
    setup.produce("quote#b", 0..5);
    setup
        .until("quote#b is processed and quote#a set aside", |s| {
            s.script.processed("quote#b").len() == 5 && s.letters.letters().len() == 3
        })
        .await;

    // The other key went on.
    assert_eq!(setup.script.processed("quote#b"), vec![0, 1, 2, 3, 4]);
    // quote#a stopped at its poison record: nothing after it overtook it.
    assert_eq!(setup.script.processed("quote#a"), vec![0, 1]);
    let mut letters = setup.letters.letters();
    letters.sort_by(|a, b| {
        kinesis_consumer::lease::compare_sequence_numbers(
            &a.record.sequence_number,
            &b.record.sequence_number,
        )
    });
    let data: Vec<String> = letters
        .iter()
        .map(|l| String::from_utf8_lossy(&l.record.data).into_owned())
        .collect();
    assert_eq!(data, vec!["quote#a:2", "quote#a:3", "quote#a:4"]);
    let poison = &letters[0];
    assert_eq!(poison.attempts, MAX_ATTEMPTS);
    assert!(poison.error.contains("invalid"), "{}", poison.error);
    assert_eq!(poison.blocked_behind, None);
    for set_aside in &letters[1..] {
        assert_eq!(
            set_aside.blocked_behind.as_deref(),
            Some(poison.record.sequence_number.as_str())
        );
        assert_eq!(
            set_aside.error,
            format!("blocked behind {}", poison.record.sequence_number)
        );
        assert_eq!(set_aside.attempts, 0, "set aside without being tried");
    }

    // After a restart, the dead-letter store still holds quote#a back; quote#b goes on.
    setup.stop().await;
    setup.start();
    setup.produce("quote#a", 5..7);
    setup.produce("quote#b", 5..7);
    setup
        .until("the new records are handled", |s| {
            s.script.processed("quote#b").len() == 7 && s.letters.letters().len() == 5
        })
        .await;
    assert_eq!(setup.script.processed("quote#a"), vec![0, 1]);
    assert_eq!(setup.script.processed("quote#b"), vec![0, 1, 2, 3, 4, 5, 6]);
    assert!(setup
        .letters
        .letters()
        .iter()
        .filter(
            |l| l.record.data.starts_with(b"quote#a:5") || l.record.data.starts_with(b"quote#a:6")
        )
        .all(|l| l.blocked_behind.as_deref() == Some(poison.record.sequence_number.as_str())));
    setup.stop().await;
}

#[tokio::test(start_paused = true)]
async fn shutdown_interrupts_a_transient_wait_and_checkpoints_only_what_was_processed() {
    let mut setup = Setup::new();
    setup.produce("quote#a", 0..3);
    setup.start();
    setup
        .until("the first records are processed", |s| {
            s.script.processed("quote#a").len() == 3
        })
        .await;
    setup
        .script
        .with(|s| s.outage_until = Some(Instant::now() + Duration::from_secs(3_600)));
    setup.produce("quote#a", 3..5);
    setup
        .until("the shard is blocked", |s| {
            s.script.with(|s| s.transient_failures) > 3
        })
        .await;

    let started = Instant::now();
    setup.stop().await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the wait was interrupted"
    );
    assert!(setup.letters.letters().is_empty());
    let leases = setup.table.list().await.expect("list");
    assert_eq!(leases.len(), 1);
    assert_eq!(leases[0].lease_owner, None, "the lease was released");

    // The outage ends; a new worker resumes at the first unprocessed record: nothing lost.
    setup.script.with(|s| s.outage_until = None);
    setup.start();
    setup
        .until("the rest is processed", |s| {
            s.script.processed("quote#a").len() == 5
        })
        .await;
    assert_eq!(setup.script.processed("quote#a"), vec![0, 1, 2, 3, 4]);
    setup.stop().await;
}

#[tokio::test(start_paused = true)]
async fn losing_the_lease_interrupts_a_transient_wait() {
    let mut setup = Setup::new();
    setup
        .script
        .with(|s| s.outage_until = Some(Instant::now() + Duration::from_secs(3_600)));
    let metrics = setup.start();
    setup.produce("quote#a", 0..3);
    setup
        .until("the shard is blocked", |s| {
            s.script.with(|s| s.transient_failures) > 3
        })
        .await;
    assert_eq!(metrics.snapshot().blocked_seconds.len(), 1);

    // Another worker takes the lease (as after an expiry): the blocked consumer stops waiting.
    let lease = setup.table.list().await.expect("list").remove(0);
    setup.table.take(&lease, "w2").await.expect("take");
    let lost_at = Instant::now();
    for _ in 0..100 {
        if metrics.snapshot().leases_lost == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        metrics.snapshot().leases_lost,
        1,
        "the lease loss was noticed"
    );
    let failures = setup.script.with(|s| s.transient_failures);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        lost_at.elapsed() < Duration::from_secs(6),
        "before w1 could take the unrenewed lease back"
    );
    assert_eq!(
        setup.script.with(|s| s.transient_failures),
        failures,
        "no more retries once the lease is lost"
    );
    assert!(metrics.snapshot().blocked_seconds.is_empty());
    assert!(setup.letters.letters().is_empty());
    setup.stop().await;
}
