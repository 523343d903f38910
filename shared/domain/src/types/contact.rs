//! Customer contact points: an [`Email`] address and a [`PhoneE164`] number.
//!
//! The e-mail rules are a deliberately simple, predictable subset of RFC 5321/5322 (no quoted
//! local parts, no IP-literal domains); the phone number is strict E.164 with its `+`.

use serde::{Deserialize, Serialize};

/// Longest e-mail address accepted (RFC 5321 path limit minus the angle brackets).
const MAX_EMAIL_LEN: usize = 254;
/// Longest local part.
const MAX_LOCAL_LEN: usize = 64;
/// Longest domain label.
const MAX_LABEL_LEN: usize = 63;

/// An e-mail address; stored as given except that the domain is lower-cased.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(
    feature = "openapi",
    schema(value_type = String, format = Email, example = "ana@example.com")
)]
pub struct Email(String);

/// Why a string is not an [`Email`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    /// Empty (or only whitespace).
    #[error("e-mail address is empty")]
    Empty,
    /// Longer than 254 characters.
    #[error("an e-mail address has at most 254 characters, this one has {0}")]
    TooLong(usize),
    /// Zero or several `@`.
    #[error("an e-mail address has exactly one @, this one has {0}")]
    AtSigns(usize),
    /// Local part (before the `@`) empty or longer than 64 characters.
    #[error("the part before the @ must have 1 to 64 characters, this one has {0}")]
    LocalPartLength(usize),
    /// Local part with a space, a control or a non-ASCII character.
    #[error("{0:?} is not allowed before the @")]
    LocalPartCharacter(char),
    /// Domain without a dot.
    #[error("the domain must contain a dot")]
    DomainWithoutDot,
    /// A domain label empty or longer than 63 characters.
    #[error("each part of the domain must have 1 to 63 characters")]
    DomainLabelLength,
    /// A domain character that is not a letter, digit or hyphen.
    #[error("{0:?} is not allowed in the domain")]
    DomainCharacter(char),
    /// A domain label starting or ending with a hyphen.
    #[error("a part of the domain starts or ends with a hyphen")]
    DomainLabelHyphen,
}

impl Email {
    /// Parses an address (surrounding whitespace ignored), lower-casing its domain.
    pub fn parse(input: &str) -> Result<Self, EmailError> {
        let s = input.trim();
        if s.is_empty() {
            return Err(EmailError::Empty);
        }
        let count = s.chars().count();
        if count > MAX_EMAIL_LEN {
            return Err(EmailError::TooLong(count));
        }
        let ats = s.matches('@').count();
        let Some((local, domain)) = s.split_once('@').filter(|_| ats == 1) else {
            return Err(EmailError::AtSigns(ats));
        };
        let local_len = local.chars().count();
        if local_len == 0 || local_len > MAX_LOCAL_LEN {
            return Err(EmailError::LocalPartLength(local_len));
        }
        if let Some(ch) = local.chars().find(|c| !c.is_ascii_graphic()) {
            return Err(EmailError::LocalPartCharacter(ch));
        }
        if !domain.contains('.') {
            return Err(EmailError::DomainWithoutDot);
        }
        for label in domain.split('.') {
            if label.is_empty() || label.chars().count() > MAX_LABEL_LEN {
                return Err(EmailError::DomainLabelLength);
            }
            if let Some(ch) = label
                .chars()
                .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
            {
                return Err(EmailError::DomainCharacter(ch));
            }
            if label.starts_with('-') || label.ends_with('-') {
                return Err(EmailError::DomainLabelHyphen);
            }
        }
        Ok(Self(format!("{local}@{}", domain.to_ascii_lowercase())))
    }

    /// The part before the `@`, as given.
    pub fn local_part(&self) -> &str {
        self.0.split_once('@').map_or("", |(local, _)| local)
    }

    /// The domain, lower-case.
    pub fn domain(&self) -> &str {
        self.0.split_once('@').map_or("", |(_, domain)| domain)
    }
}

string_newtype!(Email, EmailError);

/// Fewest digits accepted after the `+`.
const MIN_PHONE_DIGITS: usize = 8;
/// Most digits allowed by E.164.
const MAX_PHONE_DIGITS: usize = 15;

/// A phone number in E.164 form: `+`, then 8 to 15 digits, the first one not 0.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(value_type = String, example = "+18045550142"))]
pub struct PhoneE164(String);

/// Why a string is not a [`PhoneE164`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    /// Does not start with `+`.
    #[error("an E.164 phone number starts with +")]
    MissingPlus,
    /// Something other than a digit after the `+`.
    #[error("{0:?} is not a digit; write the number as + and digits only")]
    NotADigit(char),
    /// Fewer than 8 or more than 15 digits.
    #[error("an E.164 phone number has 8 to 15 digits after the +, this one has {0}")]
    DigitCount(usize),
    /// First digit (of the country code) is 0.
    #[error("the country code cannot start with 0")]
    LeadingZero,
}

