//! The quote aggregate: its id, its versioned events, its state and its commands.
//!
//! A quote is one event stream, `quote#<uuid>` ([`QuoteId::stream_id`]), whose first event is
//! always [`QuoteEvent::QuoteRequested`] (from [`request_quote`]), then the enrichment facts
//! about its vehicles and drivers (see [`crate::enrichment`], checked by
//! [`record_enrichment`]), then at most a couple of outcomes decided by [`decide_outcome`]:
//!
//! ```text
//!            ┌──────────► quoted   (QuoteIssued)    final
//! pending ───┼──────────► declined (QuoteDeclined)  final
//!            └─► referred (QuoteReferred) ──► quoted | declined
//! ```
//!
//! A referral sends the quote to an underwriter, who later issues or declines it; issued and
//! declined quotes are final. Enrichment facts do not change the status; they may arrive
//! while the quote is pending or referred, never after a final outcome. [`Quote::fold`]
//! rebuilds the state from the stream and rejects anything else.
//!
//! # Events, schema versions and upcasting
//!
//! Events are stored as `(event_type, schema_version, data)` where `data` is the payload
//! without any tag ([`QuoteEvent::to_data`]). The code only deserializes the *current*
//! version of each payload; [`QuoteEvent::decode`] first lifts older payloads to it by running
//! a chain of upcasters, pure `fn(Value) -> Result<Value, UpcastError>` steps registered by
//! `(event_type, from_version)`, one version at a time.
//!
//! The one upcaster so far is the model for the next ones: `QuoteRequested` v1 carried the
//! notification ceiling as a decimal number of dollars at the top of the payload,
//!
//! ```json
//! {"quote_id": "…", "request": {"notify": {"email": true, "sms": false}, …},
//!  "requested_at": "…", "max_premium_usd": 1800.0}
//! ```
//!
//! and v2 (current) keeps it in the request as whole cents, `request.notify.max_premium:
//! 180000` (see [`Money`]). To change a payload: bump its `SCHEMA_VERSION`, write the
//! `vN → vN+1` function next to the others, register it in `UPCASTERS`, and add a test that
//! decodes a literal old payload. Never edit or remove a registered step: stored events of
//! every past version keep going through it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::{OffsetDateTime, UtcOffset};
use uuid::Uuid;

use crate::enrichment::{
    DriverHistoryRetrieved, DriverHistoryUnavailable, DriverOutcome, Enrichment,
    VehicleDecodeFailed, VehicleDecoded, VehicleOutcome,
};
use crate::premium::{CoverageAmount, RatingFactor};
use crate::request::QuoteRequest;
use crate::types::{CustomerId, LicenseNumber, Money, UsState, Vin};

// ---------------------------------------------------------------------------------------------
// Identity.
// ---------------------------------------------------------------------------------------------

/// The id of a quote: a UUID (v7 when generated here, so ids sort by creation time).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
pub struct QuoteId(Uuid);

/// Why a string is not a [`QuoteId`] or a quote stream id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuoteIdError {
    /// Not a UUID.
    #[error("not a valid quote id (a UUID): {0}")]
    InvalidUuid(#[source] uuid::Error),
    /// A stream id without the `quote#` prefix.
    #[error("not a quote stream id (expected quote#<uuid>)")]
    NotAQuoteStream,
}

impl QuoteId {
    /// Prefix of quote stream ids.
    pub const STREAM_PREFIX: &'static str = "quote#";

    /// A fresh UUID v7 id.
    ///
    /// This is the one function of the crate that reads the system clock (and the OS random
    /// generator), as UUID v7 embeds the creation time; use [`QuoteId::new_v7_at`] to pass the
    /// time in.
    pub fn new_random() -> Self {
        Self(Uuid::now_v7())
    }

    /// A fresh UUID v7 id whose time part is `at` (random bits from the OS generator).
    pub fn new_v7_at(at: OffsetDateTime) -> Self {
        let seconds = u64::try_from(at.unix_timestamp()).unwrap_or(0);
        let ts = uuid::Timestamp::from_unix(uuid::NoContext, seconds, at.nanosecond());
        Self(Uuid::new_v7(ts))
    }

    /// Wraps an existing UUID.
    pub const fn from_uuid(uuid: Uuid) -> Self {
        Self(uuid)
    }

    /// The UUID.
    pub const fn as_uuid(&self) -> Uuid {
        self.0
    }

    /// The event stream of this quote: `quote#<uuid>`.
    pub fn stream_id(&self) -> String {
        format!("{}{}", Self::STREAM_PREFIX, self.0.hyphenated())
    }

    /// Parses a stream id made by [`QuoteId::stream_id`].
    pub fn parse_stream_id(stream_id: &str) -> Result<Self, QuoteIdError> {
        stream_id
            .strip_prefix(Self::STREAM_PREFIX)
            .ok_or(QuoteIdError::NotAQuoteStream)?
            .parse()
    }
}

/// Parses the plain UUID (any form `uuid` accepts, e.g. hyphenated).
impl FromStr for QuoteId {
    type Err = QuoteIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s.trim())
            .map(Self)
            .map_err(QuoteIdError::InvalidUuid)
    }
}

/// The plain hyphenated UUID.
impl fmt::Display for QuoteId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl From<Uuid> for QuoteId {
    fn from(uuid: Uuid) -> Self {
        Self(uuid)
    }
}

impl From<QuoteId> for Uuid {
    fn from(id: QuoteId) -> Self {
        id.0
    }
}

/// Where a quote stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum QuoteStatus {
    /// Requested, being rated.
    Pending,
    /// Issued with a premium (final).
    Quoted,
    /// Declined (final).
    Declined,
    /// Sent to an underwriter, who will issue or decline it.
    Referred,
}

impl QuoteStatus {
    /// The lower-case name.
    pub fn as_str(&self) -> &'static str {
        match self {
            QuoteStatus::Pending => "pending",
            QuoteStatus::Quoted => "quoted",
            QuoteStatus::Declined => "declined",
            QuoteStatus::Referred => "referred",
        }
    }

    /// Whether no further outcome can follow (quoted or declined).
    pub fn is_final(&self) -> bool {
        matches!(self, QuoteStatus::Quoted | QuoteStatus::Declined)
    }

    /// Whether an outcome leading to `to` may follow this status.
    fn can_become(self, to: QuoteStatus) -> bool {
        match self {
            QuoteStatus::Pending => to != QuoteStatus::Pending,
            QuoteStatus::Referred => to.is_final(),
            QuoteStatus::Quoted | QuoteStatus::Declined => false,
        }
    }
}

impl fmt::Display for QuoteStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// ---------------------------------------------------------------------------------------------
// Events.
// ---------------------------------------------------------------------------------------------

/// Payload of `QuoteRequested` (schema version 2): a customer asked for a quote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QuoteRequested {
    /// The quote.
    pub quote_id: QuoteId,
    /// The validated request.
    pub request: QuoteRequest,
    /// When the request was accepted (caller's clock), RFC 3339.
    #[serde(with = "time::serde::rfc3339")]
    pub requested_at: OffsetDateTime,
}

impl QuoteRequested {
    /// The event type name.
    pub const EVENT_TYPE: &'static str = "QuoteRequested";
    /// Current payload schema version (v1 → v2 moved `max_premium_usd` into the request).
    pub const SCHEMA_VERSION: u32 = 2;
}

/// Payload of `QuoteIssued` (schema version 1): the quote was rated and issued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QuoteIssued {
    /// Annual premium.
    pub annual_premium: Money,
    /// The offer expires at this instant, RFC 3339.
    #[serde(with = "time::serde::rfc3339")]
    pub valid_until: OffsetDateTime,
    /// Version of the rating tables used, for audit and reproduction.
    pub rating_table_version: String,
    /// The premium by coverage (adding up to `annual_premium`), when rated automatically.
    /// Optional: absent from payloads written before it existed and from issues without a
    /// rating breakdown (empty, and then left out of the payload).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub breakdown: Vec<CoverageAmount>,
    /// Every rating factor applied, per vehicle and coverage, in the order applied. Optional,
    /// like `breakdown`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub factors: Vec<RatingFactor>,
}

impl QuoteIssued {
    /// The event type name.
    pub const EVENT_TYPE: &'static str = "QuoteIssued";
    /// Current payload schema version (`breakdown` and `factors` were added as optional
    /// fields within version 1).
    pub const SCHEMA_VERSION: u32 = 1;

    /// This event with the rating breakdown attached ([`decide_outcome`] issues without one).
    pub fn with_breakdown(
        mut self,
        breakdown: Vec<CoverageAmount>,
        factors: Vec<RatingFactor>,
    ) -> Self {
        self.breakdown = breakdown;
        self.factors = factors;
        self
    }
}

/// Payload of `QuoteDeclined` (schema version 1): the risk is not accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QuoteDeclined {
    /// Why, as human sentences.
    pub reasons: Vec<String>,
}

impl QuoteDeclined {
    /// The event type name.
    pub const EVENT_TYPE: &'static str = "QuoteDeclined";
    /// Current payload schema version.
    pub const SCHEMA_VERSION: u32 = 1;
}

/// Payload of `QuoteReferred` (schema version 1): an underwriter must decide.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QuoteReferred {
    /// Why, as human sentences.
    pub reasons: Vec<String>,
}

impl QuoteReferred {
    /// The event type name.
    pub const EVENT_TYPE: &'static str = "QuoteReferred";
    /// Current payload schema version.
    pub const SCHEMA_VERSION: u32 = 1;
}

/// Everything that can happen to a quote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuoteEvent {
    /// See [`QuoteRequested`].
    QuoteRequested(QuoteRequested),
    /// See [`VehicleDecoded`].
    VehicleDecoded(VehicleDecoded),
    /// See [`VehicleDecodeFailed`].
    VehicleDecodeFailed(VehicleDecodeFailed),
    /// See [`DriverHistoryRetrieved`].
    DriverHistoryRetrieved(DriverHistoryRetrieved),
    /// See [`DriverHistoryUnavailable`].
    DriverHistoryUnavailable(DriverHistoryUnavailable),
    /// See [`QuoteIssued`].
    QuoteIssued(QuoteIssued),
    /// See [`QuoteDeclined`].
    QuoteDeclined(QuoteDeclined),
    /// See [`QuoteReferred`].
    QuoteReferred(QuoteReferred),
}

