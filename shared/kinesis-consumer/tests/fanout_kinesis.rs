//! Enhanced fan-out (`source::fanout`) on kinesis-mock: subscription renewal without loss or
//! duplication, shard end after a split, idempotent consumer registration.
//!
//! Emulator notes (kinesis-mock 0.6 with the Rust SDK, as run by `scripts/emulators.sh`):
//! - The endpoint is plain `http://`. The SDK's default client speaks HTTP/1.1 there (HTTP/2 is
//!   negotiated only by ALPN over TLS, and the SDK does not force HTTP/2 for `SubscribeToShard`)
//!   and kinesis-mock answers with the event stream as a chunked HTTP/1.1 body, so no client
//!   setup is needed. Real Kinesis needs HTTP/2, which the same client gets over TLS.
//! - kinesis-mock builds an event every second (up to 10,000 records each) and sends the first
//!   one after a second, so `send()` (which waits for a possible initial-response message)
//!   takes about a second per subscription.
//! - It allows one subscription per consumer and shard and frees it only once it notices the
//!   previous connection closed, so a renewal often meets `ResourceInUseException` first: the
//!   reader backs off and retries, which these tests exercise.
//! - It never ends a closed shard's subscription (it always sends a continuation sequence number
//!   and no child shards), so the split test relies on the reader's closed-shard probe, set here
//!   to one second.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use kinesis_consumer::lease::compare_sequence_numbers;
use kinesis_consumer::source::fanout::{FanOutConfig, KinesisFanOut};
use kinesis_consumer::source::{RecordSource, ShardReader, SourceError, StartPosition};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Renewal every ~2 s, a quick closed-shard probe.
fn test_config() -> FanOutConfig {
    FanOutConfig {
        renew_after: Duration::from_secs(2),
        renew_jitter: Duration::from_millis(200),
        closed_shard_probe: Some(Duration::from_secs(1)),
        register_poll_interval: Duration::from_millis(100),
        register_timeout: Duration::from_secs(30),
        ..FanOutConfig::default()
    }
}

/// A record as produced: (shard, sequence number, partition key, payload).
type Produced = (String, String, String, String);

/// Puts records `from..to` with keys `key-{n}` and payloads `{n}`.
async fn put(client: &aws_sdk_kinesis::Client, stream: &str, from: u32, to: u32) -> Vec<Produced> {
    let entries: Vec<PutRecordsRequestEntry> = (from..to)
        .map(|n| {
            PutRecordsRequestEntry::builder()
                .partition_key(format!("key-{n}"))
                .data(Blob::new(n.to_string()))
                .build()
                .expect("entry")
        })
        .collect();
    let output = client
        .put_records()
        .stream_name(stream)
        .set_records(Some(entries))
        .send()
        .await
        .expect("put records");
    assert_eq!(output.failed_record_count(), Some(0), "no record may fail");
    output
        .records()
        .iter()
        .zip(from..to)
        .map(|(r, n)| {
            (
                r.shard_id().expect("shard id").to_owned(),
                r.sequence_number().expect("sequence number").to_owned(),
                format!("key-{n}"),
                n.to_string(),
            )
        })
        .collect()
}

