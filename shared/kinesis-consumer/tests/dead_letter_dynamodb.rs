//! The dead-letter store's contract, on DynamoDB (over HTTP, against the emulators; each case
//! gets a fresh table) and in memory: letters are idempotent per record, and the earliest
//! letter of a partition key is found from any shard and by a new process (its index
//! `by-key`), so a key stays set aside after a restart. Then a worker on the DynamoDB store:
//! a poison record's later records of the same key are set aside, before and after a restart.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use kinesis_consumer::dead_letter::{
    create_dead_letter_table, DeadLetter, DeadLetterStore, DynamoDeadLetters, InMemoryDeadLetters,
};
use kinesis_consumer::lease_table::InMemoryLeaseTable;
use kinesis_consumer::source::memory::InMemoryStream;
use kinesis_consumer::{
    Checkpoint, Checkpointer, FailurePolicy, LeaseTable, ProcessorError, Record, RecordProcessor,
    Worker, WorkerConfig,
};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

fn letter(application: &str, shard: &str, key: &str, sequence: &str) -> DeadLetter {
    DeadLetter {
        application: application.into(),
        shard_id: shard.into(),
        record: Record {
            sequence_number: sequence.into(),
            sub_sequence_number: 0,
            partition_key: key.into(),
            data: format!("{key}@{sequence}").into_bytes(),
            approximate_arrival: None,
        },
        error: "invalid".into(),
        attempts: 5,
        failed_at: OffsetDateTime::now_utc().replace_nanosecond(0).expect("ns"),
        blocked_behind: None,
    }
}

/// The contract: `fresh` is the store as another process would see it (no shared cache).
async fn contract(store: Arc<dyn DeadLetterStore>, fresh: Arc<dyn DeadLetterStore>) {
    let seq = |n: u64| format!("{n:056}");
    assert_eq!(
        store.first_for_key("app", "quote#1").await.expect("lookup"),
        None
    );
    store
        .put(&letter("app", "shard-1", "quote#1", &seq(20)))
        .await
        .expect("put");
    // Idempotent per record.
    store
        .put(&letter("app", "shard-1", "quote#1", &seq(20)))
        .await
        .expect("put again");
    let mut behind = letter("app", "shard-1", "quote#1", &seq(30));
    behind.blocked_behind = Some(seq(20));
    behind.attempts = 0;
    store.put(&behind).await.expect("put set aside");
    // A child shard after a reshard: an earlier-numbered letter of the key, another shard.
    store
        .put(&letter("app", "shard-0", "quote#1", &seq(10)))
        .await
        .expect("put other shard");
    store
        .put(&letter("other-app", "shard-1", "quote#2", &seq(5)))
        .await
        .expect("put other application");

    for (who, s) in [("the writer", &store), ("a new process", &fresh)] {
        assert_eq!(
            s.first_for_key("app", "quote#1").await.expect("lookup"),
            Some(seq(10)),
            "{who}: the earliest letter of the key, whatever its shard"
        );
        assert_eq!(
            s.first_for_key("app", "quote#2").await.expect("lookup"),
            None,
            "{who}: another application's letter does not block this one"
        );
        assert_eq!(
            s.first_for_key("other-app", "quote#2")
                .await
                .expect("lookup"),
            Some(seq(5)),
            "{who}"
        );
        assert_eq!(
            s.first_for_key("app", "quote#3").await.expect("lookup"),
            None,
            "{who}"
        );
    }
}

/// The contract, continued on the letters [`contract`] left: listing and removing.
async fn contract_listing(store: Arc<dyn DeadLetterStore>) {
    let seq = |n: u64| format!("{n:056}");
    // An application's letters, by key then sequence (the order a redrive replays them in),
    // every shard, no other application's.
    let listed: Vec<(String, String, String)> = store
        .letters("app")
        .await
        .expect("letters")
        .into_iter()
        .map(|l| (l.record.partition_key, l.shard_id, l.record.sequence_number))
        .collect();
    assert_eq!(
        listed,
        vec![
            ("quote#1".to_owned(), "shard-0".to_owned(), seq(10)),
            ("quote#1".to_owned(), "shard-1".to_owned(), seq(20)),
            ("quote#1".to_owned(), "shard-1".to_owned(), seq(30)),
        ]
    );

    // Removing every letter of a key releases it for the process that removed them at once
    // (other processes when their cached answer expires, 10 s); removing twice is fine.
    for letter in store.letters("app").await.expect("letters") {
        store.remove(&letter).await.expect("remove");
        store.remove(&letter).await.expect("remove again");
    }
    assert!(store.letters("app").await.expect("letters").is_empty());
    assert_eq!(
        store.first_for_key("app", "quote#1").await.expect("lookup"),
        None,
        "released"
    );
    assert_eq!(store.letters("other-app").await.expect("letters").len(), 1);
}

