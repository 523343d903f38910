//! The lease table contract on the in-memory adapter.

use std::sync::Arc;

use kinesis_consumer::lease_table::InMemoryLeaseTable;

kinesis_consumer::lease_table_contract!(async { Arc::new(InMemoryLeaseTable::new()) });
