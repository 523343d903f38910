//! The outbox's backlog (`event_relay::outbox`, `quotes outbox status`, the relay's
//! `event_relay.outbox_*` gauges): streams and events not yet published, the oldest commit read
//! from the event itself (a sweep's claim or back-off moves `pending_since`, not the age), on
//! the in-memory store and on DynamoDB.

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use event_relay::outbox::outbox_status;
use event_relay::{InMemorySink, Relay, RelayConfig};
use event_store::contract::event;
use event_store::{AppendRequest, EventStore, InMemoryEventStore};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

async fn commit(store: &dyn EventStore, stream_id: &str, expected: u64, count: usize) {
    store
        .append(AppendRequest {
            stream_id: stream_id.to_owned(),
            expected_version: expected,
            events: (0..count).map(event).collect(),
            idempotency: None,
            customer_id: None,
        })
        .await
        .expect("append");
}

async fn backlog_is_counted_and_aged_from_the_events(store: Arc<dyn EventStore>) {
    let now = || OffsetDateTime::now_utc();
    let empty = outbox_status(store.as_ref(), 100, now())
        .await
        .expect("status");
    assert_eq!(
        (empty.streams, empty.events, empty.oldest_age_secs()),
        (0, 0, 0)
    );
    assert!(empty.oldest.is_none());

    let oldest = format!("quote#{}", uuid::Uuid::new_v4());
    let newer = format!("quote#{}", uuid::Uuid::new_v4());
    commit(store.as_ref(), &oldest, 0, 3).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    commit(store.as_ref(), &newer, 0, 2).await;

    let status = outbox_status(store.as_ref(), 100, now())
        .await
        .expect("status");
    assert_eq!((status.streams, status.events), (2, 5), "{status:?}");
    let first = status.oldest.clone().expect("oldest");
    assert_eq!(
        (first.stream_id.as_str(), first.version),
        (oldest.as_str(), 1)
    );

    // Published up to version 2: the oldest commit is now its version 3.
    store.mark_published(&oldest, 2).await.expect("mark");
    let status = outbox_status(store.as_ref(), 100, now())
        .await
        .expect("status");
    assert_eq!((status.streams, status.events), (2, 3));
    assert_eq!(status.oldest.as_ref().map(|o| o.version), Some(3));

    // A failing stream backed off: its mark moves into the future, its age does not change.
    let later = now() + time::Duration::minutes(5);
    store
        .defer_publication(&oldest, later)
        .await
        .expect("defer");
    let status = outbox_status(store.as_ref(), 100, now())
        .await
        .expect("status");
    assert_eq!(
        (
            status.streams,
            status.backed_off,
            status.max_publish_failures
        ),
        (2, 1, 1)
    );
    assert_eq!(status.oldest.map(|o| o.stream_id), Some(oldest.clone()));

    // Measured an hour later: the age is the commit's.
    let status = outbox_status(store.as_ref(), 100, now() + time::Duration::hours(1))
        .await
        .expect("status");
    assert!(
        (3600..3610).contains(&status.oldest_age_secs()),
        "{status:?}"
    );

    // Looking at one stream only: the counts are lower bounds, and say so.
    let one = outbox_status(store.as_ref(), 1, now())
        .await
        .expect("status");
    assert!(one.truncated && one.streams == 1, "{one:?}");

    store.mark_published(&oldest, 3).await.expect("mark");
    store.mark_published(&newer, 2).await.expect("mark");
    let done = outbox_status(store.as_ref(), 100, now())
        .await
        .expect("status");
    assert_eq!(
        (done.streams, done.events, done.oldest_age_secs()),
        (0, 0, 0)
    );
}

#[tokio::test]
async fn memory_backlog_is_counted_and_aged_from_the_events() {
    backlog_is_counted_and_aged_from_the_events(Arc::new(InMemoryEventStore::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_backlog_is_counted_and_aged_from_the_events() {
    let (store, _, _) = common::aws_setup().await;
    backlog_is_counted_and_aged_from_the_events(store).await;
}

/// The relay measures the backlog for its gauges while the target is down, and sees it drain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_gauges_the_backlog() {
    let store: Arc<dyn EventStore> = Arc::new(InMemoryEventStore::new());
    let sink = Arc::new(InMemorySink::new());
    sink.set_available(false);
    let relay = Relay::new(
        store.clone(),
        sink.clone(),
        RelayConfig {
            outbox_probe_interval: Duration::from_millis(50),
            ..common::fast_config()
        },
    );
    let stats = relay.stats();
    let shutdown = CancellationToken::new();
    let (_handle, task) = relay.spawn(shutdown.clone());
    commit(store.as_ref(), "quote#stranded-1", 0, 2).await;
    commit(store.as_ref(), "quote#stranded-2", 0, 1).await;
    let mut seen = 0;
    for _ in 0..200 {
        seen = stats.outbox_streams.load(Ordering::Relaxed);
        if seen == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(seen, 2, "the probe counts the stranded streams");
    sink.set_available(true);
    for _ in 0..400 {
        seen = stats.outbox_streams.load(Ordering::Relaxed);
        if seen == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(seen, 0, "the gauge returns to 0 once published");
    assert_eq!(stats.outbox_oldest_age_secs.load(Ordering::Relaxed), 0);
    shutdown.cancel();
    task.await.expect("relay");
}