/// Why an event could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot encode {event_type}: {message}")]
pub struct EventEncodeError {
    /// The event type.
    pub event_type: &'static str,
    /// What went wrong (e.g. a timestamp RFC 3339 cannot represent).
    pub message: String,
}

/// Why a stored event could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventDecodeError {
    /// Not a quote event type.
    #[error("unknown quote event type {0:?}")]
    UnknownEventType(String),
    /// Written by newer code than this one.
    #[error("{event_type} schema version {version} is newer than the supported version {current}")]
    FutureSchemaVersion {
        /// The event type.
        event_type: String,
        /// The stored version.
        version: u32,
        /// The newest version this code knows.
        current: u32,
    },
    /// No upcaster from this version (e.g. version 0).
    #[error("no upcaster for {event_type} schema version {from_version}")]
    MissingUpcaster {
        /// The event type.
        event_type: String,
        /// The version with no step to the next one.
        from_version: u32,
    },
    /// An upcaster rejected the old payload.
    #[error("cannot upcast {event_type} from schema version {from_version}: {source}")]
    Upcast {
        /// The event type.
        event_type: String,
        /// The version the failing step started from.
        from_version: u32,
        /// The upcaster's error.
        source: UpcastError,
    },
    /// The (upcast) payload does not match the current schema.
    #[error("invalid {event_type} payload: {message}")]
    Payload {
        /// The event type.
        event_type: String,
        /// The deserializer's message.
        message: String,
    },
}

/// An upcaster's reason for rejecting an old payload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UpcastError(pub String);

/// One step of an upcaster chain: lifts a payload from `from_version` to `from_version + 1`.
pub type Upcaster = fn(Value) -> Result<Value, UpcastError>;

/// The upcaster registry: `(event_type, from_version, step)`.
const UPCASTERS: &[(&str, u32, Upcaster)] = &[(
    QuoteRequested::EVENT_TYPE,
    1,
    upcast_quote_requested_v1_to_v2,
)];

/// Largest `max_premium_usd` a v1 payload may carry (keeps cents far from `u64` overflow).
const V1_MAX_PREMIUM_USD: f64 = 1e12;

/// `QuoteRequested` v1 → v2: moves the top-level `max_premium_usd` (decimal dollars, optional)
/// into `request.notify.max_premium` (whole cents, `null` when absent).
fn upcast_quote_requested_v1_to_v2(mut data: Value) -> Result<Value, UpcastError> {
    let payload = data
        .as_object_mut()
        .ok_or_else(|| UpcastError("payload is not a JSON object".into()))?;
    let max_premium = match payload.remove("max_premium_usd") {
        None | Some(Value::Null) => Value::Null,
        Some(usd) => {
            let dollars = usd
                .as_f64()
                .filter(|d| d.is_finite() && (0.0..=V1_MAX_PREMIUM_USD).contains(d))
                .ok_or_else(|| {
                    UpcastError(format!(
                        "max_premium_usd is not an amount of dollars: {usd}"
                    ))
                })?;
            // Rounded and range-checked above, so the cast is exact.
            Value::from((dollars * 100.0).round() as u64)
        }
    };
    let request = payload
        .get_mut("request")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| UpcastError("payload has no request object".into()))?;
    let notify = request
        .entry("notify")
        .or_insert_with(|| Value::Object(serde_json::Map::new()));
    if notify.is_null() {
        *notify = Value::Object(serde_json::Map::new());
    }
    notify
        .as_object_mut()
        .ok_or_else(|| UpcastError("request.notify is not an object".into()))?
        .insert("max_premium".into(), max_premium);
    Ok(data)
}

impl QuoteEvent {
    /// Every event type name, in lifecycle order.
    pub const EVENT_TYPES: [&'static str; 8] = [
        QuoteRequested::EVENT_TYPE,
        VehicleDecoded::EVENT_TYPE,
        VehicleDecodeFailed::EVENT_TYPE,
        DriverHistoryRetrieved::EVENT_TYPE,
        DriverHistoryUnavailable::EVENT_TYPE,
        QuoteIssued::EVENT_TYPE,
        QuoteDeclined::EVENT_TYPE,
        QuoteReferred::EVENT_TYPE,
    ];

    /// The current schema version of `event_type`, or `None` for an unknown type.
    pub fn current_schema_version(event_type: &str) -> Option<u32> {
        match event_type {
            QuoteRequested::EVENT_TYPE => Some(QuoteRequested::SCHEMA_VERSION),
            VehicleDecoded::EVENT_TYPE => Some(VehicleDecoded::SCHEMA_VERSION),
            VehicleDecodeFailed::EVENT_TYPE => Some(VehicleDecodeFailed::SCHEMA_VERSION),
            DriverHistoryRetrieved::EVENT_TYPE => Some(DriverHistoryRetrieved::SCHEMA_VERSION),
            DriverHistoryUnavailable::EVENT_TYPE => Some(DriverHistoryUnavailable::SCHEMA_VERSION),
            QuoteIssued::EVENT_TYPE => Some(QuoteIssued::SCHEMA_VERSION),
            QuoteDeclined::EVENT_TYPE => Some(QuoteDeclined::SCHEMA_VERSION),
            QuoteReferred::EVENT_TYPE => Some(QuoteReferred::SCHEMA_VERSION),
            _ => None,
        }
    }

    /// The event type name, e.g. `QuoteRequested`.
    pub fn event_type(&self) -> &'static str {
        match self {
            QuoteEvent::QuoteRequested(_) => QuoteRequested::EVENT_TYPE,
            QuoteEvent::VehicleDecoded(_) => VehicleDecoded::EVENT_TYPE,
            QuoteEvent::VehicleDecodeFailed(_) => VehicleDecodeFailed::EVENT_TYPE,
            QuoteEvent::DriverHistoryRetrieved(_) => DriverHistoryRetrieved::EVENT_TYPE,
            QuoteEvent::DriverHistoryUnavailable(_) => DriverHistoryUnavailable::EVENT_TYPE,
            QuoteEvent::QuoteIssued(_) => QuoteIssued::EVENT_TYPE,
            QuoteEvent::QuoteDeclined(_) => QuoteDeclined::EVENT_TYPE,
            QuoteEvent::QuoteReferred(_) => QuoteReferred::EVENT_TYPE,
        }
    }

    /// The schema version [`QuoteEvent::to_data`] writes (the current one).
    pub fn schema_version(&self) -> u32 {
        match self {
            QuoteEvent::QuoteRequested(_) => QuoteRequested::SCHEMA_VERSION,
            QuoteEvent::VehicleDecoded(_) => VehicleDecoded::SCHEMA_VERSION,
            QuoteEvent::VehicleDecodeFailed(_) => VehicleDecodeFailed::SCHEMA_VERSION,
            QuoteEvent::DriverHistoryRetrieved(_) => DriverHistoryRetrieved::SCHEMA_VERSION,
            QuoteEvent::DriverHistoryUnavailable(_) => DriverHistoryUnavailable::SCHEMA_VERSION,
            QuoteEvent::QuoteIssued(_) => QuoteIssued::SCHEMA_VERSION,
            QuoteEvent::QuoteDeclined(_) => QuoteDeclined::SCHEMA_VERSION,
            QuoteEvent::QuoteReferred(_) => QuoteReferred::SCHEMA_VERSION,
        }
    }

    /// The payload as JSON, without any type tag.
    ///
    /// Fails only for timestamps RFC 3339 cannot represent (negative years, offsets with
    /// seconds); events made by [`request_quote`] and [`decide_outcome`] are in UTC.
    pub fn to_data(&self) -> Result<Value, EventEncodeError> {
        let result = match self {
            QuoteEvent::QuoteRequested(e) => serde_json::to_value(e),
            QuoteEvent::VehicleDecoded(e) => serde_json::to_value(e),
            QuoteEvent::VehicleDecodeFailed(e) => serde_json::to_value(e),
            QuoteEvent::DriverHistoryRetrieved(e) => serde_json::to_value(e),
            QuoteEvent::DriverHistoryUnavailable(e) => serde_json::to_value(e),
            QuoteEvent::QuoteIssued(e) => serde_json::to_value(e),
            QuoteEvent::QuoteDeclined(e) => serde_json::to_value(e),
            QuoteEvent::QuoteReferred(e) => serde_json::to_value(e),
        };
        result.map_err(|e| EventEncodeError {
            event_type: self.event_type(),
            message: e.to_string(),
        })
    }

    /// Decodes a stored event, upcasting older payloads to the current schema first.
    pub fn decode(
        event_type: &str,
        schema_version: u32,
        data: &Value,
    ) -> Result<QuoteEvent, EventDecodeError> {
        let current = Self::current_schema_version(event_type)
            .ok_or_else(|| EventDecodeError::UnknownEventType(event_type.to_owned()))?;
        if schema_version > current {
            return Err(EventDecodeError::FutureSchemaVersion {
                event_type: event_type.to_owned(),
                version: schema_version,
                current,
            });
        }
        let mut data = data.clone();
        for from_version in schema_version..current {
            let step = UPCASTERS
                .iter()
                .find(|(t, v, _)| *t == event_type && *v == from_version)
                .map(|(_, _, step)| step)
                .ok_or_else(|| EventDecodeError::MissingUpcaster {
                    event_type: event_type.to_owned(),
                    from_version,
                })?;
            data = step(data).map_err(|source| EventDecodeError::Upcast {
                event_type: event_type.to_owned(),
                from_version,
                source,
            })?;
        }
        let payload_error = |e: serde_json::Error| EventDecodeError::Payload {
            event_type: event_type.to_owned(),
            message: e.to_string(),
        };
        match event_type {
            QuoteRequested::EVENT_TYPE => serde_json::from_value(data)
                .map(QuoteEvent::QuoteRequested)
                .map_err(payload_error),
            VehicleDecoded::EVENT_TYPE => serde_json::from_value(data)
                .map(QuoteEvent::VehicleDecoded)
                .map_err(payload_error),
            VehicleDecodeFailed::EVENT_TYPE => serde_json::from_value(data)
                .map(QuoteEvent::VehicleDecodeFailed)
                .map_err(payload_error),
            DriverHistoryRetrieved::EVENT_TYPE => serde_json::from_value(data)
                .map(QuoteEvent::DriverHistoryRetrieved)
                .map_err(payload_error),
            DriverHistoryUnavailable::EVENT_TYPE => serde_json::from_value(data)
                .map(QuoteEvent::DriverHistoryUnavailable)
                .map_err(payload_error),
            QuoteIssued::EVENT_TYPE => serde_json::from_value(data)
                .map(QuoteEvent::QuoteIssued)
                .map_err(payload_error),
            QuoteDeclined::EVENT_TYPE => serde_json::from_value(data)
                .map(QuoteEvent::QuoteDeclined)
                .map_err(payload_error),
            QuoteReferred::EVENT_TYPE => serde_json::from_value(data)
                .map(QuoteEvent::QuoteReferred)
                .map_err(payload_error),
            other => Err(EventDecodeError::UnknownEventType(other.to_owned())),
        }
    }

    /// Whether this is one of the enrichment facts (see [`crate::enrichment`]).
    pub fn is_enrichment(&self) -> bool {
        matches!(
            self,
            QuoteEvent::VehicleDecoded(_)
                | QuoteEvent::VehicleDecodeFailed(_)
                | QuoteEvent::DriverHistoryRetrieved(_)
                | QuoteEvent::DriverHistoryUnavailable(_)
        )
    }

    /// The status a quote has after this outcome event; `None` for events that do not set
    /// the status (the request, enrichment facts).
    fn resulting_status(&self) -> Option<QuoteStatus> {
        match self {
            QuoteEvent::QuoteIssued(_) => Some(QuoteStatus::Quoted),
            QuoteEvent::QuoteDeclined(_) => Some(QuoteStatus::Declined),
            QuoteEvent::QuoteReferred(_) => Some(QuoteStatus::Referred),
            QuoteEvent::QuoteRequested(_)
            | QuoteEvent::VehicleDecoded(_)
            | QuoteEvent::VehicleDecodeFailed(_)
            | QuoteEvent::DriverHistoryRetrieved(_)
            | QuoteEvent::DriverHistoryUnavailable(_) => None,
        }
    }
}

