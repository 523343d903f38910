//! The archiver on the in-memory adapters: every record archived exactly once and in order,
//! across segments closed by size and by age, a graceful stop, a worker killed mid-segment
//! (its task aborted: no shutdown, no release), a crash between storing a segment and
//! committing it, and a split shard.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use archiver::{Archiver, ArchiverConfig};
use kinesis_consumer::lease_table::InMemoryLeaseTable;
use kinesis_consumer::source::memory::InMemoryStream;
use kinesis_consumer::{CheckpointPolicy, LeaseTable, Record, Worker, WorkerConfig};
use quote_archive::reader::read_shard;
use quote_archive::segment::{segment_key, shard_prefix};
use quote_archive::{InMemoryManifest, InMemoryObjects, Manifest, ObjectStore};

mod common;

use common::Running;

const STREAM: &str = "quote-events";
const PREFIX: &str = "events/";

struct Setup {
    stream: InMemoryStream,
    table: Arc<InMemoryLeaseTable>,
    objects: Arc<InMemoryObjects>,
    manifest: Arc<InMemoryManifest>,
}

impl Setup {
    fn new(shards: u64) -> Self {
        Self {
            stream: InMemoryStream::new(shards),
            table: Arc::new(InMemoryLeaseTable::new()),
            objects: Arc::new(InMemoryObjects::new()),
            manifest: Arc::new(InMemoryManifest::new()),
        }
    }

    fn start(&self, worker: &str, segment_bytes: u64, segment_age: Duration) -> Running {
        let archiver = Archiver::new(
            self.objects.clone(),
            self.manifest.clone(),
            ArchiverConfig {
                stream: STREAM.to_owned(),
                prefix: PREFIX.to_owned(),
                segment_bytes,
                segment_age,
            },
        );
        let config = WorkerConfig {
            worker_id: worker.to_owned(),
            lease_duration: Duration::from_millis(1500),
            renew_interval: Duration::from_millis(300),
            scan_interval: Duration::from_millis(100),
            shard_sync_interval: Duration::from_millis(300),
            checkpoint: CheckpointPolicy::MANUAL,
            deliver_empty_batches: true,
            retry_base: Duration::from_millis(5),
            retry_cap: Duration::from_millis(50),
            ..WorkerConfig::new("archiver")
        };
        let worker = Worker::new(
            config,
            self.table.clone(),
            Arc::new(self.stream.clone()),
            archiver.factory(),
        );
        Running::spawn(worker)
    }

