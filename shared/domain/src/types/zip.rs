//! US ZIP codes: five digits, optionally followed by `-` and the four-digit ZIP+4 extension.

use serde::{Deserialize, Serialize};

/// A ZIP code, `NNNNN` or `NNNNN-NNNN`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(value_type = String, example = "23220"))]
pub struct ZipCode(String);

/// Why a string is not a [`ZipCode`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ZipError {
    /// Neither `NNNNN` nor `NNNNN-NNNN`.
    #[error(
        "a ZIP code is 5 digits, optionally followed by a dash and 4 digits (23220 or 23220-1234)"
    )]
    Format,
}

impl ZipCode {
    /// Parses `NNNNN` or `NNNNN-NNNN` (surrounding whitespace ignored).
    pub fn parse(input: &str) -> Result<Self, ZipError> {
        let s = input.trim();
        let b = s.as_bytes();
        let digits = |range: std::ops::Range<usize>| b[range].iter().all(u8::is_ascii_digit);
        let ok = match b.len() {
            5 => digits(0..5),
            10 => digits(0..5) && b[5] == b'-' && digits(6..10),
            _ => false,
        };
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(ZipError::Format)
        }
    }

    /// The five-digit ZIP code, without any ZIP+4 extension.
    pub fn five_digit(&self) -> &str {
        &self.0[..5]
    }

    /// The first three digits (the sectional center facility), used for rating territories.
    pub fn prefix3(&self) -> &str {
        &self.0[..3]
    }

    /// The ZIP+4 extension, if present.
    pub fn plus_four(&self) -> Option<&str> {
        self.0.get(6..)
    }
}

string_newtype!(ZipCode, ZipError);

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn five_digits() {
        let zip = ZipCode::parse("23220").unwrap();
        assert_eq!(zip.as_str(), "23220");
        assert_eq!(zip.five_digit(), "23220");
        assert_eq!(zip.prefix3(), "232");
        assert_eq!(zip.plus_four(), None);
    }

    #[test]
    fn zip_plus_four() {
        let zip = ZipCode::parse(" 23220-1234 ").unwrap();
        assert_eq!(zip.as_str(), "23220-1234");
        assert_eq!(zip.five_digit(), "23220");
        assert_eq!(zip.prefix3(), "232");
        assert_eq!(zip.plus_four(), Some("1234"));
    }

    #[test]
    fn rejects_other_shapes() {
        for bad in [
            "",
            "2322",
            "232200",
            "23220-123",
            "23220-12345",
            "232201234",
            "2322a",
            "23220 1234",
            "23220-abcd",
            "２３２２０",
        ] {
            assert_eq!(ZipCode::parse(bad), Err(ZipError::Format), "{bad:?}");
        }
    }

    #[test]
    fn serde_round_trip() {
        let zip: ZipCode = serde_json::from_str("\"23220-1234\"").unwrap();
        assert_eq!(serde_json::to_string(&zip).unwrap(), "\"23220-1234\"");
        assert!(serde_json::from_str::<ZipCode>("\"2322\"").is_err());
    }
}
