//! The read-model contract in memory.

use std::sync::Arc;

quote_read_model::read_model_contract!(async {
    Arc::new(quote_read_model::InMemoryReadModel::new())
});
