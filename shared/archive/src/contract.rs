//! The contract every object store and every manifest adapter honours.

use std::sync::Arc;

use time::OffsetDateTime;

use crate::manifest::{Manifest, ManifestError, SegmentEntry};
use crate::objects::ObjectStore;

/// Generates one test per object-store contract case for the store built by `$make`.
#[macro_export]
macro_rules! object_store_contract {
    ($make:expr) => {
        $crate::object_store_contract!(@cases $make;
            objects_read_back_and_replace,
            listing_is_ordered_by_key_and_honours_start_after,
            deleting_is_idempotent,
        );
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let store: std::sync::Arc<dyn $crate::ObjectStore> = $make.await;
                $crate::contract::$case(store).await;
            }
        )*
    };
}

/// Generates one test per manifest contract case for the manifest built by `$make`.
#[macro_export]
macro_rules! manifest_contract {
    ($make:expr) => {
        $crate::manifest_contract!(@cases $make;
            commits_extend_the_head_in_order,
            a_commit_from_the_wrong_position_is_refused,
            a_newer_claim_fences_the_older_owner,
            an_older_claim_is_refused,
            ended_shards_take_no_more_segments,
            shards_are_listed_per_stream_with_their_lineage,
            concurrent_commits_from_one_position_have_one_winner,
        );
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let manifest: std::sync::Arc<dyn $crate::Manifest> = $make.await;
                $crate::contract::$case(manifest).await;
            }
        )*
    };
}

/// A unique stream name, so cases can share a table.
fn stream() -> String {
    format!("stream-{}", uuid::Uuid::new_v4().simple())
}

/// A segment entry from `first` to `last`.
pub fn entry(first: u64, last: u64) -> SegmentEntry {
    SegmentEntry {
        key: format!("events/{first}-{last}.jsonl.gz"),
        first_sequence: first.to_string(),
        last_sequence: last.to_string(),
        records: last - first + 1,
        bytes: 100,
        committed_at: OffsetDateTime::from_unix_timestamp(1_790_000_000)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH),
    }
}

/// Put, get, replace; a missing key is `None`.
pub async fn objects_read_back_and_replace(store: Arc<dyn ObjectStore>) {
    let key = format!("contract/{}/a.jsonl.gz", uuid::Uuid::new_v4().simple());
    assert_eq!(store.get(&key).await.expect("get"), None);
    store.put(&key, b"one".to_vec()).await.expect("put");
    assert_eq!(
        store.get(&key).await.expect("get").as_deref(),
        Some(&b"one"[..])
    );
    store.put(&key, b"two".to_vec()).await.expect("put");
    assert_eq!(
        store.get(&key).await.expect("get").as_deref(),
        Some(&b"two"[..])
    );
}

/// Keys list in order, only under the prefix, and after `start_after`.
pub async fn listing_is_ordered_by_key_and_honours_start_after(store: Arc<dyn ObjectStore>) {
    let prefix = format!("contract/{}/", uuid::Uuid::new_v4().simple());
    for name in ["c", "a", "b", "d"] {
        store
            .put(&format!("{prefix}{name}"), name.as_bytes().to_vec())
            .await
            .expect("put");
    }
    store
        .put(&format!("{prefix}-outside"), Vec::new())
        .await
        .expect("put");
    let all = store.list(&prefix, None).await.expect("list");
    let names: Vec<&str> = all.iter().map(|k| &k[prefix.len()..]).collect();
    assert_eq!(names, ["-outside", "a", "b", "c", "d"]);
    let after = store
        .list(&prefix, Some(&format!("{prefix}b")))
        .await
        .expect("list");
    let names: Vec<&str> = after.iter().map(|k| &k[prefix.len()..]).collect();
    assert_eq!(names, ["c", "d"]);
    assert!(store
        .list(&format!("{prefix}z"), None)
        .await
        .expect("list")
        .is_empty());
}

/// Deleting twice is fine.
pub async fn deleting_is_idempotent(store: Arc<dyn ObjectStore>) {
    let key = format!("contract/{}/x", uuid::Uuid::new_v4().simple());
    store.put(&key, vec![1]).await.expect("put");
    store.delete(&key).await.expect("delete");
    store.delete(&key).await.expect("delete again");
    assert_eq!(store.get(&key).await.expect("get"), None);
}

/// Segments append in order and the head follows.
pub async fn commits_extend_the_head_in_order(manifest: Arc<dyn Manifest>) {
    let stream = stream();
    let head = manifest
        .claim(&stream, "shard-0", 3, &[])
        .await
        .expect("claim");
    assert_eq!(head.last_sequence, None);
    assert_eq!((head.segments, head.records, head.fencing_token), (0, 0, 3));
    manifest
        .commit(&stream, "shard-0", &entry(1, 9), None, 3)
        .await
        .expect("first");
    manifest
        .commit(&stream, "shard-0", &entry(10, 12), Some("9"), 3)
        .await
        .expect("second");
    let segments = manifest
        .segments(&stream, "shard-0")
        .await
        .expect("segments");
    assert_eq!(segments, vec![entry(1, 9), entry(10, 12)]);
    let head = manifest
        .claim(&stream, "shard-0", 3, &[])
        .await
        .expect("reclaim");
    assert_eq!(head.last_sequence.as_deref(), Some("12"));
    assert_eq!((head.segments, head.records), (2, 12));
}

