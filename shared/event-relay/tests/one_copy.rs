//! One copy per event: two processes appending to one stream at nearly the same time each
//! publish only their own events, the later one waiting for the earlier one's relay; when that
//! relay never comes (its process died after the commit), the later one publishes the earlier
//! events itself, in order, after `handoff_wait`. Each scenario runs on the in-memory adapters
//! and on moto (DynamoDB) + kinesis-mock.

mod common;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use common::{
    assert_complete_and_ordered, aws_setup, commit_interleaved, fast_config, memory_setup, streams,
    wait_published, Target,
};
use event_relay::{EventSink, Relay, RelayConfig, RelayStats, SinkError};
use event_store::contract::event;
use event_store::{AppendRequest, EventEnvelope, EventStore};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// A sink whose calls wait until the test opens its gate: a relay slower than the other
/// process's, for as long as the test needs.
#[derive(Debug)]
struct GatedSink {
    inner: Arc<dyn EventSink>,
    gate: Semaphore,
}

#[async_trait]
impl EventSink for GatedSink {
    async fn publish(&self, records: &[EventEnvelope]) -> Result<Vec<bool>, SinkError> {
        let _open = self.gate.acquire().await;
        self.inner.publish(records).await
    }

    async fn ping(&self) -> Result<(), SinkError> {
        self.inner.ping().await
    }
}

async fn append_one(store: &dyn EventStore, stream_id: &str, version: u64) -> Vec<EventEnvelope> {
    store
        .append(AppendRequest {
            stream_id: stream_id.to_owned(),
            expected_version: version - 1,
            events: vec![event(version as usize)],
            idempotency: None,
            customer_id: None,
        })
        .await
        .expect("append")
        .events
}

/// Process A commits v2 and its relay publishes it, slowly (its target holds every call until
/// B has parked); process B commits v3 right after and hints its relay while v2 is still on its
/// way. B waits for A's relay: every version reaches the stream once, in order.
async fn concurrent_committers_publish_each_event_once(
    setup: (Arc<dyn EventStore>, Arc<dyn EventSink>, Target),
) {
    let (store, sink, target) = setup;
    let shutdown = CancellationToken::new();
    let gated = Arc::new(GatedSink {
        inner: sink.clone(),
        gate: Semaphore::new(0),
    });
    let (a, task_a) =
        Relay::new(store.clone(), gated.clone(), fast_config()).spawn(shutdown.clone());
    let (b, task_b) = Relay::new(store.clone(), sink, fast_config()).spawn(shutdown.clone());
    let ids = streams(6);
    commit_interleaved(store.as_ref(), &ids, 1, |events| {
        b.notify(events);
    })
    .await;
    wait_published(store.as_ref(), &ids, 1).await;
    for id in &ids {
        a.notify(append_one(store.as_ref(), id, 2).await);
        b.notify(append_one(store.as_ref(), id, 3).await);
    }
    // B parks behind A's v2 (well within its 2 s handoff wait); then A's target answers.
    for _ in 0..200 {
        if RelayStats::get(&b.stats().handoffs_waited) >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    gated.gate.add_permits(1);
    wait_published(store.as_ref(), &ids, 3).await;
    let waited = RelayStats::get(&b.stats().handoffs_waited);
    let taken_over = RelayStats::get(&b.stats().handoffs_taken_over);
    shutdown.cancel();
    task_a.await.expect("relay a");
    task_b.await.expect("relay b");
    let published = target.published().await;
    let duplicates = assert_complete_and_ordered(&published, &ids, 3);
    assert_eq!(
        (duplicates, published.len()),
        (0, 18),
        "one copy per event (B waited {waited} times, took over {taken_over})"
    );
    assert!(waited >= 1, "B's relay waited for A's");
    assert_eq!(taken_over, 0, "A's relay was slow, not gone");
}

/// Process A commits v2 and dies before publishing; B commits v3. B waits `handoff_wait`, then
/// publishes v2 and v3 itself, in order (long before the sweep would).
async fn a_stranded_predecessor_is_published_by_the_next_committer(
    setup: (Arc<dyn EventStore>, Arc<dyn EventSink>, Target),
) {
    let (store, sink, target) = setup;
    let shutdown = CancellationToken::new();
    let config = RelayConfig {
        handoff_wait: Duration::from_millis(300),
        sweep_grace: Duration::from_secs(600),
        ..fast_config()
    };
    let (b, task_b) = Relay::new(store.clone(), sink, config).spawn(shutdown.clone());
    let ids = streams(4);
    commit_interleaved(store.as_ref(), &ids, 1, |events| {
        b.notify(events);
    })
    .await;
    wait_published(store.as_ref(), &ids, 1).await;
    for id in &ids {
        let _lost_with_process_a = append_one(store.as_ref(), id, 2).await;
        b.notify(append_one(store.as_ref(), id, 3).await);
    }
    wait_published(store.as_ref(), &ids, 3).await;
    let taken_over = RelayStats::get(&b.stats().handoffs_taken_over);
    shutdown.cancel();
    task_b.await.expect("relay b");
    let published = target.published().await;
    let duplicates = assert_complete_and_ordered(&published, &ids, 3);
    assert_eq!((duplicates, published.len()), (0, 12));
    assert_eq!(taken_over, 4, "each stream's v2 was published by B's relay");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_concurrent_committers_publish_each_event_once() {
    concurrent_committers_publish_each_event_once(memory_setup().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_concurrent_committers_publish_each_event_once() {
    concurrent_committers_publish_each_event_once(aws_setup().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_a_stranded_predecessor_is_published_by_the_next_committer() {
    a_stranded_predecessor_is_published_by_the_next_committer(memory_setup().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_a_stranded_predecessor_is_published_by_the_next_committer() {
    a_stranded_predecessor_is_published_by_the_next_committer(aws_setup().await).await;
}
