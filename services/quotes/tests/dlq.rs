//! `quotes dlq`: the redrive's order and stopping rule on the in-memory store with a handler
//! that fails until fixed, and the commands as an operator runs them against DynamoDB on the
//! emulators: letters of the projector listed, shown, redriven through the projector (the quote
//! appears in the read model), and purged.

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use event_relay::{Relay, RelayConfig};
use event_store::{AppendRequest, EventEnvelope, EventStore, InMemoryEventStore, NewEvent};
use kinesis_consumer::dead_letter::{DeadLetter, DeadLetterStore, InMemoryDeadLetters};
use kinesis_consumer::Record;
use quote_domain::quote::QuoteEvent;
use quote_pipeline::stream_sink::InMemoryStreamSink;
use quote_pipeline::{EventHandler, HandlerContext, HandlerError};
use quotes::dlq::{self, Filter};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

fn new_event(event: &QuoteEvent) -> NewEvent {
    NewEvent {
        event_id: uuid::Uuid::new_v4(),
        event_type: event.event_type().to_owned(),
        schema_version: event.schema_version(),
        occurred_at: OffsetDateTime::now_utc(),
        correlation_id: "corr".into(),
        causation_id: None,
        traceparent: None,
        tracestate: None,
        actor: "test".into(),
        data: event.to_data().expect("data"),
    }
}

/// Appends a requested quote to `store`; returns its stream id and envelope.
async fn requested_quote(store: &dyn EventStore) -> (String, EventEnvelope) {
    let (quote_id, requested) =
        testkit::fixtures::quote_requested(testkit::fixtures::quote_request(&[
            "1HGCM82633A004352",
        ]));
    let appended = store
        .append(AppendRequest {
            stream_id: quote_id.stream_id(),
            expected_version: 0,
            events: vec![new_event(&requested)],
            idempotency: None,
            customer_id: Some("cust-42".into()),
        })
        .await
        .expect("append");
    let envelope = appended.events.into_iter().next().expect("one event");
    (quote_id.stream_id(), envelope)
}

fn letter(
    application: &str,
    envelope: &EventEnvelope,
    sequence: u64,
    behind: Option<u64>,
) -> DeadLetter {
    DeadLetter {
        application: application.into(),
        shard_id: "shardId-000000000000".into(),
        record: Record {
            sequence_number: format!("{sequence:056}"),
            sub_sequence_number: 0,
            partition_key: envelope.stream_id.clone(),
            data: serde_json::to_vec(envelope).expect("encode"),
            approximate_arrival: None,
        },
        error: "cannot handle event: the tables were wrong".into(),
        attempts: if behind.is_some() { 0 } else { 5 },
        failed_at: OffsetDateTime::now_utc(),
        blocked_behind: behind.map(|b| format!("{b:056}")),
    }
}

/// Records what it handles; fails the events of `broken` streams until fixed.
struct Flaky {
    fixed: AtomicBool,
    broken: String,
    handled: Mutex<Vec<(String, u64)>>,
}

#[async_trait]
impl EventHandler for Flaky {
    fn name(&self) -> &'static str {
        "flaky"
    }

    fn handles(&self, _event_type: &str) -> bool {
        true
    }

    async fn handle(&self, event: &EventEnvelope, _: &HandlerContext) -> Result<(), HandlerError> {
        if event.stream_id == self.broken && !self.fixed.load(Ordering::SeqCst) {
            return Err(HandlerError::invalid("still broken"));
        }
        self.handled
            .lock()
            .expect("lock")
            .push((event.stream_id.clone(), event.version));
        Ok(())
    }
}

