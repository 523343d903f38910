//! Vehicle Identification Numbers with the North-American check digit (49 CFR 565).
//!
//! A [`Vin`] is 17 ASCII letters and digits, never `I`, `O` or `Q`, stored upper-case, whose
//! 9th character is the check digit computed by [`Vin::compute_check_digit`].

use serde::{Deserialize, Serialize};

/// Number of characters in a VIN.
const VIN_LEN: usize = 17;

/// Zero-based index of the check digit (position 9).
const CHECK_INDEX: usize = 8;

/// Position weights of 49 CFR 565.15, position 1 first.
const WEIGHTS: [u32; VIN_LEN] = [8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2];

/// A valid 17-character VIN, upper-case, with a correct check digit.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(value_type = String, example = "1HGCM82633A004352"))]
pub struct Vin(String);

/// Why a string is not a [`Vin`]. Positions are 1-based, as printed on the vehicle.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VinError {
    /// Not 17 characters.
    #[error("a VIN has 17 characters, this one has {0}")]
    Length(usize),
    /// `I`, `O` or `Q` (in either case), which VINs never use.
    #[error("the letter {ch} at position {position} is not allowed in a VIN (I, O and Q are never used)")]
    ForbiddenLetter {
        /// The offending letter, upper-case.
        ch: char,
        /// 1-based position.
        position: usize,
    },
    /// Anything that is not an ASCII letter or digit.
    #[error("{ch:?} at position {position} is not a letter or digit")]
    InvalidCharacter {
        /// The offending character.
        ch: char,
        /// 1-based position.
        position: usize,
    },
    /// The 9th character does not match the computed check digit.
    #[error("check digit is {expected} but the VIN has {found}")]
    CheckDigit {
        /// The check digit computed from the other 16 characters.
        expected: char,
        /// The character found at position 9.
        found: char,
    },
}

impl Vin {
    /// Parses a VIN; lower-case letters are accepted and normalized to upper-case, surrounding
    /// whitespace is ignored.
    pub fn parse(input: &str) -> Result<Self, VinError> {
        let trimmed = input.trim();
        let count = trimmed.chars().count();
        if count != VIN_LEN {
            return Err(VinError::Length(count));
        }
        let mut normalized = String::with_capacity(VIN_LEN);
        for (index, ch) in trimmed.chars().enumerate() {
            let upper = ch.to_ascii_uppercase();
            if matches!(upper, 'I' | 'O' | 'Q') {
                return Err(VinError::ForbiddenLetter {
                    ch: upper,
                    position: index + 1,
                });
            }
            if !upper.is_ascii_alphanumeric() {
                return Err(VinError::InvalidCharacter {
                    ch,
                    position: index + 1,
                });
            }
            normalized.push(upper);
        }
        let found = normalized.as_bytes()[CHECK_INDEX] as char;
        // Every character was checked above, so the computation cannot fail; map the
        // impossible case to a length error rather than panicking.
        let expected = Self::compute_check_digit(&normalized).ok_or(VinError::Length(VIN_LEN))?;
        if expected != found {
            return Err(VinError::CheckDigit { expected, found });
        }
        Ok(Self(normalized))
    }

    /// Computes the check digit (`0`–`9` or `X`) of a 17-character VIN.
    ///
    /// The character at position 9 is ignored (its weight is 0), so a placeholder may be
    /// passed there. Letters may be either case. Returns `None` when the input is not 17
    /// characters or any other position holds something a VIN cannot contain.
    pub fn compute_check_digit(vin: &str) -> Option<char> {
        if vin.chars().count() != VIN_LEN {
            return None;
        }
        let mut sum = 0u32;
        for (index, ch) in vin.chars().enumerate() {
            if index == CHECK_INDEX {
                continue;
            }
            sum += transliterate(ch)? * WEIGHTS[index];
        }
        match sum % 11 {
            10 => Some('X'),
            digit => char::from_digit(digit, 10),
        }
    }

    /// World Manufacturer Identifier: the first three characters.
    pub fn wmi(&self) -> &str {
        &self.0[..3]
    }

    /// The model-year code: the character at position 10.
    pub fn model_year_code(&self) -> char {
        self.0.as_bytes()[9] as char
    }

    /// The check digit: the character at position 9.
    pub fn check_digit(&self) -> char {
        self.0.as_bytes()[CHECK_INDEX] as char
    }
}

string_newtype!(Vin, VinError);

