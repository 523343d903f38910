//! End to end, with each service a separate `quotes run SERVICE` process on the emulators:
//! `quotes bootstrap` creates fresh resources, event-source takes 50 quote requests, and the five
//! consumer services (vehicle-enricher, driver-history, fulfillment, projector, notifier) carry
//! every quote to a final status, while the archiver archives the stream. Checked: every quote
//! is `quoted`, `declined` or `referred` in the read model; the read model equals a fold of the
//! event store; each requested notification was sent exactly once; a customer cannot read
//! another's quotes; the archive holds every record of the stream exactly once. The second test
//! runs two workers of each consumer service (the archiver included) and kills one of each with
//! SIGKILL mid-run. Another runs without driver-history: its quote is referred at its
//! deadline (`QUOTE_DEADLINE_SECS`). The last has a fulfillment whose every record fails
//! permanently (a bug of that deployment, set with a failpoint): the quote's records are
//! dead-lettered and set aside, the fixed fulfillment is deployed, `quotes dlq redrive` hands
//! them back in order, and the quote is decided.
//!
//! The plumbing is in `common/`.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use common::{
    deploy_fixed_fulfillment, post, requests, start_with_buggy_fulfillment, token, wait_healthy,
    Fleet, Platform, Request, CONSUMERS, FINAL, QUOTES,
};
use event_store::dynamodb::{DynamoEventStore, TableNames};
use event_store::{EventStore, LoadBound};
use quote_domain::{Quote, QuoteEvent};
use quote_read_model::dynamodb::DynamoReadModel;
use quote_read_model::{QuoteSummary, ReadModel};
use serde_json::Value;

/// The summary a fold of the quote's stream in the event store gives.
async fn folded(store: &DynamoEventStore, quote_id: &str) -> QuoteSummary {
    let events = store
        .load(&format!("quote#{quote_id}"), LoadBound::Latest)
        .await
        .expect("load");
    let decoded: Vec<(u64, QuoteEvent)> = events
        .iter()
        .map(|e| {
            (
                e.version,
                QuoteEvent::decode(&e.event_type, e.schema_version, &e.data).expect("decode"),
            )
        })
        .collect();
    let quote = Quote::fold(decoded.iter().map(|(v, e)| (*v, e)))
        .expect("fold")
        .expect("the stream exists");
    let last = events.last().expect("an event").recorded_at;
    quote_read_model::projection::summarize(&quote, last)
}

/// E-mails and SMS moto's SES and SNS have recorded, by recipient.
async fn sent() -> (HashMap<String, usize>, HashMap<String, usize>) {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").expect("AWS_ENDPOINT_URL (moto)");
    let data: Value = reqwest::get(format!(
        "{}/moto-api/data.json",
        endpoint.trim_end_matches('/')
    ))
    .await
    .expect("moto data")
    .json()
    .await
    .expect("moto data json");
    let mut emails = HashMap::new();
    for message in data["ses"]["Message"].as_array().into_iter().flatten() {
        for to in message["destinations"]["ToAddresses"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            *emails.entry(to.to_owned()).or_insert(0) += 1;
        }
    }
    let mut sms = HashMap::new();
    for message in data["sns"]["SMS"].as_array().into_iter().flatten() {
        if let Some(phone) = message["phone_number"].as_str() {
            *sms.entry(phone.to_owned()).or_insert(0) += 1;
        }
    }
    (emails, sms)
}

/// How many e-mails and SMS the notifier's rules call for (services/notifier/src/rules.rs).
fn expected_notifications(request: &Request, summary: &QuoteSummary) -> (usize, usize) {
    let within_ceiling = summary.status != "quoted"
        || summary
            .annual_premium_cents
            .is_some_and(|cents| cents <= request.max_premium_dollars * 100);
    let email = usize::from(within_ceiling);
    let sms = usize::from(within_ceiling && request.sms && request.phone.is_some());
    (email, sms)
}