#[tokio::test]
async fn redrive_replays_each_quote_in_order_and_a_failure_keeps_the_rest_waiting() {
    let store: Arc<dyn EventStore> = Arc::new(InMemoryEventStore::new());
    let (stream, relay_task, stop) = {
        let sink = Arc::new(InMemoryStreamSink::new(
            kinesis_consumer::source::memory::InMemoryStream::new(1),
        ));
        let stop = CancellationToken::new();
        let (relay, task) =
            Relay::new(store.clone(), sink, RelayConfig::default()).spawn(stop.clone());
        (relay, task, stop)
    };
    let context = HandlerContext::new(store.clone(), stream, "flaky");
    let (good, good_event) = requested_quote(store.as_ref()).await;
    let (bad, bad_event) = requested_quote(store.as_ref()).await;
    let letters = InMemoryDeadLetters::new();
    // Each quote: a failed letter and one set aside behind it; another application's letter.
    for l in [
        letter("flaky", &good_event, 10, None),
        letter("flaky", &good_event, 11, Some(10)),
        letter("flaky", &bad_event, 20, None),
        letter("flaky", &bad_event, 21, Some(20)),
        letter("other", &bad_event, 30, None),
    ] {
        letters.put(&l).await.expect("put");
    }
    let handler = Arc::new(Flaky {
        fixed: AtomicBool::new(false),
        broken: bad.clone(),
        handled: Mutex::default(),
    });

    let mut seen = Vec::new();
    let report = dlq::redrive(
        &letters,
        handler.clone(),
        &context,
        &Filter::default(),
        &mut |r| seen.push(r.outcome),
    )
    .await
    .expect("redrive");
    let outcomes: Vec<(&str, &str)> = report
        .iter()
        .map(|r| (r.letter.stream_id.as_str(), r.outcome))
        .collect();
    let mut expected = vec![
        (good.as_str(), "handled"),
        (good.as_str(), "handled"),
        (bad.as_str(), "failed"),
        (bad.as_str(), "waiting"),
    ];
    expected.sort_by_key(|(stream, _)| *stream != outcomes[0].0);
    assert_eq!(outcomes, expected);
    assert_eq!(seen.len(), 4, "every outcome shown as it happens");
    let left: Vec<String> = DeadLetterStore::letters(&letters, "flaky")
        .await
        .expect("letters")
        .into_iter()
        .map(|l| l.record.sequence_number)
        .collect();
    assert_eq!(left, vec![format!("{:056}", 20), format!("{:056}", 21)]);

    // Fixed: the quote's letters go through in order; another application's stay.
    handler.fixed.store(true, Ordering::SeqCst);
    let report = dlq::redrive(
        &letters,
        handler.clone(),
        &context,
        &Filter {
            stream_id: Some(bad.clone()),
            ..Filter::default()
        },
        &mut |_| {},
    )
    .await
    .expect("redrive");
    assert!(report.iter().all(|r| r.outcome == "handled"), "{report:?}");
    assert!(DeadLetterStore::letters(&letters, "flaky")
        .await
        .expect("letters")
        .is_empty());
    assert_eq!(
        DeadLetterStore::letters(&letters, "other")
            .await
            .expect("letters")
            .len(),
        1
    );
    let handled = handler.handled.lock().expect("lock").clone();
    assert_eq!(handled.iter().filter(|(s, _)| s == &bad).count(), 2);
    stop.cancel();
    relay_task.await.expect("relay");
}

