//! The DynamoDB adapter of the lease table, readable by the Java KCL's tooling.
//!
//! # Items
//! One item per shard, key `leaseKey` (S), with the KCL's attribute names and types (see
//! [`crate::lease`]). Empty string sets are omitted (DynamoDB cannot store them), as are an
//! absent owner and absent hash keys. Sets read back sorted and without duplicates.
//!
//! # Fencing
//! Every write to a held lease is an `UpdateItem` conditioned on the `leaseOwner` and
//! `leaseCounter` the caller last saw, and increments `leaseCounter`; a failed condition is
//! [`LeaseTableError::Lost`]. Reads are strongly consistent.
//!
//! Throttling and 5xx are retried by the SDK's standard retry strategy, configured where the
//! client is built; this module retries nothing itself.

mod codec;
mod schema;

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::ReturnValue;
use aws_sdk_dynamodb::Client;
use dynamodb_item::ConditionalExt;

use crate::lease::{Checkpoint, Lease};
use crate::lease_table::{LeaseTable, LeaseTableError};
use codec::attribute::{
    CHECKPOINT, CHECKPOINT_SUB_SEQUENCE_NUMBER, CHILD_SHARD_IDS, HANDOFF_OWNER, LEASE_COUNTER,
    LEASE_KEY, LEASE_OWNER, MILLIS_BEHIND_LATEST, OWNER_SWITCHES_SINCE_CHECKPOINT,
    RECORDS_SINCE_CHECKPOINT,
};
use codec::{n, s, Item};

pub use schema::create_lease_table;

/// The condition every write to a held lease carries: the owner and counter the caller saw.
const HELD_CONDITION: &str = "#owner = :owner AND #counter = :counter";

/// The lease table of one consumer application, on DynamoDB.
#[derive(Debug, Clone)]
pub struct DynamoLeaseTable {
    client: Client,
    table_name: String,
    scan_page_size: Option<i32>,
}

impl DynamoLeaseTable {
    /// A lease table on `table_name` (see [`create_lease_table`]).
    pub fn new(client: Client, table_name: impl Into<String>) -> Self {
        Self {
            client,
            table_name: table_name.into(),
            scan_page_size: None,
        }
    }

    /// Limits each page of [`LeaseTable::list`]'s scan to `items` items (at least 1) instead of
    /// DynamoDB's 1 MB pages: smaller, more even reads of a large table, and a way for tests to
    /// exercise pagination.
    pub fn with_scan_page_size(mut self, items: u32) -> Self {
        self.scan_page_size = Some(i32::try_from(items.max(1)).unwrap_or(i32::MAX));
        self
    }

    /// The DynamoDB table's name.
    pub fn table_name(&self) -> &str {
        &self.table_name
    }

    /// An `UpdateItem` on one lease's item.
    fn update(&self, lease_key: &str) -> UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.table_name)
            .key(LEASE_KEY, s(lease_key))
    }

    /// An `UpdateItem` on a held lease: conditioned on its owner and counter.
    fn update_held(&self, held: &Lease) -> Result<UpdateItemFluentBuilder, LeaseTableError> {
        let owner = held_owner(held)?;
        Ok(self
            .update(&held.lease_key)
            .condition_expression(HELD_CONDITION)
            .expression_attribute_names("#owner", LEASE_OWNER)
            .expression_attribute_names("#counter", LEASE_COUNTER)
            .expression_attribute_values(":owner", s(owner))
            .expression_attribute_values(":counter", n(held.lease_counter)))
    }

    /// Sends a conditional update; a failed condition is [`LeaseTableError::Lost`].
    async fn send_conditional(
        lease_key: &str,
        request: UpdateItemFluentBuilder,
    ) -> Result<Option<Item>, LeaseTableError> {
        match request.send().await.condition_checked() {
            Ok(Some(output)) => Ok(output.attributes),
            Ok(None) => Err(LeaseTableError::Lost(lease_key.to_owned())),
            Err(err) => Err(LeaseTableError::backend(err.into_service_error())),
        }
    }

    /// Sends a conditional update returning the whole updated item, decoded.
    async fn send_conditional_returning_lease(
        lease_key: &str,
        request: UpdateItemFluentBuilder,
    ) -> Result<Lease, LeaseTableError> {
        let request = request.return_values(ReturnValue::AllNew);
        match Self::send_conditional(lease_key, request).await? {
            Some(item) => codec::lease_from_item(&item),
            None => Err(LeaseTableError::Corrupt(format!(
                "lease {lease_key}: the update returned no attributes"
            ))),
        }
    }
}

/// The owner of a lease the caller holds; a lease without an owner is not held by anyone.
fn held_owner(held: &Lease) -> Result<&str, LeaseTableError> {
    held.lease_owner
        .as_deref()
        .ok_or_else(|| LeaseTableError::Lost(held.lease_key.clone()))
}

