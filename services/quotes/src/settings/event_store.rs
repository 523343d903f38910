//! Where the events are: the event store's tables and the stream, and the read model.

use clap::Args;
use event_store::dynamodb::TableNames;

use super::heading;
use super::parse::resource_name;

/// The event store and the stream every service reads or appends to.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = heading::EVENT_STORE)]
pub struct EventStoreSettings {
    /// DynamoDB table of the events (one item per event; stream heads; the publication outbox).
    #[arg(long, env = "EVENTS_TABLE", default_value = "quote-events", value_parser = resource_name)]
    pub events_table: String,
    /// DynamoDB table of the idempotency keys (TTL on `expires_at`).
    #[arg(long, env = "IDEMPOTENCY_TABLE", default_value = "quote-idempotency", value_parser = resource_name)]
    pub idempotency_table: String,
    /// Kinesis stream the relays publish every committed event to, and the consumers read.
    #[arg(long, env = "EVENT_STREAM", default_value = "quote-events", value_parser = resource_name)]
    pub event_stream: String,
}

impl EventStoreSettings {
    /// The event store's table names.
    pub fn tables(&self) -> TableNames {
        TableNames {
            events: self.events_table.clone(),
            idempotency: self.idempotency_table.clone(),
        }
    }
}

/// The customer-quotes read model (written by projector, read by event-source).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = heading::READ_MODEL)]
pub struct ReadModelSettings {
    /// DynamoDB table of the customer-quotes read model (event-source reads it, projector writes
    /// it, fulfillment finds the quotes pending past their deadline in its `pending` index).
    #[arg(long, env = "READ_MODEL_TABLE", default_value = "customer-quotes", value_parser = resource_name)]
    pub read_model_table: String,
    /// Seconds a service keeps the read model's routing (which table is live, which are kept in
    /// step: `quotes read-model switch`) before reading it again from READ_MODEL_TABLE.
    #[arg(long, env = "READ_MODEL_ROUTING_SECS", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=300))]
    pub read_model_routing_secs: u64,
}

impl ReadModelSettings {
    /// The home table and how long its routing is cached.
    pub fn tables(&self) -> crate::platform::ReadModelTables {
        crate::platform::ReadModelTables {
            home: self.read_model_table.clone(),
            routing_ttl: std::time::Duration::from_secs(self.read_model_routing_secs),
        }
    }
}
