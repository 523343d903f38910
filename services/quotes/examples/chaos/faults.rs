//! The faults of a chaos run other than kills: throttling windows on the fault proxies in front
//! of DynamoDB and Kinesis, and resharding of the event stream (split, then merge).

use std::collections::BTreeMap;
use std::time::Duration;

use kinesis_consumer::source::polling::list_all_shards;
use testkit::fault_proxy::{AwsError, Fault, FaultProxy, Rule};

/// The two proxies every process of the run talks through.
#[derive(Debug)]
pub struct Proxies {
    /// In front of moto's DynamoDB (event store, read model, leases, ledger, dead letters).
    pub dynamo: FaultProxy,
    /// In front of kinesis-mock (the relays' `PutRecords`, the consumers' reads).
    pub kinesis: FaultProxy,
}

fn error(error: AwsError) -> Fault {
    Fault::Error { error }
}

impl Proxies {
    /// Starts both, in front of the emulators the environment names.
    pub async fn start() -> Self {
        Self {
            dynamo: FaultProxy::in_front_of("AWS_ENDPOINT_URL_DYNAMODB").await,
            kinesis: FaultProxy::in_front_of("AWS_ENDPOINT_URL_KINESIS").await,
        }
    }

    /// Opens a throttling window of `length` from now: on DynamoDB a quarter of every call is
    /// refused with `ProvisionedThroughputExceededException` and a tenth more with
    /// `ThrottlingException`; on Kinesis a third of `GetRecords` and a fifth of `PutRecords`
    /// are throttled, half the other `PutRecords` lose 30 % of their records, and a fifth of
    /// `GetShardIterator` and `ListShards` hit `LimitExceededException`; a few calls of each
    /// answer 503.
    pub fn open_throttle_window(&self, length: Duration) {
        let window = |rule: Rule| rule.window(Duration::ZERO, length);
        let dynamo = "DynamoDB_20120810.";
        for rule in [
            Rule::new(error(AwsError::ProvisionedThroughputExceeded))
                .operation(dynamo)
                .rate(0.25),
            Rule::new(error(AwsError::Throttling))
                .operation(dynamo)
                .rate(0.1),
            Rule::new(error(AwsError::ServiceUnavailable))
                .operation(dynamo)
                .rate(0.03),
        ] {
            self.dynamo.add(window(rule));
        }
        for rule in [
            Rule::new(error(AwsError::ProvisionedThroughputExceeded))
                .operation("Kinesis_20131202.GetRecords")
                .rate(0.33),
            Rule::new(error(AwsError::ProvisionedThroughputExceeded))
                .operation("Kinesis_20131202.PutRecords")
                .rate(0.2),
            Rule::new(Fault::PartialFailure { fraction: 0.3 })
                .operation("Kinesis_20131202.PutRecords")
                .rate(0.5),
            Rule::new(error(AwsError::LimitExceeded))
                .operation("Kinesis_20131202.GetShardIterator")
                .operation("Kinesis_20131202.ListShards")
                .rate(0.2),
            Rule::new(error(AwsError::ServiceUnavailable))
                .operation("Kinesis_20131202.")
                .rate(0.03),
        ] {
            self.kinesis.add(window(rule));
        }
    }

    /// Calls the proxies could not forward (the emulator refused or dropped the connection).
    pub fn upstream_failures(&self) -> u64 {
        [self.dynamo.stats(), self.kinesis.stats()]
            .iter()
            .flat_map(|s| s.upstream_failures.values())
            .sum()
    }

    /// Faults injected so far, by label (`ProvisionedThroughputExceededException`,
    /// `partial_failure`, …), over both proxies.
    pub fn injected(&self) -> BTreeMap<String, u64> {
        let mut by_fault = BTreeMap::new();
        for stats in [self.dynamo.stats(), self.kinesis.stats()] {
            for faults in stats.injected.values() {
                for (label, n) in faults {
                    *by_fault.entry(label.clone()).or_insert(0) += n;
                }
            }
        }
        by_fault
    }
}

/// Reshard number `n` of the run: even numbers split the widest open shard in two, odd ones
/// merge two adjacent open shards (split then merge, then again). Waits until the stream is
/// active again; returns what it did.
pub async fn reshard(kinesis: &aws_sdk_kinesis::Client, stream: &str, n: usize) -> String {
    let open: Vec<_> = list_all_shards(kinesis, stream)
        .await
        .expect("list shards")
        .into_iter()
        .filter(|s| !s.closed)
        .collect();
    let hash = |key: &str| key.parse::<u128>().expect("hash key");
    let adjacent = open.iter().find_map(|a| {
        open.iter()
            .find(|b| hash(&b.starting_hash_key) == hash(&a.ending_hash_key) + 1)
            .map(|b| (a, b))
    });
    let done = match (n % 2, adjacent) {
        (1, Some((a, b))) => {
            kinesis
                .merge_shards()
                .stream_name(stream)
                .shard_to_merge(&a.shard_id)
                .adjacent_shard_to_merge(&b.shard_id)
                .send()
                .await
                .expect("merge shards");
            format!("merged {} and {}", a.shard_id, b.shard_id)
        }
        _ => {
            let widest = open
                .iter()
                .max_by_key(|s| hash(&s.ending_hash_key) - hash(&s.starting_hash_key))
                .expect("an open shard");
            let (start, end) = (
                hash(&widest.starting_hash_key),
                hash(&widest.ending_hash_key),
            );
            kinesis
                .split_shard()
                .stream_name(stream)
                .shard_to_split(&widest.shard_id)
                .new_starting_hash_key((start + (end - start) / 2).to_string())
                .send()
                .await
                .expect("split shard");
            format!("split {}", widest.shard_id)
        }
    };
    testkit::wait_stream_active(kinesis, stream).await;
    done
}
