//! The object-store port the archive writes segments to, and its in-memory adapter.
//!
//! S3 is the production adapter ([`crate::s3::S3Objects`]); both pass the contract in
//! [`crate::contract`]. A put is durable when it returns (S3's `PutObject` answers after the
//! object is stored redundantly), which is what the archiver checkpoints on.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;

/// Why an object-store call failed. Every failure is worth retrying from the archiver's point
/// of view (the shard waits; nothing is dead-lettered for it), so there is one kind.
#[derive(Debug, thiserror::Error)]
#[error("object store: {operation} {key} failed")]
pub struct ObjectStoreError {
    /// The operation (`PutObject`, `GetObject`, …).
    pub operation: &'static str,
    /// The key or prefix.
    pub key: String,
    /// What the store said.
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

/// Where segments are stored.
#[async_trait]
pub trait ObjectStore: Send + Sync + std::fmt::Debug {
    /// Stores `body` under `key`, replacing any object there.
    async fn put(&self, key: &str, body: Vec<u8>) -> Result<(), ObjectStoreError>;

    /// The object under `key`, if there is one.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, ObjectStoreError>;

    /// The keys that start with `prefix` and sort after `start_after`, in order.
    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
    ) -> Result<Vec<String>, ObjectStoreError>;

    /// Deletes the object under `key` (no error when there is none).
    async fn delete(&self, key: &str) -> Result<(), ObjectStoreError>;
}

/// Objects in memory (the embedded mode and tests).
#[derive(Debug, Default)]
pub struct InMemoryObjects {
    objects: Mutex<BTreeMap<String, Vec<u8>>>,
}

impl InMemoryObjects {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn objects(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Vec<u8>>> {
        // A panic while holding the lock cannot leave the map half-written.
        self.objects
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl ObjectStore for InMemoryObjects {
    async fn put(&self, key: &str, body: Vec<u8>) -> Result<(), ObjectStoreError> {
        self.objects().insert(key.to_owned(), body);
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, ObjectStoreError> {
        Ok(self.objects().get(key).cloned())
    }

    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
    ) -> Result<Vec<String>, ObjectStoreError> {
        Ok(self
            .objects()
            .range(prefix.to_owned()..)
            .map(|(key, _)| key)
            .take_while(|key| key.starts_with(prefix))
            .filter(|key| start_after.is_none_or(|after| key.as_str() > after))
            .cloned()
            .collect())
    }

    async fn delete(&self, key: &str) -> Result<(), ObjectStoreError> {
        self.objects().remove(key);
        Ok(())
    }
}
