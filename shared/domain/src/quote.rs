//! The quote aggregate: its id, its versioned events, its state and its commands.
//!
//! A quote is one event stream, `quote#<uuid>` ([`QuoteId::stream_id`]), whose first event is
//! always [`QuoteEvent::QuoteRequested`] (from [`request_quote`]) followed by at most a couple
//! of outcomes decided by [`decide_outcome`]:
//!
//! ```text
//!            ┌──────────► quoted   (QuoteIssued)    final
//! pending ───┼──────────► declined (QuoteDeclined)  final
//!            └─► referred (QuoteReferred) ──► quoted | declined
//! ```
//!
//! A referral sends the quote to an underwriter, who later issues or declines it; issued and
//! declined quotes are final. [`Quote::fold`] rebuilds the state from the stream and rejects
//! anything else.
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

use crate::request::QuoteRequest;
use crate::types::{CustomerId, Money};

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
    InvalidUuid(String),
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
            .map_err(|e| QuoteIdError::InvalidUuid(e.to_string()))
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
}

impl QuoteIssued {
    /// The event type name.
    pub const EVENT_TYPE: &'static str = "QuoteIssued";
    /// Current payload schema version.
    pub const SCHEMA_VERSION: u32 = 1;
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
    pub const EVENT_TYPES: [&'static str; 4] = [
        QuoteRequested::EVENT_TYPE,
        QuoteIssued::EVENT_TYPE,
        QuoteDeclined::EVENT_TYPE,
        QuoteReferred::EVENT_TYPE,
    ];

    /// The current schema version of `event_type`, or `None` for an unknown type.
    pub fn current_schema_version(event_type: &str) -> Option<u32> {
        match event_type {
            QuoteRequested::EVENT_TYPE => Some(QuoteRequested::SCHEMA_VERSION),
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
            QuoteEvent::QuoteIssued(_) => QuoteIssued::EVENT_TYPE,
            QuoteEvent::QuoteDeclined(_) => QuoteDeclined::EVENT_TYPE,
            QuoteEvent::QuoteReferred(_) => QuoteReferred::EVENT_TYPE,
        }
    }

    /// The schema version [`QuoteEvent::to_data`] writes (the current one).
    pub fn schema_version(&self) -> u32 {
        match self {
            QuoteEvent::QuoteRequested(_) => QuoteRequested::SCHEMA_VERSION,
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

    /// The status a quote has after this event.
    fn resulting_status(&self) -> QuoteStatus {
        match self {
            QuoteEvent::QuoteRequested(_) => QuoteStatus::Pending,
            QuoteEvent::QuoteIssued(_) => QuoteStatus::Quoted,
            QuoteEvent::QuoteDeclined(_) => QuoteStatus::Declined,
            QuoteEvent::QuoteReferred(_) => QuoteStatus::Referred,
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
    /// An outcome the current status does not allow (e.g. after a final outcome).
    #[error("cannot apply {event_type} to a {from} quote")]
    InvalidTransition {
        /// The status before the event.
        from: QuoteStatus,
        /// The event's type.
        event_type: &'static str,
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
        let to = event.resulting_status();
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
            QuoteEvent::QuoteRequested(_) => {}
        }
        self.status = to;
        self.version = version;
        Ok(())
    }

    /// Whether the quote was issued and its offer has expired at `at`.
    pub fn is_expired_at(&self, at: OffsetDateTime) -> bool {
        self.valid_until.is_some_and(|until| until <= at)
    }
}

// ---------------------------------------------------------------------------------------------
// Commands.
// ---------------------------------------------------------------------------------------------

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
        ]
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
        });
        let err = event.to_data().unwrap_err();
        assert_eq!(err.event_type, "QuoteIssued");
    }
}