impl From<Enrichment> for QuoteEvent {
    fn from(fact: Enrichment) -> Self {
        match fact {
            Enrichment::VehicleDecoded(e) => QuoteEvent::VehicleDecoded(e),
            Enrichment::VehicleDecodeFailed(e) => QuoteEvent::VehicleDecodeFailed(e),
            Enrichment::DriverHistoryRetrieved(e) => QuoteEvent::DriverHistoryRetrieved(e),
            Enrichment::DriverHistoryUnavailable(e) => QuoteEvent::DriverHistoryUnavailable(e),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// State.
// ---------------------------------------------------------------------------------------------

/// The state of a quote, folded from its events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Quote {
    /// The quote.
    pub quote_id: QuoteId,
    /// Who asked for it.
    pub customer_id: CustomerId,
    /// Where it stands.
    pub status: QuoteStatus,
    /// Stream version of the last applied event (1 after the request).
    pub version: u64,
    /// When it was requested, RFC 3339.
    #[serde(with = "time::serde::rfc3339")]
    pub requested_at: OffsetDateTime,
    /// What was asked.
    pub request: QuoteRequest,
    /// Annual premium, once issued.
    #[serde(default)]
    pub annual_premium: Option<Money>,
    /// Offer expiry, once issued; RFC 3339.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub valid_until: Option<OffsetDateTime>,
    /// Rating tables used, once issued.
    #[serde(default)]
    pub rating_table_version: Option<String>,
    /// Reasons of the last decline or referral (empty otherwise).
    #[serde(default)]
    pub reasons: Vec<String>,
    /// What is known about each requested vehicle, in the order of `request.vehicles`.
    /// (Empty in states serialized before enrichment existed.)
    #[serde(default)]
    pub vehicles: Vec<VehicleOutcome>,
    /// What is known about each requested driver, in the order of `request.drivers`.
    /// (Empty in states serialized before enrichment existed.)
    #[serde(default)]
    pub drivers: Vec<DriverOutcome>,
}

/// Why a sequence of events is not a valid quote history.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FoldError {
    /// The stream does not start with `QuoteRequested`.
    #[error("a quote stream starts with QuoteRequested, not {event_type}")]
    FirstEventNotRequested {
        /// The first event's type.
        event_type: &'static str,
    },
    /// `QuoteRequested` after the first event.
    #[error("QuoteRequested can only be the first event of a quote")]
    AlreadyRequested,
    /// Versions not 1, 2, 3, … in order.
    #[error("expected event version {expected}, got {found}")]
    NonContiguousVersion {
        /// The version that should come next.
        expected: u64,
        /// The version given.
        found: u64,
    },
    /// An outcome the current status does not allow (e.g. after a final outcome), or an
    /// enrichment fact after a final outcome.
    #[error("cannot apply {event_type} to a {from} quote")]
    InvalidTransition {
        /// The status before the event.
        from: QuoteStatus,
        /// The event's type.
        event_type: &'static str,
    },
    /// A vehicle fact about a VIN that is not in the request.
    #[error("{event_type} for VIN {vin}, which is not in the quote request")]
    UnknownVehicle {
        /// The event's type.
        event_type: &'static str,
        /// The VIN.
        vin: Vin,
    },
    /// A driver fact about a licence that is not in the request.
    #[error("{event_type} for licence {license_state} {license_number}, which is not in the quote request")]
    UnknownDriver {
        /// The event's type.
        event_type: &'static str,
        /// The licence's state.
        license_state: UsState,
        /// The licence number.
        license_number: LicenseNumber,
    },
    /// A second vehicle fact that differs from the one already recorded.
    #[error("{event_type} for VIN {vin} conflicts with the outcome already recorded")]
    ConflictingVehicleOutcome {
        /// The event's type.
        event_type: &'static str,
        /// The VIN.
        vin: Vin,
    },
    /// A second driver fact that differs from the one already recorded.
    #[error("{event_type} for licence {license_state} {license_number} conflicts with the outcome already recorded")]
    ConflictingDriverOutcome {
        /// The event's type.
        event_type: &'static str,
        /// The licence's state.
        license_state: UsState,
        /// The licence number.
        license_number: LicenseNumber,
    },
}

impl Quote {
    /// Rebuilds a quote from its events, given with their stream versions (1, 2, …).
    /// `Ok(None)` for an empty stream.
    pub fn fold<'a>(
        events: impl IntoIterator<Item = (u64, &'a QuoteEvent)>,
    ) -> Result<Option<Quote>, FoldError> {
        let mut state: Option<Quote> = None;
        for (version, event) in events {
            match state.as_mut() {
                Some(quote) => quote.apply(version, event)?,
                None => state = Some(Quote::start(version, event)?),
            }
        }
        Ok(state)
    }

    /// The state after the first event, which must be `QuoteRequested` at version 1.
    fn start(version: u64, event: &QuoteEvent) -> Result<Quote, FoldError> {
        let QuoteEvent::QuoteRequested(requested) = event else {
            return Err(FoldError::FirstEventNotRequested {
                event_type: event.event_type(),
            });
        };
        if version != 1 {
            return Err(FoldError::NonContiguousVersion {
                expected: 1,
                found: version,
            });
        }
        Ok(Quote {
            quote_id: requested.quote_id,
            customer_id: requested.request.customer_id.clone(),
            status: QuoteStatus::Pending,
            version,
            requested_at: requested.requested_at,
            request: requested.request.clone(),
            annual_premium: None,
            valid_until: None,
            rating_table_version: None,
            reasons: Vec::new(),
            vehicles: vec![VehicleOutcome::Pending; requested.request.vehicles.len()],
            drivers: vec![DriverOutcome::Pending; requested.request.drivers.len()],
        })
    }

    /// Applies the next event, committed at `version` (must be `self.version + 1`).
    /// On error the state is unchanged.
    pub fn apply(&mut self, version: u64, event: &QuoteEvent) -> Result<(), FoldError> {
        let expected = self.version.saturating_add(1);
        if version != expected {
            return Err(FoldError::NonContiguousVersion {
                expected,
                found: version,
            });
        }
        if matches!(event, QuoteEvent::QuoteRequested(_)) {
            return Err(FoldError::AlreadyRequested);
        }
        if let Some(update) = self.enrichment_update(event)? {
            match update {
                Update::Vehicles(positions, outcome) => {
                    // States serialized before enrichment existed have no outcomes yet.
                    let n = self.request.vehicles.len();
                    if self.vehicles.len() < n {
                        self.vehicles.resize(n, VehicleOutcome::Pending);
                    }
                    for i in positions {
                        self.vehicles[i] = outcome.clone();
                    }
                }
                Update::Drivers(positions, outcome) => {
                    let n = self.request.drivers.len();
                    if self.drivers.len() < n {
                        self.drivers.resize(n, DriverOutcome::Pending);
                    }
                    for i in positions {
                        self.drivers[i] = outcome.clone();
                    }
                }
            }
            self.version = version;
            return Ok(());
        }
        let Some(to) = event.resulting_status() else {
            // Every event without a resulting status was handled above.
            return Err(FoldError::AlreadyRequested);
        };
        if !self.status.can_become(to) {
            return Err(FoldError::InvalidTransition {
                from: self.status,
                event_type: event.event_type(),
            });
        }
        match event {
            QuoteEvent::QuoteIssued(issued) => {
                self.annual_premium = Some(issued.annual_premium);
                self.valid_until = Some(issued.valid_until);
                self.rating_table_version = Some(issued.rating_table_version.clone());
                self.reasons.clear();
            }
            QuoteEvent::QuoteDeclined(QuoteDeclined { reasons })
            | QuoteEvent::QuoteReferred(QuoteReferred { reasons }) => {
                self.reasons.clone_from(reasons);
            }
            QuoteEvent::QuoteRequested(_)
            | QuoteEvent::VehicleDecoded(_)
            | QuoteEvent::VehicleDecodeFailed(_)
            | QuoteEvent::DriverHistoryRetrieved(_)
            | QuoteEvent::DriverHistoryUnavailable(_) => {}
        }
        self.status = to;
        self.version = version;
        Ok(())
    }