/// A commit that does not start where the head is (a gap or an overlap) is refused.
pub async fn a_commit_from_the_wrong_position_is_refused(manifest: Arc<dyn Manifest>) {
    let stream = stream();
    manifest.claim(&stream, "s", 1, &[]).await.expect("claim");
    manifest
        .commit(&stream, "s", &entry(1, 5), None, 1)
        .await
        .expect("first");
    for previous in [None, Some("4"), Some("7")] {
        let refused = manifest
            .commit(&stream, "s", &entry(6, 8), previous, 1)
            .await;
        assert!(
            matches!(refused, Err(ManifestError::Moved { ref actual, .. }) if actual.as_deref() == Some("5")),
            "{refused:?}"
        );
    }
    assert_eq!(
        manifest
            .segments(&stream, "s")
            .await
            .expect("segments")
            .len(),
        1
    );
}

/// Once a newer owner claimed the shard, the older one can neither commit nor end it.
pub async fn a_newer_claim_fences_the_older_owner(manifest: Arc<dyn Manifest>) {
    let stream = stream();
    manifest
        .claim(&stream, "s", 4, &[])
        .await
        .expect("old owner");
    manifest
        .claim(&stream, "s", 7, &[])
        .await
        .expect("new owner");
    let refused = manifest.commit(&stream, "s", &entry(1, 2), None, 4).await;
    assert!(
        matches!(
            refused,
            Err(ManifestError::Fenced {
                current: 7,
                ours: 4,
                ..
            })
        ),
        "{refused:?}"
    );
    assert!(matches!(
        manifest.end_shard(&stream, "s", 4).await,
        Err(ManifestError::Fenced { .. })
    ));
    manifest
        .commit(&stream, "s", &entry(1, 2), None, 7)
        .await
        .expect("the new owner commits");
}

/// A claim with an older token than the head's is refused and changes nothing.
pub async fn an_older_claim_is_refused(manifest: Arc<dyn Manifest>) {
    let stream = stream();
    manifest.claim(&stream, "s", 9, &[]).await.expect("claim");
    let refused = manifest.claim(&stream, "s", 8, &[]).await;
    assert!(
        matches!(
            refused,
            Err(ManifestError::Fenced {
                current: 9,
                ours: 8,
                ..
            })
        ),
        "{refused:?}"
    );
    let heads = manifest.shards(&stream).await.expect("shards");
    assert_eq!(heads[0].fencing_token, 9);
}

/// After `end_shard`, the shard takes no more segments.
pub async fn ended_shards_take_no_more_segments(manifest: Arc<dyn Manifest>) {
    let stream = stream();
    manifest.claim(&stream, "s", 1, &[]).await.expect("claim");
    manifest
        .commit(&stream, "s", &entry(1, 3), None, 1)
        .await
        .expect("commit");
    manifest.end_shard(&stream, "s", 1).await.expect("end");
    let refused = manifest
        .commit(&stream, "s", &entry(4, 5), Some("3"), 1)
        .await;
    assert!(
        matches!(refused, Err(ManifestError::Ended(_))),
        "{refused:?}"
    );
    let heads = manifest.shards(&stream).await.expect("shards");
    assert!(heads[0].ended);
    assert_eq!(heads[0].last_sequence.as_deref(), Some("3"));
}

/// `shards` lists the heads of one stream only, each with the parents given at its first
/// claim.
pub async fn shards_are_listed_per_stream_with_their_lineage(manifest: Arc<dyn Manifest>) {
    let (stream, other) = (stream(), stream());
    manifest
        .claim(&stream, "parent", 1, &[])
        .await
        .expect("claim");
    let parents = vec!["parent".to_owned()];
    manifest
        .claim(&stream, "child-a", 2, &parents)
        .await
        .expect("claim");
    manifest
        .claim(&stream, "child-a", 5, &[])
        .await
        .expect("a later claim keeps the lineage");
    manifest
        .claim(&other, "elsewhere", 1, &[])
        .await
        .expect("claim");
    let mut heads = manifest.shards(&stream).await.expect("shards");
    heads.sort_by(|a, b| a.shard_id.cmp(&b.shard_id));
    let summary: Vec<(&str, &[String])> = heads
        .iter()
        .map(|h| (h.shard_id.as_str(), h.parents.as_slice()))
        .collect();
    assert_eq!(
        summary,
        vec![("child-a", &parents[..]), ("parent", &[][..])]
    );
}

/// Many writers committing from the same position with the same token: exactly one wins (the
/// manifest is linearizable; an emulator that is not fails here).
pub async fn concurrent_commits_from_one_position_have_one_winner(manifest: Arc<dyn Manifest>) {
    let stream = stream();
    manifest.claim(&stream, "s", 1, &[]).await.expect("claim");
    let attempts = (0..16u64).map(|i| {
        let manifest = manifest.clone();
        let stream = stream.clone();
        tokio::spawn(async move {
            manifest
                .commit(&stream, "s", &entry(1, 10 + i), None, 1)
                .await
        })
    });
    let mut winners = 0;
    for attempt in attempts {
        if attempt.await.expect("task").is_ok() {
            winners += 1;
        }
    }
    assert_eq!(winners, 1);
    assert_eq!(
        manifest
            .segments(&stream, "s")
            .await
            .expect("segments")
            .len(),
        1
    );
}
