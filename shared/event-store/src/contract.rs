//! The contract every event store adapter must honour, as reusable async test cases.
//!
//! Adapters run the whole suite with [`event_store_contract!`](crate::event_store_contract),
//! passing an expression that builds a fresh, empty store.

use std::sync::Arc;

use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::{
    AppendRequest, EventStore, IdempotencyRecord, LoadBound, NewEvent, ScanCursor, ScanPart,
    StoreError, MAX_EVENTS_PER_APPEND,
};

/// Generates one `#[tokio::test]` per contract case for the store built by `$make` (an async
/// expression returning `Arc<dyn EventStore>`).
#[macro_export]
macro_rules! event_store_contract {
    ($make:expr) => {
        $crate::event_store_contract!(@cases $make;
            append_then_load_round_trips,
            wrong_expected_version_is_a_typed_conflict,
            appends_are_atomic_up_to_the_action_limit,
            concurrent_appends_exactly_one_wins,
            loads_are_paginated,
            loads_up_to_a_version_or_an_instant,
            idempotency_key_replays_and_writes_nothing,
            concurrent_appends_with_one_idempotency_key_commit_once,
            outbox_tracks_publication,
            rejects_empty_and_oversized_appends,
            refuses_events_too_large_by_their_metadata,
            accepts_events_just_under_the_limits,
            refuses_appends_over_the_transaction_limit,
            deferred_streams_leave_the_sweep_until_due,
            concurrent_sweep_claims_exactly_one_wins,
            scans_visit_every_event_once_in_stream_order,
        );
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let store: std::sync::Arc<dyn $crate::EventStore> = $make.await;
                $crate::contract::$case(store).await;
            }
        )*
    };
}

/// Generates one `#[tokio::test]` per snapshot contract case for the store built by `$make`
/// (an async expression returning an `Arc` of a type that is both an event store and a
/// snapshot store).
#[macro_export]
macro_rules! snapshot_store_contract {
    ($make:expr) => {
        $crate::snapshot_store_contract!(@cases $make;
            snapshots_keep_the_latest_at_or_below_apart_from_the_events,
            aggregates_load_from_the_latest_readable_snapshot,
        );
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let store = $make.await;
                $crate::contract::$case(store.clone(), store).await;
            }
        )*
    };
}

fn stream() -> String {
    format!("test#{}", Uuid::new_v4())
}

/// A new event with a numbered payload.
pub fn event(n: usize) -> NewEvent {
    NewEvent {
        event_id: Uuid::new_v4(),
        event_type: "Numbered".to_owned(),
        schema_version: 1,
        occurred_at: OffsetDateTime::now_utc(),
        correlation_id: "corr-1".to_owned(),
        causation_id: Some("cause-1".to_owned()),
        traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned()),
        tracestate: None,
        actor: "contract".to_owned(),
        data: serde_json::json!({ "n": n, "text": "payload" }),
    }
}

fn request(stream_id: &str, expected: u64, events: Vec<NewEvent>) -> AppendRequest {
    AppendRequest {
        stream_id: stream_id.to_owned(),
        expected_version: expected,
        events,
        idempotency: None,
        customer_id: Some("cust-contract".to_owned()),
    }
}

async fn append_n(store: &dyn EventStore, stream_id: &str, expected: u64, count: usize) {
    let events = (0..count)
        .map(|i| event(expected as usize + i + 1))
        .collect();
    store
        .append(request(stream_id, expected, events))
        .await
        .expect("append");
}