    /// For an enrichment fact, what applying it changes: `Ok(None)` for any other event,
    /// `Ok(Some(update))` with no positions for an identical repeat, an error for a fact
    /// about an item not in the request, a conflicting repeat or a quote with a final outcome.
    fn enrichment_update(&self, event: &QuoteEvent) -> Result<Option<Update>, FoldError> {
        if !event.is_enrichment() {
            return Ok(None);
        }
        let event_type = event.event_type();
        if self.status.is_final() {
            return Err(FoldError::InvalidTransition {
                from: self.status,
                event_type,
            });
        }
        let update = match event {
            QuoteEvent::VehicleDecoded(e) => {
                self.vehicle_update(event_type, &e.vin, VehicleOutcome::from(e))?
            }
            QuoteEvent::VehicleDecodeFailed(e) => {
                self.vehicle_update(event_type, &e.vin, VehicleOutcome::from(e))?
            }
            QuoteEvent::DriverHistoryRetrieved(e) => self.driver_update(
                event_type,
                e.license_state,
                &e.license_number,
                DriverOutcome::from(e),
            )?,
            QuoteEvent::DriverHistoryUnavailable(e) => self.driver_update(
                event_type,
                e.license_state,
                &e.license_number,
                DriverOutcome::from(e),
            )?,
            QuoteEvent::QuoteRequested(_)
            | QuoteEvent::QuoteIssued(_)
            | QuoteEvent::QuoteDeclined(_)
            | QuoteEvent::QuoteReferred(_) => return Ok(None),
        };
        Ok(Some(update))
    }

    fn vehicle_update(
        &self,
        event_type: &'static str,
        vin: &Vin,
        outcome: VehicleOutcome,
    ) -> Result<Update, FoldError> {
        let matching: Vec<usize> = (self.request.vehicles.iter().enumerate())
            .filter(|(_, v)| v.vin == *vin)
            .map(|(i, _)| i)
            .collect();
        if matching.is_empty() {
            return Err(FoldError::UnknownVehicle {
                event_type,
                vin: vin.clone(),
            });
        }
        let mut changed = Vec::new();
        for i in matching {
            match self.vehicles.get(i) {
                None | Some(VehicleOutcome::Pending) => changed.push(i),
                Some(known) if *known == outcome => {}
                Some(_) => {
                    return Err(FoldError::ConflictingVehicleOutcome {
                        event_type,
                        vin: vin.clone(),
                    })
                }
            }
        }
        Ok(Update::Vehicles(changed, outcome))
    }

    fn driver_update(
        &self,
        event_type: &'static str,
        license_state: UsState,
        license_number: &LicenseNumber,
        outcome: DriverOutcome,
    ) -> Result<Update, FoldError> {
        let matching: Vec<usize> = (self.request.drivers.iter().enumerate())
            .filter(|(_, d)| {
                d.license_state == license_state && d.license_number == *license_number
            })
            .map(|(i, _)| i)
            .collect();
        if matching.is_empty() {
            return Err(FoldError::UnknownDriver {
                event_type,
                license_state,
                license_number: license_number.clone(),
            });
        }
        let mut changed = Vec::new();
        for i in matching {
            match self.drivers.get(i) {
                None | Some(DriverOutcome::Pending) => changed.push(i),
                Some(known) if *known == outcome => {}
                Some(_) => {
                    return Err(FoldError::ConflictingDriverOutcome {
                        event_type,
                        license_state,
                        license_number: license_number.clone(),
                    })
                }
            }
        }
        Ok(Update::Drivers(changed, outcome))
    }

    /// Whether fulfillment may rate the quote: it is still pending and every requested
    /// vehicle and driver has an outcome (decoded or failed, retrieved or unavailable).
    pub fn ready_for_rating(&self) -> bool {
        self.status == QuoteStatus::Pending
            && self.vehicles.len() == self.request.vehicles.len()
            && self.drivers.len() == self.request.drivers.len()
            && self.vehicles.iter().all(VehicleOutcome::is_known)
            && self.drivers.iter().all(DriverOutcome::is_known)
    }

    /// Human sentences about the vehicles that could not be decoded and the drivers whose
    /// history is unavailable, in request order (vehicles first): the reasons of a referral.
    /// Empty when nothing failed (pending items are not missing yet).
    pub fn missing_data(&self) -> Vec<String> {
        let vehicles = self.request.vehicles.iter().zip(&self.vehicles);
        let drivers = self.request.drivers.iter().zip(&self.drivers);
        vehicles
            .filter_map(|(vehicle, outcome)| match outcome {
                VehicleOutcome::Failed { reason } => Some(format!(
                    "vehicle {}: the vehicle could not be identified{}",
                    vehicle.vin,
                    because(reason)
                )),
                VehicleOutcome::Pending | VehicleOutcome::Decoded { .. } => None,
            })
            .chain(drivers.filter_map(|(driver, outcome)| match outcome {
                DriverOutcome::Unavailable { reason } => Some(format!(
                    "driver {} {}: the driving history is unavailable{}",
                    driver.license_state,
                    driver.license_number,
                    because(reason)
                )),
                DriverOutcome::Pending | DriverOutcome::Retrieved { .. } => None,
            }))
            .collect()
    }

    /// The VINs still waiting for a vehicle fact, in request order.
    pub fn pending_vins(&self) -> Vec<&Vin> {
        self.request
            .vehicles
            .iter()
            .enumerate()
            .filter(|(i, _)| !self.vehicles.get(*i).is_some_and(VehicleOutcome::is_known))
            .map(|(_, v)| &v.vin)
            .collect()
    }

    /// The licences (state and number) still waiting for a driver fact, in request order.
    pub fn pending_licenses(&self) -> Vec<(UsState, &LicenseNumber)> {
        self.request
            .drivers
            .iter()
            .enumerate()
            .filter(|(i, _)| !self.drivers.get(*i).is_some_and(DriverOutcome::is_known))
            .map(|(_, d)| (d.license_state, &d.license_number))
            .collect()
    }

    /// Whether the quote was issued and its offer has expired at `at`.
    pub fn is_expired_at(&self, at: OffsetDateTime) -> bool {
        self.valid_until.is_some_and(|until| until <= at)
    }
}

/// What an enrichment fact changes: the positions (in the request) that get the outcome.
#[derive(Debug)]
enum Update {
    Vehicles(Vec<usize>, VehicleOutcome),
    Drivers(Vec<usize>, DriverOutcome),
}

/// ` (reason)`, or nothing for a blank reason.
fn because(reason: &str) -> String {
    let reason = reason.trim();
    if reason.is_empty() {
        String::new()
    } else {
        format!(" ({reason})")
    }
}

// ---------------------------------------------------------------------------------------------
// Commands.
// ---------------------------------------------------------------------------------------------

/// Decides whether an enricher must append `fact` to the quote in `state`.
///
/// `Ok(Some(event))` when the fact is new; `Ok(None)` when the same fact is already recorded
/// (a redelivered message). An error, the one folding the event would give, when the item is
/// not in the request, when a different fact is already recorded for it, or when the quote
/// already has a final outcome.
pub fn record_enrichment(state: &Quote, fact: Enrichment) -> Result<Option<QuoteEvent>, FoldError> {
    let event = QuoteEvent::from(fact);
    match state.enrichment_update(&event)? {
        Some(Update::Vehicles(changed, _) | Update::Drivers(changed, _)) if changed.is_empty() => {
            Ok(None)
        }
        _ => Ok(Some(event)),
    }
}

/// Ask for a quote: starts a new quote stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestQuote {
    /// The new quote's id.
    pub quote_id: QuoteId,
    /// The validated request.
    pub request: QuoteRequest,
    /// When it was accepted (caller's clock).
    pub requested_at: OffsetDateTime,
}

/// The first event of a quote stream (the timestamp is normalized to UTC).
pub fn request_quote(cmd: RequestQuote) -> QuoteEvent {
    QuoteEvent::QuoteRequested(QuoteRequested {
        quote_id: cmd.quote_id,
        request: cmd.request,
        requested_at: utc(cmd.requested_at),
    })
}

/// The decision of rating or underwriting about a quote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Offer the quote.
    Issue {
        /// Annual premium (more than zero).
        annual_premium: Money,
        /// Offer expiry (after the request time).
        valid_until: OffsetDateTime,
        /// Rating tables used (not blank).
        rating_table_version: String,
    },
    /// Decline the risk.
    Decline {
        /// Why (at least one, none blank).
        reasons: Vec<String>,
    },
    /// Send to an underwriter.
    Refer {
        /// Why (at least one, none blank).
        reasons: Vec<String>,
    },
}

impl Outcome {
    fn status(&self) -> QuoteStatus {
        match self {
            Outcome::Issue { .. } => QuoteStatus::Quoted,
            Outcome::Decline { .. } => QuoteStatus::Declined,
            Outcome::Refer { .. } => QuoteStatus::Referred,
        }
    }
}