/// The scenario; `kill_one_of_each` runs two workers per service and SIGKILLs one of each
/// after half the requests.
async fn scenario(kill_one_of_each: bool) {
    let started = Instant::now();
    let sdk = testkit::aws_config().await;
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    let platform = Platform::new();
    platform.bootstrap();
    eprintln!("bootstrap done after {:?}", started.elapsed());

    let mut fleet = Fleet::default();
    let source_port = fleet.spawn("event-source".to_owned(), {
        let mut c = platform.command("event-source");
        c.env("RELAY_SWEEP_INTERVAL_MS", "500")
            .env("RELAY_SWEEP_GRACE_MS", "1000");
        c
    });
    let workers = if kill_one_of_each { 2 } else { 1 };
    let mut ports = vec![("event-source".to_owned(), source_port)];
    for service in CONSUMERS {
        for w in 0..workers {
            let label = format!("{service}-{w}");
            let mut c = platform.command(service);
            c.env("LEASE_TABLE", &platform.lease_tables[service])
                .env("WORKER_ID", &label)
                .env("LEASE_DURATION_MS", "3000")
                .env("VPIC_BASE_URL", "off")
                .env("DRIVER_HISTORY_PROVIDER", "simulated")
                // A notifier killed between its claim and its send leaves a claim that holds
                // the shard until it is stale: short here, where a kill is the point.
                .env("NOTIFY_CLAIM_TIMEOUT_SECS", "5");
            let port = fleet.spawn(label.clone(), c);
            ports.push((label, port));
        }
    }
    for (label, port) in &ports {
        wait_healthy(label, *port).await;
    }
    eprintln!(
        "{} processes healthy after {:?}",
        ports.len(),
        started.elapsed()
    );

    let base = format!("http://127.0.0.1:{source_port}");
    let http = reqwest::Client::new();
    let run = testkit::unique_name("r")[2..].to_owned();
    let requests = requests(&run);
    let mut ids = Vec::with_capacity(QUOTES);
    let mut killed = Vec::new();
    for (n, request) in requests.iter().enumerate() {
        if kill_one_of_each && n == QUOTES / 2 {
            for service in CONSUMERS {
                let label = format!("{service}-0");
                fleet.kill_9(&label);
                killed.push(label);
            }
            eprintln!("killed {killed:?} after {n} requests");
        }
        ids.push(post(&http, &base, request).await);
    }
    let posted = Instant::now();
    eprintln!("{QUOTES} requests accepted after {:?}", started.elapsed());

    // Every quote reaches a final status in the read model.
    let read_model = DynamoReadModel::new(dynamo.clone(), platform.read_model_table.clone());
    let mut summaries: HashMap<String, QuoteSummary> = HashMap::new();
    loop {
        for id in &ids {
            if summaries.contains_key(id) {
                continue;
            }
            if let Some(summary) = read_model.get(id).await.expect("read model") {
                if FINAL.contains(&summary.status.as_str()) {
                    summaries.insert(id.clone(), summary);
                }
            }
        }
        if summaries.len() == ids.len() {
            break;
        }
        fleet.assert_running(&killed);
        assert!(
            posted.elapsed() < Duration::from_secs(120),
            "{} of {} quotes still not final after 120 s",
            ids.len() - summaries.len(),
            ids.len()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let mut by_status: HashMap<&str, usize> = HashMap::new();
    for summary in summaries.values() {
        *by_status.entry(summary.status.as_str()).or_insert(0) += 1;
    }
    eprintln!(
        "all quotes final {:?} after the last request: {by_status:?}",
        posted.elapsed()
    );

    // The read model equals a fold of the event store (the projector may still be applying
    // the last events of a stream: retry for a little while).
    let store = DynamoEventStore::new(
        dynamo.clone(),
        TableNames {
            events: platform.events_table.clone(),
            idempotency: platform.idempotency_table.clone(),
        },
    );
    for id in &ids {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let expected = folded(&store, id).await;
            let actual = read_model.get(id).await.expect("read model");
            if actual.as_ref() == Some(&expected) {
                assert!(FINAL.contains(&expected.status.as_str()), "{expected:?}");
                summaries.insert(id.clone(), expected);
                break;
            }
            assert!(
                Instant::now() < deadline,
                "read model differs from the fold of the store for {id}:\n\
                 read model: {actual:?}\nfold:       {expected:?}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    // Each requested notification was sent exactly once.
    let expectations: Vec<(&Request, (usize, usize))> = requests
        .iter()
        .zip(&ids)
        .map(|(request, id)| (request, expected_notifications(request, &summaries[id])))
        .collect();
    let wanted: usize = expectations.iter().map(|(_, (e, s))| e + s).sum();
    let deadline = Instant::now() + Duration::from_secs(45);
    let notifications_table = platform
        .env
        .iter()
        .find(|(name, _)| name == "NOTIFICATIONS_TABLE")
        .map(|(_, table)| table.clone())
        .expect("the notifications table");
    let check = |emails: &HashMap<String, usize>,
                 sms: &HashMap<String, usize>,
                 unknown: &BTreeSet<(String, String)>| {
        let mut missing = Vec::new();
        for ((request, (email, text)), id) in expectations.iter().zip(&ids) {
            // A send whose worker was killed before it recorded the outcome is `unknown` in the
            // ledger: assumed sent, never resent (at most once), so it may be missing.
            let may_miss = |channel: &str| unknown.contains(&(channel.to_owned(), id.clone()));
            let (email_least, text_least) = (
                if may_miss("email") {
                    email.saturating_sub(1)
                } else {
                    *email
                },
                if may_miss("sms") {
                    text.saturating_sub(1)
                } else {
                    *text
                },
            );
            let got_email = emails.get(&request.email).copied().unwrap_or(0);
            assert!(
                got_email <= *email,
                "{} e-mails to {} (expected {email})",
                got_email,
                request.email
            );
            if got_email < email_least {
                missing.push(request.email.clone());
            }
            if let Some(phone) = &request.phone {
                let got_sms = sms.get(phone).copied().unwrap_or(0);
                assert!(
                    got_sms <= *text,
                    "{got_sms} SMS to {phone} (expected {text})"
                );
                if got_sms < text_least {
                    missing.push(phone.clone());
                }
            }
        }
        missing
    };
    loop {
        let (emails, sms) = sent().await;
        let unknown = common::ledger_unknown(&dynamo, &notifications_table).await;
        let missing = check(&emails, &sms, &unknown);
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "notifications never sent: {missing:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // No late duplicate either.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (emails, sms) = sent().await;
    let unknown = common::ledger_unknown(&dynamo, &notifications_table).await;
    assert!(check(&emails, &sms, &unknown).is_empty());
    eprintln!(
        "{wanted} notifications sent at most once, {} of them of unknown outcome (a notifier \
         killed between sending and recording)",
        unknown.len()
    );

    // The archiver (killed once too, in the second test) archived every record exactly once.
    let archive = common::check_archive(&sdk, &platform.archive(), Duration::from_secs(60)).await;
    assert!(
        archive.exact() && archive.archived > 0,
        "the archive against the stream: {archive:?}"
    );
    eprintln!("{} records archived, each exactly once", archive.archived);

    // A customer reads their own quotes, not another's.
    let mine = &ids[0];
    let owner = &requests[0].customer;
    let other = &requests[1].customer;
    assert_ne!(owner, other);
    let own = http
        .get(format!("{base}/v1/quotes/{mine}"))
        .bearer_auth(token(owner, false))
        .send()
        .await
        .expect("get");
    assert_eq!(own.status(), 200);
    for (request, id) in requests.iter().zip(&ids) {
        if &request.customer == other {
            continue;
        }
        let reply = http
            .get(format!("{base}/v1/quotes/{id}"))
            .bearer_auth(token(other, false))
            .send()
            .await
            .expect("get");
        assert_eq!(
            reply.status(),
            404,
            "{other} must not read {id} of {}",
            request.customer
        );
    }

    fleet.assert_running(&killed);
    drop(fleet);
    eprintln!("scenario done in {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_quotes_end_to_end_on_the_emulators() {
    scenario(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_quotes_with_one_worker_of_each_service_killed() {
    scenario(true).await;
}

/// `quotes run --aws`: every service in one process against the emulators, each with its own
/// (default-named) lease table; a quote is decided and visible through the API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quotes_run_aws_runs_every_service_in_one_process() {
    let _sdk = testkit::aws_config().await;
    let mut platform = Platform::new();
    // `quotes run --aws` names its lease tables after its services (`<service>-leases`).
    platform
        .env
        .retain(|(name, _)| name != "CONSUMER_APPLICATIONS");
    platform.bootstrap();
    let mut fleet = Fleet::default();
    let port = fleet.spawn("quotes run --aws".to_owned(), {
        let mut command = platform.quotes(&["run", "--aws"]);
        command
            .env("VPIC_BASE_URL", "off")
            .env("DRIVER_HISTORY_PROVIDER", "simulated")
            .env("LEASE_DURATION_MS", "3000");
        command
    });
    wait_healthy("quotes run --aws", port).await;
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let request = requests(&testkit::unique_name("r")[2..]).remove(0);
    let quote_id = post(&http, &base, &request).await;
    let started = std::time::Instant::now();
    loop {
        let quote: Value = http
            .get(format!("{base}/v1/quotes/{quote_id}"))
            .bearer_auth(token("agent-e2e", true))
            .send()
            .await
            .expect("get")
            .json()
            .await
            .expect("json");
        let status = quote["status"].as_str().unwrap_or_default().to_owned();
        if ["quoted", "declined", "referred"].contains(&status.as_str()) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "quote {quote_id} not decided: {quote}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    fleet.assert_running(&[]);
}

/// Every customer gets an answer: with no driver-history process, a quote's driving history
/// never comes, and the fulfillment process refers it at its deadline (QUOTE_DEADLINE_SECS=3)
/// with the reason `enrichment timed out`, which the read model shows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quote_whose_driving_history_never_comes_is_referred_at_its_deadline() {
    let sdk = testkit::aws_config().await;
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    let platform = Platform::new();
    platform.bootstrap();
    let mut fleet = Fleet::default();
    let source_port = fleet.spawn("event-source".to_owned(), platform.command("event-source"));
    let mut ports = vec![("event-source".to_owned(), source_port)];
    for service in ["vehicle-enricher", "fulfillment", "projector"] {
        let mut c = platform.command(service);
        c.env("LEASE_TABLE", &platform.lease_tables[service])
            .env("VPIC_BASE_URL", "off")
            .env("QUOTE_DEADLINE_SECS", "3");
        ports.push((service.to_owned(), fleet.spawn(service.to_owned(), c)));
    }
    for (label, port) in &ports {
        wait_healthy(label, *port).await;
    }
    let http = reqwest::Client::new();
    let run = testkit::unique_name("d")[2..].to_owned();
    let id = post(
        &http,
        &format!("http://127.0.0.1:{source_port}"),
        &requests(&run)[0],
    )
    .await;
    let read_model = DynamoReadModel::new(dynamo, platform.read_model_table.clone());
    let posted = Instant::now();
    let summary = loop {
        let summary = read_model.get(&id).await.expect("read model");
        if let Some(summary) = summary.filter(|s| s.status != "pending") {
            break summary;
        }
        fleet.assert_running(&[]);
        assert!(
            posted.elapsed() < Duration::from_secs(60),
            "the quote is still pending 60 s after its request"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(summary.status, "referred", "{summary:?}");
    assert_eq!(summary.reasons, vec!["enrichment timed out".to_owned()]);
    eprintln!("referred {:?} after the request", posted.elapsed());
}

/// `quotes dlq list --app fulfillment --output json` on the platform.
fn fulfillment_letters(platform: &Platform) -> Vec<Value> {
    let output = platform
        .quotes(&["dlq", "list", "--app", "fulfillment", "--output", "json"])
        .stdout(std::process::Stdio::piped())
        .output()
        .expect("quotes dlq list");
    assert!(output.status.success(), "{output:?}");
    serde_json::from_slice(&output.stdout).expect("JSON")
}

/// A poisoned quote, redriven after the fix: the running pipeline dead-letters the quote's
/// first record for fulfillment after its attempts and sets the next one aside behind it;
/// nothing is decided; once the fixed fulfillment runs, the operator's redrive replays them in
/// order and the quote reaches a final status, with no letter left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poisoned_quote_is_decided_after_the_fix_and_a_redrive() {
    let sdk = testkit::aws_config().await;
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    let platform = Platform::new();
    platform.bootstrap();
    let mut fleet = Fleet::default();
    let source_port =
        start_with_buggy_fulfillment(&platform, &mut fleet, platform.command("event-source")).await;
    let http = reqwest::Client::new();
    let run = testkit::unique_name("p")[2..].to_owned();
    let id = post(
        &http,
        &format!("http://127.0.0.1:{source_port}"),
        &requests(&run)[0],
    )
    .await;

    // The request and the enrichments reach fulfillment: the first is dead-lettered, the others
    // wait behind it (once the count holds for two seconds, all have arrived).
    let posted = Instant::now();
    let mut seen = (0, Instant::now());
    let letters = loop {
        let letters = fulfillment_letters(&platform);
        if letters.len() != seen.0 {
            seen = (letters.len(), Instant::now());
        } else if letters.len() >= 3 && seen.1.elapsed() > Duration::from_secs(2) {
            break letters;
        }
        fleet.assert_running(&[]);
        assert!(
            posted.elapsed() < Duration::from_secs(60),
            "no letters after 60 s: {letters:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let kinds: Vec<&str> = letters.iter().filter_map(|l| l["kind"].as_str()).collect();
    assert_eq!(kinds[0], "failed", "{letters:?}");
    assert!(kinds[1..].iter().all(|k| *k == "blocked"), "{letters:?}");
    assert_eq!(letters[0]["event_type"], "QuoteRequested", "{letters:?}");
    let stream_id = format!("quote#{id}");
    assert!(
        letters.iter().all(|l| l["stream_id"] == stream_id.as_str()),
        "{letters:?}"
    );
    let read_model = DynamoReadModel::new(dynamo, platform.read_model_table.clone());
    let summary = read_model
        .get(&id)
        .await
        .expect("read model")
        .expect("projected");
    assert_eq!(
        summary.status, "pending",
        "nothing decides a poisoned quote"
    );

    // The fix is deployed: the same service without the bug.
    deploy_fixed_fulfillment(&platform, &mut fleet).await;

    let redrive = platform
        .quotes(&["dlq", "redrive", "--app", "fulfillment", "--quote", &id])
        .stdout(std::process::Stdio::piped())
        .output()
        .expect("quotes dlq redrive");
    let said = String::from_utf8_lossy(&redrive.stdout).into_owned();
    assert!(redrive.status.success(), "{redrive:?}");
    assert!(said.starts_with("handled"), "{said}");
    assert!(fulfillment_letters(&platform).is_empty());

    let summary = loop {
        let summary = read_model.get(&id).await.expect("read model");
        if let Some(summary) = summary.filter(|s| FINAL.contains(&s.status.as_str())) {
            break summary;
        }
        fleet.assert_running(&["fulfillment".to_owned()]);
        assert!(
            posted.elapsed() < Duration::from_secs(120),
            "the redriven quote is still pending"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    eprintln!(
        "redriven quote decided: {} ({:?})",
        summary.status, summary.reasons
    );
    assert_ne!(summary.reasons, vec!["enrichment timed out".to_owned()]);
}
