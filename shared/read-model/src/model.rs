//! The quote summary and the read-model port.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

/// A vehicle as shown in a summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct VehicleSummary {
    /// The VIN.
    pub vin: String,
    /// Make, once decoded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub make: Option<String>,
    /// Model, once decoded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Model year, once decoded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_year: Option<u16>,
}

/// One quote as the customer sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct QuoteSummary {
    /// The customer.
    pub customer_id: String,
    /// The quote.
    pub quote_id: String,
    /// `pending`, `quoted`, `declined` or `referred`.
    #[schema(example = "quoted")]
    pub status: String,
    /// The last stream version applied.
    pub version: u64,
    /// Annual premium in US cents, once quoted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annual_premium_cents: Option<u64>,
    /// Until when the premium holds.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub valid_until: Option<OffsetDateTime>,
    /// Why declined or referred.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
    /// The vehicles.
    pub vehicles: Vec<VehicleSummary>,
    /// Number of drivers.
    pub drivers: usize,
    /// Rating-table version of the premium.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rating_table_version: Option<String>,
    /// When the quote was requested.
    #[serde(with = "time::serde::rfc3339")]
    pub requested_at: OffsetDateTime,
    /// When the last applied event was recorded.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// What an upsert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upsert {
    /// Stored (new, or newer than what was stored).
    Applied,
    /// Not stored: the stored summary is at this version or newer.
    Stale {
        /// The stored version.
        stored: u64,
    },
}

/// A page of a customer's quotes, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The summaries.
    pub quotes: Vec<QuoteSummary>,
    /// Pass back to get the next page; `None` on the last page.
    pub next_page_token: Option<String>,
}

/// The status of a quote not decided yet.
pub const PENDING: &str = "pending";

/// A quote still pending, as [`ReadModel::pending_before`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingQuote {
    /// The customer.
    pub customer_id: String,
    /// The quote.
    pub quote_id: String,
    /// When it was requested.
    pub requested_at: OffsetDateTime,
}

/// Why a read-model operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadModelError {
    /// The page token is not one this read model issued.
    #[error("invalid page token")]
    InvalidPageToken,
    /// A stored item could not be decoded, or a summary could not be encoded.
    #[error("read model item is corrupt: {what}")]
    Corrupt {
        /// Which part of the item.
        what: &'static str,
        /// The decoder's own error, when there is one.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// A control document was written by someone else since it was read
    /// ([`ReadModel::write_control`]).
    #[error("control document `{name}` changed since it was read")]
    Conflict {
        /// The document.
        name: String,
    },
    /// The table does not exist (deleted, or never created).
    #[error("read-model table {table} does not exist")]
    TableMissing {
        /// The table.
        table: String,
    },
    /// The backend failed (after the SDK's retries).
    #[error("read model backend failed")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// A control document kept beside a read model's summaries (the routing of
/// [`crate::routing`], a rebuild's progress), with the revision that guards its next write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlDocument {
    /// The document (JSON).
    pub body: String,
    /// 1 for the first write, one more for each later one.
    pub revision: u64,
}

/// Longest control-document name.
pub const MAX_CONTROL_NAME_LEN: usize = 64;

/// The read-model port.
#[async_trait]
pub trait ReadModel: Send + Sync + std::fmt::Debug {
    /// Stores `summary` unless the stored one is at the same or a newer version.
    async fn upsert(&self, summary: &QuoteSummary) -> Result<Upsert, ReadModelError>;

    /// One quote by id.
    async fn get(&self, quote_id: &str) -> Result<Option<QuoteSummary>, ReadModelError>;

    /// A customer's quotes, newest first, `limit` per page.
    async fn list_by_customer(
        &self,
        customer_id: &str,
        limit: usize,
        page_token: Option<&str>,
    ) -> Result<Page, ReadModelError>;

    /// Up to `limit` quotes still `pending` that were requested before `before`, oldest first
    /// (for the quote deadline: fulfillment refers the ones still pending too long). Indexed
    /// adapters may lag behind upserts for a moment.
    async fn pending_before(
        &self,
        before: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<PendingQuote>, ReadModelError>;

    /// The control document `name`, if it was ever written.
    async fn read_control(&self, name: &str) -> Result<Option<ControlDocument>, ReadModelError>;

    /// Writes control document `name` if its stored revision is still `expected` (`None`: not
    /// written yet); returns the new revision, or [`ReadModelError::Conflict`] when another
    /// writer came first. Control documents are never listed as quotes.
    async fn write_control(
        &self,
        name: &str,
        body: &str,
        expected: Option<u64>,
    ) -> Result<u64, ReadModelError>;

    /// Checks that the backend answers.
    async fn ping(&self) -> Result<(), ReadModelError> {
        Ok(())
    }
}

/// Longest quote id a page token may name (a UUID has 36 characters).
const MAX_QUOTE_ID_LEN: usize = 64;

/// Longest page token accepted.
pub const MAX_PAGE_TOKEN_LEN: usize = 512;

/// Encodes the last quote id of a page as an opaque token.
pub(crate) fn encode_token(customer_id: &str, quote_id: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{customer_id}\n{quote_id}"))
}

/// Decodes a page token issued for `customer_id`; returns the quote id to continue after.
///
/// A token longer than [`MAX_PAGE_TOKEN_LEN`] is refused before decoding (it was never issued: a
/// token holds a customer id of at most 128 characters and a quote id), so that no caller-made
/// key reaches the backend.
pub(crate) fn decode_token(customer_id: &str, token: &str) -> Result<String, ReadModelError> {
    use base64::Engine;
    if token.len() > MAX_PAGE_TOKEN_LEN {
        return Err(ReadModelError::InvalidPageToken);
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| ReadModelError::InvalidPageToken)?;
    let text = String::from_utf8(bytes).map_err(|_| ReadModelError::InvalidPageToken)?;
    match text.split_once('\n') {
        Some((customer, quote))
            if customer == customer_id && !quote.is_empty() && quote.len() <= MAX_QUOTE_ID_LEN =>
        {
            Ok(quote.to_owned())
        }
        _ => Err(ReadModelError::InvalidPageToken),
    }
}
