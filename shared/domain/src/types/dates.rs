//! Driver dates: date of birth (age 16 to 100) and the date first licensed.
//!
//! Both are ISO `YYYY-MM-DD` calendar dates. Their relative rules depend on a reference date
//! `on` that the caller passes (this crate never reads the clock):
//! - a [`DateOfBirth`] makes the driver 16 to 100 full years old (inclusive) on `on`;
//! - a [`FirstLicensed`] date is not after `on` and not before the driver's 14th birthday.
//!
//! Deserialization only checks the ISO format: a stored request must stay readable after its
//! driver turns 101.
//!
//! Ages count full years; someone born on 29 February turns a year older on 1 March in
//! non-leap years.

use serde::{Deserialize, Serialize};
use time::{Date, Month};

/// Youngest driver age accepted, in full years.
pub const MIN_DRIVER_AGE: u8 = 16;
/// Oldest driver age accepted, in full years.
pub const MAX_DRIVER_AGE: u8 = 100;
/// Youngest age at which a licence may have been first issued, in full years.
pub const MIN_LICENSING_AGE: u8 = 14;

/// Why a string is not a valid driver date.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DateError {
    /// Not shaped `YYYY-MM-DD`.
    #[error("expected a date as YYYY-MM-DD")]
    Format,
    /// Shaped right but not a day of the calendar, e.g. `2023-02-30`.
    #[error("{0} is not a calendar date")]
    NotACalendarDate(String),
    /// A date of birth after the reference date.
    #[error("date of birth is in the future")]
    BirthInFuture,
    /// Younger than [`MIN_DRIVER_AGE`].
    #[error("the driver is {age}; drivers must be at least 16")]
    TooYoung {
        /// Age in full years on the reference date.
        age: u8,
    },
    /// Older than [`MAX_DRIVER_AGE`].
    #[error("the driver is {age}; drivers must be at most 100")]
    TooOld {
        /// Age in full years on the reference date (saturated at 255).
        age: u8,
    },
    /// A first-licensed date after the reference date.
    #[error("first licensed date is after {on}")]
    LicensedInFuture {
        /// The reference date.
        on: Date,
    },
    /// A first-licensed date before the driver's 14th birthday.
    #[error("first licensed date is before the driver's 14th birthday ({earliest})")]
    LicensedBeforeFourteen {
        /// The 14th birthday: the earliest acceptable date.
        earliest: Date,
    },
}

/// A driver's date of birth, making them 16 to 100 years old when it was parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(
    feature = "openapi",
    schema(value_type = String, format = Date, example = "1988-03-14")
)]
pub struct DateOfBirth(Date);

impl DateOfBirth {
    /// Parses an ISO date of birth making the driver 16 to 100 full years old on `on`.
    pub fn parse(input: &str, on: Date) -> Result<Self, DateError> {
        Self::from_date(parse_iso_date(input)?, on)
    }

    /// Checks an already-parsed date of birth against the age rule on `on`.
    pub fn from_date(date: Date, on: Date) -> Result<Self, DateError> {
        if date > on {
            return Err(DateError::BirthInFuture);
        }
        let age = age_between(date, on);
        if age < MIN_DRIVER_AGE {
            Err(DateError::TooYoung { age })
        } else if age > MAX_DRIVER_AGE {
            Err(DateError::TooOld { age })
        } else {
            Ok(Self(date))
        }
    }

    /// The date.
    pub fn date(&self) -> Date {
        self.0
    }

    /// Age in full years on `date` (0 before the birth date, saturating at 255).
    pub fn age_on(&self, date: Date) -> u8 {
        age_between(self.0, date)
    }

    /// The `n`th birthday (29 February births celebrate on 1 March in non-leap years).
    pub fn birthday(&self, n: u8) -> Option<Date> {
        anniversary(self.0, n)
    }
}

/// The date a driver was first licensed: not in the future and not before their 14th birthday.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(
    feature = "openapi",
    schema(value_type = String, format = Date, example = "2006-05-01")
)]
pub struct FirstLicensed(Date);

impl FirstLicensed {
    /// Parses an ISO date that is not after `on` nor before the 14th birthday.
    pub fn parse(input: &str, date_of_birth: &DateOfBirth, on: Date) -> Result<Self, DateError> {
        Self::from_date(parse_iso_date(input)?, date_of_birth, on)
    }