/// Why an outcome cannot be recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// The quote already has a different final outcome (or a referral after a final one).
    #[error("the quote is already {current}; it cannot become {attempted}")]
    AlreadyDecided {
        /// The quote's status.
        current: QuoteStatus,
        /// The status the outcome would give.
        attempted: QuoteStatus,
    },
    /// An issued premium of zero.
    #[error("the annual premium must be more than zero")]
    ZeroPremium,
    /// An offer that expires before it was requested.
    #[error("valid_until must be after the request time")]
    ValidUntilNotAfterRequest,
    /// A blank rating table version.
    #[error("the rating table version is required")]
    MissingRatingTableVersion,
    /// A decline or referral without reasons (or with a blank one).
    #[error("at least one non-blank reason is required")]
    MissingReasons,
}

/// Decides whether `outcome` produces an event for the quote in `state`.
///
/// `Ok(None)` when the quote already has that outcome (same kind: the first decision wins, so
/// retries are idempotent even if they recompute e.g. `valid_until`). An error when it already
/// has a different final outcome or when the outcome itself is invalid. Issued quotes and
/// declined quotes are final; referred quotes may still be issued or declined.
pub fn decide_outcome(state: &Quote, outcome: Outcome) -> Result<Option<QuoteEvent>, CommandError> {
    let attempted = outcome.status();
    if state.status == attempted {
        return Ok(None);
    }
    if !state.status.can_become(attempted) {
        return Err(CommandError::AlreadyDecided {
            current: state.status,
            attempted,
        });
    }
    let event = match outcome {
        Outcome::Issue {
            annual_premium,
            valid_until,
            rating_table_version,
        } => {
            if annual_premium == Money::ZERO {
                return Err(CommandError::ZeroPremium);
            }
            if valid_until <= state.requested_at {
                return Err(CommandError::ValidUntilNotAfterRequest);
            }
            if rating_table_version.trim().is_empty() {
                return Err(CommandError::MissingRatingTableVersion);
            }
            QuoteEvent::QuoteIssued(QuoteIssued {
                annual_premium,
                valid_until: utc(valid_until),
                rating_table_version,
                breakdown: Vec::new(),
                factors: Vec::new(),
            })
        }
        Outcome::Decline { reasons } => QuoteEvent::QuoteDeclined(QuoteDeclined {
            reasons: checked_reasons(reasons)?,
        }),
        Outcome::Refer { reasons } => QuoteEvent::QuoteReferred(QuoteReferred {
            reasons: checked_reasons(reasons)?,
        }),
    };
    Ok(Some(event))
}

fn checked_reasons(reasons: Vec<String>) -> Result<Vec<String>, CommandError> {
    if reasons.is_empty() || reasons.iter().any(|r| r.trim().is_empty()) {
        Err(CommandError::MissingReasons)
    } else {
        Ok(reasons)
    }
}

