//! The lease table port: where leases and checkpoints live (one table per consumer
//! application), with a DynamoDB adapter and an in-memory adapter that pass one contract suite.
//!
//! Every write that changes a held lease is conditional on the owner and counter the caller last
//! saw and increments the counter, so a worker that lost a lease can never overwrite the new
//! owner's state: its write fails with [`LeaseTableError::Lost`].

pub mod dynamodb;
pub mod memory;

#[cfg(feature = "contract")]
pub mod contract;

pub use dynamodb::{create_lease_table, DynamoLeaseTable};
pub use memory::InMemoryLeaseTable;

use async_trait::async_trait;

use crate::lease::{Checkpoint, Lease};

/// Why a lease-table operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LeaseTableError {
    /// The lease changed since the caller read it (another owner, another counter) or is gone.
    #[error("lease {0} changed since it was read (lost or taken)")]
    Lost(String),
    /// The table failed (after the SDK's retries of throttling and 5xx).
    #[error("lease table failed: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A stored item could not be decoded.
    #[error("lease item is corrupt: {0}")]
    Corrupt(String),
}

impl LeaseTableError {
    /// Wraps a backend error.
    pub fn backend(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Backend(Box::new(err))
    }
}

/// The lease table of one consumer application.
#[async_trait]
pub trait LeaseTable: Send + Sync + std::fmt::Debug {
    /// Creates the lease unless one exists for its key; true when created.
    async fn create_if_absent(&self, lease: &Lease) -> Result<bool, LeaseTableError>;

    /// Every lease (a paginated, consistent scan).
    async fn list(&self) -> Result<Vec<Lease>, LeaseTableError>;

    /// One lease (consistent read).
    async fn get(&self, lease_key: &str) -> Result<Option<Lease>, LeaseTableError>;

    /// Renews a held lease: requires the owner and counter of `held`; returns it with the
    /// counter incremented.
    async fn renew(&self, held: &Lease) -> Result<Lease, LeaseTableError>;

    /// Takes a lease for `new_owner` (unowned, expired, or stolen): requires the owner (or its
    /// absence) and counter of `seen`; sets the owner, increments the counter and, when the
    /// owner changes, `ownerSwitchesSinceCheckpoint`; clears any pending handoff.
    async fn take(&self, seen: &Lease, new_owner: &str) -> Result<Lease, LeaseTableError>;

    /// Releases a held lease (removes the owner and any pending handoff, increments the counter)
    /// so another worker can take it at once.
    async fn release(&self, held: &Lease) -> Result<(), LeaseTableError>;

    /// Records a checkpoint on a held lease (requires owner and counter; increments the counter,
    /// resets `ownerSwitchesSinceCheckpoint`). Never moves the checkpoint backwards: a request
    /// to do so fails with [`LeaseTableError::Corrupt`] naming both positions.
    async fn checkpoint(
        &self,
        held: &Lease,
        checkpoint: &Checkpoint,
        sub_sequence_number: u64,
    ) -> Result<Lease, LeaseTableError>;

    /// Asks the owner of `seen` to hand the lease over to `to` (graceful steal): requires the
    /// owner and counter of `seen` and no pending handoff; sets `handoffOwner` without touching
    /// the counter, so the owner keeps renewing and checkpointing until it hands over.
    async fn request_handoff(&self, seen: &Lease, to: &str) -> Result<(), LeaseTableError>;

    /// Hands a held lease to its `handoffOwner` (after the last checkpoint): requires owner,
    /// counter and that handoff owner; sets the owner, increments the counter and
    /// `ownerSwitchesSinceCheckpoint`, removes `handoffOwner`.
    async fn hand_off(&self, held: &Lease) -> Result<(), LeaseTableError>;

    /// Moves a lease's checkpoint to `to`, backwards too (an operator's rewind): requires the
    /// counter of `seen`; removes the owner and any pending handoff and increments the counter,
    /// so the owner's next renewal or checkpoint fails (it stops processing the shard) and the
    /// next worker to take the lease starts from `to`.
    async fn rewind(&self, seen: &Lease, to: &Checkpoint) -> Result<Lease, LeaseTableError>;

    /// Adds child shard ids to a lease (set union; no owner condition).
    async fn add_children(
        &self,
        lease_key: &str,
        children: &[String],
    ) -> Result<(), LeaseTableError>;

    /// Deletes a lease whose shard was processed to its end (requires `checkpoint = SHARD_END`);
    /// true when deleted.
    async fn delete_finished(&self, lease_key: &str) -> Result<bool, LeaseTableError>;
}
