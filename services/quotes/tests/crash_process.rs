//! The real binary on moto (DynamoDB) + kinesis-mock, killed with SIGKILL right after its
//! DynamoDB commit (held there by the `event_source::after_commit` failpoint): the next process
//! publishes the event to Kinesis, and the client's retry gets the original answer.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use event_store::dynamodb::{create_tables, DynamoEventStore, TableNames};
use event_store::{EventEnvelope, EventStore, LoadBound};
use testkit::free_port;

const SECRET: &str = "test-secret-0123456789";

struct Names {
    tables: TableNames,
    stream: String,
    read_model: String,
    relay_dead_letters: String,
}

fn start(names: &Names, port: u16, failpoints: Option<&str>) -> Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_quotes"));
    command
        .args(["run", "event-source"])
        .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("EVENTS_TABLE", &names.tables.events)
        .env("IDEMPOTENCY_TABLE", &names.tables.idempotency)
        .env("EVENT_STREAM", &names.stream)
        .env("READ_MODEL_TABLE", &names.read_model)
        .env("RELAY_DEAD_LETTER_TABLE", &names.relay_dead_letters)
        .env("AUTH_HS256_SECRET", SECRET)
        .env("RELAY_SWEEP_INTERVAL_MS", "200")
        .env("RELAY_SWEEP_GRACE_MS", "300")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    match failpoints {
        Some(fp) => command.env("FAILPOINTS", fp),
        None => command.env_remove("FAILPOINTS"),
    };
    command.spawn().expect("start event-source")
}

async fn wait_healthy(port: u16) {
    let client = reqwest::Client::new();
    for _ in 0..200 {
        if let Ok(r) = client
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await
        {
            if r.status().is_success() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("event-source did not become healthy on port {port}");
}

fn body() -> String {
    serde_json::json!({
        "customer_id": "cust-42",
        "contact": {"email": "ana@example.com"},
        "vehicles": [{"vin": "1HGCM82633A004352", "annual_mileage": 12000, "garaging_zip": "23220", "use": "commute"}],
        "drivers": [{"first_name": "Ana", "last_name": "Diaz", "date_of_birth": "1988-03-14",
                     "license_number": "T12345678", "license_state": "VA", "first_licensed": "2006-05-01"}],
        "coverage": {"liability_limit": "100/300/100", "collision_deductible": 500, "comprehensive_deductible": 500}
    })
    .to_string()
}

async fn post(port: u16, token: &str) -> reqwest::Result<reqwest::Response> {
    reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/v1/quotes"))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .header("idempotency-key", "kill-9-retry")
        .body(body())
        .timeout(Duration::from_secs(20))
        .send()
        .await
}

async fn published(kinesis: &aws_sdk_kinesis::Client, stream: &str) -> Vec<EventEnvelope> {
    testkit::read_all_records(kinesis, stream)
        .await
        .into_iter()
        .map(|r| serde_json::from_slice(&r.data).expect("envelope"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_after_commit_loses_nothing() {
    let config = testkit::aws_config().await;
    let dynamo = aws_sdk_dynamodb::Client::new(&config);
    let kinesis = aws_sdk_kinesis::Client::new(&config);
    let names = Names {
        tables: TableNames {
            events: testkit::unique_name("events"),
            idempotency: testkit::unique_name("idempotency"),
        },
        stream: testkit::unique_name("quote-events"),
        read_model: testkit::unique_name("read-model"),
        relay_dead_letters: testkit::unique_name("relay-dead-letters"),
    };
    create_tables(&dynamo, &names.tables).await.expect("tables");
    quote_read_model::dynamodb::create_read_model_table(&dynamo, &names.read_model)
        .await
        .expect("read model table");
    event_relay::dead_letter::create_relay_dead_letter_table(&dynamo, &names.relay_dead_letters)
        .await
        .expect("relay dead-letter table");
    testkit::create_stream(&kinesis, &names.stream, 4).await;
    let store = Arc::new(DynamoEventStore::new(dynamo, names.tables.clone()));
    let token = event_source::auth::mint_hs256(
        SECRET,
        "cust-42",
        false,
        Duration::from_secs(600),
        None,
        None,
    )
    .expect("token");

    // First life: the failpoint holds the request right after the commit.
    let port = free_port();
    let mut doomed = start(
        &names,
        port,
        Some("event_source::after_commit=sleep(60000)"),
    );
    wait_healthy(port).await;
    let hanging = tokio::spawn({
        let token = token.clone();
        async move { post(port, &token).await }
    });
    let far_future = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
    let mut stranded = Vec::new();
    for _ in 0..200 {
        stranded = store
            .unpublished_streams(far_future, 10)
            .await
            .expect("outbox");
        if !stranded.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(stranded.len(), 1, "the request committed its event");
    doomed.kill().expect("kill -9");
    doomed.wait().expect("reaped");
    assert!(
        hanging.await.expect("task").is_err(),
        "the client saw the connection die"
    );

    let stream_id = stranded[0].stream_id.clone();
    assert!(
        published(&kinesis, &names.stream).await.is_empty(),
        "nothing reached Kinesis before the crash"
    );
    let head = store
        .stream_head(&stream_id)
        .await
        .expect("head")
        .expect("exists");
    assert_eq!((head.version, head.published_version), (1, 0));

    // Second life: the sweep publishes the stranded event.
    let port = free_port();
    let mut survivor = start(&names, port, None);
    wait_healthy(port).await;
    let mut head = head;
    for _ in 0..200 {
        head = store
            .stream_head(&stream_id)
            .await
            .expect("head")
            .expect("exists");
        if head.published_version == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(head.published_version, 1, "the outbox was drained");
    let stored = store
        .load(&stream_id, LoadBound::Latest)
        .await
        .expect("load");
    let records = published(&kinesis, &names.stream).await;
    assert_eq!(
        records, stored,
        "exactly the committed event reached Kinesis"
    );

    // The client retries with the same key and gets the original answer.
    let retry = post(port, &token).await.expect("retry");
    assert_eq!(retry.status(), 202);
    assert_eq!(
        retry
            .headers()
            .get("idempotent-replayed")
            .and_then(|v| v.to_str().ok()),
        Some("true")
    );
    let accepted: serde_json::Value = retry.json().await.expect("json");
    assert_eq!(
        format!("quote#{}", accepted["quote_id"].as_str().expect("id")),
        stream_id
    );

    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(survivor.id().to_string())
        .status();
    let status = survivor.wait().expect("exit");
    assert!(status.success(), "graceful shutdown on SIGTERM: {status:?}");
}
