//! Validated value types, one file per type.
//!
//! Every type here can only hold a valid value: fields are private, values are built with
//! `parse` (or `TryFrom`/`FromStr`), and serde goes through the same parser, so a value read
//! back from JSON is exactly as trustworthy as one parsed from user input. String parsers trim
//! surrounding whitespace and store the canonical form (upper-case VINs, lower-case e-mail
//! domains, …), which is also what they serialize as.
//!
//! Types whose validity depends on "today" ([`DateOfBirth`], [`FirstLicensed`]) check the
//! relative rule (age, licensing age) only in `parse`; deserialization checks the format, since
//! this crate never reads the clock and stored facts must stay readable as time passes.

/// Implements the string plumbing shared by the `String`-backed newtypes.
///
/// Textually scoped: it is defined before the `mod` lines so the type modules can use it.
/// The type must be a tuple struct over `String` with an inherent
/// `fn parse(&str) -> Result<Self, $err>`. This adds `as_str`, `Display`, `FromStr`,
/// `TryFrom<String>`/`TryFrom<&str>` (used by serde's `try_from`), `From<T> for String` (used
/// by serde's `into`) and `AsRef<str>`.
macro_rules! string_newtype {
    ($ty:ident, $err:ty) => {
        impl $ty {
            /// The canonical string form.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl ::std::fmt::Display for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl ::std::str::FromStr for $ty {
            type Err = $err;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl TryFrom<String> for $ty {
            type Error = $err;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::parse(&s)
            }
        }

        impl TryFrom<&str> for $ty {
            type Error = $err;
            fn try_from(s: &str) -> Result<Self, Self::Error> {
                Self::parse(s)
            }
        }

        impl From<$ty> for String {
            fn from(v: $ty) -> String {
                v.0
            }
        }

        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

mod contact;
mod coverage;
mod customer;
mod dates;
mod license;
mod money;
mod name;
mod vehicle_use;
mod vin;
mod zip;

pub use contact::{Email, EmailError, PhoneE164, PhoneError};
pub use coverage::{Coverage, CoverageError, Deductible, LiabilityLimit};
pub use customer::{CustomerId, CustomerIdError};
pub(crate) use dates::{iso_date, parse_iso_date};
pub use dates::{
    DateError, DateOfBirth, FirstLicensed, MAX_DRIVER_AGE, MIN_DRIVER_AGE, MIN_LICENSING_AGE,
};
pub use license::{LicenseNumber, LicenseNumberError, UsState, UsStateError};
pub use money::Money;
pub use name::{PersonName, PersonNameError};
pub use vehicle_use::{VehicleUse, VehicleUseError};
pub use vin::{Vin, VinError};
pub use zip::{ZipCode, ZipError};
