//! `quotes`: the quote platform in one binary, the way quickwit ships one binary whose services
//! are chosen at start.
//!
//! - `quotes run` runs every service in one process on in-memory adapters (nothing to
//!   install); `quotes run --aws` runs them against DynamoDB and Kinesis; `quotes run
//!   event-source`, `quotes run projector notifier`, … run the named services ([`platform`]).
//! - `quotes healthcheck` is the container health check ([`healthcheck`]).
//! - `quotes bootstrap` creates the AWS resources idempotently ([`bootstrap`]);
//! - `quotes leases --app NAME` prints a consumer application's lease table ([`leases`]);
//! - `quotes relay-dead-letters` prints the records the relays set aside
//!   ([`relay_dead_letters`]);
//! - `quotes dlq list|show|redrive|purge --app APP`: a consumer application's dead letters
//!   ([`dlq`]);
//! - `quotes archive status|backfill`: the event archive, and the events from before it
//!   ([`archive`]);
//! - `quotes consumer rewind --app APP --to POSITION`: a consumer application's checkpoints
//!   moved while it runs (`kinesis_consumer::rewind`);
//! - `quotes outbox status`: commits not yet published and the oldest one's age ([`outbox`]);
//! - `quotes token` mints a bearer token event-source accepts ([`token`]);
//! - `quotes bench ingest` measures `POST /v1/quotes` against a baseline of the same writes
//!   made directly, `quotes bench pipeline` the time from a POST to the priced quote
//!   ([`bench`]).
//!
//! The service crates are libraries; this crate composes them. The binary (`src/main.rs`) only
//! parses the command line ([`cli`]), calls into this library and prints.
//!
//! # Layout
//! - [`cli`]: the command line (clap derive).
//! - [`platform`]: which services run, on which adapters, in this process.
//! - [`settings`]: every setting, declared once (clap with `env`), listings, validation.
//! - [`config`]: what the operations commands work on, from their settings.
//! - [`bootstrap`]: tables and stream, with a per-resource report.
//! - [`leases`]: the lease table as a readable table.
//! - [`relay_dead_letters`]: the relays' dead letters as a readable table.
//! - [`dlq`]: the consumer applications' dead letters: filters, views, redrive, purge.
//! - [`archive`]: the archive's shards, and its backfill from the event store.
//! - [`outbox`]: the publication outbox's backlog.
//! - [`token`]: HS256 token minting.
//! - [`bench`]: the load generators, their baselines and statistics.
//! - [`healthcheck`]: the health probe.

pub mod archive;
pub mod bench;
pub mod bootstrap;
pub mod cli;
pub mod config;
pub mod dlq;
pub mod healthcheck;
pub mod leases;
pub mod outbox;
pub mod platform;
pub mod read_model;
pub mod relay_dead_letters;
pub mod settings;
pub mod token;
