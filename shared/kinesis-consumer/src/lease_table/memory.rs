//! The in-memory lease table: the embedded mode's table and the fast tests' reference.
//!
//! It keeps exactly the DynamoDB adapter's semantics (conditional writes on owner and counter,
//! counter increments, sets returned sorted without duplicates, `list` sorted by key) behind one
//! mutex.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;

use crate::lease::{Checkpoint, Lease};
use crate::lease_table::{LeaseTable, LeaseTableError};

/// A lease table held in process memory.
#[derive(Debug, Default)]
pub struct InMemoryLeaseTable {
    leases: Mutex<BTreeMap<String, Lease>>,
}

impl InMemoryLeaseTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Lease>> {
        // Every operation checks before it mutates and mutates one lease in place, so a panic
        // while holding the lock cannot leave a half-written lease: a poisoned lock is safe.
        self.leases
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Sorts and deduplicates a string set held in a `Vec`, as DynamoDB returns it.
fn normalize_set(values: &mut Vec<String>) {
    values.sort();
    values.dedup();
}

/// The stored lease when `held` still holds it (same owner, same counter), else `Lost`.
fn held_lease<'a>(
    leases: &'a mut BTreeMap<String, Lease>,
    held: &Lease,
) -> Result<&'a mut Lease, LeaseTableError> {
    let lost = || LeaseTableError::Lost(held.lease_key.clone());
    if held.lease_owner.is_none() {
        return Err(lost());
    }
    match leases.get_mut(&held.lease_key) {
        Some(stored)
            if stored.lease_owner == held.lease_owner
                && stored.lease_counter == held.lease_counter =>
        {
            Ok(stored)
        }
        _ => Err(lost()),
    }
}

#[async_trait]
impl LeaseTable for InMemoryLeaseTable {
    async fn create_if_absent(&self, lease: &Lease) -> Result<bool, LeaseTableError> {
        let mut leases = self.lock();
        if leases.contains_key(&lease.lease_key) {
            return Ok(false);
        }
        let mut stored = lease.clone();
        normalize_set(&mut stored.parent_shard_ids);
        normalize_set(&mut stored.child_shard_ids);
        leases.insert(stored.lease_key.clone(), stored);
        Ok(true)
    }

    async fn list(&self) -> Result<Vec<Lease>, LeaseTableError> {
        Ok(self.lock().values().cloned().collect())
    }

    async fn get(&self, lease_key: &str) -> Result<Option<Lease>, LeaseTableError> {
        Ok(self.lock().get(lease_key).cloned())
    }

    async fn renew(&self, held: &Lease) -> Result<Lease, LeaseTableError> {
        let mut leases = self.lock();
        let stored = held_lease(&mut leases, held)?;
        stored.lease_counter = stored.lease_counter.saturating_add(1);
        if held.progress.is_some() {
            stored.progress = held.progress;
        }
        Ok(stored.clone())
    }

    async fn take(&self, seen: &Lease, new_owner: &str) -> Result<Lease, LeaseTableError> {
        let mut leases = self.lock();
        let stored = match leases.get_mut(&seen.lease_key) {
            Some(stored)
                if stored.lease_counter == seen.lease_counter
                    && stored.lease_owner == seen.lease_owner =>
            {
                stored
            }
            _ => return Err(LeaseTableError::Lost(seen.lease_key.clone())),
        };
        if !seen.is_owned_by(new_owner) {
            stored.owner_switches_since_checkpoint =
                stored.owner_switches_since_checkpoint.saturating_add(1);
        }
        stored.lease_owner = Some(new_owner.to_owned());
        stored.lease_counter = seen.lease_counter.saturating_add(1);
        stored.handoff_owner = None;
        Ok(stored.clone())
    }

    async fn release(&self, held: &Lease) -> Result<(), LeaseTableError> {
        let mut leases = self.lock();
        let stored = held_lease(&mut leases, held)?;
        stored.lease_owner = None;
        stored.handoff_owner = None;
        stored.lease_counter = stored.lease_counter.saturating_add(1);
        Ok(())
    }

    async fn rewind(&self, seen: &Lease, to: &Checkpoint) -> Result<Lease, LeaseTableError> {
        let mut leases = self.lock();
        match leases.get_mut(&seen.lease_key) {
            Some(stored) if stored.lease_counter == seen.lease_counter => {
                stored.checkpoint = to.clone();
                stored.checkpoint_sub_sequence_number = 0;
                stored.lease_owner = None;
                stored.handoff_owner = None;
                stored.lease_counter = stored.lease_counter.saturating_add(1);
                Ok(stored.clone())
            }
            _ => Err(LeaseTableError::Lost(seen.lease_key.clone())),
        }
    }

    async fn request_handoff(&self, seen: &Lease, to: &str) -> Result<(), LeaseTableError> {
        let mut leases = self.lock();
        let stored = held_lease(&mut leases, seen)?;
        if stored.handoff_owner.is_some() {
            return Err(LeaseTableError::Lost(seen.lease_key.clone()));
        }
        stored.handoff_owner = Some(to.to_owned());
        Ok(())
    }

    async fn hand_off(&self, held: &Lease) -> Result<(), LeaseTableError> {
        let mut leases = self.lock();
        let stored = held_lease(&mut leases, held)?;
        let Some(to) = stored
            .handoff_owner
            .take()
            .filter(|to| Some(to) == held.handoff_owner.as_ref())
        else {
            return Err(LeaseTableError::Lost(held.lease_key.clone()));
        };
        stored.lease_owner = Some(to);
        stored.lease_counter = stored.lease_counter.saturating_add(1);
        stored.owner_switches_since_checkpoint =
            stored.owner_switches_since_checkpoint.saturating_add(1);
        Ok(())
    }

    async fn checkpoint(
        &self,
        held: &Lease,
        checkpoint: &Checkpoint,
        sub_sequence_number: u64,
    ) -> Result<Lease, LeaseTableError> {
        if !held.checkpoint.may_advance_to(checkpoint) {
            return Err(LeaseTableError::Corrupt(format!(
                "checkpoint would move backwards from {} to {checkpoint}",
                held.checkpoint
            )));
        }
        let mut leases = self.lock();
        let stored = held_lease(&mut leases, held)?;
        stored.checkpoint = checkpoint.clone();
        stored.checkpoint_sub_sequence_number = sub_sequence_number;
        stored.owner_switches_since_checkpoint = 0;
        stored.lease_counter = stored.lease_counter.saturating_add(1);
        Ok(stored.clone())
    }

    async fn add_children(
        &self,
        lease_key: &str,
        children: &[String],
    ) -> Result<(), LeaseTableError> {
        if children.is_empty() {
            return Ok(());
        }
        let mut leases = self.lock();
        let stored = leases
            .get_mut(lease_key)
            .ok_or_else(|| LeaseTableError::Lost(lease_key.to_owned()))?;
        stored.child_shard_ids.extend(children.iter().cloned());
        normalize_set(&mut stored.child_shard_ids);
        Ok(())
    }

    async fn delete_finished(&self, lease_key: &str) -> Result<bool, LeaseTableError> {
        let mut leases = self.lock();
        match leases.get(lease_key) {
            Some(stored) if stored.is_finished() => {
                leases.remove(lease_key);
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}
