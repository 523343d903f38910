//! How an issued premium was made: its amount per coverage and every rating factor applied.
//!
//! These are the optional audit fields of [`QuoteIssued`](crate::QuoteIssued)
//! (`breakdown` and `factors`). They were added after `QuoteIssued` v1 was first written, so
//! both default to empty when absent and are left out of the payload when empty: payloads
//! written before (or by an underwriter, who issues without a rating breakdown) decode and
//! encode exactly as they did, and no schema version bump is needed.
//!
//! The rating crate produces them (`quote_rating::Premium::breakdown_by_coverage` and
//! `::factors`); this crate only carries them, and does not check that they add up.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::types::Money;

/// The part of the annual premium due to one coverage (summed over the vehicles), or an
/// adjustment line such as `minimum_premium_adjustment`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CoverageAmount {
    /// `liability`, `collision`, `comprehensive`, or an adjustment line.
    pub coverage: String,
    /// The amount, in cents.
    pub amount: Money,
}

impl CoverageAmount {
    /// `amount` for `coverage`.
    pub fn new(coverage: impl Into<String>, amount: Money) -> Self {
        Self {
            coverage: coverage.into(),
            amount,
        }
    }
}

/// One multiplier applied to one coverage of one vehicle.
///
/// Equality compares `value` with [`f64::total_cmp`] (bit-for-bit up to the sign of zero and
/// NaN payloads), so that the type, and the events carrying it, are `Eq`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RatingFactor {
    /// The factor table, e.g. `driver_age`, `territory`, `violations.speeding`.
    pub name: String,
    /// The coverage of the vehicle it multiplies, e.g. `vehicles[0].collision`.
    pub applies_to: String,
    /// Why this value, e.g. `drivers[1]: age 27 (25-29)`.
    pub detail: String,
    /// The multiplier.
    pub value: f64,
}

impl PartialEq for RatingFactor {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
            && self.applies_to == other.applies_to
            && self.detail == other.detail
            && self.value.total_cmp(&other.value).is_eq()
    }
}

impl Eq for RatingFactor {}

impl fmt::Display for CoverageAmount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} cents", self.coverage, self.amount.cents())
    }
}

impl fmt::Display for RatingFactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} × {} on {} ({})",
            self.name, self.value, self.applies_to, self.detail
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn shapes_and_equality() {
        let line = CoverageAmount::new("liability", Money::from_cents(78_000));
        assert_eq!(
            serde_json::to_value(&line).unwrap(),
            json!({"coverage": "liability", "amount": 78_000})
        );
        let factor = RatingFactor {
            name: "driver_age".into(),
            applies_to: "vehicles[0].liability".into(),
            detail: "drivers[0]: age 38 (30-49)".into(),
            value: 1.0,
        };
        let json = serde_json::to_value(&factor).unwrap();
        assert_eq!(json["value"], 1.0);
        assert_eq!(
            serde_json::from_value::<RatingFactor>(json).unwrap(),
            factor
        );
        let other = RatingFactor {
            value: 1.05,
            ..factor.clone()
        };
        assert_ne!(factor, other);
        assert_eq!(
            factor.to_string(),
            "driver_age × 1 on vehicles[0].liability (drivers[0]: age 38 (30-49))"
        );
        assert_eq!(line.to_string(), "liability: 78000 cents");
    }
}
