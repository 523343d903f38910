//! Operations commands as an operator runs them on the emulators: `quotes outbox status` (a
//! store whose commits were never published: the backlog and its oldest commit) and `quotes
//! archive status|backfill` (that history from before the archiver, never on the stream; the
//! archiver started as a process and archiving what arrives from then on; then the backfill:
//! together, the backfill shard and the archive hold every event of the store; a second
//! backfill does nothing).

mod common;

use std::collections::BTreeSet;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use event_relay::sink::{EventSink, KinesisSink};
use event_store::contract::event;
use event_store::{AppendRequest, EventEnvelope, EventStore, ScanPart};
use quote_archive::Manifest;
use serde_json::Value;

/// `quotes ARGS…` with the platform's environment, its output captured.
fn quotes(platform: &common::Platform, args: &[&str]) -> Output {
    let output = platform
        .quotes(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("run quotes");
    eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    output
}

fn json(output: &Output) -> Value {
    assert!(output.status.success(), "{output:?}");
    serde_json::from_slice(&output.stdout).expect("JSON on stdout")
}

async fn append_quotes(store: &dyn EventStore, count: usize) -> Vec<EventEnvelope> {
    let mut envelopes = Vec::new();
    for i in 0..count {
        let appended = store
            .append(AppendRequest {
                stream_id: format!("quote#{}", uuid::Uuid::new_v4()),
                expected_version: 0,
                events: (0..1 + i % 3).map(event).collect(),
                idempotency: None,
                customer_id: None,
            })
            .await
            .expect("append");
        envelopes.extend(appended.events);
    }
    envelopes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_sees_the_outbox_and_backfills_the_history_from_before_the_archiver() {
    let sdk = testkit::aws_config().await;
    let platform = common::Platform::new();
    platform.bootstrap();
    let names = platform.archive();
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    let store = event_store::dynamodb::DynamoEventStore::new(
        dynamo.clone(),
        event_store::dynamodb::TableNames {
            events: platform.events_table.clone(),
            idempotency: platform.idempotency_table.clone(),
        },
    );
    let manifest = quote_archive::dynamodb::DynamoManifest::new(dynamo, names.manifest.clone());
    let objects = quote_archive::s3::S3Objects::new(
        quote_archive::s3::S3Objects::client(&sdk),
        names.bucket.clone(),
    );

    // History: events committed long ago, no longer on the stream.
    let history = append_quotes(&store, 12).await;

    // Never published (as if the relays had been down): the outbox shows the backlog.
    let outbox = json(&quotes(
        &platform,
        &["outbox", "status", "--output", "json"],
    ));
    assert_eq!(outbox["streams"].as_u64(), Some(12), "{outbox}");
    assert_eq!(
        outbox["events"].as_u64(),
        Some(history.len() as u64),
        "{outbox}"
    );
    assert_eq!(outbox["oldest"]["stream_id"], history[0].stream_id.as_str());
    assert_eq!(outbox["oldest"]["version"], 1);
    let text = quotes(&platform, &["outbox", "status", "--limit", "5"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("at least") && text.contains(&history[0].stream_id),
        "{text}"
    );

    // Nothing is archived yet: the backfill does not know where the archive begins.
    let refused = quotes(&platform, &["archive", "backfill"]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("nothing is archived yet"),
        "{refused:?}"
    );

    // The archiver starts; new events reach the stream (as the relay publishes them).
    let mut fleet = common::Fleet::default();
    let mut archiver = platform.command("archiver");
    archiver.env("LEASE_TABLE", &platform.lease_tables["archiver"]);
    let port = fleet.spawn("archiver".into(), archiver);
    common::wait_healthy("archiver", port).await;
    let recent = append_quotes(&store, 6).await;
    let sink = KinesisSink::new(aws_sdk_kinesis::Client::new(&sdk), names.stream.clone());
    let accepted = sink.publish(&recent).await.expect("publish");
    assert!(accepted.iter().all(|ok| *ok));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = json(&quotes(
            &platform,
            &["archive", "status", "--output", "json"],
        ));
        let archived: u64 = status
            .as_array()
            .expect("shards")
            .iter()
            .map(|shard| shard["records"].as_u64().unwrap_or(0))
            .sum();
        if archived == recent.len() as u64 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the archiver did not archive: {status}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    fleet.stop();

    let report = json(&quotes(
        &platform,
        &[
            "archive",
            "backfill",
            "--clock-margin-secs",
            "0",
            "--output",
            "json",
        ],
    ));
    let shard_id = report["shard_id"].as_str().expect("shard_id").to_owned();
    assert!(shard_id.starts_with("backfill-"), "{report}");
    assert_eq!(report["already_finished"], false);
    // Every event recorded before the first archived arrival: the history, and the recent
    // events too (recorded before they reached the stream), which the archive also holds.
    assert_eq!(
        report["events_before_cutoff"].as_u64(),
        Some((history.len() + recent.len()) as u64),
        "{report}"
    );

    // The backfill shard holds each of those events once, as the relay publishes it.
    let backfilled =
        quote_archive::reader::read_shard(&objects, &manifest, &names.stream, &shard_id)
            .await
            .expect("read the backfill");
    let mut backfilled_events = BTreeSet::new();
    for record in &backfilled {
        let envelope: EventEnvelope = serde_json::from_slice(&record.data).expect("envelope");
        assert!(backfilled_events.insert((envelope.stream_id.clone(), envelope.version)));
    }
    let mut all = BTreeSet::new();
    let mut after = None;
    loop {
        let page = store
            .scan_events(ScanPart::WHOLE, after.as_ref(), 100)
            .await
            .expect("scan");
        all.extend(page.events.iter().map(|e| (e.stream_id.clone(), e.version)));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(
        backfilled_events, all,
        "every event of the store is backfilled"
    );

    let heads = manifest.shards(&names.stream).await.expect("heads");
    let head = heads
        .iter()
        .find(|head| head.shard_id == shard_id)
        .expect("the backfill shard");
    assert!(head.ended && head.records == all.len() as u64, "{head:?}");
    let status =
        String::from_utf8_lossy(&quotes(&platform, &["archive", "status"]).stdout).into_owned();
    assert!(status.contains(&shard_id), "{status}");

    // Once only.
    let again = quotes(&platform, &["archive", "backfill"]);
    assert!(again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("finished earlier"),
        "{again:?}"
    );
}

/// `quotes consumer rewind` on a lease table on moto: a dry run changes nothing; a rewind moves
/// every checkpoint back and fences the owner; a sequence number needs a shard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_rewinds_a_consumer_application() {
    use kinesis_consumer::lease_table::{create_lease_table, DynamoLeaseTable};
    use kinesis_consumer::{Checkpoint, Lease, LeaseTable};

    let sdk = testkit::aws_config().await;
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    let app = testkit::unique_name("rewound");
    let table_name = format!("{app}-leases");
    create_lease_table(&dynamo, &table_name)
        .await
        .expect("lease table");
    let table = DynamoLeaseTable::new(dynamo, table_name.clone());
    let mut held = Vec::new();
    for (shard, sequence) in [
        ("shardId-000000000000", "500"),
        ("shardId-000000000001", "700"),
    ] {
        let lease = Lease::new(shard, Checkpoint::TrimHorizon);
        table.create_if_absent(&lease).await.expect("create");
        let taken = table.take(&lease, "worker-a").await.expect("take");
        held.push(
            table
                .checkpoint(&taken, &Checkpoint::Sequence(sequence.into()), 0)
                .await
                .expect("checkpoint"),
        );
    }
    let platform = common::Platform::new();
    let run = |args: &[&str]| {
        let mut all = vec!["consumer", "rewind", "--app", app.as_str()];
        all.extend_from_slice(args);
        quotes(&platform, &all)
    };

    let dry = json(&run(&[
        "--to",
        "TRIM_HORIZON",
        "--dry-run",
        "--output",
        "json",
    ]));
    assert_eq!(dry.as_array().map(Vec::len), Some(2), "{dry}");
    assert_eq!(dry[0]["from"], "500");
    assert_eq!(dry[0]["to"], "TRIM_HORIZON");
    assert_eq!(dry[0]["owner"], "worker-a");
    assert_eq!(dry[0]["replays"], true);
    assert_eq!(
        table.list().await.expect("list")[0].checkpoint,
        held[0].checkpoint,
        "a dry run changes nothing"
    );

    let refused = run(&["--to", "600"]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("give --shard"),
        "{refused:?}"
    );

    let text = run(&["--to", "AT_TIMESTAMP:2026-12-07T10:00:00Z"]);
    assert!(text.status.success(), "{text:?}");
    assert!(String::from_utf8_lossy(&text.stdout).contains("rewound"));
    let one = json(&run(&[
        "--to",
        "600",
        "--shard",
        "shardId-000000000001",
        "--output",
        "json",
    ]));
    assert_eq!(one.as_array().map(Vec::len), Some(1), "{one}");

    let leases = table.list().await.expect("list");
    let find = |shard: &str| {
        leases
            .iter()
            .find(|l| l.lease_key == shard)
            .expect("lease")
            .clone()
    };
    let first = find("shardId-000000000000");
    assert_eq!(
        first.checkpoint.to_string(),
        "AT_TIMESTAMP:2026-12-07T10:00:00Z"
    );
    assert!(first.lease_owner.is_none(), "the owner is fenced");
    assert_eq!(
        find("shardId-000000000001").checkpoint,
        Checkpoint::Sequence("600".into())
    );
    assert!(
        table.renew(&held[0]).await.is_err(),
        "the old owner cannot renew"
    );
}

/// Catch-up: a projector started with CONSUMER_INITIAL_POSITION=ARCHIVE on a fresh lease table
/// reads shard 0's archived records (on moto's S3 and DynamoDB) before the stream, including
/// records the stream does not hold: the read model gets quotes that were never on Kinesis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_projector_catches_up_from_the_archive() {
    use quote_archive::{ArchiverConfig, ShardWriter};
    use quote_read_model::ReadModel;

    let sdk = testkit::aws_config().await;
    let platform = common::Platform::new();
    platform.bootstrap();
    let names = platform.archive();
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    let store = event_store::dynamodb::DynamoEventStore::new(
        dynamo.clone(),
        event_store::dynamodb::TableNames {
            events: platform.events_table.clone(),
            idempotency: platform.idempotency_table.clone(),
        },
    );
    // Three quotes whose records only the archive still has (sequence numbers below any the
    // stream gives), as the archiver wrote them long ago.
    let mut ids = Vec::new();
    let mut records = Vec::new();
    for n in 0..3 {
        let (quote_id, requested) =
            testkit::fixtures::quote_requested(testkit::fixtures::quote_request(&[
                "1HGCM82633A004352",
            ]));
        let appended = store
            .append(AppendRequest {
                stream_id: quote_id.stream_id(),
                expected_version: 0,
                events: vec![event_store::NewEvent {
                    event_id: uuid::Uuid::new_v4(),
                    event_type: requested.event_type().to_owned(),
                    schema_version: requested.schema_version(),
                    occurred_at: time::OffsetDateTime::now_utc(),
                    correlation_id: "catch-up".into(),
                    causation_id: None,
                    traceparent: None,
                    tracestate: None,
                    actor: "test".into(),
                    data: requested.to_data().expect("data"),
                }],
                idempotency: None,
                customer_id: Some("cust-42".into()),
            })
            .await
            .expect("append");
        let envelope = &appended.events[0];
        store
            .mark_published(&envelope.stream_id, 1)
            .await
            .expect("published long ago");
        records.push(kinesis_consumer::Record {
            sequence_number: format!("{}", 1_000 + n),
            sub_sequence_number: 0,
            partition_key: envelope.stream_id.clone(),
            data: serde_json::to_vec(envelope).expect("envelope"),
            approximate_arrival: Some(envelope.recorded_at),
        });
        ids.push(quote_id.to_string());
    }
    let objects = std::sync::Arc::new(quote_archive::s3::S3Objects::new(
        quote_archive::s3::S3Objects::client(&sdk),
        names.bucket.clone(),
    ));
    let manifest = std::sync::Arc::new(quote_archive::dynamodb::DynamoManifest::new(
        dynamo.clone(),
        names.manifest.clone(),
    ));
    let mut writer = ShardWriter::new(
        objects,
        manifest,
        std::sync::Arc::new(ArchiverConfig {
            stream: names.stream.clone(),
            prefix: "events/".into(),
            segment_bytes: 1,
            segment_age: Duration::from_secs(60),
        }),
        "shardId-000000000000",
    );
    writer.claim(1, &[]).await.expect("claim");
    for record in &records {
        writer.add(record);
        writer.close_if_due(false);
        writer.store_closed().await.expect("commit");
    }

    let mut fleet = common::Fleet::default();
    let mut projector = platform.command("projector");
    projector
        .env("LEASE_TABLE", &platform.lease_tables["projector"])
        .env("CONSUMER_INITIAL_POSITION", "ARCHIVE");
    let port = fleet.spawn("projector".into(), projector);
    common::wait_healthy("projector", port).await;
    let read_model =
        quote_read_model::dynamodb::DynamoReadModel::new(dynamo, platform.read_model_table.clone());
    let deadline = Instant::now() + Duration::from_secs(60);
    for id in &ids {
        loop {
            if read_model.get(id).await.expect("read model").is_some() {
                break;
            }
            fleet.assert_running(&[]);
            assert!(
                Instant::now() < deadline,
                "quote {id} never reached the read model"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// Every quote item of a read-model table deleted (the control documents kept): a projection
/// gone wrong.
async fn delete_quote_items(dynamo: &aws_sdk_dynamodb::Client, table: &str) -> usize {
    let mut deleted = 0;
    let mut start = None;
    loop {
        let page = dynamo
            .scan()
            .table_name(table)
            .set_exclusive_start_key(start)
            .send()
            .await
            .expect("scan");
        for item in page.items() {
            let customer = item.get("customer_id").expect("customer_id").clone();
            if customer.as_s().is_ok_and(|c| c.starts_with('#')) {
                continue;
            }
            dynamo
                .delete_item()
                .table_name(table)
                .key("customer_id", customer)
                .key("quote_id", item.get("quote_id").expect("quote_id").clone())
                .send()
                .await
                .expect("delete");
            deleted += 1;
        }
        start = page.last_evaluated_key().cloned();
        if start.is_none() {
            return deleted;
        }
    }
}

/// The quote ids a customer's listing shows through the API.
async fn listed(http: &reqwest::Client, base: &str, customer: &str) -> BTreeSet<String> {
    let reply = http
        .get(format!("{base}/v1/customers/{customer}/quotes?limit=100"))
        .bearer_auth(common::token(customer, false))
        .send()
        .await
        .expect("list");
    assert!(reply.status().is_success(), "{reply:?}");
    let body: Value = reply.json().await.expect("json");
    body["quotes"]
        .as_array()
        .expect("quotes")
        .iter()
        .map(|q| q["quote_id"].as_str().expect("quote_id").to_owned())
        .collect()
}

/// Waits until the customer's listing shows exactly `ids`.
async fn wait_listed(http: &reqwest::Client, base: &str, customer: &str, ids: &BTreeSet<String>) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let shown = listed(http, base, customer).await;
        if shown == *ids {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "listing shows {shown:?}, expected {ids:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_rebuilds_the_read_model_and_switches_the_api_to_it_under_load() {
    use quote_read_model::ReadModel;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;

    let sdk = testkit::aws_config().await;
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    let mut platform = common::Platform::new();
    platform
        .env
        .push(("READ_MODEL_ROUTING_SECS".to_owned(), "1".to_owned()));
    platform.bootstrap();
    let home = platform.read_model_table.clone();
    let rebuilt = format!("{home}-v2");
    let store = event_store::dynamodb::DynamoEventStore::new(
        dynamo.clone(),
        event_store::dynamodb::TableNames {
            events: platform.events_table.clone(),
            idempotency: platform.idempotency_table.clone(),
        },
    );

    let mut fleet = common::Fleet::default();
    let api_port = fleet.spawn("event-source".into(), platform.command("event-source"));
    let mut projector = platform.command("projector");
    projector.env("LEASE_TABLE", &platform.lease_tables["projector"]);
    let projector_port = fleet.spawn("projector".into(), projector);
    common::wait_healthy("event-source", api_port).await;
    common::wait_healthy("projector", projector_port).await;
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{api_port}");
    let request = common::requests("0123456789abcdef")
        .into_iter()
        .next()
        .expect("a request");
    let customer = request.customer.clone();
    let mut ids = BTreeSet::new();
    for _ in 0..5 {
        ids.insert(common::post(&http, &base, &request).await);
    }
    wait_listed(&http, &base, &customer, &ids).await;

    // The live projection goes wrong: its items are gone.
    assert!(delete_quote_items(&dynamo, &home).await >= ids.len());
    assert!(listed(&http, &base, &customer).await.is_empty());

    // A wrong target is refused before anything is created.
    let refused = quotes(&platform, &["rebuild", "read-model", "--into", "elsewhere"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains(&format!("{home}-<suffix>")));

    let progress = json(&quotes(
        &platform,
        &[
            "rebuild",
            "read-model",
            "--into",
            &rebuilt,
            "--segments",
            "2",
            "--page-size",
            "3",
            "--max-rcu",
            "1000",
            "--output",
            "json",
        ],
    ));
    assert_eq!(progress["phase"], "caught_up", "{progress}");
    assert_eq!(progress["segments"].as_array().map(Vec::len), Some(2));
    assert!(progress["events_scanned"].as_u64() >= Some(ids.len() as u64));

    // The rebuilt table is the fold of the store.
    let rebuilt_model = quote_read_model::dynamodb::DynamoReadModel::new(dynamo.clone(), &rebuilt);
    for id in &ids {
        let quote_id: quote_domain::quote::QuoteId = id.parse().expect("quote id");
        let events = store
            .load(&quote_id.stream_id(), event_store::LoadBound::Latest)
            .await
            .expect("load");
        let state = quote_pipeline::quote::fold(&events)
            .expect("fold")
            .expect("quote");
        let expected = quote_read_model::projection::summarize(
            &state,
            events.last().expect("events").recorded_at,
        );
        assert_eq!(rebuilt_model.get(id).await.expect("get"), Some(expected));
    }

    // Requests are served throughout the switch.
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicUsize::new(0));
    let load = {
        let (stop, served, http, base, customer) = (
            stop.clone(),
            served.clone(),
            http.clone(),
            base.clone(),
            customer.clone(),
        );
        let id = ids.iter().next().cloned().expect("an id");
        tokio::spawn(async move {
            let mut failures = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                for path in [
                    format!("{base}/v1/customers/{customer}/quotes"),
                    format!("{base}/v1/quotes/{id}"),
                ] {
                    let reply = http
                        .get(&path)
                        .bearer_auth(common::token(&customer, false))
                        .send()
                        .await
                        .expect("request");
                    served.fetch_add(1, Ordering::SeqCst);
                    if !reply.status().is_success() {
                        failures.push((path, reply.status()));
                    }
                }
            }
            failures
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let switched = json(&quotes(
        &platform,
        &["read-model", "switch", &rebuilt, "--output", "json"],
    ));
    assert_eq!(switched["changed"], true);
    assert_eq!(switched["routing"]["active"], rebuilt.as_str());
    assert_eq!(switched["routing"]["standby"], serde_json::json!([home]));
    wait_listed(&http, &base, &customer, &ids).await;

    // A quote requested after the switch reaches the active table and the standby one.
    let newer = common::post(&http, &base, &request).await;
    ids.insert(newer.clone());
    wait_listed(&http, &base, &customer, &ids).await;
    let home_model = quote_read_model::dynamodb::DynamoReadModel::new(dynamo.clone(), &home);
    let deadline = Instant::now() + Duration::from_secs(30);
    while home_model.get(&newer).await.expect("get").is_none() {
        assert!(
            Instant::now() < deadline,
            "the standby table never got {newer}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    stop.store(true, Ordering::SeqCst);
    let failures = load.await.expect("load");
    assert!(failures.is_empty(), "{failures:?}");
    assert!(served.load(Ordering::SeqCst) >= 10);

    let status = json(&quotes(
        &platform,
        &["read-model", "status", "--output", "json"],
    ));
    let tables = status["tables"].as_array().expect("tables");
    let active = tables
        .iter()
        .find(|t| t["table"] == rebuilt.as_str())
        .expect("the rebuilt table");
    assert_eq!(active["role"], "active");
    assert_eq!(
        active["lag"]["sampled"], active["lag"]["current"],
        "{status}"
    );
    assert_eq!(active["rebuild"]["phase"], "caught_up");
    let standby = tables
        .iter()
        .find(|t| t["table"] == home.as_str())
        .expect("the home table");
    assert_eq!(standby["role"], "standby");
    // Only the quote requested after the deletion is in the old table.
    assert_eq!(standby["lag"]["missing"], ids.len() - 1, "{status}");

    // The active table cannot be retired; the old one can.
    assert!(!quotes(&platform, &["read-model", "retire", &rebuilt])
        .status
        .success());
    let retired = json(&quotes(
        &platform,
        &["read-model", "retire", &home, "--output", "json"],
    ));
    assert_eq!(retired["routing"]["standby"], serde_json::json!([]));
    fleet.assert_running(&[]);
}
