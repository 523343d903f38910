//! Driver's licences: the issuing [`UsState`] (50 states and DC) and the [`LicenseNumber`].

use serde::{Deserialize, Serialize};

/// USPS codes and names of the 50 states and the District of Columbia, sorted by code.
const STATES: [(&str, &str); 51] = [
    ("AK", "Alaska"),
    ("AL", "Alabama"),
    ("AR", "Arkansas"),
    ("AZ", "Arizona"),
    ("CA", "California"),
    ("CO", "Colorado"),
    ("CT", "Connecticut"),
    ("DC", "District of Columbia"),
    ("DE", "Delaware"),
    ("FL", "Florida"),
    ("GA", "Georgia"),
    ("HI", "Hawaii"),
    ("IA", "Iowa"),
    ("ID", "Idaho"),
    ("IL", "Illinois"),
    ("IN", "Indiana"),
    ("KS", "Kansas"),
    ("KY", "Kentucky"),
    ("LA", "Louisiana"),
    ("MA", "Massachusetts"),
    ("MD", "Maryland"),
    ("ME", "Maine"),
    ("MI", "Michigan"),
    ("MN", "Minnesota"),
    ("MO", "Missouri"),
    ("MS", "Mississippi"),
    ("MT", "Montana"),
    ("NC", "North Carolina"),
    ("ND", "North Dakota"),
    ("NE", "Nebraska"),
    ("NH", "New Hampshire"),
    ("NJ", "New Jersey"),
    ("NM", "New Mexico"),
    ("NV", "Nevada"),
    ("NY", "New York"),
    ("OH", "Ohio"),
    ("OK", "Oklahoma"),
    ("OR", "Oregon"),
    ("PA", "Pennsylvania"),
    ("RI", "Rhode Island"),
    ("SC", "South Carolina"),
    ("SD", "South Dakota"),
    ("TN", "Tennessee"),
    ("TX", "Texas"),
    ("UT", "Utah"),
    ("VA", "Virginia"),
    ("VT", "Vermont"),
    ("WA", "Washington"),
    ("WI", "Wisconsin"),
    ("WV", "West Virginia"),
    ("WY", "Wyoming"),
];

/// A US state or DC, by its two-letter USPS code (stored upper-case).
///
/// Deserializes through [`UsState::parse`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(into = "String")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(value_type = String, example = "VA"))]
pub struct UsState(&'static str);

// Written by hand: the derive would tie the `'static` field to the deserializer's lifetime.
impl<'de> Deserialize<'de> for UsState {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let code = String::deserialize(deserializer)?;
        Self::parse(&code).map_err(serde::de::Error::custom)
    }
}

/// Why a string is not a [`UsState`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsStateError {
    /// Not the code of one of the 50 states or DC.
    #[error("not the two-letter USPS code of a US state or DC")]
    Unknown,
}

impl UsState {
    /// Parses a two-letter USPS code in either case (surrounding whitespace ignored).
    pub fn parse(input: &str) -> Result<Self, UsStateError> {
        let code = input.trim().to_ascii_uppercase();
        STATES
            .binary_search_by(|(c, _)| (*c).cmp(code.as_str()))
            .map(|i| Self(STATES[i].0))
            .map_err(|_| UsStateError::Unknown)
    }

    /// The upper-case USPS code, e.g. `VA`.
    pub fn as_str(&self) -> &'static str {
        self.0
    }

    /// The full name, e.g. `Virginia`.
    pub fn name(&self) -> &'static str {
        STATES
            .iter()
            .find(|(c, _)| *c == self.0)
            .map_or("", |(_, n)| n)
    }

    /// All 51 jurisdictions, sorted by code.
    pub fn all() -> impl Iterator<Item = UsState> {
        STATES.iter().map(|(c, _)| UsState(c))
    }
}

