//! The event store contract on the in-memory adapter.

use std::sync::Arc;

use event_store::InMemoryEventStore;

event_store::event_store_contract!(async { Arc::new(InMemoryEventStore::new()) });
event_store::snapshot_store_contract!(async { Arc::new(InMemoryEventStore::new()) });
