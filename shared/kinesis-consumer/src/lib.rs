//! A lease-coordinated Kinesis consumer, KCL-compatible and crash-tested.
//!
//! # Layout
//! - [`lease`]: a shard lease with the KCL's attribute names, checkpoints.
//! - [`lease_table`]: the lease-table port, DynamoDB and in-memory adapters, contract suite.
//! - [`record`]: a record as delivered to processors.
//! - [`source`]: record sources (Kinesis polling, in-memory) behind one trait.
//! - [`coordination`]: pure decisions: expiry by counters, take and steal plans.
//! - [`processor`]: the processor interface and its checkpointer.
//! - [`worker`]: the worker, an actor owning its leases: taking (scan, steal, adopt), renewing
//!   (one bounded renewer per lease), cleaning up (settle, shard sync, finished lineage), shard
//!   consumers.
//! - [`config`]: configuration and defaults, with the reasoning.
//! - [`dead_letter`]: where poison records go (DynamoDB table or memory), and the records of
//!   their partition keys set aside behind them.
//! - [`metrics`]: the worker's counters.
//! - [`rewind`]: an operator's rewind of an application's checkpoints, honoured by live
//!   workers at their next renewal.

pub mod config;
pub mod coordination;
pub mod dead_letter;
pub mod lease;
pub mod lease_table;
pub mod metrics;
pub mod processor;
pub mod record;
pub mod rewind;
pub mod source;
pub mod worker;

pub use config::{CheckpointPolicy, FailurePolicy, InitialPosition, WorkerConfig};
pub use lease::{Checkpoint, Lease, ShardProgress};
pub use lease_table::{LeaseTable, LeaseTableError};
pub use processor::{
    Checkpointer, ProcessorError, ProcessorFactory, RecordProcessor, ShardContext,
};
pub use record::Record;
pub use worker::Worker;
