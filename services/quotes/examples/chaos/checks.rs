//! What a chaos run checks once the faults have stopped, read directly from the emulators (not
//! through the proxies): the read model, the event store, the stream, the notifier's ledger,
//! the dead letters, and what moto's SES and SNS sent. Each check is a row of the final table.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use event_store::dynamodb::DynamoEventStore;
use event_store::ordering::{Observation, StreamPositions};
use event_store::{EventEnvelope, EventStore, LoadBound};
use quote_domain::{Quote, QuoteEvent};
use quote_read_model::dynamodb::DynamoReadModel;
use quote_read_model::{QuoteSummary, ReadModel};
use serde_json::Value;
use time::OffsetDateTime;

use crate::common::{Request, FINAL};

/// One line of the final table: a check (`ok` is `Some`) or a measurement (`None`).
#[derive(Debug, Clone)]
pub struct Row {
    pub what: String,
    pub expected: String,
    pub observed: String,
    pub ok: Option<bool>,
}

impl Row {
    pub fn check(what: &str, expected: impl ToString, observed: impl ToString, ok: bool) -> Self {
        Self {
            what: what.to_owned(),
            expected: expected.to_string(),
            observed: observed.to_string(),
            ok: Some(ok),
        }
    }

    pub fn measure(what: &str, observed: impl ToString) -> Self {
        Self {
            what: what.to_owned(),
            expected: String::new(),
            observed: observed.to_string(),
            ok: None,
        }
    }
}

/// The table as Markdown.
pub fn table(rows: &[Row]) -> String {
    let mut out =
        String::from("| check | expected | observed | result |\n| --- | --- | --- | --- |\n");
    for row in rows {
        let result = match row.ok {
            Some(true) => "ok",
            Some(false) => "FAILED",
            None => "",
        };
        out.push_str(&format!(
            "| {} | {} | {} | {result} |\n",
            row.what, row.expected, row.observed
        ));
    }
    out
}

/// A quote the API accepted.
#[derive(Debug, Clone)]
pub struct Accepted {
    pub quote_id: String,
    pub request: Request,
}

/// The summary a fold of the quote's stream in the event store gives.
pub async fn folded(store: &DynamoEventStore, quote_id: &str) -> Option<QuoteSummary> {
    let events = store
        .load(&format!("quote#{quote_id}"), LoadBound::Latest)
        .await
        .ok()?;
    let decoded: Vec<(u64, QuoteEvent)> = events
        .iter()
        .map(|e| {
            QuoteEvent::decode(&e.event_type, e.schema_version, &e.data).map(|d| (e.version, d))
        })
        .collect::<Result<_, _>>()
        .ok()?;
    let quote = Quote::fold(decoded.iter().map(|(v, e)| (*v, e))).ok()??;
    let last = events.last()?.recorded_at;
    Some(quote_read_model::projection::summarize(&quote, last))
}

/// One line per lease of a consumer application's lease table: shard, owner, counter,
/// checkpoint (its last 12 characters), parents: printed when the drain failed, to show which
/// application's shard is not moving.
pub async fn lease_lines(dynamo: &aws_sdk_dynamodb::Client, table: &str) -> Vec<String> {
    let text = |item: &HashMap<String, AttributeValue>, name: &str| {
        item.get(name)
            .and_then(|v| v.as_s().or_else(|_| v.as_n()).ok())
            .cloned()
            .unwrap_or_else(|| "-".to_owned())
    };
    let mut lines: Vec<String> = scan(dynamo, table)
        .await
        .iter()
        .map(|item| {
            let checkpoint = text(item, "checkpoint");
            let tail = checkpoint
                .char_indices()
                .rev()
                .nth(11)
                .map_or(checkpoint.as_str(), |(i, _)| &checkpoint[i..]);
            let parents = item
                .get("parentShardId")
                .and_then(|v| v.as_ss().ok())
                .map(|p| p.join(","))
                .unwrap_or_default();
            format!(
                "{} owner={} counter={} checkpoint=…{} parents=[{}]",
                text(item, "leaseKey"),
                text(item, "leaseOwner"),
                text(item, "leaseCounter"),
                tail,
                parents
            )
        })
        .collect();
    lines.sort();
    lines
}

/// Where the quotes that are not final stand in the store: per last event type, how many, and
/// how many of those have that last event still unpublished (in the outbox). Says which hop a
/// slow drain waits on.
pub async fn stalled_at(
    store: &DynamoEventStore,
    quotes: &[&Accepted],
) -> BTreeMap<String, (usize, usize)> {
    let mut at = BTreeMap::new();
    for quote in quotes {
        let stream = format!("quote#{}", quote.quote_id);
        let last = store
            .load(&stream, LoadBound::Latest)
            .await
            .ok()
            .and_then(|events| events.last().map(|e| (e.event_type.clone(), e.version)));
        let published = store
            .stream_head(&stream)
            .await
            .ok()
            .flatten()
            .map(|head| head.published_version);
        let (event_type, version) = last.unwrap_or_else(|| ("(no events)".to_owned(), 0));
        let entry: &mut (usize, usize) = at.entry(event_type).or_default();
        entry.0 += 1;
        if published.is_some_and(|p| p < version) {
            entry.1 += 1;
        }
    }
    at
}