    fn put(&self, n: usize) {
        for i in 0..n {
            let key = format!("quote#{}", i % 17);
            self.stream
                .put(&key, format!(r#"{{"event_id":"{i}","stream_id":"{key}"}}"#));
        }
    }

    /// Every shard's records on the stream.
    async fn on_stream(&self) -> BTreeMap<String, Vec<Record>> {
        let shards = kinesis_consumer::source::RecordSource::list_shards(&self.stream)
            .await
            .expect("shards");
        shards
            .into_iter()
            .map(|s| (s.shard_id.clone(), self.stream.records(&s.shard_id)))
            .filter(|(_, records)| !records.is_empty())
            .collect()
    }

    /// Every shard's records in the archive (committed segments only).
    async fn archived(&self) -> BTreeMap<String, Vec<Record>> {
        let mut archived = BTreeMap::new();
        for head in self.manifest.shards(STREAM).await.expect("heads") {
            let records = read_shard(
                self.objects.as_ref(),
                self.manifest.as_ref(),
                STREAM,
                &head.shard_id,
            )
            .await
            .expect("read back");
            if !records.is_empty() {
                archived.insert(head.shard_id, records);
            }
        }
        archived
    }

    async fn archived_count(&self) -> u64 {
        self.manifest
            .shards(STREAM)
            .await
            .expect("heads")
            .iter()
            .map(|h| h.records)
            .sum()
    }

    async fn wait_archived(&self, total: u64) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let count = self.archived_count().await;
            if count >= total {
                assert_eq!(count, total, "more records archived than were written");
                return;
            }
            if tokio::time::Instant::now() >= deadline {
                let heads = self.manifest.shards(STREAM).await.expect("heads");
                let leases = self.table.list().await.expect("leases");
                let on_stream: Vec<(String, usize)> = self
                    .on_stream()
                    .await
                    .into_iter()
                    .map(|(shard, records)| (shard, records.len()))
                    .collect();
                panic!(
                    "only {count} of {total} records archived\nheads: {heads:#?}\nleases: {leases:#?}\non the stream: {on_stream:?}"
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The archive holds exactly the stream's records, in order, and no object outside the
    /// manifest.
    async fn assert_exactly_once(&self) {
        assert_eq!(self.archived().await, self.on_stream().await);
        let mut committed = Vec::new();
        for head in self.manifest.shards(STREAM).await.expect("heads") {
            for segment in self
                .manifest
                .segments(STREAM, &head.shard_id)
                .await
                .expect("segments")
            {
                committed.push(segment.key);
            }
        }
        committed.sort();
        let stored = self.objects.list(PREFIX, None).await.expect("list");
        assert_eq!(stored, committed, "objects outside the manifest");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_record_is_archived_once_in_order_across_size_and_age_closes() {
    let setup = Setup::new(2);
    let worker = setup.start("w1", 2_000, Duration::from_millis(300));
    setup.put(200);
    setup.wait_archived(200).await;
    setup.assert_exactly_once().await;
    let segments: u64 = setup
        .manifest
        .shards(STREAM)
        .await
        .expect("heads")
        .iter()
        .map(|h| h.segments)
        .sum();
    assert!(
        segments > 4,
        "2,000-byte segments: {segments} for 200 records"
    );

    // A few records and then silence: the segment closes by age alone.
    setup.put(3);
    setup.wait_archived(203).await;
    setup.assert_exactly_once().await;

    // Every archived record is checkpointed.
    for lease in setup.table.list().await.expect("leases") {
        let last = setup.stream.records(&lease.lease_key).last().cloned();
        if let Some(last) = last {
            assert_eq!(lease.checkpoint.to_string(), last.sequence_number);
        }
    }
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_stores_the_open_segment() {
    let setup = Setup::new(1);
    let worker = setup.start("w1", 1 << 30, Duration::from_secs(3600));
    setup.put(40);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        setup.archived_count().await,
        0,
        "nothing closes a segment yet"
    );
    worker.stop().await;
    assert_eq!(setup.archived_count().await, 40);
    setup.assert_exactly_once().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_segment_loses_and_duplicates_nothing() {
    let setup = Setup::new(2);
    // Small segments: some commit before the kill, one is open when it comes.
    let first = setup.start("w1", 1_500, Duration::from_secs(3600));
    setup.put(120);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while setup.archived_count().await == 0 {
        assert!(tokio::time::Instant::now() < deadline, "nothing archived");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.kill().await;
    assert!(
        setup.archived_count().await < 120,
        "the kill came too late to prove anything"
    );
    setup.put(30);
    let second = setup.start("w2", 1_500, Duration::from_millis(200));
    setup.wait_archived(150).await;
    setup.assert_exactly_once().await;
    second.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_segment_stored_but_never_committed_is_replaced() {
    let setup = Setup::new(1);
    setup.put(10);
    let shard = setup.on_stream().await.into_keys().next().expect("a shard");
    let records = setup.stream.records(&shard);
    // What a writer leaves when it dies between PutObject and the manifest commit.
    let orphan = segment_key(
        PREFIX,
        STREAM,
        &shard,
        &records[0].sequence_number,
        &records[6].sequence_number,
    );
    setup
        .objects
        .put(&orphan, b"partial".to_vec())
        .await
        .expect("put");
    let worker = setup.start("w1", 1 << 30, Duration::from_millis(200));
    setup.wait_archived(10).await;
    worker.stop().await;
    setup.assert_exactly_once().await;
    let listed = setup
        .objects
        .list(&shard_prefix(PREFIX, STREAM, &shard), None)
        .await
        .expect("list");
    assert!(!listed.contains(&orphan), "{listed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_shard_ends_in_the_manifest_and_its_children_name_it() {
    let setup = Setup::new(1);
    let worker = setup.start("w1", 1 << 30, Duration::from_millis(200));
    setup.put(20);
    setup.wait_archived(20).await;
    let parent = setup.on_stream().await.into_keys().next().expect("a shard");
    setup.stream.split(&parent).expect("split");
    setup.put(20);
    setup.wait_archived(40).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let heads = setup.manifest.shards(STREAM).await.expect("heads");
        let parent_ended = heads.iter().any(|h| h.shard_id == parent && h.ended);
        let children = heads
            .iter()
            .filter(|h| h.parents == vec![parent.clone()])
            .count();
        if parent_ended && children == 2 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "parent ended: {parent_ended}, children naming it: {children}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    setup.assert_exactly_once().await;
    worker.stop().await;
}