/// Appended events load back exactly, with contiguous versions.
pub async fn append_then_load_round_trips(store: Arc<dyn EventStore>) {
    let id = stream();
    let first = vec![event(1), event(2)];
    let sent = first.clone();
    let outcome = store.append(request(&id, 0, first)).await.expect("append");
    assert_eq!(outcome.last_version(), 2);
    append_n(store.as_ref(), &id, 2, 1).await;

    let loaded = store.load(&id, LoadBound::Latest).await.expect("load");
    assert_eq!(
        loaded.iter().map(|e| e.version).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(&loaded[..2], &outcome.events[..]);
    for (stored, new) in loaded.iter().zip(&sent) {
        assert_eq!(stored.event_id, new.event_id);
        assert_eq!(stored.stream_id, id);
        assert_eq!(stored.event_type, new.event_type);
        assert_eq!(stored.data, new.data);
        assert_eq!(stored.traceparent, new.traceparent);
        assert_eq!(stored.causation_id, new.causation_id);
    }
    let head = store.stream_head(&id).await.expect("head").expect("exists");
    assert_eq!(head.version, 3);
    assert!(store
        .stream_head("test#absent")
        .await
        .expect("head")
        .is_none());
    assert!(store
        .load("test#absent", LoadBound::Latest)
        .await
        .expect("load")
        .is_empty());
}

/// A wrong expected version fails with the stream's actual version and writes nothing.
pub async fn wrong_expected_version_is_a_typed_conflict(store: Arc<dyn EventStore>) {
    let id = stream();
    append_n(store.as_ref(), &id, 0, 2).await;
    for expected in [0, 1, 5] {
        match store.append(request(&id, expected, vec![event(9)])).await {
            Err(StoreError::WrongExpectedVersion {
                expected: e,
                actual,
                ..
            }) => {
                assert_eq!((e, actual), (expected, 2));
            }
            other => panic!("expected a conflict for expected={expected}, got {other:?}"),
        }
    }
    assert_eq!(
        store
            .load(&id, LoadBound::Latest)
            .await
            .expect("load")
            .len(),
        2
    );
}

/// The largest allowed append commits whole; one more event is refused before writing.
pub async fn appends_are_atomic_up_to_the_action_limit(store: Arc<dyn EventStore>) {
    let id = stream();
    append_n(store.as_ref(), &id, 0, MAX_EVENTS_PER_APPEND).await;
    let loaded = store.load(&id, LoadBound::Latest).await.expect("load");
    assert_eq!(loaded.len(), MAX_EVENTS_PER_APPEND);

    let too_many = (0..=MAX_EVENTS_PER_APPEND).map(event).collect();
    let err = store
        .append(request(&stream(), 0, too_many))
        .await
        .expect_err("over the limit");
    assert!(matches!(err, StoreError::TooManyEvents { .. }), "{err:?}");

    // A conflict anywhere in the batch writes none of it.
    let conflicting = (0..10).map(event).collect();
    assert!(store.append(request(&id, 3, conflicting)).await.is_err());
    assert_eq!(
        store
            .load(&id, LoadBound::Latest)
            .await
            .expect("load")
            .len(),
        MAX_EVENTS_PER_APPEND
    );
}

/// Concurrent appends at the same expected version: exactly one wins, none is lost or doubled.
pub async fn concurrent_appends_exactly_one_wins(store: Arc<dyn EventStore>) {
    let id = stream();
    let writers = 8;
    let rounds = 5;
    let mut winners = Vec::new();
    for round in 0..rounds {
        let expected = round as u64 * 2;
        let mut tasks = Vec::new();
        for writer in 0..writers {
            let store = store.clone();
            let id = id.clone();
            tasks.push(tokio::spawn(async move {
                let events = vec![event(writer), event(writer)];
                let ids: Vec<Uuid> = events.iter().map(|e| e.event_id).collect();
                (store.append(request(&id, expected, events)).await, ids)
            }));
        }
        let mut won = 0;
        for task in futures::future::join_all(tasks).await {
            let (result, ids) = task.expect("task");
            match result {
                Ok(_) => {
                    won += 1;
                    winners.extend(ids);
                }
                Err(StoreError::WrongExpectedVersion { .. }) => {}
                Err(other) => panic!("unexpected error {other:?}"),
            }
        }
        assert_eq!(won, 1, "round {round}: exactly one writer must win");
    }
    let loaded = store.load(&id, LoadBound::Latest).await.expect("load");
    assert_eq!(
        loaded.iter().map(|e| e.version).collect::<Vec<_>>(),
        (1..=(rounds as u64 * 2)).collect::<Vec<_>>()
    );
    assert_eq!(
        loaded.iter().map(|e| e.event_id).collect::<Vec<_>>(),
        winners
    );
}

/// Pages are bounded and continue where they stopped; `load` reads every page.
pub async fn loads_are_paginated(store: Arc<dyn EventStore>) {
    let id = stream();
    append_n(store.as_ref(), &id, 0, 90).await;
    append_n(store.as_ref(), &id, 90, 90).await;
    append_n(store.as_ref(), &id, 180, 70).await;

    let mut after = 0;
    let mut pages = 0;
    let mut seen = Vec::new();
    loop {
        let page = store.read_page(&id, after, None, 100).await.expect("page");
        assert!(page.events.len() <= 100);
        pages += 1;
        seen.extend(page.events.iter().map(|e| e.version));
        if let Some(last) = page.events.last() {
            after = last.version;
        }
        if page.next_after.is_none() {
            break;
        }
        assert!(pages < 10, "pagination does not terminate");
    }
    assert!(pages >= 3);
    assert_eq!(seen, (1..=250).collect::<Vec<_>>());
    let all = store.load(&id, LoadBound::Latest).await.expect("load");
    assert_eq!(all.len(), 250);
    let tail = store
        .load_after(&id, 245, LoadBound::Latest)
        .await
        .expect("load");
    assert_eq!(
        tail.iter().map(|e| e.version).collect::<Vec<_>>(),
        vec![246, 247, 248, 249, 250]
    );
}

/// Time travel: a stream read up to a version, or as of an instant.
pub async fn loads_up_to_a_version_or_an_instant(store: Arc<dyn EventStore>) {
    let id = stream();
    append_n(store.as_ref(), &id, 0, 3).await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let between = OffsetDateTime::now_utc();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    append_n(store.as_ref(), &id, 3, 2).await;

    let upto = store
        .load(&id, LoadBound::UpToVersion(2))
        .await
        .expect("load");
    assert_eq!(
        upto.iter().map(|e| e.version).collect::<Vec<_>>(),
        vec![1, 2]
    );
    let as_of = store
        .load(&id, LoadBound::AsOf(between))
        .await
        .expect("load");
    assert_eq!(
        as_of.iter().map(|e| e.version).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    let before_all = store
        .load(&id, LoadBound::AsOf(between - Duration::hours(1)))
        .await
        .expect("load");
    assert!(before_all.is_empty());
    let beyond = store
        .load(&id, LoadBound::UpToVersion(99))
        .await
        .expect("load");
    assert_eq!(beyond.len(), 5);
}

/// An idempotency key is stored with the append; reusing it fails with the stored record and
/// writes nothing.
pub async fn idempotency_key_replays_and_writes_nothing(store: Arc<dyn EventStore>) {
    let now = OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or(OffsetDateTime::now_utc());
    let key = format!("cust-1#{}", Uuid::new_v4());
    let first_stream = stream();
    let record = IdempotencyRecord {
        key: key.clone(),
        request_hash: "hash-a".to_owned(),
        stream_id: first_stream.clone(),
        response: serde_json::json!({ "status": 202, "body": { "quote_id": "q1" } }),
        created_at: now,
        expires_at: now + Duration::hours(24),
    };
    let mut first = request(&first_stream, 0, vec![event(1)]);
    first.idempotency = Some(record.clone());
    store.append(first).await.expect("first append");
    assert_eq!(
        store.idempotency_record(&key).await.expect("read"),
        Some(record.clone())
    );

    let retry_stream = stream();
    let mut retry = request(&retry_stream, 0, vec![event(1)]);
    retry.idempotency = Some(IdempotencyRecord {
        stream_id: retry_stream.clone(),
        request_hash: "hash-b".to_owned(),
        ..record.clone()
    });
    match store.append(retry).await {
        Err(StoreError::IdempotencyKeyUsed(existing)) => assert_eq!(*existing, record),
        other => panic!("expected the stored record, got {other:?}"),
    }
    assert!(store
        .stream_head(&retry_stream)
        .await
        .expect("head")
        .is_none());

    // An expired key may be used again.
    let expired_key = format!("cust-1#{}", Uuid::new_v4());
    let expired = IdempotencyRecord {
        key: expired_key.clone(),
        expires_at: now - Duration::seconds(1),
        ..record.clone()
    };
    let mut old = request(&stream(), 0, vec![event(1)]);
    old.idempotency = Some(expired.clone());
    store.append(old).await.expect("append with expired record");
    assert!(store
        .idempotency_record(&expired_key)
        .await
        .expect("read")
        .is_none());
    let mut again = request(&stream(), 0, vec![event(1)]);
    again.idempotency = Some(expired);
    store
        .append(again)
        .await
        .expect("expired key is free again");
    assert!(store
        .idempotency_record("cust-1#absent")
        .await
        .expect("read")
        .is_none());
}

/// Concurrent appends carrying one idempotency key (a client retrying while the first attempt is
/// in flight): exactly one commits, every other one gets the winner's record.
pub async fn concurrent_appends_with_one_idempotency_key_commit_once(store: Arc<dyn EventStore>) {
    let now = OffsetDateTime::now_utc();
    let key = format!("cust-1#{}", Uuid::new_v4());
    let mut tasks = Vec::new();
    for attempt in 0..6 {
        let store = store.clone();
        let key = key.clone();
        tasks.push(tokio::spawn(async move {
            let stream_id = stream();
            let mut append = request(&stream_id, 0, vec![event(attempt)]);
            append.idempotency = Some(IdempotencyRecord {
                key,
                request_hash: "same".to_owned(),
                stream_id: stream_id.clone(),
                response: serde_json::json!({ "attempt": attempt }),
                created_at: now,
                expires_at: now + Duration::hours(1),
            });
            (stream_id, store.append(append).await)
        }));
    }
    let mut committed = Vec::new();
    let mut replayed = Vec::new();
    for task in futures::future::join_all(tasks).await {
        match task.expect("task") {
            (stream_id, Ok(_)) => committed.push(stream_id),
            (_, Err(StoreError::IdempotencyKeyUsed(record))) => replayed.push(record.stream_id),
            (_, Err(other)) => panic!("unexpected error {other:?}"),
        }
    }
    assert_eq!(committed.len(), 1, "exactly one attempt commits");
    assert!(
        replayed.iter().all(|s| s == &committed[0]),
        "the others see the winner"
    );
    let record = store
        .idempotency_record(&key)
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(record.stream_id, committed[0]);
}

/// Committed events are pending publication until marked published; marks never move back.
pub async fn outbox_tracks_publication(store: Arc<dyn EventStore>) {
    let id = stream();
    append_n(store.as_ref(), &id, 0, 3).await;
    let head = store.stream_head(&id).await.expect("head").expect("exists");
    assert_eq!((head.version, head.published_version), (3, 0));
    assert!(head.has_unpublished() && head.pending_since.is_some());

    let later = OffsetDateTime::now_utc() + Duration::seconds(5);
    let pending = eventually_pending(store.as_ref(), &id, later, true).await;
    assert_eq!(pending.map(|h| h.version), Some(3));
    let earlier = OffsetDateTime::now_utc() - Duration::hours(1);
    let none = store
        .unpublished_streams(earlier, 1000)
        .await
        .expect("sweep");
    assert!(none.iter().all(|h| h.stream_id != id));

    store.mark_published(&id, 2).await.expect("mark");
    let head = store.stream_head(&id).await.expect("head").expect("exists");
    assert_eq!(head.published_version, 2);
    assert!(head.pending_since.is_some());

    store.mark_published(&id, 3).await.expect("mark");
    store
        .mark_published(&id, 1)
        .await
        .expect("mark backwards is a no-op");
    let head = store.stream_head(&id).await.expect("head").expect("exists");
    assert_eq!((head.published_version, head.pending_since), (3, None));
    assert!(eventually_pending(store.as_ref(), &id, later, false)
        .await
        .is_none());

    // A new commit makes the stream pending again.
    append_n(store.as_ref(), &id, 3, 1).await;
    let head = store.stream_head(&id).await.expect("head").expect("exists");
    assert_eq!((head.version, head.published_version), (4, 3));
    assert!(head.pending_since.is_some());
}

/// Polls the (possibly eventually consistent) sweep query until the stream's presence matches.
async fn eventually_pending(
    store: &dyn EventStore,
    id: &str,
    before: OffsetDateTime,
    present: bool,
) -> Option<crate::StreamHead> {
    for _ in 0..50 {
        let heads = store
            .unpublished_streams(before, 1000)
            .await
            .expect("sweep");
        let found = heads.into_iter().find(|h| h.stream_id == id);
        if found.is_some() == present {
            return found;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!(
        "stream {id} never became {}pending",
        if present { "" } else { "not " }
    );
}

/// Empty appends and events too large for one item are refused before any write.
pub async fn rejects_empty_and_oversized_appends(store: Arc<dyn EventStore>) {
    let id = stream();
    let err = store
        .append(request(&id, 0, Vec::new()))
        .await
        .expect_err("empty");
    assert!(matches!(err, StoreError::EmptyAppend), "{err:?}");
    let mut big = event(1);
    big.data = serde_json::json!({ "blob": "x".repeat(500 * 1024) });
    let err = store
        .append(request(&id, 0, vec![big]))
        .await
        .expect_err("too large");
    assert!(matches!(err, StoreError::EventTooLarge { .. }), "{err:?}");
    assert!(store.stream_head(&id).await.expect("head").is_none());
}

/// An event whose data is small but whose metadata (a correlation id, a causation id, a trace
/// state: values that come from the client's request) make it larger than a DynamoDB item or a
/// Kinesis record is refused before anything is written.
pub async fn refuses_events_too_large_by_their_metadata(store: Arc<dyn EventStore>) {
    let request_id = "r".repeat(210 * 1024);
    let mut as_item = event(1);
    as_item.correlation_id = request_id.clone();
    as_item.causation_id = Some(request_id);
    let mut as_tracestate = event(1);
    as_tracestate.tracestate = Some(format!("vendor={}", "t".repeat(420 * 1024)));
    // Fits an item (180 KB) but not a record: each control character is 6 bytes of JSON.
    let mut as_record = event(1);
    as_record.correlation_id = "\u{1}".repeat(180 * 1024);
    for (case, big, limit) in [
        ("correlation and causation ids", as_item, "DynamoDB item"),
        ("tracestate", as_tracestate, "DynamoDB item"),
        ("escaped correlation id", as_record, "Kinesis record"),
    ] {
        assert!(
            serde_json::to_vec(&big.data).expect("json").len() < 100,
            "{case}"
        );
        let id = stream();
        let err = store
            .append(request(&id, 0, vec![event(1), big]))
            .await
            .expect_err(case);
        assert!(
            matches!(err, StoreError::EventTooLarge { .. }),
            "{case}: {err:?}"
        );
        assert!(err.to_string().contains(limit), "{case}: {err}");
        assert!(
            store.stream_head(&id).await.expect("head").is_none(),
            "{case}: nothing is written"
        );
    }
}

/// Events close to the limits, by payload or by metadata, are stored and load back whole.
pub async fn accepts_events_just_under_the_limits(store: Arc<dyn EventStore>) {
    let mut big_data = event(1);
    big_data.data = serde_json::json!({ "blob": "x".repeat(390 * 1024) });
    let mut big_metadata = event(2);
    big_metadata.correlation_id = "c".repeat(190 * 1024);
    big_metadata.causation_id = Some("c".repeat(190 * 1024));
    let sent = vec![big_data, big_metadata];
    let id = stream();
    store
        .append(request(&id, 0, sent.clone()))
        .await
        .expect("append");
    let loaded = store.load(&id, LoadBound::Latest).await.expect("load");
    assert_eq!(loaded.len(), 2);
    for (stored, new) in loaded.iter().zip(&sent) {
        assert_eq!(stored.data, new.data);
        assert_eq!(stored.correlation_id, new.correlation_id);
        assert_eq!(stored.causation_id, new.causation_id);
        assert!(crate::limits::record_bytes(stored) <= crate::limits::MAX_RECORD_BYTES);
    }
}

/// An append whose events each fit but together exceed one DynamoDB transaction is refused
/// before anything is written.
pub async fn refuses_appends_over_the_transaction_limit(store: Arc<dyn EventStore>) {
    let events = (0..12)
        .map(|n| {
            let mut big = event(n);
            big.data = serde_json::json!({ "blob": "x".repeat(350 * 1024) });
            big
        })
        .collect();
    let id = stream();
    let err = store
        .append(request(&id, 0, events))
        .await
        .expect_err("over the transaction limit");
    assert!(matches!(err, StoreError::AppendTooLarge { .. }), "{err:?}");
    assert!(store.stream_head(&id).await.expect("head").is_none());
}

/// A stream whose publication is deferred leaves the sweep until its time comes, counts its
/// failures, and is back to zero failures after any progress; a published stream is not
/// deferred.
pub async fn deferred_streams_leave_the_sweep_until_due(store: Arc<dyn EventStore>) {
    let id = stream();
    append_n(store.as_ref(), &id, 0, 2).await;
    let soon = OffsetDateTime::now_utc() + Duration::seconds(5);
    eventually_pending(store.as_ref(), &id, soon, true).await;

    let until = OffsetDateTime::now_utc() + Duration::hours(1);
    store.defer_publication(&id, until).await.expect("defer");
    let head = store.stream_head(&id).await.expect("head").expect("exists");
    assert_eq!(head.publish_failures, 1);
    assert!(head.pending_since.is_some_and(|since| since > soon));
    assert!(eventually_pending(store.as_ref(), &id, soon, false)
        .await
        .is_none());
    let due = until + Duration::seconds(1);
    assert_eq!(
        eventually_pending(store.as_ref(), &id, due, true)
            .await
            .map(|h| h.publish_failures),
        Some(1)
    );
    store.defer_publication(&id, until).await.expect("defer");
    let head = store.stream_head(&id).await.expect("head").expect("exists");
    assert_eq!(head.publish_failures, 2);

    // Progress resets the count (and gives the rest its grace period from now).
    store.mark_published(&id, 1).await.expect("mark");
    let head = store.stream_head(&id).await.expect("head").expect("exists");
    assert_eq!((head.published_version, head.publish_failures), (1, 0));
    eventually_pending(store.as_ref(), &id, soon, true).await;

    // Fully published: nothing to defer.
    store.mark_published(&id, 2).await.expect("mark");
    store.defer_publication(&id, until).await.expect("defer");
    let head = store.stream_head(&id).await.expect("head").expect("exists");
    assert_eq!((head.pending_since, head.publish_failures), (None, 0));
}

/// Many sweepers claiming one stranded stream at once (as every process's sweep does): exactly
/// one claim wins; the claimed stream leaves the sweep until the claim's end, without counting
/// a failure; a stale or published stream cannot be claimed.
pub async fn concurrent_sweep_claims_exactly_one_wins(store: Arc<dyn EventStore>) {
    let id = stream();
    append_n(store.as_ref(), &id, 0, 2).await;
    let soon = OffsetDateTime::now_utc() + Duration::seconds(5);
    let seen = eventually_pending(store.as_ref(), &id, soon, true)
        .await
        .and_then(|head| head.pending_since)
        .expect("the stream is pending");

    let until = OffsetDateTime::now_utc() + Duration::hours(1);
    let mut claims = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let store = store.clone();
        let id = id.clone();
        claims.spawn(async move { store.claim_publication(&id, seen, until).await });
    }
    let mut won = 0;
    while let Some(claim) = claims.join_next().await {
        if claim.expect("claim task").expect("claim") {
            won += 1;
        }
    }
    assert_eq!(won, 1, "exactly one of 16 concurrent claims wins");

    let head = store.stream_head(&id).await.expect("head").expect("exists");
    assert_eq!(head.publish_failures, 0, "a claim is not a failure");
    assert!(head.pending_since.is_some_and(|since| since > soon));
    assert!(
        eventually_pending(store.as_ref(), &id, soon, false)
            .await
            .is_none(),
        "a claimed stream leaves the sweep"
    );
    assert!(
        !store
            .claim_publication(&id, seen, until)
            .await
            .expect("claim"),
        "the mark moved: a stale claim loses"
    );

    // Published: nothing to claim.
    store.mark_published(&id, 2).await.expect("mark");
    assert!(!store
        .claim_publication(&id, until, until + Duration::hours(1))
        .await
        .expect("claim"));
}

/// Every event of a scan part, page by page from `after`, with the cursor after each page.
async fn scan_part(
    store: &dyn EventStore,
    part: ScanPart,
    mut after: Option<ScanCursor>,
    limit: usize,
) -> Vec<(String, u64)> {
    let mut seen = Vec::new();
    for _ in 0..10_000 {
        let page = store
            .scan_events(part, after.as_ref(), limit)
            .await
            .expect("scan page");
        assert!(
            page.events.len() <= limit,
            "a page holds at most `limit` events"
        );
        seen.extend(page.events.iter().map(|e| (e.stream_id.clone(), e.version)));
        match page.next {
            Some(next) => after = Some(next),
            None => return seen,
        }
    }
    panic!("the scan does not terminate");
}

/// A scan in parallel parts sees every event exactly once, each stream whole in one part with
/// its events together and in version order; a scan resumed from a cursor sees the rest.
pub async fn scans_visit_every_event_once_in_stream_order(store: Arc<dyn EventStore>) {
    let sizes = [1_usize, 3, 7, 2, 5];
    let mut ours = std::collections::BTreeMap::new();
    for size in sizes {
        let id = stream();
        append_n(store.as_ref(), &id, 0, size).await;
        ours.insert(id, size as u64);
    }
    let total = 3;
    let mut found: std::collections::BTreeMap<String, (u32, Vec<u64>)> = Default::default();
    for segment in 0..total {
        let part = ScanPart::new(segment, total).expect("part");
        let seen = scan_part(store.as_ref(), part, None, 2).await;
        let mut previous: Option<&str> = None;
        for (stream_id, version) in &seen {
            if !ours.contains_key(stream_id) {
                continue;
            }
            let entry = found
                .entry(stream_id.clone())
                .or_insert((segment, Vec::new()));
            assert_eq!(entry.0, segment, "{stream_id} is in two parts");
            if previous != Some(stream_id.as_str()) {
                assert!(entry.1.is_empty(), "{stream_id}'s events are not together");
            }
            entry.1.push(*version);
            previous = Some(stream_id.as_str());
        }
    }
    for (stream_id, size) in &ours {
        let versions = &found.get(stream_id).expect("every stream is scanned").1;
        assert_eq!(versions, &(1..=*size).collect::<Vec<_>>(), "{stream_id}");
    }

    let whole = scan_part(store.as_ref(), ScanPart::WHOLE, None, 3).await;
    let ours_in_whole: Vec<_> = whole
        .iter()
        .filter(|(stream_id, _)| ours.contains_key(stream_id))
        .cloned()
        .collect();
    assert_eq!(ours_in_whole.len() as u64, ours.values().sum::<u64>());
    let middle = whole.len() / 2;
    let (stream_id, version) = whole[middle].clone();
    let rest = scan_part(
        store.as_ref(),
        ScanPart::WHOLE,
        Some(ScanCursor {
            stream_id,
            version: i64::try_from(version).expect("a version"),
        }),
        4,
    )
    .await;
    assert_eq!(
        rest,
        whole[middle + 1..].to_vec(),
        "a resumed scan sees the rest"
    );
}

fn snapshot_at(stream_id: &str, version: u64, state: serde_json::Value) -> crate::Snapshot {
    crate::Snapshot {
        stream_id: stream_id.to_owned(),
        version,
        recorded_at: OffsetDateTime::from_unix_timestamp(1_790_000_000 + version as i64)
            .expect("instant"),
        schema_version: <Counter as crate::Aggregate>::STATE_SCHEMA_VERSION,
        state,
        taken_at: OffsetDateTime::now_utc(),
    }
}

/// Snapshots are found by the highest version at or below the one asked for, per stream; one
/// saved again replaces the first; events, heads and scans never see them.
pub async fn snapshots_keep_the_latest_at_or_below_apart_from_the_events(
    store: Arc<dyn EventStore>,
    snapshots: Arc<dyn crate::SnapshotStore>,
) {
    let id = stream();
    let other = stream();
    append_n(store.as_ref(), &id, 0, 3).await;
    for version in [10, 20, 30] {
        snapshots
            .save_snapshot(&snapshot_at(
                &id,
                version,
                serde_json::json!({ "v": version }),
            ))
            .await
            .expect("save");
    }
    snapshots
        .save_snapshot(&snapshot_at(&other, 15, serde_json::json!({ "v": 15 })))
        .await
        .expect("save");
    let latest = |at: u64| {
        let snapshots = snapshots.clone();
        let id = id.clone();
        async move {
            snapshots
                .latest_snapshot(&id, at)
                .await
                .expect("latest")
                .map(|s| s.version)
        }
    };
    assert_eq!(latest(25).await, Some(20));
    assert_eq!(latest(20).await, Some(20));
    assert_eq!(latest(9).await, None);
    assert_eq!(latest(0).await, None);
    assert_eq!(latest(u64::MAX).await, Some(30));
    let replaced = snapshot_at(&id, 20, serde_json::json!({ "v": "again" }));
    snapshots
        .save_snapshot(&replaced)
        .await
        .expect("save again");
    let found = snapshots.latest_snapshot(&id, 25).await.expect("latest");
    assert_eq!(
        found.map(|s| s.state),
        Some(serde_json::json!({ "v": "again" }))
    );

    let events = store.load(&id, LoadBound::Latest).await.expect("load");
    assert_eq!(
        events.iter().map(|e| e.version).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    let head = store.stream_head(&id).await.expect("head").expect("exists");
    assert_eq!(head.version, 3);
    let mut after = None;
    loop {
        let page = store
            .scan_events(ScanPart::WHOLE, after.as_ref(), 7)
            .await
            .expect("scan");
        assert!(
            page.events.iter().all(|e| e.version >= 1),
            "scans see events only"
        );
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert!(store
        .load(&other, LoadBound::Latest)
        .await
        .expect("load")
        .is_empty());
}

/// A test aggregate: the count and sum of the numbered events' `n`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Counter {
    /// Events folded.
    pub count: u64,
    /// Sum of their `n`.
    pub sum: u64,
}

impl crate::Aggregate for Counter {
    type Error = StoreError;
    const STATE_SCHEMA_VERSION: u32 = 1;

    fn fold(
        state: Option<Self>,
        events: &[crate::EventEnvelope],
    ) -> Result<Option<Self>, StoreError> {
        if state.is_none() && events.is_empty() {
            return Ok(None);
        }
        let mut state = state.unwrap_or(Counter { count: 0, sum: 0 });
        for event in events {
            state.count += 1;
            state.sum += event.data["n"].as_u64().unwrap_or(0);
        }
        Ok(Some(state))
    }
}

/// `load_aggregate` starts from the latest snapshot it can read at or below the wanted
/// version, folds only the events after it, saves one after `every` events, and ignores a
/// snapshot of another state schema or one that does not decode: the state is always the full
/// fold's.
pub async fn aggregates_load_from_the_latest_readable_snapshot(
    store: Arc<dyn EventStore>,
    snapshots: Arc<dyn crate::SnapshotStore>,
) {
    use crate::snapshot::load_aggregate;
    let id = stream();
    append_n(store.as_ref(), &id, 0, 90).await;
    append_n(store.as_ref(), &id, 90, 90).await;
    append_n(store.as_ref(), &id, 180, 70).await;
    let load = |up_to: Option<u64>| {
        let (store, id) = (store.clone(), id.clone());
        async move {
            load_aggregate::<Counter>(store.as_ref(), &id, up_to, 100)
                .await
                .expect("load")
                .expect("a state")
        }
    };
    let first = load(None).await;
    assert_eq!(
        (first.stats.from_snapshot, first.stats.events_folded),
        (0, 250)
    );
    assert!(first.stats.snapshot_saved);
    assert_eq!(first.version, 250);
    let second = load(None).await;
    assert_eq!(
        (second.stats.from_snapshot, second.stats.events_folded),
        (250, 0)
    );
    assert!(!second.stats.snapshot_saved);
    assert_eq!(second.state, first.state);

    append_n(store.as_ref(), &id, 250, 10).await;
    let third = load(None).await;
    assert_eq!(
        (third.stats.from_snapshot, third.stats.events_folded),
        (250, 10)
    );
    let at_120 = load(Some(120)).await;
    assert_eq!(
        (at_120.stats.from_snapshot, at_120.stats.events_folded),
        (0, 120)
    );
    assert!(
        at_120.stats.snapshot_saved,
        "a snapshot at 120 for the next such load"
    );
    let again_120 = load(Some(130)).await;
    assert_eq!(
        (again_120.stats.from_snapshot, again_120.stats.events_folded),
        (120, 10)
    );
    assert_eq!(again_120.state.count, 130);

    // A snapshot of a newer state schema, and one that does not decode, are ignored.
    let mut newer = snapshot_at(&id, 255, serde_json::json!({ "count": 0, "sum": 0 }));
    newer.schema_version = <Counter as crate::Aggregate>::STATE_SCHEMA_VERSION + 1;
    snapshots.save_snapshot(&newer).await.expect("save");
    snapshots
        .save_snapshot(&snapshot_at(&id, 258, serde_json::json!("not a counter")))
        .await
        .expect("save");
    let fourth = load(Some(259)).await;
    assert!(
        fourth.stats.from_snapshot == 250 || fourth.stats.from_snapshot == 0,
        "{:?}",
        fourth.stats
    );
    assert_eq!(fourth.state.count, 259);
    let expected_sum: u64 = store
        .load(&id, LoadBound::UpToVersion(259))
        .await
        .expect("load")
        .iter()
        .map(|e| e.data["n"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(fourth.state.sum, expected_sum);
    assert!(
        load_aggregate::<Counter>(store.as_ref(), &stream(), None, 100)
            .await
            .expect("load")
            .is_none(),
        "an empty stream has no state"
    );
}