async fn dynamo_store() -> (aws_sdk_dynamodb::Client, String) {
    let client = aws_sdk_dynamodb::Client::new(&testkit::aws_config().await);
    let table = testkit::unique_name("dead-letters");
    assert!(create_dead_letter_table(&client, &table)
        .await
        .expect("create dead-letter table"));
    (client, table)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dynamodb_store_keeps_the_contract() {
    let (client, table) = dynamo_store().await;
    let store = Arc::new(DynamoDeadLetters::new(client.clone(), &table));
    let fresh = Arc::new(DynamoDeadLetters::new(client.clone(), &table));
    contract(store.clone(), fresh).await;
    let letters = store.list("app", "shard-1").await.expect("list");
    assert_eq!(letters.len(), 2, "{letters:?}");
    let behind = letters
        .iter()
        .find(|l| l.blocked_behind.is_some())
        .expect("the set-aside letter");
    assert_eq!(
        behind.blocked_behind.as_deref(),
        Some(&*format!("{:056}", 20))
    );
    assert_eq!(behind.attempts, 0);
    contract_listing(store).await;
}

#[tokio::test]
async fn the_in_memory_store_keeps_the_contract() {
    let store = Arc::new(InMemoryDeadLetters::new());
    contract(store.clone(), store.clone()).await;
    contract_listing(store).await;
}

/// Fails every record whose payload is listed.
struct Poisoned {
    poison: Vec<String>,
    processed: Arc<Mutex<Vec<String>>>,
}

#[async_trait]
impl RecordProcessor for Poisoned {
    async fn process_records(
        &mut self,
        records: &[Record],
        _: &mut Checkpointer,
    ) -> Result<(), ProcessorError> {
        let text = |r: &Record| String::from_utf8_lossy(&r.data).into_owned();
        if let Some(bad) = records.iter().map(text).find(|t| self.poison.contains(t)) {
            return Err(ProcessorError::permanent(format!("{bad} is invalid")));
        }
        self.processed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(records.iter().map(text));
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_sets_aside_a_dead_lettered_key_across_a_restart() {
    let (client, table) = dynamo_store().await;
    let stream = InMemoryStream::new(1);
    let leases = Arc::new(InMemoryLeaseTable::new());
    let processed = Arc::new(Mutex::new(Vec::<String>::new()));
    let start = || {
        let mut config = WorkerConfig {
            worker_id: "w1".into(),
            scan_interval: Duration::from_millis(100),
            retry_base: Duration::from_millis(5),
            retry_cap: Duration::from_millis(20),
            ..WorkerConfig::new("set-aside-app")
        };
        // A new store per start: a restarted process knows nothing but the table.
        config.failure = FailurePolicy::DeadLetter {
            max_attempts: 3,
            store: Arc::new(DynamoDeadLetters::new(client.clone(), &table)),
        };
        let processed = processed.clone();
        let factory = move |_: &str| -> Box<dyn RecordProcessor> {
            Box::new(Poisoned {
                poison: vec!["a:1".into()],
                processed: processed.clone(),
            })
        };
        let worker = Worker::new(
            config,
            leases.clone(),
            Arc::new(stream.clone()),
            Arc::new(factory),
        );
        let token = CancellationToken::new();
        (token.clone(), tokio::spawn(worker.run(token)))
    };
    let seen = |key: &str| -> Vec<String> {
        processed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|r| r.starts_with(&format!("{key}:")))
            .cloned()
            .collect()
    };
    let letters = DynamoDeadLetters::new(client.clone(), &table);
    let wait_for = |b: usize, letters_expected: usize| {
        let letters = &letters;
        let seen = &seen;
        async move {
            for _ in 0..400 {
                let count = letters
                    .list("set-aside-app", "shardId-000000000000")
                    .await
                    .expect("list")
                    .len();
                if seen("b").len() == b && count == letters_expected {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            panic!("expected {b} records of b processed and {letters_expected} letters");
        }
    };

    for n in 0..3 {
        stream.put("a", format!("a:{n}"));
        stream.put("b", format!("b:{n}"));
    }
    let (token, task) = start();
    wait_for(3, 2).await;
    assert_eq!(seen("a"), vec!["a:0"], "a:2 did not overtake a:1");
    token.cancel();
    task.await.expect("worker");

    for n in 3..5 {
        stream.put("a", format!("a:{n}"));
        stream.put("b", format!("b:{n}"));
    }
    let (token, task) = start();
    wait_for(5, 4).await;
    assert_eq!(
        seen("a"),
        vec!["a:0"],
        "after the restart a is still set aside"
    );
    let all = letters
        .list("set-aside-app", "shardId-000000000000")
        .await
        .expect("list");
    let poison = all
        .iter()
        .find(|l| l.record.data == b"a:1")
        .expect("the poison letter");
    assert_eq!(poison.attempts, 3);
    for l in all.iter().filter(|l| l.record.data != b"a:1") {
        assert_eq!(
            l.blocked_behind.as_deref(),
            Some(poison.record.sequence_number.as_str()),
            "{l:?}"
        );
    }
    token.cancel();
    task.await.expect("worker");

    // As if the owner had died before its checkpoint: every record is delivered again. The
    // poison letter stays a failure with its error (never "blocked behind" itself), the record
    // of its key before it is handled again as usual, the ones after it stay set aside.
    let lease = leases
        .get("shardId-000000000000")
        .await
        .expect("get")
        .expect("the lease");
    leases
        .rewind(&lease, &Checkpoint::TrimHorizon)
        .await
        .expect("rewind");
    let (token, task) = start();
    wait_for(10, 4).await;
    assert_eq!(
        seen("a"),
        vec!["a:0", "a:0"],
        "a:0 handled again, a:1.. not"
    );
    let again = letters
        .list("set-aside-app", "shardId-000000000000")
        .await
        .expect("list");
    let poison_again = again
        .iter()
        .find(|l| l.record.data == b"a:1")
        .expect("the poison letter");
    assert_eq!(poison_again.blocked_behind, None, "{poison_again:?}");
    assert_eq!(poison_again.attempts, 3);
    assert_eq!(poison_again.error, poison.error);
    token.cancel();
    task.await.expect("worker");
}