    /// Checks an already-parsed date against the licensing rules.
    pub fn from_date(date: Date, date_of_birth: &DateOfBirth, on: Date) -> Result<Self, DateError> {
        if date > on {
            return Err(DateError::LicensedInFuture { on });
        }
        if age_between(date_of_birth.0, date) < MIN_LICENSING_AGE {
            // The birthday exists for any date of birth the type accepts; fall back to the
            // birth date itself rather than panicking.
            let earliest = date_of_birth
                .birthday(MIN_LICENSING_AGE)
                .unwrap_or(date_of_birth.0);
            return Err(DateError::LicensedBeforeFourteen { earliest });
        }
        Ok(Self(date))
    }

    /// The date.
    pub fn date(&self) -> Date {
        self.0
    }

    /// Full years of driving experience on `date` (0 before the licence date).
    pub fn years_licensed_on(&self, date: Date) -> u8 {
        age_between(self.0, date)
    }
}

macro_rules! date_newtype {
    ($ty:ident) => {
        impl ::std::fmt::Display for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(&format_iso_date(self.0))
            }
        }

        /// Deserialization checks the ISO format only (see the module documentation).
        impl TryFrom<String> for $ty {
            type Error = DateError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                parse_iso_date(&s).map(Self)
            }
        }

        impl From<$ty> for String {
            fn from(v: $ty) -> String {
                format_iso_date(v.0)
            }
        }

        impl From<$ty> for Date {
            fn from(v: $ty) -> Date {
                v.0
            }
        }
    };
}

date_newtype!(DateOfBirth);
date_newtype!(FirstLicensed);

/// Parses a strict ISO `YYYY-MM-DD` date (surrounding whitespace ignored).
pub(crate) fn parse_iso_date(input: &str) -> Result<Date, DateError> {
    let s = input.trim();
    let b = s.as_bytes();
    let shaped = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if !shaped {
        return Err(DateError::Format);
    }
    let number = |range: std::ops::Range<usize>| {
        b[range]
            .iter()
            .fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0'))
    };
    let not_a_date = || DateError::NotACalendarDate(s.to_owned());
    let year = i32::try_from(number(0..4)).map_err(|_| not_a_date())?;
    let month = u8::try_from(number(5..7))
        .ok()
        .and_then(|m| Month::try_from(m).ok())
        .ok_or_else(not_a_date)?;
    let day = u8::try_from(number(8..10)).map_err(|_| not_a_date())?;
    Date::from_calendar_date(year, month, day).map_err(|_| not_a_date())
}

