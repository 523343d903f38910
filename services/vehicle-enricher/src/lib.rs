//! vehicle-enricher: for each `QuoteRequested`, decodes every VIN and appends `VehicleDecoded`
//! (make, model, model year, body class, vehicle type, and whether vPIC or the VIN itself said
//! so) or `VehicleDecodeFailed`.
//!
//! vPIC lookups have a timeout, retries with jitter and a circuit breaker ([`vpic`]). When vPIC
//! is down or does not know the VIN, the enricher falls back to what the VIN itself says
//! (manufacturer from the WMI, model year from position 10) and records `source: vin_fallback`.
//!
//! # Layout
//! - [`vpic`]: the vPIC client.
//! - [`handler`]: the event handler.

pub mod handler;
pub mod vpic;

pub use handler::VehicleEnricher;
