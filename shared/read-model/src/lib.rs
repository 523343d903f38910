//! The `customer-quotes` read model: one summary per quote, kept by the projector, read by the
//! API.
//!
//! Every upsert is guarded by the stream version it reflects, so a duplicate or late record can
//! never move a quote backwards. Listing is newest first: quote ids are UUIDv7, so their text
//! sorts by creation time.
//!
//! # Layout
//! - [`model`]: the summary and the port.
//! - [`projection`]: a quote's state as a summary.
//! - [`memory`]: the in-memory adapter.
//! - [`routing`]: which table is live and which are being kept in step beside it (blue/green
//!   rebuilds), read through a short cache.
//! - [`dynamodb`]: the DynamoDB adapter (`READ_MODEL_TABLE`, key `customer_id` + `quote_id`,
//!   GSI `by-quote` on `quote_id`, sparse GSI `pending` of the quotes still pending).
//! - `contract` (feature `contract`): the suite both adapters pass.

pub mod dynamodb;
pub mod memory;
pub mod model;
pub mod projection;
pub mod routing;

#[cfg(feature = "contract")]
pub mod contract;

pub use memory::InMemoryReadModel;
pub use model::{
    ControlDocument, Page, PendingQuote, QuoteSummary, ReadModel, ReadModelError, Upsert,
    VehicleSummary,
};