fn sort_by_sequence(records: &mut [(String, String, String)]) {
    records.sort_by(|a, b| compare_sequence_numbers(&a.0, &b.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn renewals_deliver_every_record_once_and_in_order() {
    let config = testkit::aws_config().await;
    let client = aws_sdk_kinesis::Client::new(&config);
    let stream = testkit::unique_name("efo");
    testkit::create_stream(&client, &stream, 2).await;
    let mut produced = put(&client, &stream, 0, 150).await;

    let source = KinesisFanOut::new(
        client.clone(),
        &stream,
        testkit::unique_name("efo-consumer"),
        test_config(),
    );
    source.register().await.expect("register");
    let shards = source.list_shards().await.expect("list shards");
    assert_eq!(shards.len(), 2);

    // One reader per shard, forwarding what it reads. A reader stops once told to and once it
    // has read through at least `MIN_SUBSCRIPTIONS` live subscriptions (two renewals).
    const MIN_SUBSCRIPTIONS: u64 = 3;
    let stop = CancellationToken::new();
    let hard_deadline = Instant::now() + Duration::from_secs(90);
    let (tx, mut rx) = mpsc::unbounded_channel::<(String, String, String, String)>();
    let mut readers = Vec::new();
    for shard in &shards {
        let mut reader = source
            .open_reader(&shard.shard_id, StartPosition::TrimHorizon)
            .await
            .expect("open");
        let (stop, tx, shard_id) = (stop.clone(), tx.clone(), shard.shard_id.clone());
        readers.push(tokio::spawn(async move {
            let mut retried = 0u32;
            while !(stop.is_cancelled() && reader.subscriptions() >= MIN_SUBSCRIPTIONS)
                && Instant::now() < hard_deadline
            {
                // Returns within the idle timeout (1 s) when nothing arrives.
                match reader.next_batch().await {
                    Ok(batch) => {
                        assert!(batch.shard_end.is_none(), "{shard_id} is open");
                        for r in batch.records {
                            let data = String::from_utf8(r.data).expect("utf-8");
                            let _ = tx.send((
                                shard_id.clone(),
                                r.sequence_number,
                                r.partition_key,
                                data,
                            ));
                        }
                    }
                    Err(err @ SourceError::NotFound(_)) => panic!("{shard_id}: {err}"),
                    // Retried by the reader itself; reported for visibility.
                    Err(_) => retried += 1,
                }
            }
            (shard_id, reader.subscriptions(), retried)
        }));
    }
    drop(tx);

    // Produce more while the readers run, across renewals.
    for round in 0..5u32 {
        tokio::time::sleep(Duration::from_millis(1100)).await;
        produced.extend(put(&client, &stream, 150 + round * 30, 180 + round * 30).await);
    }
    let total = produced.len();
    assert_eq!(total, 300);

    // Collect until everything arrived; then let the readers run on (past at least one more
    // renewal) so that any duplicate would show, and take everything they sent.
    let mut received: Vec<(String, String, String, String)> = Vec::new();
    while received.len() < total && Instant::now() < hard_deadline {
        if let Ok(Some(record)) = tokio::time::timeout(Duration::from_millis(500), rx.recv()).await
        {
            received.push(record);
        }
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.cancel();
    let mut subscriptions = BTreeMap::new();
    for reader in readers {
        let (shard, count, retried) = reader.await.expect("reader task");
        eprintln!("{shard}: {count} subscriptions, {retried} retried errors reported");
        subscriptions.insert(shard, count);
    }
    while let Some(record) = rx.recv().await {
        received.push(record);
    }

    let mut expected: BTreeMap<String, Vec<(String, String, String)>> = BTreeMap::new();
    for (shard, sequence, key, data) in produced {
        expected
            .entry(shard)
            .or_default()
            .push((sequence, key, data));
    }
    for records in expected.values_mut() {
        sort_by_sequence(records);
    }
    let mut got: BTreeMap<String, Vec<(String, String, String)>> = BTreeMap::new();
    for (shard, sequence, key, data) in received {
        got.entry(shard).or_default().push((sequence, key, data));
    }
    assert_eq!(expected.len(), 2, "records went to both shards");
    for (shard, want) in &expected {
        let have = got.get(shard).cloned().unwrap_or_default();
        assert_eq!(have.len(), want.len(), "{shard}: every record exactly once");
        // Same order as the sequence numbers, no gaps, no repeats.
        assert_eq!(&have, want, "{shard}: in sequence order");
        // At least two renewals happened while reading.
        let count = subscriptions.get(shard).copied().unwrap_or_default();
        assert!(
            count >= MIN_SUBSCRIPTIONS,
            "{shard}: only {count} subscriptions"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_shard_ends_with_both_children() {
    let config = testkit::aws_config().await;
    let client = aws_sdk_kinesis::Client::new(&config);
    let stream = testkit::unique_name("efo-split");
    testkit::create_stream(&client, &stream, 1).await;
    let before = put(&client, &stream, 0, 20).await;
    let source = KinesisFanOut::new(
        client.clone(),
        &stream,
        testkit::unique_name("efo-consumer"),
        test_config(),
    );
    let parent = source.list_shards().await.expect("list shards")[0]
        .shard_id
        .clone();
    let mut reader = source
        .open(&parent, StartPosition::TrimHorizon)
        .await
        .expect("open");

    // Read what is there, then split the shard under the live subscription.
    let mut sequences = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while sequences.len() < before.len() {
        assert!(
            Instant::now() < deadline,
            "records before the split did not arrive"
        );
        let batch = reader.next_batch().await.expect("batch");
        assert!(batch.shard_end.is_none());
        sequences.extend(batch.records.into_iter().map(|r| r.sequence_number));
    }
    client
        .split_shard()
        .stream_name(&stream)
        .shard_to_split(&parent)
        .new_starting_hash_key((1u128 << 127).to_string())
        .send()
        .await
        .expect("split shard");
    testkit::wait_stream_active(&client, &stream).await;
    // These go to the children.
    let after = put(&client, &stream, 20, 30).await;
    assert!(after.iter().all(|(shard, ..)| *shard != parent));

    let deadline = Instant::now() + Duration::from_secs(60);
    let children = loop {
        assert!(
            Instant::now() < deadline,
            "the reader did not reach the shard end"
        );
        let batch = reader.next_batch().await.expect("batch");
        sequences.extend(batch.records.into_iter().map(|r| r.sequence_number));
        if let Some(children) = batch.shard_end {
            break children;
        }
    };
    let want: Vec<String> = before.iter().map(|(_, s, ..)| s.clone()).collect();
    assert_eq!(sequences, want, "the parent's records, once, in order");

    let mut listed: Vec<String> = source
        .list_shards()
        .await
        .expect("list shards")
        .into_iter()
        .filter(|s| s.parent_shard_ids.contains(&parent))
        .map(|s| s.shard_id)
        .collect();
    listed.sort();
    let mut children = children;
    children.sort();
    assert_eq!(listed.len(), 2, "a split has two children");
    assert_eq!(children, listed);
    // The end is sticky.
    let again = reader.next_batch().await.expect("batch after the end");
    assert_eq!(
        again.shard_end.map(|mut c| {
            c.sort();
            c
        }),
        Some(listed)
    );
}

#[tokio::test]
async fn register_is_idempotent() {
    let config = testkit::aws_config().await;
    let client = aws_sdk_kinesis::Client::new(&config);
    let stream = testkit::unique_name("efo-register");
    testkit::create_stream(&client, &stream, 1).await;
    let name = testkit::unique_name("efo-consumer");

    let source = KinesisFanOut::new(client.clone(), &stream, &name, test_config());
    assert_eq!(source.consumer_arn(), None);
    let first = source.register().await.expect("register");
    let second = source.register().await.expect("register again");
    assert_eq!(first, second);
    assert_eq!(source.consumer_arn(), Some(first.as_str()));

    // Another worker with the same consumer name finds the existing consumer.
    let other = KinesisFanOut::new(client.clone(), &stream, &name, test_config());
    assert_eq!(other.register().await.expect("register elsewhere"), first);

    let stream_arn = client
        .describe_stream_summary()
        .stream_name(&stream)
        .send()
        .await
        .expect("describe stream")
        .stream_description_summary
        .expect("summary")
        .stream_arn;
    let consumers = client
        .list_stream_consumers()
        .stream_arn(stream_arn)
        .send()
        .await
        .expect("list consumers");
    assert_eq!(consumers.consumers().len(), 1, "registered once");
    assert_eq!(consumers.consumers()[0].consumer_arn(), first);
}

#[tokio::test]
async fn a_reader_resumes_after_a_checkpoint() {
    let config = testkit::aws_config().await;
    let client = aws_sdk_kinesis::Client::new(&config);
    let stream = testkit::unique_name("efo-resume");
    testkit::create_stream(&client, &stream, 1).await;
    let produced = put(&client, &stream, 0, 20).await;
    let source = KinesisFanOut::new(
        client.clone(),
        &stream,
        testkit::unique_name("efo-consumer"),
        test_config(),
    );
    let (shard, checkpoint) = (produced[9].0.clone(), produced[9].1.clone());
    let mut reader = source
        .open(&shard, StartPosition::AfterSequence(checkpoint))
        .await
        .expect("open");
    let want: Vec<String> = produced[10..].iter().map(|(_, s, ..)| s.clone()).collect();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.len() < want.len() && Instant::now() < deadline {
        let batch = reader.next_batch().await.expect("batch");
        got.extend(batch.records.into_iter().map(|r| r.sequence_number));
    }
    assert_eq!(got, want, "only the records after the checkpoint");
}