/// Formats a date as `YYYY-MM-DD`.
pub(crate) fn format_iso_date(date: Date) -> String {
    format!(
        "{:04}-{:02}-{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}

/// Serde helpers for a plain [`Date`] field as a strict ISO `YYYY-MM-DD` string
/// (`#[serde(with = "crate::types::iso_date")]`), the same form as [`DateOfBirth`].
pub(crate) mod iso_date {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::Date;

    /// Writes `YYYY-MM-DD`.
    pub(crate) fn serialize<S: Serializer>(date: &Date, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&super::format_iso_date(*date))
    }

    /// Reads a strict `YYYY-MM-DD`.
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Date, D::Error> {
        let s = String::deserialize(deserializer)?;
        super::parse_iso_date(&s).map_err(serde::de::Error::custom)
    }
}

/// Full years from `from` to `to`: 0 if `to` is before `from`, saturating at 255.
fn age_between(from: Date, to: Date) -> u8 {
    if to < from {
        return 0;
    }
    let mut years = to.year() - from.year();
    if (u8::from(to.month()), to.day()) < (u8::from(from.month()), from.day()) {
        years -= 1;
    }
    u8::try_from(years.max(0)).unwrap_or(u8::MAX)
}

/// `from` plus `n` years; 29 February maps to 1 March in non-leap years.
fn anniversary(from: Date, n: u8) -> Option<Date> {
    let year = from.year() + i32::from(n);
    Date::from_calendar_date(year, from.month(), from.day())
        .or_else(|_| Date::from_calendar_date(year, Month::March, 1))
        .ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use time::macros::date;

    const TODAY: Date = date!(2026 - 11 - 27);

    #[test]
    fn parses_a_date_of_birth() {
        let dob = DateOfBirth::parse("1988-03-14", TODAY).unwrap();
        assert_eq!(dob.date(), date!(1988 - 03 - 14));
        assert_eq!(dob.age_on(TODAY), 38);
        assert_eq!(dob.to_string(), "1988-03-14");
    }

    #[test]
    fn age_boundaries() {
        // Sixteenth birthday today: accepted; tomorrow: too young.
        assert!(DateOfBirth::parse("2010-11-27", TODAY).is_ok());
        assert_eq!(
            DateOfBirth::parse("2010-11-28", TODAY),
            Err(DateError::TooYoung { age: 15 })
        );
        // 100 until the day before the 101st birthday.
        assert!(DateOfBirth::parse("1925-11-28", TODAY).is_ok());
        assert_eq!(
            DateOfBirth::parse("1925-11-27", TODAY),
            Err(DateError::TooOld { age: 101 })
        );
        assert_eq!(
            DateOfBirth::parse("2026-11-28", TODAY),
            Err(DateError::BirthInFuture)
        );
    }

    #[test]
    fn leap_day_births() {
        let dob = DateOfBirth::parse("2008-02-29", date!(2025 - 01 - 01)).unwrap();
        assert_eq!(dob.age_on(date!(2025 - 02 - 28)), 16);
        assert_eq!(dob.age_on(date!(2025 - 03 - 01)), 17);
        assert_eq!(dob.age_on(date!(2028 - 02 - 29)), 20);
        assert_eq!(dob.birthday(14), Some(date!(2022 - 03 - 01)));
        assert_eq!(dob.birthday(16), Some(date!(2024 - 02 - 29)));
        assert_eq!(dob.age_on(date!(2000 - 01 - 01)), 0);
    }

    #[test]
    fn rejects_malformed_dates() {
        for bad in [
            "",
            "1988-3-14",
            "14/03/1988",
            "1988-03-14T00:00",
            "+988-03-14",
            "19880314",
        ] {
            assert_eq!(
                DateOfBirth::parse(bad, TODAY),
                Err(DateError::Format),
                "{bad:?}"
            );
        }
        assert_eq!(
            DateOfBirth::parse("1988-02-30", TODAY),
            Err(DateError::NotACalendarDate("1988-02-30".into()))
        );
        assert_eq!(
            DateOfBirth::parse("1988-13-01", TODAY),
            Err(DateError::NotACalendarDate("1988-13-01".into()))
        );
    }

    #[test]
    fn first_licensed_rules() {
        let dob = DateOfBirth::parse("1988-03-14", TODAY).unwrap();
        let fl = FirstLicensed::parse("2006-05-01", &dob, TODAY).unwrap();
        assert_eq!(fl.to_string(), "2006-05-01");
        assert_eq!(fl.years_licensed_on(TODAY), 20);
        assert!(FirstLicensed::parse("2002-03-14", &dob, TODAY).is_ok());
        assert_eq!(
            FirstLicensed::parse("2002-03-13", &dob, TODAY),
            Err(DateError::LicensedBeforeFourteen {
                earliest: date!(2002 - 03 - 14)
            })
        );
        assert!(FirstLicensed::parse("2026-11-27", &dob, TODAY).is_ok());
        assert_eq!(
            FirstLicensed::parse("2026-11-28", &dob, TODAY),
            Err(DateError::LicensedInFuture { on: TODAY })
        );
        assert_eq!(
            FirstLicensed::parse("May 2006", &dob, TODAY),
            Err(DateError::Format)
        );
    }

    #[test]
    fn serde_checks_format_only() {
        let dob: DateOfBirth = serde_json::from_str("\"1900-01-01\"").unwrap();
        assert_eq!(serde_json::to_string(&dob).unwrap(), "\"1900-01-01\"");
        assert!(serde_json::from_str::<DateOfBirth>("\"1900-1-1\"").is_err());
        let fl: FirstLicensed = serde_json::from_str("\"0999-12-31\"").unwrap();
        assert_eq!(String::from(fl), "0999-12-31");
    }
}
