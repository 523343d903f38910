//! Customer identifiers as issued by the customer system (opaque to this domain).

use serde::{Deserialize, Serialize};

/// Longest customer id accepted.
const MAX_CUSTOMER_ID_LEN: usize = 128;

/// A customer id: 1 to 128 characters of ASCII letters, digits and `-_.:@`. Case is kept.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(value_type = String, example = "cust-42"))]
pub struct CustomerId(String);

/// Why a string is not a [`CustomerId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CustomerIdError {
    /// Empty (or only whitespace).
    #[error("customer id is empty")]
    Empty,
    /// More than 128 characters.
    #[error("a customer id has at most 128 characters, this one has {0}")]
    TooLong(usize),
    /// A character outside ASCII letters, digits and `-_.:@`.
    #[error("{ch:?} at position {position} is not allowed in a customer id (letters, digits and -_.:@ only)")]
    InvalidCharacter {
        /// The offending character.
        ch: char,
        /// 1-based position.
        position: usize,
    },
}

impl CustomerId {
    /// Parses a customer id (surrounding whitespace ignored).
    pub fn parse(input: &str) -> Result<Self, CustomerIdError> {
        let s = input.trim();
        if s.is_empty() {
            return Err(CustomerIdError::Empty);
        }
        let count = s.chars().count();
        if count > MAX_CUSTOMER_ID_LEN {
            return Err(CustomerIdError::TooLong(count));
        }
        if let Some((index, ch)) = s
            .chars()
            .enumerate()
            .find(|(_, c)| !(c.is_ascii_alphanumeric() || "-_.:@".contains(*c)))
        {
            return Err(CustomerIdError::InvalidCharacter {
                ch,
                position: index + 1,
            });
        }
        Ok(Self(s.to_owned()))
    }
}

string_newtype!(CustomerId, CustomerIdError);

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn customer_ids() {
        assert_eq!(CustomerId::parse("cust-42").unwrap().as_str(), "cust-42");
        assert!(CustomerId::parse("Agent:ana.diaz@branch_7").is_ok());
        assert!(CustomerId::parse(&"x".repeat(128)).is_ok());
        assert_eq!(
            CustomerId::parse(&"x".repeat(129)),
            Err(CustomerIdError::TooLong(129))
        );
        assert_eq!(CustomerId::parse(""), Err(CustomerIdError::Empty));
        assert_eq!(
            CustomerId::parse("cust 42"),
            Err(CustomerIdError::InvalidCharacter {
                ch: ' ',
                position: 5
            })
        );
        assert_eq!(
            CustomerId::parse("quote#1"),
            Err(CustomerIdError::InvalidCharacter {
                ch: '#',
                position: 6
            })
        );
        let back: CustomerId = serde_json::from_str("\"cust-42\"").unwrap();
        assert_eq!(serde_json::to_string(&back).unwrap(), "\"cust-42\"");
        assert!(serde_json::from_str::<CustomerId>("\"\"").is_err());
    }
}
