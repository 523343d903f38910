//! The scaffold every consumer service of the platform runs on.
//!
//! A service is an [`EventHandler`]: it says which event types it wants and handles one event
//! envelope at a time. The scaffold runs it on the lease-coordinated consumer library (its own
//! application and lease table), decodes records, continues each event's trace, and gives the
//! handler an idempotent way to append what it derives ([`HandlerContext::update_stream`]):
//! deterministic event ids, optimistic concurrency with re-decision on conflict, and
//! publication through the relay.
//!
//! # Layout
//! - [`handler`]: the handler trait and its context (loads, derived appends).
//! - [`quote`]: the quote aggregate folded from envelopes, derived domain events.
//! - [`processor`]: the adapter from records to handler calls (decoding, tracing, skipping).
//! - [`stream_sink`]: publication into the in-memory stream (embedded mode).
//! - [`service`]: wiring a handler from the environment (AWS) or in process (embedded).

pub mod handler;
pub mod processor;
pub mod quote;
pub mod service;
pub mod stream_sink;

pub use handler::{
    spawn_periodic, DerivedEvent, EventHandler, HandlerContext, HandlerError, UpdateOutcome,
};
pub use processor::HandlerProcessor;