/// The same instant in UTC (unchanged in the unrepresentable edge case).
fn utc(at: OffsetDateTime) -> OffsetDateTime {
    at.checked_to_offset(UtcOffset::UTC).unwrap_or(at)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::request::QuoteRequestInput;
    use serde_json::json;
    use time::macros::{date, datetime};

    const EXAMPLE: &str = r#"{"customer_id": "cust-42",
     "contact": {"email": "ana@example.com", "phone": "+18045550142"},
     "vehicles": [{"vin": "1HGCM82633A004352", "annual_mileage": 12000, "garaging_zip": "23220", "use": "commute"}],
     "drivers": [{"first_name": "Ana", "last_name": "Diaz", "date_of_birth": "1988-03-14", "license_number": "T12345678", "license_state": "VA", "first_licensed": "2006-05-01"}],
     "coverage": {"liability_limit": "100/300/100", "collision_deductible": 500, "comprehensive_deductible": 500},
     "notify": {"email": true, "sms": false, "max_premium": 1800}}"#;

    const REQUESTED_AT: OffsetDateTime = datetime!(2026-11-27 14:30:00.123456 UTC);

    fn request() -> QuoteRequest {
        let input: QuoteRequestInput = serde_json::from_str(EXAMPLE).unwrap();
        QuoteRequest::parse(&input, date!(2026 - 11 - 27)).unwrap()
    }

    fn quote_id() -> QuoteId {
        "0192f0c4-7c1e-7a3b-9c1d-2f6e8a4b5c6d".parse().unwrap()
    }

    fn requested() -> QuoteEvent {
        request_quote(RequestQuote {
            quote_id: quote_id(),
            request: request(),
            requested_at: REQUESTED_AT,
        })
    }

    fn issued() -> QuoteEvent {
        QuoteEvent::QuoteIssued(QuoteIssued {
            annual_premium: Money::from_cents(145_000),
            valid_until: datetime!(2026-12-27 14:30:00 UTC),
            rating_table_version: "2026.11-va".into(),
            breakdown: Vec::new(),
            factors: Vec::new(),
        })
    }

    fn all_events() -> Vec<QuoteEvent> {
        vec![
            requested(),
            issued(),
            QuoteEvent::QuoteDeclined(QuoteDeclined {
                reasons: vec!["too many at-fault accidents".into()],
            }),
            QuoteEvent::QuoteReferred(QuoteReferred {
                reasons: vec!["vehicle value above the automatic limit".into()],
            }),
            decoded(&honda()),
            failed(&honda()),
            retrieved(&ana()),
            unavailable(&ana()),
        ]
    }

    // --- Enrichment fixtures -----------------------------------------------------------------

    use crate::enrichment::{
        Accident, DecodeSource, HistorySource, LicenseStatus, Violation, ViolationKind,
    };

    /// A valid VIN from a body whose position 9 is a placeholder.
    fn valid_vin(body: &str) -> Vin {
        let mut chars: Vec<char> = body.chars().collect();
        chars[8] = Vin::compute_check_digit(body).unwrap();
        Vin::parse(&chars.into_iter().collect::<String>()).unwrap()
    }

    fn honda() -> Vin {
        Vin::parse("1HGCM82633A004352").unwrap()
    }

    fn tesla() -> Vin {
        valid_vin("5YJ3E1EA0KF317000")
    }

    /// Ana's licence: the example's driver.
    fn ana() -> (UsState, LicenseNumber) {
        (
            UsState::parse("VA").unwrap(),
            LicenseNumber::parse("T12345678").unwrap(),
        )
    }

    /// Bo's licence: the second driver of [`two_by_two`].
    fn bo() -> (UsState, LicenseNumber) {
        (
            UsState::parse("MD").unwrap(),
            LicenseNumber::parse("B7654321").unwrap(),
        )
    }

    fn decoded(vin: &Vin) -> QuoteEvent {
        QuoteEvent::VehicleDecoded(VehicleDecoded {
            vin: vin.clone(),
            make: "HONDA".into(),
            model: "Accord".into(),
            model_year: Some(2003),
            body_class: Some("Sedan/Saloon".into()),
            vehicle_type: Some("PASSENGER CAR".into()),
            source: DecodeSource::Vpic,
        })
    }

    fn failed(vin: &Vin) -> QuoteEvent {
        QuoteEvent::VehicleDecodeFailed(VehicleDecodeFailed {
            vin: vin.clone(),
            reason: "vPIC timed out and the WMI is unknown".into(),
        })
    }

    fn retrieved((state, number): &(UsState, LicenseNumber)) -> QuoteEvent {
        QuoteEvent::DriverHistoryRetrieved(DriverHistoryRetrieved {
            license_state: *state,
            license_number: number.clone(),
            license_status: LicenseStatus::Valid,
            accidents: vec![Accident {
                date: date!(2024 - 06 - 01),
                at_fault: false,
            }],
            violations: vec![Violation {
                kind: ViolationKind::Speeding,
                date: date!(2025 - 01 - 15),
            }],
            source: HistorySource::Provider,
        })
    }

    fn unavailable((state, number): &(UsState, LicenseNumber)) -> QuoteEvent {
        QuoteEvent::DriverHistoryUnavailable(DriverHistoryUnavailable {
            license_state: *state,
            license_number: number.clone(),
            reason: "the provider is down".into(),
        })
    }

    /// The example request with a second vehicle (the Tesla) and a second driver (Bo).
    fn two_by_two() -> QuoteEvent {
        let mut input: QuoteRequestInput = serde_json::from_str(EXAMPLE).unwrap();
        let mut vehicle = input.vehicles[0].clone();
        vehicle.vin = tesla().to_string();
        input.vehicles.push(vehicle);
        let mut driver = input.drivers[0].clone();
        driver.first_name = "Bo".into();
        driver.license_state = bo().0.to_string();
        driver.license_number = bo().1.to_string();
        input.drivers.push(driver);
        request_quote(RequestQuote {
            quote_id: quote_id(),
            request: QuoteRequest::parse(&input, date!(2026 - 11 - 27)).unwrap(),
            requested_at: REQUESTED_AT,
        })
    }

    /// Folds `events` with versions 1, 2, …
    fn fold_all(events: &[QuoteEvent]) -> Result<Option<Quote>, FoldError> {
        Quote::fold(events.iter().enumerate().map(|(i, e)| (i as u64 + 1, e)))
    }

    fn pending() -> Quote {
        Quote::fold([(1, &requested())]).unwrap().unwrap()
    }

    #[test]
    fn quote_ids() {
        let id = quote_id();
        assert_eq!(id.to_string(), "0192f0c4-7c1e-7a3b-9c1d-2f6e8a4b5c6d");
        assert_eq!(id.stream_id(), "quote#0192f0c4-7c1e-7a3b-9c1d-2f6e8a4b5c6d");
        assert_eq!(QuoteId::parse_stream_id(&id.stream_id()), Ok(id));
        assert_eq!(
            QuoteId::parse_stream_id("policy#0192f0c4-7c1e-7a3b-9c1d-2f6e8a4b5c6d"),
            Err(QuoteIdError::NotAQuoteStream)
        );
        assert!(matches!(
            QuoteId::parse_stream_id("quote#nope"),
            Err(QuoteIdError::InvalidUuid(_))
        ));
        assert_eq!(
            serde_json::to_value(id).unwrap(),
            json!("0192f0c4-7c1e-7a3b-9c1d-2f6e8a4b5c6d")
        );
        let random = QuoteId::new_random();
        assert_eq!(random.as_uuid().get_version_num(), 7);
        assert_ne!(random, QuoteId::new_random());
        let at = QuoteId::new_v7_at(REQUESTED_AT);
        assert_eq!(at.as_uuid().get_version_num(), 7);
        let (secs, _) = at.as_uuid().get_timestamp().unwrap().to_unix();
        assert_eq!(secs, REQUESTED_AT.unix_timestamp() as u64);
    }

    #[test]
    fn statuses() {
        assert_eq!(
            serde_json::to_value(QuoteStatus::Referred).unwrap(),
            json!("referred")
        );
        assert_eq!(QuoteStatus::Quoted.to_string(), "quoted");
        assert!(QuoteStatus::Declined.is_final());
        assert!(!QuoteStatus::Referred.is_final());
    }

    #[test]
    fn every_event_round_trips() {
        for event in all_events() {
            let data = event.to_data().unwrap();
            assert!(data.get("type").is_none() && data.get(event.event_type()).is_none());
            let back =
                QuoteEvent::decode(event.event_type(), event.schema_version(), &data).unwrap();
            assert_eq!(back, event);
        }
        assert_eq!(requested().event_type(), "QuoteRequested");
        assert_eq!(requested().schema_version(), 2);
        assert_eq!(issued().schema_version(), 1);
    }

    #[test]
    fn payload_shapes() {
        let data = requested().to_data().unwrap();
        assert_eq!(data["requested_at"], "2026-11-27T14:30:00.123456Z");
        assert_eq!(data["request"]["notify"]["max_premium"], 180_000);
        let data = issued().to_data().unwrap();
        assert_eq!(
            data,
            json!({"annual_premium": 145_000, "valid_until": "2026-12-27T14:30:00Z",
                   "rating_table_version": "2026.11-va"})
        );
    }

    #[test]
    fn issued_breakdown_is_optional_and_round_trips() {
        use crate::premium::{CoverageAmount, RatingFactor};
        // A payload written before the breakdown existed decodes with none.
        let old = json!({"annual_premium": 145_000, "valid_until": "2026-12-27T14:30:00Z",
                         "rating_table_version": "2026.11-va"});
        assert_eq!(
            QuoteEvent::decode("QuoteIssued", 1, &old).unwrap(),
            issued()
        );
        let QuoteEvent::QuoteIssued(plain) = issued() else {
            unreachable!()
        };
        let rated = plain.with_breakdown(
            vec![
                CoverageAmount::new("liability", Money::from_cents(100_000)),
                CoverageAmount::new("collision", Money::from_cents(45_000)),
            ],
            vec![RatingFactor {
                name: "territory".into(),
                applies_to: "vehicles[0].liability".into(),
                detail: "vehicles[0]: ZIP prefix 232".into(),
                value: 1.1,
            }],
        );
        let event = QuoteEvent::QuoteIssued(rated);
        let data = event.to_data().unwrap();
        assert_eq!(
            data["breakdown"][1],
            json!({"coverage": "collision", "amount": 45_000})
        );
        assert_eq!(data["factors"][0]["value"], 1.1);
        assert_eq!(QuoteEvent::decode("QuoteIssued", 1, &data).unwrap(), event);
        // The state does not depend on the breakdown.
        let mut with = pending();
        with.apply(2, &event).unwrap();
        let mut without = pending();
        without.apply(2, &issued()).unwrap();
        assert_eq!(with, without);
    }

    #[test]
    fn registry_has_a_complete_chain_for_every_type() {
        for event_type in QuoteEvent::EVENT_TYPES {
            let current = QuoteEvent::current_schema_version(event_type).unwrap();
            for v in 1..current {
                assert!(
                    UPCASTERS
                        .iter()
                        .any(|(t, from, _)| *t == event_type && *from == v),
                    "{event_type} v{v}"
                );
            }
        }
    }

    fn v1_payload(max_premium_usd: Value) -> Value {
        let mut data = requested().to_data().unwrap();
        let payload = data.as_object_mut().unwrap();
        payload["request"]["notify"]
            .as_object_mut()
            .unwrap()
            .remove("max_premium");
        if !max_premium_usd.is_null() {
            payload.insert("max_premium_usd".into(), max_premium_usd);
        }
        data
    }

    #[test]
    fn quote_requested_v1_is_upcast_to_v2() {
        let v1 = v1_payload(json!(1800.0));
        assert!(v1["request"]["notify"].get("max_premium").is_none());
        let event = QuoteEvent::decode("QuoteRequested", 1, &v1).unwrap();
        assert_eq!(event, requested());

        let QuoteEvent::QuoteRequested(e) =
            QuoteEvent::decode("QuoteRequested", 1, &v1_payload(json!(99.995))).unwrap()
        else {
            panic!("not QuoteRequested");
        };
        assert_eq!(
            e.request.notify.max_premium,
            Some(Money::from_cents(10_000))
        );

        let QuoteEvent::QuoteRequested(e) =
            QuoteEvent::decode("QuoteRequested", 1, &v1_payload(Value::Null)).unwrap()
        else {
            panic!("not QuoteRequested");
        };
        assert_eq!(e.request.notify.max_premium, None);

        // A v1 payload without notify at all.
        let mut bare = v1_payload(json!(10));
        bare["request"].as_object_mut().unwrap().remove("notify");
        let QuoteEvent::QuoteRequested(e) = QuoteEvent::decode("QuoteRequested", 1, &bare).unwrap()
        else {
            panic!("not QuoteRequested");
        };
        assert_eq!(e.request.notify.max_premium, Some(Money::from_cents(1_000)));
        assert!(!e.request.notify.email);
    }

    #[test]
    fn upcaster_errors_are_typed() {
        let err = QuoteEvent::decode("QuoteRequested", 1, &v1_payload(json!(-5))).unwrap_err();
        assert!(
            matches!(&err, EventDecodeError::Upcast { event_type, from_version: 1, .. } if event_type == "QuoteRequested"),
            "{err}"
        );
        let err = QuoteEvent::decode("QuoteRequested", 1, &json!([1, 2])).unwrap_err();
        assert!(matches!(err, EventDecodeError::Upcast { .. }));
    }

    #[test]
    fn decode_errors_are_typed() {
        assert_eq!(
            QuoteEvent::decode("PolicyBound", 1, &json!({})),
            Err(EventDecodeError::UnknownEventType("PolicyBound".into()))
        );
        assert_eq!(
            QuoteEvent::decode("QuoteRequested", 3, &json!({})),
            Err(EventDecodeError::FutureSchemaVersion {
                event_type: "QuoteRequested".into(),
                version: 3,
                current: 2
            })
        );
        assert_eq!(
            QuoteEvent::decode("QuoteIssued", 2, &json!({})),
            Err(EventDecodeError::FutureSchemaVersion {
                event_type: "QuoteIssued".into(),
                version: 2,
                current: 1
            })
        );
        assert_eq!(
            QuoteEvent::decode("QuoteIssued", 0, &json!({})),
            Err(EventDecodeError::MissingUpcaster {
                event_type: "QuoteIssued".into(),
                from_version: 0
            })
        );
        let err =
            QuoteEvent::decode("QuoteIssued", 1, &json!({"annual_premium": "lots"})).unwrap_err();
        assert!(matches!(err, EventDecodeError::Payload { .. }), "{err}");
        // A stored VIN that no longer parses is a payload error, not a panic.
        let mut data = requested().to_data().unwrap();
        data["request"]["vehicles"][0]["vin"] = json!("1HGCM82633A004353");
        let err = QuoteEvent::decode("QuoteRequested", 2, &data).unwrap_err();
        assert!(err.to_string().contains("check digit"), "{err}");
    }

    #[test]
    fn fold_requested_then_issued() {
        let events = [requested(), issued()];
        let quote = Quote::fold(events.iter().enumerate().map(|(i, e)| (i as u64 + 1, e)))
            .unwrap()
            .unwrap();
        assert_eq!(quote.status, QuoteStatus::Quoted);
        assert_eq!(quote.version, 2);
        assert_eq!(quote.annual_premium, Some(Money::from_cents(145_000)));
        assert_eq!(quote.valid_until, Some(datetime!(2026-12-27 14:30:00 UTC)));
        assert_eq!(quote.rating_table_version.as_deref(), Some("2026.11-va"));
        assert_eq!(quote.customer_id.as_str(), "cust-42");
        assert_eq!(quote.requested_at, REQUESTED_AT);
        assert!(!quote.is_expired_at(datetime!(2026-12-27 14:29:59 UTC)));
        assert!(quote.is_expired_at(datetime!(2026-12-27 14:30:00 UTC)));
        let json = serde_json::to_value(&quote).unwrap();
        assert_eq!(json["status"], "quoted");
        assert_eq!(serde_json::from_value::<Quote>(json).unwrap(), quote);
    }

    #[test]
    fn fold_of_nothing_is_none() {
        assert_eq!(Quote::fold([]), Ok(None));
    }

    #[test]
    fn fold_errors() {
        let req = requested();
        let iss = issued();
        let dec = all_events()[2].clone();
        let refd = all_events()[3].clone();
        assert_eq!(
            Quote::fold([(1, &iss)]),
            Err(FoldError::FirstEventNotRequested {
                event_type: "QuoteIssued"
            })
        );
        assert_eq!(
            Quote::fold([(0, &req)]),
            Err(FoldError::NonContiguousVersion {
                expected: 1,
                found: 0
            })
        );
        assert_eq!(
            Quote::fold([(1, &req), (2, &req)]),
            Err(FoldError::AlreadyRequested)
        );
        assert_eq!(
            Quote::fold([(1, &req), (3, &iss)]),
            Err(FoldError::NonContiguousVersion {
                expected: 2,
                found: 3
            })
        );
        assert_eq!(
            Quote::fold([(1, &req), (2, &iss), (3, &dec)]),
            Err(FoldError::InvalidTransition {
                from: QuoteStatus::Quoted,
                event_type: "QuoteDeclined"
            })
        );
        assert_eq!(
            Quote::fold([(1, &req), (2, &refd), (3, &refd)]),
            Err(FoldError::InvalidTransition {
                from: QuoteStatus::Referred,
                event_type: "QuoteReferred"
            })
        );
        // Referral then underwriter decision.
        let quote = Quote::fold([(1, &req), (2, &refd), (3, &iss)])
            .unwrap()
            .unwrap();
        assert_eq!(quote.status, QuoteStatus::Quoted);
        assert_eq!(quote.version, 3);
        assert!(quote.reasons.is_empty());

        // A failed apply leaves the state untouched.
        let mut quote = pending();
        let before = quote.clone();
        assert!(quote.apply(5, &iss).is_err());
        assert_eq!(quote, before);
    }

    #[test]
    fn request_quote_normalizes_to_utc() {
        let QuoteEvent::QuoteRequested(e) = request_quote(RequestQuote {
            quote_id: quote_id(),
            request: request(),
            requested_at: datetime!(2026-11-27 09:30:00.123456 -5),
        }) else {
            panic!("not QuoteRequested");
        };
        assert_eq!(e.requested_at.offset(), UtcOffset::UTC);
        assert_eq!(e.requested_at, REQUESTED_AT);
    }

    fn issue() -> Outcome {
        Outcome::Issue {
            annual_premium: Money::from_cents(145_000),
            valid_until: datetime!(2026-12-27 14:30:00 UTC),
            rating_table_version: "2026.11-va".into(),
        }
    }

    #[test]
    fn decide_outcome_emits_then_is_idempotent() {
        let mut quote = pending();
        let event = decide_outcome(&quote, issue()).unwrap().unwrap();
        assert_eq!(event, issued());
        quote.apply(2, &event).unwrap();
        // Retried with a recomputed expiry: same outcome, nothing new.
        let retry = Outcome::Issue {
            annual_premium: Money::from_cents(145_000),
            valid_until: datetime!(2026-12-28 00:00:00 UTC),
            rating_table_version: "2026.11-va".into(),
        };
        assert_eq!(decide_outcome(&quote, retry), Ok(None));
        assert_eq!(
            decide_outcome(
                &quote,
                Outcome::Decline {
                    reasons: vec!["no".into()]
                }
            ),
            Err(CommandError::AlreadyDecided {
                current: QuoteStatus::Quoted,
                attempted: QuoteStatus::Declined
            })
        );
        assert!(matches!(
            decide_outcome(
                &quote,
                Outcome::Refer {
                    reasons: vec!["x".into()]
                }
            ),
            Err(CommandError::AlreadyDecided { .. })
        ));
    }

    #[test]
    fn referred_quotes_can_still_be_decided() {
        let mut quote = pending();
        let refer = Outcome::Refer {
            reasons: vec!["high value vehicle".into()],
        };
        let event = decide_outcome(&quote, refer.clone()).unwrap().unwrap();
        quote.apply(2, &event).unwrap();
        assert_eq!(quote.reasons, ["high value vehicle"]);
        assert_eq!(decide_outcome(&quote, refer), Ok(None));
        let event = decide_outcome(
            &quote,
            Outcome::Decline {
                reasons: vec!["underwriter declined".into()],
            },
        )
        .unwrap()
        .unwrap();
        quote.apply(3, &event).unwrap();
        assert_eq!(quote.status, QuoteStatus::Declined);
        assert_eq!(quote.reasons, ["underwriter declined"]);
    }

    #[test]
    fn invalid_outcomes_are_rejected() {
        let quote = pending();
        let cases = [
            (
                Outcome::Issue {
                    annual_premium: Money::ZERO,
                    valid_until: datetime!(2026-12-27 0:00 UTC),
                    rating_table_version: "v".into(),
                },
                CommandError::ZeroPremium,
            ),
            (
                Outcome::Issue {
                    annual_premium: Money::from_cents(1),
                    valid_until: REQUESTED_AT,
                    rating_table_version: "v".into(),
                },
                CommandError::ValidUntilNotAfterRequest,
            ),
            (
                Outcome::Issue {
                    annual_premium: Money::from_cents(1),
                    valid_until: datetime!(2026-12-27 0:00 UTC),
                    rating_table_version: " ".into(),
                },
                CommandError::MissingRatingTableVersion,
            ),
            (
                Outcome::Decline { reasons: vec![] },
                CommandError::MissingReasons,
            ),
            (
                Outcome::Refer {
                    reasons: vec!["ok".into(), "".into()],
                },
                CommandError::MissingReasons,
            ),
        ];
        for (outcome, err) in cases {
            assert_eq!(decide_outcome(&quote, outcome), Err(err));
        }
    }

    #[test]
    fn encoding_an_unrepresentable_timestamp_is_an_error() {
        let event = QuoteEvent::QuoteIssued(QuoteIssued {
            annual_premium: Money::from_cents(1),
            valid_until: datetime!(-0001-01-01 0:00 UTC),
            rating_table_version: "v".into(),
            breakdown: Vec::new(),
            factors: Vec::new(),
        });
        let err = event.to_data().unwrap_err();
        assert_eq!(err.event_type, "QuoteIssued");
    }

    // --- Enrichment ----------------------------------------------------------------------------

    #[test]
    fn enrichment_payload_shapes() {
        assert_eq!(
            decoded(&honda()).to_data().unwrap(),
            json!({"vin": "1HGCM82633A004352", "make": "HONDA", "model": "Accord",
                   "model_year": 2003, "body_class": "Sedan/Saloon",
                   "vehicle_type": "PASSENGER CAR", "source": "vpic"})
        );
        assert_eq!(
            retrieved(&ana()).to_data().unwrap(),
            json!({"license_state": "VA", "license_number": "T12345678",
                   "license_status": "valid",
                   "accidents": [{"date": "2024-06-01", "at_fault": false}],
                   "violations": [{"kind": "speeding", "date": "2025-01-15"}],
                   "source": "provider"})
        );
        assert_eq!(
            unavailable(&ana()).to_data().unwrap(),
            json!({"license_state": "VA", "license_number": "T12345678",
                   "reason": "the provider is down"})
        );
        // Optional fields and empty lists may be absent.
        let event = QuoteEvent::decode(
            "VehicleDecoded",
            1,
            &json!({"vin": "1HGCM82633A004352", "make": "Honda", "model": "",
                    "source": "vin_fallback"}),
        )
        .unwrap();
        let QuoteEvent::VehicleDecoded(e) = event else {
            panic!("not VehicleDecoded");
        };
        assert_eq!(
            (e.model_year, e.body_class, e.vehicle_type),
            (None, None, None)
        );
        assert_eq!(e.source, DecodeSource::VinFallback);
        let event = QuoteEvent::decode(
            "DriverHistoryRetrieved",
            1,
            &json!({"license_state": "va", "license_number": "t12345678",
                    "license_status": "suspended", "source": "simulated"}),
        )
        .unwrap();
        let QuoteEvent::DriverHistoryRetrieved(e) = event else {
            panic!("not DriverHistoryRetrieved");
        };
        assert_eq!((e.license_state, e.license_number), ana());
        assert!(e.accidents.is_empty() && e.violations.is_empty());
    }

    #[test]
    fn enrichment_events_have_version_1_and_typed_decode_errors() {
        for event in &all_events()[4..] {
            assert!(event.is_enrichment());
            assert_eq!(event.schema_version(), 1);
            assert_eq!(
                QuoteEvent::current_schema_version(event.event_type()),
                Some(1)
            );
            assert!(QuoteEvent::EVENT_TYPES.contains(&event.event_type()));
            let data = event.to_data().unwrap();
            assert!(matches!(
                QuoteEvent::decode(event.event_type(), 2, &data),
                Err(EventDecodeError::FutureSchemaVersion {
                    version: 2,
                    current: 1,
                    ..
                })
            ));
            assert!(matches!(
                QuoteEvent::decode(event.event_type(), 0, &data),
                Err(EventDecodeError::MissingUpcaster {
                    from_version: 0,
                    ..
                })
            ));
        }
        assert!(!requested().is_enrichment() && !issued().is_enrichment());
        let names: Vec<&str> = all_events()[4..]
            .iter()
            .map(QuoteEvent::event_type)
            .collect();
        assert_eq!(
            names,
            [
                "VehicleDecoded",
                "VehicleDecodeFailed",
                "DriverHistoryRetrieved",
                "DriverHistoryUnavailable"
            ]
        );
        let err = QuoteEvent::decode(
            "VehicleDecodeFailed",
            1,
            &json!({"vin": "1HGCM82633A004353", "reason": "x"}),
        )
        .unwrap_err();
        assert!(matches!(err, EventDecodeError::Payload { .. }), "{err}");
        let err = QuoteEvent::decode(
            "DriverHistoryRetrieved",
            1,
            &json!({"license_state": "VA", "license_number": "T1", "license_status": "valid",
                    "accidents": [{"date": "2024-13-01", "at_fault": true}],
                    "source": "provider"}),
        )
        .unwrap_err();
        assert!(matches!(err, EventDecodeError::Payload { .. }), "{err}");
        let err = QuoteEvent::decode(
            "DriverHistoryRetrieved",
            1,
            &json!({"license_state": "VA", "license_number": "T1", "license_status": "valid",
                    "violations": [{"kind": "jaywalking", "date": "2024-01-01"}],
                    "source": "provider"}),
        )
        .unwrap_err();
        assert!(matches!(err, EventDecodeError::Payload { .. }), "{err}");
    }

    #[test]
    fn requested_quotes_start_with_pending_items() {
        let quote = fold_all(&[two_by_two()]).unwrap().unwrap();
        assert_eq!(quote.vehicles, vec![VehicleOutcome::Pending; 2]);
        assert_eq!(quote.drivers, vec![DriverOutcome::Pending; 2]);
        assert!(!quote.ready_for_rating());
        assert!(quote.missing_data().is_empty());
        assert_eq!(quote.pending_vins(), [&honda(), &tesla()]);
        let (va, t1) = ana();
        let (md, b7) = bo();
        assert_eq!(quote.pending_licenses(), [(va, &t1), (md, &b7)]);
        let json = serde_json::to_value(&quote).unwrap();
        assert_eq!(
            json["vehicles"],
            json!([{"status": "pending"}, {"status": "pending"}])
        );
        assert_eq!(serde_json::from_value::<Quote>(json).unwrap(), quote);
    }

    #[test]
    fn fold_requested_enriched_then_ready_for_rating() {
        let mut events = vec![two_by_two(), decoded(&honda()), decoded(&tesla())];
        let quote = fold_all(&events).unwrap().unwrap();
        assert!(!quote.ready_for_rating(), "drivers are still pending");
        assert!(quote.pending_vins().is_empty());
        events.push(retrieved(&ana()));
        let quote = fold_all(&events).unwrap().unwrap();
        assert!(!quote.ready_for_rating());
        assert_eq!(quote.pending_licenses(), [(bo().0, &bo().1)]);
        events.push(retrieved(&bo()));
        let quote = fold_all(&events).unwrap().unwrap();
        assert!(quote.ready_for_rating());
        assert_eq!(quote.status, QuoteStatus::Pending);
        assert_eq!(quote.version, 5);
        assert!(quote.missing_data().is_empty());
        let QuoteEvent::VehicleDecoded(e) = decoded(&tesla()) else {
            unreachable!()
        };
        assert_eq!(quote.vehicles[1], VehicleOutcome::from(&e));
        assert!(matches!(
            &quote.drivers[0],
            DriverOutcome::Retrieved { license_status: LicenseStatus::Valid, accidents, .. }
                if accidents.len() == 1
        ));
        let json = serde_json::to_value(&quote).unwrap();
        assert_eq!(json["vehicles"][0]["status"], "decoded");
        assert_eq!(json["drivers"][1]["status"], "retrieved");
        assert_eq!(serde_json::from_value::<Quote>(json).unwrap(), quote);

        // Rated: no longer ready.
        let mut quote = quote;
        quote.apply(6, &issued()).unwrap();
        assert!(!quote.ready_for_rating());
    }

    #[test]
    fn failures_count_as_outcomes_and_are_the_missing_data() {
        let events = [
            two_by_two(),
            failed(&tesla()),
            decoded(&honda()),
            unavailable(&bo()),
            retrieved(&ana()),
        ];
        let quote = fold_all(&events).unwrap().unwrap();
        assert!(quote.ready_for_rating());
        assert_eq!(
            quote.missing_data(),
            [
                format!(
                    "vehicle {}: the vehicle could not be identified (vPIC timed out and the WMI is unknown)",
                    tesla()
                ),
                "driver MD B7654321: the driving history is unavailable (the provider is down)"
                    .to_owned(),
            ]
        );
        // The missing data is a valid referral.
        let event = decide_outcome(
            &quote,
            Outcome::Refer {
                reasons: quote.missing_data(),
            },
        )
        .unwrap()
        .unwrap();
        assert!(matches!(event, QuoteEvent::QuoteReferred(_)));
    }

    #[test]
    fn mismatched_vin_or_licence_is_rejected() {
        let other = valid_vin("5YJ3E1EA0KF317001");
        assert_eq!(
            fold_all(&[requested(), decoded(&other)]),
            Err(FoldError::UnknownVehicle {
                event_type: "VehicleDecoded",
                vin: other.clone()
            })
        );
        assert!(matches!(
            fold_all(&[requested(), failed(&other)]),
            Err(FoldError::UnknownVehicle {
                event_type: "VehicleDecodeFailed",
                ..
            })
        ));
        // Same number, other state: another licence.
        let (_, number) = ana();
        let md = (UsState::parse("MD").unwrap(), number);
        let err = fold_all(&[requested(), retrieved(&md)]).unwrap_err();
        assert_eq!(
            err,
            FoldError::UnknownDriver {
                event_type: "DriverHistoryRetrieved",
                license_state: md.0,
                license_number: md.1.clone()
            }
        );
        assert_eq!(
            err.to_string(),
            "DriverHistoryRetrieved for licence MD T12345678, which is not in the quote request"
        );
        assert!(matches!(
            fold_all(&[requested(), unavailable(&bo())]),
            Err(FoldError::UnknownDriver { .. })
        ));
        // A failed apply leaves the state untouched.
        let mut quote = pending();
        let before = quote.clone();
        assert!(quote.apply(2, &decoded(&other)).is_err());
        assert_eq!(quote, before);
    }

    #[test]
    fn identical_duplicate_is_ignored() {
        let once = fold_all(&[requested(), decoded(&honda()), retrieved(&ana())])
            .unwrap()
            .unwrap();
        let twice = fold_all(&[
            requested(),
            decoded(&honda()),
            decoded(&honda()),
            retrieved(&ana()),
            retrieved(&ana()),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(twice.version, 5);
        assert_eq!(
            Quote {
                version: 3,
                ..twice
            },
            once
        );
        assert!(once.ready_for_rating());
        // Failures too.
        let failures = [requested(), failed(&honda()), failed(&honda())];
        assert!(fold_all(&failures).is_ok());
    }

    #[test]
    fn conflicting_duplicate_is_rejected() {
        assert_eq!(
            fold_all(&[requested(), decoded(&honda()), failed(&honda())]),
            Err(FoldError::ConflictingVehicleOutcome {
                event_type: "VehicleDecodeFailed",
                vin: honda()
            })
        );
        let mut other_model = decoded(&honda());
        if let QuoteEvent::VehicleDecoded(e) = &mut other_model {
            e.model = "Civic".into();
        }
        let err = fold_all(&[requested(), decoded(&honda()), other_model]).unwrap_err();
        assert!(matches!(err, FoldError::ConflictingVehicleOutcome { .. }));
        assert_eq!(
            err.to_string(),
            "VehicleDecoded for VIN 1HGCM82633A004352 conflicts with the outcome already recorded"
        );
        assert_eq!(
            fold_all(&[requested(), unavailable(&ana()), retrieved(&ana())]),
            Err(FoldError::ConflictingDriverOutcome {
                event_type: "DriverHistoryRetrieved",
                license_state: ana().0,
                license_number: ana().1
            })
        );
        let mut other_history = retrieved(&ana());
        if let QuoteEvent::DriverHistoryRetrieved(e) = &mut other_history {
            e.accidents.clear();
        }
        assert!(matches!(
            fold_all(&[requested(), retrieved(&ana()), other_history]),
            Err(FoldError::ConflictingDriverOutcome { .. })
        ));
    }

    #[test]
    fn enrichment_after_a_final_outcome_is_rejected() {
        assert_eq!(
            fold_all(&[requested(), issued(), decoded(&honda())]),
            Err(FoldError::InvalidTransition {
                from: QuoteStatus::Quoted,
                event_type: "VehicleDecoded"
            })
        );
        let declined = all_events()[2].clone();
        // Even an identical repeat.
        assert!(matches!(
            fold_all(&[requested(), retrieved(&ana()), declined, retrieved(&ana())]),
            Err(FoldError::InvalidTransition {
                from: QuoteStatus::Declined,
                ..
            })
        ));
        // A referred quote may still learn facts, and keeps its status.
        let referred = all_events()[3].clone();
        let quote = fold_all(&[
            requested(),
            referred,
            decoded(&honda()),
            unavailable(&ana()),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(quote.status, QuoteStatus::Referred);
        assert!(!quote.ready_for_rating(), "only pending quotes are rated");
        assert_eq!(quote.missing_data().len(), 1);
    }

    #[test]
    fn record_enrichment_appends_only_new_facts() {
        let fact = |e: QuoteEvent| match e {
            QuoteEvent::VehicleDecoded(e) => Enrichment::from(e),
            QuoteEvent::VehicleDecodeFailed(e) => Enrichment::from(e),
            QuoteEvent::DriverHistoryRetrieved(e) => Enrichment::from(e),
            QuoteEvent::DriverHistoryUnavailable(e) => Enrichment::from(e),
            other => panic!("not an enrichment: {other:?}"),
        };
        let mut quote = pending();
        let event = record_enrichment(&quote, fact(decoded(&honda())))
            .unwrap()
            .unwrap();
        assert_eq!(event, decoded(&honda()));
        quote.apply(2, &event).unwrap();
        assert_eq!(record_enrichment(&quote, fact(decoded(&honda()))), Ok(None));
        assert!(matches!(
            record_enrichment(&quote, fact(failed(&honda()))),
            Err(FoldError::ConflictingVehicleOutcome { .. })
        ));
        assert!(matches!(
            record_enrichment(&quote, fact(failed(&tesla()))),
            Err(FoldError::UnknownVehicle { .. })
        ));
        let event = record_enrichment(&quote, fact(unavailable(&ana())))
            .unwrap()
            .unwrap();
        quote.apply(3, &event).unwrap();
        assert!(quote.ready_for_rating());
        quote.apply(4, &issued()).unwrap();
        assert!(matches!(
            record_enrichment(&quote, fact(unavailable(&ana()))),
            Err(FoldError::InvalidTransition { .. })
        ));
    }

    #[test]
    fn states_serialized_before_enrichment_still_work() {
        let mut json = serde_json::to_value(pending()).unwrap();
        let object = json.as_object_mut().unwrap();
        object.remove("vehicles");
        object.remove("drivers");
        let mut quote: Quote = serde_json::from_value(json).unwrap();
        assert!(quote.vehicles.is_empty() && quote.drivers.is_empty());
        assert!(!quote.ready_for_rating());
        assert_eq!(quote.pending_vins(), [&honda()]);
        quote.apply(2, &decoded(&honda())).unwrap();
        quote.apply(3, &retrieved(&ana())).unwrap();
        assert_eq!(quote.vehicles.len(), 1);
        assert!(quote.ready_for_rating());
    }
}