#[async_trait]
impl LeaseTable for DynamoLeaseTable {
    #[tracing::instrument(level = "debug", skip(self, lease), fields(table = %self.table_name, lease_key = %lease.lease_key))]
    async fn create_if_absent(&self, lease: &Lease) -> Result<bool, LeaseTableError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table_name)
            .set_item(Some(codec::lease_to_item(lease)))
            .condition_expression("attribute_not_exists(#key)")
            .expression_attribute_names("#key", LEASE_KEY)
            .send()
            .await;
        match result.condition_checked() {
            Ok(written) => Ok(written.is_some()),
            Err(err) => Err(LeaseTableError::backend(err.into_service_error())),
        }
    }

    #[tracing::instrument(level = "debug", skip(self), fields(table = %self.table_name))]
    async fn list(&self) -> Result<Vec<Lease>, LeaseTableError> {
        let mut leases = Vec::new();
        let mut start_key: Option<Item> = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.table_name)
                .consistent_read(true)
                .set_limit(self.scan_page_size)
                .set_exclusive_start_key(start_key.take())
                .send()
                .await
                .map_err(|e| LeaseTableError::backend(e.into_service_error()))?;
            for item in page.items() {
                leases.push(codec::lease_from_item(item)?);
            }
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start_key = Some(key),
                _ => break,
            }
        }
        // Scan order is the hash order; sort so every adapter lists in the same order.
        leases.sort_by(|a, b| a.lease_key.cmp(&b.lease_key));
        Ok(leases)
    }

    #[tracing::instrument(level = "debug", skip(self), fields(table = %self.table_name))]
    async fn get(&self, lease_key: &str) -> Result<Option<Lease>, LeaseTableError> {
        self.client
            .get_item()
            .table_name(&self.table_name)
            .key(LEASE_KEY, s(lease_key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| LeaseTableError::backend(e.into_service_error()))?
            .item
            .map(|item| codec::lease_from_item(&item))
            .transpose()
    }

    #[tracing::instrument(level = "debug", skip(self, held), fields(table = %self.table_name, lease_key = %held.lease_key, owner = ?held.lease_owner, counter = held.lease_counter))]
    async fn renew(&self, held: &Lease) -> Result<Lease, LeaseTableError> {
        let mut request = self
            .update_held(held)?
            .expression_attribute_values(":one", n(1));
        request = match &held.progress {
            None => request.update_expression("SET #counter = #counter + :one"),
            Some(progress) => request
                .update_expression(
                    "SET #counter = #counter + :one, #behind = :behind, #pending = :pending",
                )
                .expression_attribute_names("#behind", MILLIS_BEHIND_LATEST)
                .expression_attribute_names("#pending", RECORDS_SINCE_CHECKPOINT)
                .expression_attribute_values(":behind", n(progress.millis_behind_latest))
                .expression_attribute_values(":pending", n(progress.records_since_checkpoint)),
        };
        Self::send_conditional_returning_lease(&held.lease_key, request).await
    }

    #[tracing::instrument(level = "debug", skip(self, seen), fields(table = %self.table_name, lease_key = %seen.lease_key, old_owner = ?seen.lease_owner, counter = seen.lease_counter))]
    async fn take(&self, seen: &Lease, new_owner: &str) -> Result<Lease, LeaseTableError> {
        let mut request = self
            .update(&seen.lease_key)
            .expression_attribute_names("#owner", LEASE_OWNER)
            .expression_attribute_names("#counter", LEASE_COUNTER)
            .expression_attribute_values(":counter", n(seen.lease_counter))
            .expression_attribute_values(":new", s(new_owner))
            .expression_attribute_values(":next", n(seen.lease_counter.saturating_add(1)));
        request = match &seen.lease_owner {
            Some(old_owner) => request
                .condition_expression("#counter = :counter AND #owner = :old")
                .expression_attribute_values(":old", s(old_owner)),
            None => {
                request.condition_expression("#counter = :counter AND attribute_not_exists(#owner)")
            }
        };
        request = request.expression_attribute_names("#handoff", HANDOFF_OWNER);
        request = if seen.is_owned_by(new_owner) {
            request.update_expression("SET #owner = :new, #counter = :next REMOVE #handoff")
        } else {
            request
                .update_expression(
                    "SET #owner = :new, #counter = :next, \
                     #switches = if_not_exists(#switches, :zero) + :one REMOVE #handoff",
                )
                .expression_attribute_names("#switches", OWNER_SWITCHES_SINCE_CHECKPOINT)
                .expression_attribute_values(":zero", n(0))
                .expression_attribute_values(":one", n(1))
        };
        Self::send_conditional_returning_lease(&seen.lease_key, request).await
    }

    #[tracing::instrument(level = "debug", skip(self, held), fields(table = %self.table_name, lease_key = %held.lease_key, owner = ?held.lease_owner, counter = held.lease_counter))]
    async fn release(&self, held: &Lease) -> Result<(), LeaseTableError> {
        let request = self
            .update_held(held)?
            .update_expression("REMOVE #owner, #handoff SET #counter = #counter + :one")
            .expression_attribute_names("#handoff", HANDOFF_OWNER)
            .expression_attribute_values(":one", n(1));
        Self::send_conditional(&held.lease_key, request).await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip(self, seen), fields(table = %self.table_name, lease_key = %seen.lease_key, owner = ?seen.lease_owner, counter = seen.lease_counter))]
    async fn request_handoff(&self, seen: &Lease, to: &str) -> Result<(), LeaseTableError> {
        let request = self
            .update_held(seen)?
            .condition_expression(format!(
                "{HELD_CONDITION} AND attribute_not_exists(#handoff)"
            ))
            .update_expression("SET #handoff = :to")
            .expression_attribute_names("#handoff", HANDOFF_OWNER)
            .expression_attribute_values(":to", s(to));
        Self::send_conditional(&seen.lease_key, request).await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip(self, held), fields(table = %self.table_name, lease_key = %held.lease_key, owner = ?held.lease_owner, counter = held.lease_counter))]
    async fn hand_off(&self, held: &Lease) -> Result<(), LeaseTableError> {
        let Some(to) = held.handoff_owner.as_deref() else {
            return Err(LeaseTableError::Lost(held.lease_key.clone()));
        };
        let request = self
            .update_held(held)?
            .condition_expression(format!("{HELD_CONDITION} AND #handoff = :to"))
            .update_expression(
                "SET #owner = :to, #counter = #counter + :one, \
                 #switches = if_not_exists(#switches, :zero) + :one REMOVE #handoff",
            )
            .expression_attribute_names("#handoff", HANDOFF_OWNER)
            .expression_attribute_names("#switches", OWNER_SWITCHES_SINCE_CHECKPOINT)
            .expression_attribute_values(":to", s(to))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":one", n(1));
        Self::send_conditional(&held.lease_key, request).await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip(self, held), fields(table = %self.table_name, lease_key = %held.lease_key, owner = ?held.lease_owner, counter = held.lease_counter))]
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
        let request = self
            .update_held(held)?
            .update_expression(
                "SET #checkpoint = :checkpoint, #sub = :sub, #switches = :zero, \
                 #counter = #counter + :one",
            )
            .expression_attribute_names("#checkpoint", CHECKPOINT)
            .expression_attribute_names("#sub", CHECKPOINT_SUB_SEQUENCE_NUMBER)
            .expression_attribute_names("#switches", OWNER_SWITCHES_SINCE_CHECKPOINT)
            .expression_attribute_values(":checkpoint", s(checkpoint.as_str()))
            .expression_attribute_values(":sub", n(sub_sequence_number))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":one", n(1));
        Self::send_conditional_returning_lease(&held.lease_key, request).await
    }

    #[tracing::instrument(level = "debug", skip(self, seen), fields(table = %self.table_name, lease_key = %seen.lease_key, counter = seen.lease_counter, to = %to))]
    async fn rewind(&self, seen: &Lease, to: &Checkpoint) -> Result<Lease, LeaseTableError> {
        let request = self
            .update(&seen.lease_key)
            .condition_expression("#counter = :counter")
            .update_expression(
                "SET #checkpoint = :to, #sub = :zero, #counter = #counter + :one \
                 REMOVE #owner, #handoff",
            )
            .expression_attribute_names("#counter", LEASE_COUNTER)
            .expression_attribute_names("#owner", LEASE_OWNER)
            .expression_attribute_names("#handoff", HANDOFF_OWNER)
            .expression_attribute_names("#checkpoint", CHECKPOINT)
            .expression_attribute_names("#sub", CHECKPOINT_SUB_SEQUENCE_NUMBER)
            .expression_attribute_values(":counter", n(seen.lease_counter))
            .expression_attribute_values(":to", s(to.as_str()))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":one", n(1));
        Self::send_conditional_returning_lease(&seen.lease_key, request).await
    }

    #[tracing::instrument(level = "debug", skip(self), fields(table = %self.table_name))]
    async fn add_children(
        &self,
        lease_key: &str,
        children: &[String],
    ) -> Result<(), LeaseTableError> {
        let Some(children) = codec::string_set(children) else {
            return Ok(());
        };
        let request = self
            .update(lease_key)
            .update_expression("ADD #children :children")
            .condition_expression("attribute_exists(#key)")
            .expression_attribute_names("#children", CHILD_SHARD_IDS)
            .expression_attribute_names("#key", LEASE_KEY)
            .expression_attribute_values(":children", children);
        Self::send_conditional(lease_key, request).await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip(self), fields(table = %self.table_name))]
    async fn delete_finished(&self, lease_key: &str) -> Result<bool, LeaseTableError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table_name)
            .key(LEASE_KEY, s(lease_key))
            .condition_expression("#checkpoint = :end")
            .expression_attribute_names("#checkpoint", CHECKPOINT)
            .expression_attribute_values(":end", s(Checkpoint::ShardEnd.as_str()))
            .send()
            .await;
        match result.condition_checked() {
            Ok(written) => Ok(written.is_some()),
            Err(err) => Err(LeaseTableError::backend(err.into_service_error())),
        }
    }
}