/// Waits until every accepted quote is final in the read model, or `timeout`; returns the
/// final summaries, and the quotes in the order they were seen final (with when).
pub async fn wait_final(
    read_model: &DynamoReadModel,
    accepted: &[Accepted],
    timeout: Duration,
) -> (HashMap<String, QuoteSummary>, Vec<(String, OffsetDateTime)>) {
    let deadline = Instant::now() + timeout;
    let mut finals = HashMap::new();
    let mut order = Vec::new();
    loop {
        for quote in accepted {
            if finals.contains_key(&quote.quote_id) {
                continue;
            }
            if let Ok(Some(summary)) = read_model.get(&quote.quote_id).await {
                if FINAL.contains(&summary.status.as_str()) {
                    finals.insert(quote.quote_id.clone(), summary);
                    order.push((quote.quote_id.clone(), OffsetDateTime::now_utc()));
                }
            }
        }
        if finals.len() == accepted.len() || Instant::now() >= deadline {
            return (finals, order);
        }
        // Each pass reads every quote not yet final: with hundreds pending, passes every 250 ms
        // made the observer a large share of moto's load. The drain time is measured
        // to within this pause.
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// The quotes seen final last, each with its events' commit times and the time it was seen
/// final, in seconds relative to the last fault: says which hop a slow drain waited on (a late
/// commit: the consumer before it; a commit on time but a late final: the relay or the
/// projector).
pub async fn slowest(
    store: &DynamoEventStore,
    order: &[(String, OffsetDateTime)],
    last_fault: OffsetDateTime,
    count: usize,
) -> Vec<String> {
    let relative = |at: OffsetDateTime| (at - last_fault).as_seconds_f64();
    let mut lines = Vec::new();
    for (quote_id, seen) in order.iter().rev().take(count) {
        let events = store
            .load(&format!("quote#{quote_id}"), LoadBound::Latest)
            .await
            .unwrap_or_default();
        let committed: Vec<String> = events
            .iter()
            .map(|e| format!("{} {:+.1}s", e.event_type, relative(e.recorded_at)))
            .collect();
        lines.push(format!(
            "{quote_id}: committed {}; final in the read model by {:+.1}s",
            committed.join(", "),
            relative(*seen)
        ));
    }
    lines
}

/// Quotes whose read-model summary differs from the fold of their stream (after up to
/// `patience` for the projector to apply the last events).
pub async fn fold_mismatches(
    store: &DynamoEventStore,
    read_model: &DynamoReadModel,
    accepted: &[Accepted],
    patience: Duration,
) -> Vec<String> {
    let deadline = Instant::now() + patience;
    let mut pending: Vec<&Accepted> = accepted.iter().collect();
    loop {
        let mut still = Vec::new();
        for quote in pending {
            let expected = folded(store, &quote.quote_id).await;
            let actual = read_model.get(&quote.quote_id).await.ok().flatten();
            if expected.is_none() || actual != expected {
                still.push(quote);
            }
        }
        if still.is_empty() || Instant::now() >= deadline {
            return still.into_iter().map(|q| q.quote_id.clone()).collect();
        }
        pending = still;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// E-mails and SMS moto's SES and SNS have recorded, by recipient.
pub async fn sent_at_moto() -> (HashMap<String, usize>, HashMap<String, usize>) {
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
pub fn expected_notifications(request: &Request, summary: &QuoteSummary) -> (usize, usize) {
    let within_ceiling = summary.status != "quoted"
        || summary
            .annual_premium_cents
            .is_some_and(|cents| cents <= request.max_premium_dollars * 100);
    let email = usize::from(within_ceiling);
    let sms = usize::from(within_ceiling && request.sms && request.phone.is_some());
    (email, sms)
}

/// Every item of a table (a paginated scan).
pub async fn scan(
    dynamo: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Vec<HashMap<String, AttributeValue>> {
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let page = dynamo
            .scan()
            .table_name(table)
            .set_exclusive_start_key(start)
            .consistent_read(true)
            .send()
            .await
            .unwrap_or_else(|e| panic!("scan {table}: {e:?}"));
        items.extend(page.items.unwrap_or_default());
        start = page.last_evaluated_key;
        if start.is_none() {
            return items;
        }
    }
}

/// The notifier ledger's records, counted by (channel, status).
pub async fn ledger_counts(
    dynamo: &aws_sdk_dynamodb::Client,
    table: &str,
) -> BTreeMap<(String, String), usize> {
    let text = |item: &HashMap<String, AttributeValue>, name: &str| {
        item.get(name)
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_default()
    };
    let mut counts = BTreeMap::new();
    for item in scan(dynamo, table).await {
        *counts
            .entry((text(&item, "channel"), text(&item, "status")))
            .or_insert(0) += 1;
    }
    counts
}

/// The order of first copies on the stream, per quote: `(gaps, duplicate copies)`. A gap is a
/// version whose first copy came before a lower version of the same quote.
pub fn stream_order(envelopes: &[EventEnvelope]) -> (Vec<String>, usize) {
    let mut positions = StreamPositions::default();
    let mut gaps = Vec::new();
    let mut duplicates = 0;
    for envelope in envelopes {
        match positions.observe(&envelope.stream_id, envelope.version) {
            Observation::Next => positions.applied(&envelope.stream_id, envelope.version),
            Observation::Duplicate => duplicates += 1,
            Observation::Gap { from, to } => {
                gaps.push(format!(
                    "{} v{} before v{from}..={to}",
                    envelope.stream_id, envelope.version
                ));
                positions.applied(&envelope.stream_id, envelope.version);
            }
        }
    }
    (gaps, duplicates)
}