impl PhoneE164 {
    /// Parses `+` followed by 8 to 15 digits, the first 1–9 (surrounding whitespace ignored).
    pub fn parse(input: &str) -> Result<Self, PhoneError> {
        let s = input.trim();
        let Some(digits) = s.strip_prefix('+') else {
            return Err(PhoneError::MissingPlus);
        };
        if let Some(ch) = digits.chars().find(|c| !c.is_ascii_digit()) {
            return Err(PhoneError::NotADigit(ch));
        }
        let count = digits.len();
        if !(MIN_PHONE_DIGITS..=MAX_PHONE_DIGITS).contains(&count) {
            return Err(PhoneError::DigitCount(count));
        }
        if digits.starts_with('0') {
            return Err(PhoneError::LeadingZero);
        }
        Ok(Self(s.to_owned()))
    }

    /// The digits after the `+`.
    pub fn digits(&self) -> &str {
        &self.0[1..]
    }
}

string_newtype!(PhoneE164, PhoneError);

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn valid_emails() {
        let e = Email::parse(" Ana.Diaz+quotes@Example.COM ").unwrap();
        assert_eq!(e.as_str(), "Ana.Diaz+quotes@example.com");
        assert_eq!(e.local_part(), "Ana.Diaz+quotes");
        assert_eq!(e.domain(), "example.com");
        assert!(Email::parse("a@b.co").is_ok());
        assert!(Email::parse("x!#$%&'*+/=?^_`{|}~-@my-host.example.org").is_ok());
        let local = "l".repeat(64);
        let domain = format!(
            "{}.{}.{}.com",
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(57)
        );
        let longest = format!("{local}@{domain}");
        assert_eq!(longest.len(), 254);
        assert!(Email::parse(&longest).is_ok());
    }

    #[test]
    fn invalid_emails() {
        use EmailError::*;
        let cases: &[(&str, EmailError)] = &[
            ("", Empty),
            ("   ", Empty),
            ("ana.example.com", AtSigns(0)),
            ("ana@@example.com", AtSigns(2)),
            ("a@b@example.com", AtSigns(2)),
            ("@example.com", LocalPartLength(0)),
            ("an a@example.com", LocalPartCharacter(' ')),
            ("anä@example.com", LocalPartCharacter('ä')),
            ("ana@localhost", DomainWithoutDot),
            ("ana@example..com", DomainLabelLength),
            ("ana@.example.com", DomainLabelLength),
            ("ana@example.com.", DomainLabelLength),
            ("ana@exa_mple.com", DomainCharacter('_')),
            ("ana@-example.com", DomainLabelHyphen),
            ("ana@example-.com", DomainLabelHyphen),
        ];
        for (input, err) in cases {
            assert_eq!(Email::parse(input).as_ref(), Err(err), "{input:?}");
        }
        let long_local = format!("{}@example.com", "l".repeat(65));
        assert_eq!(Email::parse(&long_local), Err(LocalPartLength(65)));
        let long_label = format!("a@{}.com", "d".repeat(64));
        assert_eq!(Email::parse(&long_label), Err(DomainLabelLength));
        let too_long = format!("a@{}.com", vec!["d".repeat(60); 5].join("."));
        assert!(matches!(Email::parse(&too_long), Err(TooLong(_))));
    }

    #[test]
    fn phones() {
        let p = PhoneE164::parse(" +18045550142 ").unwrap();
        assert_eq!(p.as_str(), "+18045550142");
        assert_eq!(p.digits(), "18045550142");
        assert!(PhoneE164::parse("+12345678").is_ok());
        assert!(PhoneE164::parse("+123456789012345").is_ok());
        assert_eq!(
            PhoneE164::parse("18045550142"),
            Err(PhoneError::MissingPlus)
        );
        assert_eq!(
            PhoneE164::parse("+1 804 555 0142"),
            Err(PhoneError::NotADigit(' '))
        );
        assert_eq!(PhoneE164::parse("+1234567"), Err(PhoneError::DigitCount(7)));
        assert_eq!(
            PhoneE164::parse("+1234567890123456"),
            Err(PhoneError::DigitCount(16))
        );
        assert_eq!(PhoneE164::parse("+"), Err(PhoneError::DigitCount(0)));
        assert_eq!(
            PhoneE164::parse("+08045550142"),
            Err(PhoneError::LeadingZero)
        );
    }

    #[test]
    fn serde() {
        let e: Email = serde_json::from_str("\"ana@EXAMPLE.com\"").unwrap();
        assert_eq!(serde_json::to_string(&e).unwrap(), "\"ana@example.com\"");
        assert!(serde_json::from_str::<Email>("\"nope\"").is_err());
        let p: PhoneE164 = serde_json::from_str("\"+18045550142\"").unwrap();
        assert_eq!(serde_json::to_string(&p).unwrap(), "\"+18045550142\"");
        assert!(serde_json::from_str::<PhoneE164>("\"555-0142\"").is_err());
    }
}