impl std::fmt::Display for UsState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::str::FromStr for UsState {
    type Err = UsStateError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for UsState {
    type Error = UsStateError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl TryFrom<&str> for UsState {
    type Error = UsStateError;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Self::parse(s)
    }
}

impl From<UsState> for String {
    fn from(v: UsState) -> String {
        v.0.to_owned()
    }
}

impl AsRef<str> for UsState {
    fn as_ref(&self) -> &str {
        self.0
    }
}

/// Longest licence number accepted.
const MAX_LICENSE_LEN: usize = 20;

/// A driver's licence number: 1 to 20 ASCII letters and digits, stored upper-case.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(value_type = String, example = "T12345678"))]
pub struct LicenseNumber(String);

/// Why a string is not a [`LicenseNumber`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LicenseNumberError {
    /// Empty (or only whitespace).
    #[error("licence number is empty")]
    Empty,
    /// More than 20 characters.
    #[error("a licence number has at most 20 characters, this one has {0}")]
    TooLong(usize),
    /// Anything but an ASCII letter or digit.
    #[error("{ch:?} at position {position} is not a letter or digit")]
    InvalidCharacter {
        /// The offending character.
        ch: char,
        /// 1-based position.
        position: usize,
    },
}

impl LicenseNumber {
    /// Parses 1 to 20 ASCII letters and digits, normalized to upper-case.
    pub fn parse(input: &str) -> Result<Self, LicenseNumberError> {
        let s = input.trim();
        if s.is_empty() {
            return Err(LicenseNumberError::Empty);
        }
        let count = s.chars().count();
        if count > MAX_LICENSE_LEN {
            return Err(LicenseNumberError::TooLong(count));
        }
        if let Some((index, ch)) = s
            .chars()
            .enumerate()
            .find(|(_, c)| !c.is_ascii_alphanumeric())
        {
            return Err(LicenseNumberError::InvalidCharacter {
                ch,
                position: index + 1,
            });
        }
        Ok(Self(s.to_ascii_uppercase()))
    }
}

string_newtype!(LicenseNumber, LicenseNumberError);

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn states() {
        assert_eq!(UsState::all().count(), 51);
        assert!(
            STATES.windows(2).all(|w| w[0].0 < w[1].0),
            "table is sorted"
        );
        for state in UsState::all() {
            assert_eq!(UsState::parse(state.as_str()), Ok(state));
            assert_eq!(UsState::parse(&state.as_str().to_lowercase()), Ok(state));
            assert!(!state.name().is_empty());
        }
        let va = UsState::parse(" va ").unwrap();
        assert_eq!(va.as_str(), "VA");
        assert_eq!(va.name(), "Virginia");
        assert_eq!(UsState::parse("DC").unwrap().name(), "District of Columbia");
        for bad in ["", "V", "VAA", "PR", "GU", "XX", "Virginia"] {
            assert_eq!(UsState::parse(bad), Err(UsStateError::Unknown), "{bad:?}");
        }
    }

    #[test]
    fn state_serde() {
        let s: UsState = serde_json::from_str("\"ny\"").unwrap();
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"NY\"");
        assert!(serde_json::from_str::<UsState>("\"PR\"").is_err());
    }

    #[test]
    fn license_numbers() {
        let n = LicenseNumber::parse(" t12345678 ").unwrap();
        assert_eq!(n.as_str(), "T12345678");
        assert!(LicenseNumber::parse("A").is_ok());
        assert!(LicenseNumber::parse("ABCDEFGHIJ0123456789").is_ok());
        assert_eq!(
            LicenseNumber::parse("ABCDEFGHIJ01234567890"),
            Err(LicenseNumberError::TooLong(21))
        );
        assert_eq!(LicenseNumber::parse("  "), Err(LicenseNumberError::Empty));
        assert_eq!(
            LicenseNumber::parse("T123-456"),
            Err(LicenseNumberError::InvalidCharacter {
                ch: '-',
                position: 5
            })
        );
        let back: LicenseNumber = serde_json::from_str("\"t1\"").unwrap();
        assert_eq!(back.as_str(), "T1");
    }
}