/// `quotes ARGS…` with `env`, its stdout and whether it succeeded.
fn quotes(args: &[&str], env: &[(&str, String)]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_quotes"))
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("RUST_LOG", "warn")
        .output()
        .expect("run quotes");
    if !output.status.success() {
        eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    }
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_lists_shows_redrives_and_purges_dead_letters() {
    let sdk = testkit::aws_config().await;
    let env = vec![
        ("EVENTS_TABLE", testkit::unique_name("dlq-events")),
        ("IDEMPOTENCY_TABLE", testkit::unique_name("dlq-idem")),
        ("EVENT_STREAM", testkit::unique_name("dlq-stream")),
        ("EVENT_STREAM_SHARDS", "1".to_owned()),
        ("READ_MODEL_TABLE", testkit::unique_name("dlq-read-model")),
        ("DEAD_LETTER_TABLE", testkit::unique_name("dlq-letters")),
        ("RELAY_DEAD_LETTER_TABLE", testkit::unique_name("dlq-relay")),
        ("NOTIFICATIONS_TABLE", testkit::unique_name("dlq-notes")),
        (
            "ARCHIVE_MANIFEST_TABLE",
            testkit::unique_name("dlq-manifest"),
        ),
        ("ARCHIVE_BUCKET", testkit::unique_name("dlq-archive")),
        ("CONSUMER_APPLICATIONS", testkit::unique_name("dlq-app")),
    ];
    let var = |name: &str| {
        env.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
            .expect("set")
    };
    assert!(quotes(&["bootstrap"], &env).0, "bootstrap");
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    let store = event_store::dynamodb::DynamoEventStore::new(
        dynamo.clone(),
        event_store::dynamodb::TableNames {
            events: var("EVENTS_TABLE"),
            idempotency: var("IDEMPOTENCY_TABLE"),
        },
    );
    let letters = kinesis_consumer::dead_letter::DynamoDeadLetters::new(
        dynamo.clone(),
        var("DEAD_LETTER_TABLE"),
    );
    // Two quotes the projector set aside (say, its read model refused them).
    let (first, first_event) = requested_quote(&store).await;
    let (second, second_event) = requested_quote(&store).await;
    letters
        .put(&letter("projector", &first_event, 10, None))
        .await
        .expect("put");
    letters
        .put(&letter("projector", &second_event, 20, None))
        .await
        .expect("put");

    let (ok, listed) = quotes(
        &["dlq", "list", "--app", "projector", "--output", "json"],
        &env,
    );
    assert!(ok);
    let listed: Vec<serde_json::Value> = serde_json::from_str(&listed).expect("JSON");
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(listed
        .iter()
        .all(|l| l["event_type"] == "QuoteRequested" && l["kind"] == "failed"));
    let (ok, text) = quotes(
        &["dlq", "list", "--app", "projector", "--quote", &first],
        &env,
    );
    assert!(ok);
    assert_eq!(
        text.lines().count(),
        2,
        "a header and the one letter:\n{text}"
    );
    assert!(text.contains(&first) && !text.contains(&second), "{text}");

    let (ok, shown) = quotes(
        &["dlq", "show", "--app", "projector", "--sequence", "10"],
        &env,
    );
    assert!(ok);
    let shown: serde_json::Value = serde_json::from_str(&shown).expect("JSON");
    assert_eq!(shown["data"]["stream_id"], first.as_str(), "{shown}");

    // Redrive the first quote through the projector: it appears in the read model.
    let (ok, out) = quotes(
        &["dlq", "redrive", "--app", "projector", "--quote", &first],
        &env,
    );
    assert!(ok, "{out}");
    assert!(out.starts_with("handled"), "{out}");
    let read_model =
        quote_read_model::dynamodb::DynamoReadModel::new(dynamo.clone(), var("READ_MODEL_TABLE"));
    let quote_id = first.trim_start_matches("quote#");
    let summary = quote_read_model::ReadModel::get(&read_model, quote_id)
        .await
        .expect("read model")
        .expect("the redriven quote is projected");
    assert_eq!(summary.status, "pending");
    let left = letters.letters("projector").await.expect("letters");
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].record.partition_key, second);

    // Purge needs --yes; then the second letter is gone.
    let (ok, _) = quotes(&["dlq", "purge", "--app", "projector"], &env);
    assert!(!ok, "purge without --yes removes nothing");
    assert_eq!(
        letters.letters("projector").await.expect("letters").len(),
        1
    );
    let (ok, out) = quotes(&["dlq", "purge", "--app", "projector", "--yes"], &env);
    assert!(ok);
    assert_eq!(out.trim(), "removed 1 dead letters");
    assert!(letters
        .letters("projector")
        .await
        .expect("letters")
        .is_empty());
}
