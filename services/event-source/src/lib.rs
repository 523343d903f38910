//! event-source: the platform's REST API and the writer of its event store.
//!
//! It validates quote requests, appends `QuoteRequested` to the event store (exact
//! expected-version concurrency, idempotency keys in the same transaction) and hands each
//! commit to the relay, which publishes it to Kinesis in per-quote order with no loss.
//!
//! # Layout
//! - [`config`]: configuration from the environment.
//! - [`auth`]: bearer-token verification (HS256 or JWKS) and dev-token minting.
//! - [`api`]: router, handlers, problem+json errors, OpenAPI, the web pages.
//! - [`ops`]: the operations view (leases, lag, dead letters, outbox), read from the tables.
//! - [`trace_context`]: the W3C trace context recorded in every event.
//! - [`wiring`]: builds the adapters for the configured backend and runs the service.

pub mod api;
pub mod auth;
pub mod config;
pub mod ops;
pub mod trace_context;
pub mod wiring;

pub use wiring::{run, Service};
