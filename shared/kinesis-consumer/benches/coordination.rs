//! Micro-benchmarks of the pure coordination code, the work every scan of the lease table does:
//! `plan_acquisitions` on 1,000 leases held by 100 owners, `ExpiryTracker::observe` and
//! `is_expired` on 1,000 leases, and checkpoint ordering (`Checkpoint::may_advance_to`,
//! `compare_sequence_numbers`) on real-length Kinesis sequence numbers.
//!
//! Run with `cargo bench -p kinesis-consumer --bench coordination`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use kinesis_consumer::coordination::plan::{plan_acquisitions, Candidate};
use kinesis_consumer::coordination::ExpiryTracker;
use kinesis_consumer::lease::compare_sequence_numbers;
use kinesis_consumer::{Checkpoint, Lease};
use tokio::time::Instant;

const LEASES: usize = 1_000;
const OWNERS: usize = 100;

/// 1,000 leases, owned round-robin by 100 workers (10 each), with `unowned` of them unowned.
fn table(unowned: usize) -> Vec<Lease> {
    (0..LEASES)
        .map(|i| Lease {
            lease_owner: (i >= unowned).then(|| format!("worker-{:03}", i % OWNERS)),
            lease_counter: 1_000 + i as u64,
            ..Lease::new(format!("shardId-{i:012}"), Checkpoint::TrimHorizon)
        })
        .collect()
}

fn candidates(leases: &[Lease]) -> Vec<Candidate<'_>> {
    leases
        .iter()
        .map(|lease| Candidate {
            lease,
            expired: false,
        })
        .collect()
}

fn plan(c: &mut Criterion) {
    let mut group = c.benchmark_group("plan_acquisitions_1000_leases_100_owners");
    let balanced = table(0);
    let balanced_candidates = candidates(&balanced);
    group.bench_function("balanced_member", |b| {
        b.iter(|| plan_acquisitions(black_box("worker-007"), &balanced_candidates, &balanced))
    });
    group.bench_function("new_worker_steals", |b| {
        b.iter(|| plan_acquisitions(black_box("worker-new"), &balanced_candidates, &balanced))
    });
    let orphaned = table(100);
    let orphaned_candidates = candidates(&orphaned);
    group.bench_function("100_unowned_to_take", |b| {
        b.iter(|| plan_acquisitions(black_box("worker-007"), &orphaned_candidates, &orphaned))
    });
    group.finish();
}

fn expiry(c: &mut Criterion) {
    let mut group = c.benchmark_group("expiry_tracker_1000_leases");
    let leases = table(0);
    let renewed: Vec<Lease> = leases
        .iter()
        .map(|l| Lease {
            lease_counter: l.lease_counter + 1,
            ..l.clone()
        })
        .collect();
    let start = Instant::now();
    let mut warm = ExpiryTracker::new();
    warm.observe(&leases, start);
    group.bench_function("observe_first_scan", |b| {
        b.iter_batched(
            ExpiryTracker::new,
            |mut tracker| {
                tracker.observe(black_box(&leases), start);
                tracker
            },
            BatchSize::SmallInput,
        )
    });
    group.bench_function("observe_every_counter_moved", |b| {
        b.iter_batched(
            || warm.clone(),
            |mut tracker| {
                tracker.observe(black_box(&renewed), start + Duration::from_secs(2));
                tracker
            },
            BatchSize::SmallInput,
        )
    });
    let later = start + Duration::from_secs(7);
    let duration = Duration::from_secs(6);
    group.bench_function("is_expired_all", |b| {
        b.iter(|| {
            leases
                .iter()
                .filter(|l| warm.is_expired(black_box(l), later, duration))
                .count()
        })
    });
    group.finish();
}

fn checkpoints(c: &mut Criterion) {
    let mut group = c.benchmark_group("checkpoint_order");
    // Kinesis sequence numbers are 56-digit decimals; these differ in the last digits.
    let a = "49590338271490256608559692538361571095921575989136588898".to_owned();
    let b = "49590338271490256608559692540925702759324208523137515618".to_owned();
    let (ca, cb) = (
        Checkpoint::Sequence(a.clone()),
        Checkpoint::Sequence(b.clone()),
    );
    group.bench_function("compare_sequence_numbers", |bench| {
        bench.iter(|| compare_sequence_numbers(black_box(&a), black_box(&b)))
    });
    group.bench_function("may_advance_to_sequence", |bench| {
        bench.iter(|| black_box(&ca).may_advance_to(black_box(&cb)))
    });
    group.bench_function("may_advance_to_shard_end", |bench| {
        bench.iter(|| black_box(&ca).may_advance_to(black_box(&Checkpoint::ShardEnd)))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30);
    targets = plan, expiry, checkpoints
}
criterion_main!(benches);
