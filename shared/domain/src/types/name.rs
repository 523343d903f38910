//! People's names as typed by the customer: trimmed, non-empty, at most 100 characters.

use serde::{Deserialize, Serialize};

/// Longest name accepted, in characters.
const MAX_NAME_LEN: usize = 100;

/// A first or last name: trimmed, 1 to 100 characters, no control characters. Any script.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(value_type = String, example = "Ana"))]
pub struct PersonName(String);

/// Why a string is not a [`PersonName`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PersonNameError {
    /// Empty (or only whitespace).
    #[error("name is empty")]
    Empty,
    /// More than 100 characters once trimmed.
    #[error("a name has at most 100 characters, this one has {0}")]
    TooLong(usize),
    /// Contains a control character (newline, tab, …).
    #[error("name contains a control character")]
    ControlCharacter,
}

impl PersonName {
    /// Parses a name, trimming surrounding whitespace.
    pub fn parse(input: &str) -> Result<Self, PersonNameError> {
        let s = input.trim();
        if s.is_empty() {
            return Err(PersonNameError::Empty);
        }
        let count = s.chars().count();
        if count > MAX_NAME_LEN {
            return Err(PersonNameError::TooLong(count));
        }
        if s.chars().any(char::is_control) {
            return Err(PersonNameError::ControlCharacter);
        }
        Ok(Self(s.to_owned()))
    }
}

string_newtype!(PersonName, PersonNameError);

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(PersonName::parse("  Ana ").unwrap().as_str(), "Ana");
        assert_eq!(
            PersonName::parse("José María").unwrap().as_str(),
            "José María"
        );
        assert!(PersonName::parse(&"é".repeat(100)).is_ok());
        assert_eq!(
            PersonName::parse(&"é".repeat(101)),
            Err(PersonNameError::TooLong(101))
        );
        assert_eq!(PersonName::parse(" \t "), Err(PersonNameError::Empty));
        assert_eq!(
            PersonName::parse("Ana\nDiaz"),
            Err(PersonNameError::ControlCharacter)
        );
        assert!(serde_json::from_str::<PersonName>("\"\"").is_err());
    }
}
