//! Amounts of US dollars, held exactly as whole cents.
//!
//! [`Money`] serializes as the integer number of cents (`180000` is $1,800.00) so that no
//! amount ever goes through a binary floating-point number on the wire or in storage.

use serde::{Deserialize, Serialize};

/// A non-negative amount of US dollars in whole cents.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(transparent)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(value_type = u64, example = 180000))]
pub struct Money(u64);

impl Money {
    /// Zero dollars.
    pub const ZERO: Money = Money(0);

    /// An amount of cents.
    pub const fn from_cents(cents: u64) -> Self {
        Self(cents)
    }

    /// An amount of whole dollars, or `None` on overflow.
    pub const fn from_dollars(dollars: u64) -> Option<Self> {
        match dollars.checked_mul(100) {
            Some(cents) => Some(Self(cents)),
            None => None,
        }
    }

    /// The amount in cents.
    pub const fn cents(&self) -> u64 {
        self.0
    }

    /// The amount in dollars, for display or statistics only (not exact for huge amounts).
    pub fn dollars_f64(&self) -> f64 {
        self.0 as f64 / 100.0
    }

    /// Sum, or `None` on overflow.
    pub const fn checked_add(self, other: Money) -> Option<Money> {
        match self.0.checked_add(other.0) {
            Some(cents) => Some(Money(cents)),
            None => None,
        }
    }

    /// Difference, or `None` if it would be negative.
    pub const fn checked_sub(self, other: Money) -> Option<Money> {
        match self.0.checked_sub(other.0) {
            Some(cents) => Some(Money(cents)),
            None => None,
        }
    }
}

/// `$1,234.56`.
impl std::fmt::Display for Money {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let dollars = (self.0 / 100).to_string();
        let mut grouped = String::with_capacity(dollars.len() + dollars.len() / 3);
        for (i, ch) in dollars.chars().enumerate() {
            if i > 0 && (dollars.len() - i).is_multiple_of(3) {
                grouped.push(',');
            }
            grouped.push(ch);
        }
        write!(f, "${grouped}.{:02}", self.0 % 100)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn display() {
        let cases = [
            (0, "$0.00"),
            (5, "$0.05"),
            (99_999, "$999.99"),
            (123_456, "$1,234.56"),
            (100_000_000, "$1,000,000.00"),
            (u64::MAX, "$184,467,440,737,095,516.15"),
        ];
        for (cents, text) in cases {
            assert_eq!(Money::from_cents(cents).to_string(), text);
        }
    }

    #[test]
    fn arithmetic_and_conversions() {
        let m = Money::from_dollars(1800).unwrap();
        assert_eq!(m.cents(), 180_000);
        assert!((m.dollars_f64() - 1800.0).abs() < f64::EPSILON);
        assert_eq!(Money::from_dollars(u64::MAX), None);
        assert_eq!(
            m.checked_add(Money::from_cents(1)),
            Some(Money::from_cents(180_001))
        );
        assert_eq!(Money::ZERO.checked_sub(Money::from_cents(1)), None);
        assert_eq!(
            Money::from_cents(u64::MAX).checked_add(Money::from_cents(1)),
            None
        );
    }

    #[test]
    fn serde_is_integer_cents() {
        let m = Money::from_cents(123_456);
        assert_eq!(serde_json::to_string(&m).unwrap(), "123456");
        assert_eq!(serde_json::from_str::<Money>("123456").unwrap(), m);
        assert!(serde_json::from_str::<Money>("-1").is_err());
        assert!(serde_json::from_str::<Money>("12.5").is_err());
    }
}
