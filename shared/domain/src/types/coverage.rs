//! Coverage choices: the liability limit split and the physical-damage deductibles.

use serde::{Deserialize, Serialize};

use super::Money;

/// A liability limit split: bodily injury per person / per accident / property damage, in
/// thousands of US dollars. Serialized as the usual notation, e.g. `"100/300/100"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum LiabilityLimit {
    /// 25/50/25, the common state minimum.
    #[serde(rename = "25/50/25")]
    L25_50_25,
    /// 50/100/50.
    #[serde(rename = "50/100/50")]
    L50_100_50,
    /// 100/300/100.
    #[serde(rename = "100/300/100")]
    L100_300_100,
    /// 250/500/250.
    #[serde(rename = "250/500/250")]
    L250_500_250,
}

/// Why a value is not a valid coverage choice.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CoverageError {
    /// Not one of the offered liability limits.
    #[error("liability limit must be one of 25/50/25, 50/100/50, 100/300/100, 250/500/250")]
    UnknownLiabilityLimit,
    /// Not one of the offered deductibles.
    #[error("deductible must be 250, 500, 1000 or 2000 dollars, got {0}")]
    UnknownDeductible(i64),
}

impl LiabilityLimit {
    /// Every offered limit, lowest first.
    pub const ALL: [LiabilityLimit; 4] = [
        LiabilityLimit::L25_50_25,
        LiabilityLimit::L50_100_50,
        LiabilityLimit::L100_300_100,
        LiabilityLimit::L250_500_250,
    ];

    /// Parses the `a/b/c` notation (surrounding whitespace ignored).
    pub fn parse(input: &str) -> Result<Self, CoverageError> {
        let s = input.trim();
        Self::ALL
            .into_iter()
            .find(|l| l.as_str() == s)
            .ok_or(CoverageError::UnknownLiabilityLimit)
    }

    /// The `a/b/c` notation.
    pub fn as_str(&self) -> &'static str {
        match self {
            LiabilityLimit::L25_50_25 => "25/50/25",
            LiabilityLimit::L50_100_50 => "50/100/50",
            LiabilityLimit::L100_300_100 => "100/300/100",
            LiabilityLimit::L250_500_250 => "250/500/250",
        }
    }

    /// (bodily injury per person, bodily injury per accident, property damage), in thousands
    /// of US dollars.
    pub fn limits_thousands(&self) -> (u32, u32, u32) {
        match self {
            LiabilityLimit::L25_50_25 => (25, 50, 25),
            LiabilityLimit::L50_100_50 => (50, 100, 50),
            LiabilityLimit::L100_300_100 => (100, 300, 100),
            LiabilityLimit::L250_500_250 => (250, 500, 250),
        }
    }
}

impl std::fmt::Display for LiabilityLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for LiabilityLimit {
    type Err = CoverageError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// A physical-damage deductible in whole dollars: 250, 500, 1000 or 2000.
/// Serialized as the number of dollars.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(value_type = u32, example = 500))]
pub struct Deductible(u32);

impl Deductible {
    /// Every offered deductible, lowest first.
    pub const ALL: [Deductible; 4] = [
        Deductible(250),
        Deductible(500),
        Deductible(1000),
        Deductible(2000),
    ];

    /// Parses a number of dollars.
    pub fn parse(dollars: i64) -> Result<Self, CoverageError> {
        Self::ALL
            .into_iter()
            .find(|d| i64::from(d.0) == dollars)
            .ok_or(CoverageError::UnknownDeductible(dollars))
    }

    /// The deductible in whole dollars.
    pub fn amount(&self) -> u32 {
        self.0
    }

    /// The deductible as [`Money`].
    pub fn as_money(&self) -> Money {
        Money::from_cents(u64::from(self.0) * 100)
    }
}

impl TryFrom<u32> for Deductible {
    type Error = CoverageError;
    fn try_from(dollars: u32) -> Result<Self, Self::Error> {
        Self::parse(i64::from(dollars))
    }
}

impl From<Deductible> for u32 {
    fn from(d: Deductible) -> u32 {
        d.0
    }
}

impl std::fmt::Display for Deductible {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "${}", self.0)
    }
}

/// The coverage chosen for the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Coverage {
    /// Liability limit split.
    pub liability_limit: LiabilityLimit,
    /// Collision deductible.
    pub collision_deductible: Deductible,
    /// Comprehensive (other than collision) deductible.
    pub comprehensive_deductible: Deductible,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn liability_limits() {
        for l in LiabilityLimit::ALL {
            assert_eq!(LiabilityLimit::parse(l.as_str()), Ok(l));
            let json = serde_json::to_string(&l).unwrap();
            assert_eq!(json, format!("\"{l}\""));
            assert_eq!(serde_json::from_str::<LiabilityLimit>(&json).unwrap(), l);
        }
        assert_eq!(
            LiabilityLimit::L100_300_100.limits_thousands(),
            (100, 300, 100)
        );
        assert_eq!(
            LiabilityLimit::parse("100/300"),
            Err(CoverageError::UnknownLiabilityLimit)
        );
        assert!(serde_json::from_str::<LiabilityLimit>("\"30/60/25\"").is_err());
    }

    #[test]
    fn deductibles() {
        assert_eq!(Deductible::parse(500).unwrap().amount(), 500);
        assert_eq!(
            Deductible::parse(1000).unwrap().as_money(),
            Money::from_cents(100_000)
        );
        for bad in [0, -500, 100, 750, 5000] {
            assert_eq!(
                Deductible::parse(bad),
                Err(CoverageError::UnknownDeductible(bad))
            );
        }
        assert_eq!(serde_json::to_string(&Deductible::ALL[3]).unwrap(), "2000");
        assert_eq!(
            serde_json::from_str::<Deductible>("250").unwrap(),
            Deductible::ALL[0]
        );
        assert!(serde_json::from_str::<Deductible>("300").is_err());
    }

    #[test]
    fn coverage_serde() {
        let json = r#"{"liability_limit":"100/300/100","collision_deductible":500,"comprehensive_deductible":250}"#;
        let c: Coverage = serde_json::from_str(json).unwrap();
        assert_eq!(c.liability_limit, LiabilityLimit::L100_300_100);
        assert_eq!(serde_json::to_string(&c).unwrap(), json);
    }
}