/// The numeric value of a VIN character, or `None` if VINs cannot contain it.
fn transliterate(ch: char) -> Option<u32> {
    let value = match ch.to_ascii_uppercase() {
        d @ '0'..='9' => d as u32 - '0' as u32,
        'A' | 'J' => 1,
        'B' | 'K' | 'S' => 2,
        'C' | 'L' | 'T' => 3,
        'D' | 'M' | 'U' => 4,
        'E' | 'N' | 'V' => 5,
        'F' | 'W' => 6,
        'G' | 'P' | 'X' => 7,
        'H' | 'Y' => 8,
        'R' | 'Z' => 9,
        _ => return None,
    };
    Some(value)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_reference_vin() {
        let vin = Vin::parse("1HGCM82633A004352").unwrap();
        assert_eq!(vin.as_str(), "1HGCM82633A004352");
        assert_eq!(vin.wmi(), "1HG");
        assert_eq!(vin.check_digit(), '3');
        assert_eq!(vin.model_year_code(), '3');
        assert_eq!(vin.to_string(), "1HGCM82633A004352");
    }

    #[test]
    fn normalizes_lower_case_and_whitespace() {
        let vin = Vin::parse("  1hgcm82633a004352 ").unwrap();
        assert_eq!(vin.as_str(), "1HGCM82633A004352");
    }

    #[test]
    fn rejects_a_wrong_check_digit() {
        let err = Vin::parse("1HGCM82633A004353").unwrap_err();
        assert_eq!(
            err,
            VinError::CheckDigit {
                expected: Vin::compute_check_digit("1HGCM82633A004353").unwrap(),
                found: '3'
            }
        );
        assert!(err.to_string().starts_with("check digit is "));
    }

    #[test]
    fn x_check_digit() {
        // Find a body whose check digit is X and make sure it round-trips.
        let mut body: Vec<char> = "11111111111111111".chars().collect();
        let alphabet: Vec<char> = "0123456789ABCDEFGHJKLMNPRSTUVWXYZ".chars().collect();
        'outer: for a in &alphabet {
            for b in &alphabet {
                body[15] = *a;
                body[16] = *b;
                let s: String = body.iter().collect();
                if Vin::compute_check_digit(&s) == Some('X') {
                    body[8] = 'X';
                    break 'outer;
                }
            }
        }
        let s: String = body.iter().collect();
        let vin = Vin::parse(&s.to_lowercase()).unwrap();
        assert_eq!(vin.check_digit(), 'X');
    }

    #[test]
    fn rejects_bad_lengths_and_characters() {
        assert_eq!(Vin::parse(""), Err(VinError::Length(0)));
        assert_eq!(Vin::parse("1HGCM82633A00435"), Err(VinError::Length(16)));
        assert_eq!(Vin::parse("1HGCM82633A0043520"), Err(VinError::Length(18)));
        assert_eq!(
            Vin::parse("1HGCM82633A0O4352"),
            Err(VinError::ForbiddenLetter {
                ch: 'O',
                position: 13
            })
        );
        assert_eq!(
            Vin::parse("iHGCM82633A004352"),
            Err(VinError::ForbiddenLetter {
                ch: 'I',
                position: 1
            })
        );
        assert_eq!(
            Vin::parse("1HGCM82633A00435-"),
            Err(VinError::InvalidCharacter {
                ch: '-',
                position: 17
            })
        );
        assert_eq!(
            Vin::parse("1HGCM82633A00435é"),
            Err(VinError::InvalidCharacter {
                ch: 'é',
                position: 17
            })
        );
    }

    #[test]
    fn compute_check_digit_rejects_garbage() {
        assert_eq!(Vin::compute_check_digit("short"), None);
        assert_eq!(Vin::compute_check_digit("1HGCM8263QA004352"), None);
        // Position 9 is ignored.
        assert_eq!(Vin::compute_check_digit("1HGCM826#3A004352"), Some('3'));
    }

    #[test]
    fn serde_uses_the_canonical_string_and_the_parser() {
        let vin = Vin::parse("1hgcm82633a004352").unwrap();
        let json = serde_json::to_string(&vin).unwrap();
        assert_eq!(json, "\"1HGCM82633A004352\"");
        let back: Vin = serde_json::from_str(&json).unwrap();
        assert_eq!(back, vin);
        assert!(serde_json::from_str::<Vin>("\"1HGCM82633A004353\"").is_err());
    }
}
