//! The quote request: the raw JSON DTO and its validation into a [`QuoteRequest`].
//!
//! [`QuoteRequestInput`] mirrors the HTTP body exactly, with raw leaves (strings, integers,
//! floats, booleans), so JSON with the right shape but wrong *values* still deserializes and
//! [`QuoteRequest::parse`] can name every bad field at once:
//!
//! ```
//! use quote_domain::{QuoteRequest, QuoteRequestInput};
//! use time::macros::date;
//!
//! let input: QuoteRequestInput = serde_json::from_str(r#"{
//!   "customer_id": "cust-42",
//!   "contact": {"email": "ana@example.com", "phone": "+18045550142"},
//!   "vehicles": [{"vin": "1HGCM82633A004352", "annual_mileage": 12000,
//!                 "garaging_zip": "23220", "use": "commute"}],
//!   "drivers": [{"first_name": "Ana", "last_name": "Diaz", "date_of_birth": "1988-03-14",
//!                "license_number": "T12345678", "license_state": "VA",
//!                "first_licensed": "2006-05-01"}],
//!   "coverage": {"liability_limit": "100/300/100", "collision_deductible": 500,
//!                "comprehensive_deductible": 500},
//!   "notify": {"email": true, "sms": false, "max_premium": 1800}
//! }"#).expect("well-formed JSON");
//! let request = QuoteRequest::parse(&input, date!(2026 - 11 - 27)).expect("valid request");
//! assert_eq!(request.vehicles[0].vin.wmi(), "1HG");
//! ```
//!
//! Field paths in [`FieldError`] use the JSON names: `customer_id`, `contact.email`,
//! `vehicles` (the count), `vehicles[0].vin`, `drivers[1].date_of_birth`,
//! `coverage.liability_limit`, `notify.max_premium`, …
//!
//! Deserializing a [`QuoteRequest`] (e.g. from a stored event) re-checks every value type but
//! not the request-level policy (counts, duplicates, notification consistency, ages on the
//! request day): those rules may change, and facts recorded under the old rules must remain
//! readable.

use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use time::Date;

use crate::types::{
    Coverage, CustomerId, DateOfBirth, Deductible, Email, FirstLicensed, LiabilityLimit,
    LicenseNumber, Money, PersonName, PhoneE164, UsState, VehicleUse, Vin, ZipCode,
};

/// Fewest vehicles on a request.
pub const MIN_VEHICLES: usize = 1;
/// Most vehicles on a request.
pub const MAX_VEHICLES: usize = 4;
/// Fewest drivers on a request.
pub const MIN_DRIVERS: usize = 1;
/// Most drivers on a request.
pub const MAX_DRIVERS: usize = 6;
/// Highest declared annual mileage.
pub const MAX_ANNUAL_MILEAGE: u32 = 200_000;
/// Highest `notify.max_premium`, in whole dollars.
pub const MAX_PREMIUM_CEILING_DOLLARS: u64 = 10_000_000;

// ---------------------------------------------------------------------------------------------
// Raw input.
// ---------------------------------------------------------------------------------------------

/// The quote request as received: the exact JSON shape, raw values, unknown fields rejected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(example = openapi::example_request))]
pub struct QuoteRequestInput {
    /// The customer's id (1–128 of ASCII letters, digits, `-_.:@`).
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = r"^[A-Za-z0-9._:@-]{1,128}$", example = "cust-42")
    )]
    pub customer_id: String,
    /// How to reach the customer; at least one of e-mail and phone.
    #[serde(default)]
    pub contact: RawContact,
    /// 1 to 4 vehicles, no VIN twice.
    #[cfg_attr(feature = "openapi", schema(min_items = 1, max_items = 4))]
    pub vehicles: Vec<RawVehicle>,
    /// 1 to 6 drivers, no licence (state and number) twice.
    #[cfg_attr(feature = "openapi", schema(min_items = 1, max_items = 6))]
    pub drivers: Vec<RawDriver>,
    /// Chosen coverage.
    pub coverage: RawCoverage,
    /// Notification preferences; none when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<RawNotify>,
}

/// Raw `contact`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RawContact {
    /// E-mail address (at most 254 characters, one `@`, a dotted domain).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        schema(max_length = 254, example = "ana@example.com")
    )]
    pub email: Option<String>,
    /// Phone number in E.164 form, e.g. `+18045550142`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = r"^\+[1-9][0-9]{7,14}$", example = "+18045550142")
    )]
    pub phone: Option<String>,
}

/// Raw `vehicles[i]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RawVehicle {
    /// 17-character VIN (no I, O or Q) with a valid check digit (position 9).
    #[cfg_attr(
        feature = "openapi",
        schema(
            pattern = r"^[A-HJ-NPR-Za-hj-npr-z0-9]{17}$",
            example = "1HGCM82633A004352"
        )
    )]
    pub vin: String,
    /// Miles per year, 0 to 200,000.
    #[cfg_attr(
        feature = "openapi",
        schema(minimum = 0, maximum = 200_000, example = 12_000)
    )]
    pub annual_mileage: i64,
    /// ZIP code where the vehicle is kept overnight (`12345` or `12345-6789`).
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = r"^[0-9]{5}(-[0-9]{4})?$", example = "23220")
    )]
    pub garaging_zip: String,
    /// `commute`, `pleasure` or `business`.
    #[serde(rename = "use")]
    #[cfg_attr(feature = "openapi", schema(schema_with = openapi::vehicle_use))]
    pub vehicle_use: String,
}

/// Raw `drivers[i]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RawDriver {
    /// Given name (1 to 100 characters, no control characters).
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 100, example = "Ana")
    )]
    pub first_name: String,
    /// Family name (1 to 100 characters, no control characters).
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 100, example = "Diaz")
    )]
    pub last_name: String,
    /// `YYYY-MM-DD`; the driver is 16 to 100.
    #[cfg_attr(feature = "openapi", schema(format = Date, example = "1988-03-14"))]
    pub date_of_birth: String,
    /// Licence number, 1–20 letters and digits.
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = "^[A-Za-z0-9]{1,20}$", example = "T12345678")
    )]
    pub license_number: String,
    /// Two-letter code of the issuing state (or DC).
    #[cfg_attr(feature = "openapi", schema(schema_with = openapi::us_state))]
    pub license_state: String,
    /// `YYYY-MM-DD`, not before the 14th birthday nor in the future.
    #[cfg_attr(feature = "openapi", schema(format = Date, example = "2006-05-01"))]
    pub first_licensed: String,
}

/// Raw `coverage`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RawCoverage {
    /// `25/50/25`, `50/100/50`, `100/300/100` or `250/500/250`.
    #[cfg_attr(feature = "openapi", schema(schema_with = openapi::liability_limit))]
    pub liability_limit: String,
    /// 250, 500, 1000 or 2000 dollars.
    #[cfg_attr(feature = "openapi", schema(schema_with = openapi::deductible))]
    pub collision_deductible: i64,
    /// 250, 500, 1000 or 2000 dollars.
    #[cfg_attr(feature = "openapi", schema(schema_with = openapi::deductible))]
    pub comprehensive_deductible: i64,
}

/// Raw `notify`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RawNotify {
    /// Send the quote by e-mail (needs `contact.email`).
    #[serde(default)]
    pub email: bool,
    /// Send the quote by SMS (needs `contact.phone`).
    #[serde(default)]
    pub sms: bool,
    /// Only notify when the annual premium is at most this many whole dollars (1 to
    /// 10,000,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        schema(minimum = 1, maximum = 10_000_000, multiple_of = 1, example = 1800)
    )]
    pub max_premium: Option<f64>,
}

/// The domain's rules as OpenAPI schemas, for the fields whose JSON type alone cannot say them.
#[cfg(feature = "openapi")]
mod openapi {
    use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
    use utoipa::openapi::RefOr;

    use crate::types::{Deductible, LiabilityLimit, UsState, VehicleUse};

    fn one_of_strings(values: Vec<String>, description: &str) -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(values))
            .description(Some(description))
            .into()
    }

    /// `use`: one of the vehicle uses.
    pub(super) fn vehicle_use() -> RefOr<Schema> {
        one_of_strings(
            VehicleUse::ALL
                .iter()
                .map(|u| u.as_str().to_owned())
                .collect(),
            "`commute`, `pleasure` or `business`.",
        )
    }

    /// `license_state`: a USPS code of the 50 states and DC.
    pub(super) fn us_state() -> RefOr<Schema> {
        one_of_strings(
            UsState::all().map(|s| s.as_str().to_owned()).collect(),
            "Two-letter code of the issuing state (or DC).",
        )
    }

    /// `liability_limit`: one of the offered limits.
    pub(super) fn liability_limit() -> RefOr<Schema> {
        one_of_strings(
            LiabilityLimit::ALL
                .iter()
                .map(|l| l.as_str().to_owned())
                .collect(),
            "`25/50/25`, `50/100/50`, `100/300/100` or `250/500/250`.",
        )
    }

    /// A deductible: one of the offered amounts in dollars.
    pub(super) fn deductible() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .enum_values(Some(Deductible::ALL.iter().map(|d| d.amount())))
            .description(Some("250, 500, 1000 or 2000 dollars."))
            .into()
    }

    /// A valid request (the README's example).
    pub(super) fn example_request() -> serde_json::Value {
        serde_json::json!({
            "customer_id": "cust-42",
            "contact": {"email": "ana@example.com", "phone": "+18045550142"},
            "vehicles": [{"vin": "1HGCM82633A004352", "annual_mileage": 12000,
                          "garaging_zip": "23220", "use": "commute"}],
            "drivers": [{"first_name": "Ana", "last_name": "Diaz", "date_of_birth": "1988-03-14",
                         "license_number": "T12345678", "license_state": "VA",
                         "first_licensed": "2006-05-01"}],
            "coverage": {"liability_limit": "100/300/100", "collision_deductible": 500,
                         "comprehensive_deductible": 500},
            "notify": {"email": true, "sms": false, "max_premium": 1800}
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Validated request.
// ---------------------------------------------------------------------------------------------

/// A validated quote request. Build it with [`QuoteRequest::parse`].
///
/// Fields are public for reading (and for building fixtures); every value in them is a
/// validated type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QuoteRequest {
    /// The customer asking for the quote.
    pub customer_id: CustomerId,
    /// How to reach the customer.
    pub contact: Contact,
    /// The vehicles to insure (1 to 4, distinct VINs).
    pub vehicles: Vec<Vehicle>,
    /// The drivers (1 to 6, distinct licences).
    pub drivers: Vec<Driver>,
    /// Chosen coverage.
    pub coverage: Coverage,
    /// Notification preferences.
    #[serde(default)]
    pub notify: NotifyPreferences,
}

/// Validated contact points.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Contact {
    /// E-mail address.
    #[serde(default)]
    pub email: Option<Email>,
    /// Phone number.
    #[serde(default)]
    pub phone: Option<PhoneE164>,
}

/// A validated vehicle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Vehicle {
    /// VIN.
    pub vin: Vin,
    /// Miles per year, 0 to [`MAX_ANNUAL_MILEAGE`].
    pub annual_mileage: u32,
    /// Where the vehicle is kept overnight.
    pub garaging_zip: ZipCode,
    /// Main use.
    #[serde(rename = "use")]
    pub vehicle_use: VehicleUse,
}

/// The name the brief gives to the validated vehicle; same type as [`Vehicle`].
pub type VehicleInput = Vehicle;

/// A validated driver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Driver {
    /// Given name.
    pub first_name: PersonName,
    /// Family name.
    pub last_name: PersonName,
    /// Date of birth.
    pub date_of_birth: DateOfBirth,
    /// Licence number.
    pub license_number: LicenseNumber,
    /// Issuing state.
    pub license_state: UsState,
    /// Date first licensed.
    pub first_licensed: FirstLicensed,
}

/// Validated notification preferences; all off by default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NotifyPreferences {
    /// Send the quote by e-mail.
    #[serde(default)]
    pub email: bool,
    /// Send the quote by SMS.
    #[serde(default)]
    pub sms: bool,
    /// Only notify when the annual premium is at most this amount.
    #[serde(default)]
    pub max_premium: Option<Money>,
}

// ---------------------------------------------------------------------------------------------
// Errors.
// ---------------------------------------------------------------------------------------------

/// One invalid field: its JSON path and a short human reason.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FieldError {
    /// JSON path, e.g. `vehicles[0].vin`.
    pub field: String,
    /// Human sentence, e.g. `check digit is 4 but the VIN has 3`.
    pub reason: String,
}

impl FieldError {
    /// A field error.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

/// Every field error of a request, in document order. Serialized as a JSON array.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ValidationErrors(pub Vec<FieldError>);

impl ValidationErrors {
    /// The paths of the invalid fields.
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|e| e.field.as_str())
    }

    /// The error for `field`, if any.
    pub fn get(&self, field: &str) -> Option<&FieldError> {
        self.0.iter().find(|e| e.field == field)
    }

    fn push(&mut self, field: impl Into<String>, reason: impl Into<String>) {
        self.0.push(FieldError::new(field, reason));
    }

    /// Records the error of `result` under `field`.
    fn check<T, E: fmt::Display>(
        &mut self,
        field: impl Into<String>,
        result: Result<T, E>,
    ) -> Option<T> {
        result.map_err(|e| self.push(field, e.to_string())).ok()
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid quote request")?;
        for (i, e) in self.0.iter().enumerate() {
            write!(f, "{} {e}", if i == 0 { ":" } else { ";" })?;
        }
        Ok(())
    }
}

impl std::error::Error for ValidationErrors {}

// ---------------------------------------------------------------------------------------------
// Validation.
// ---------------------------------------------------------------------------------------------

impl QuoteRequest {
    /// Validates a raw request on `today` (the caller's date), reporting every invalid field.
    ///
    /// Beyond the value types: 1–4 vehicles, 1–6 drivers, no VIN twice, no licence (state and
    /// number) twice, at least one of `contact.email`/`contact.phone`, `notify.email` needs
    /// `contact.email`, `notify.sms` needs `contact.phone`, `notify.max_premium` is a positive
    /// whole number of dollars.
    pub fn parse(input: &QuoteRequestInput, today: Date) -> Result<QuoteRequest, ValidationErrors> {
        let mut errors = ValidationErrors::default();

        let customer_id = errors.check("customer_id", CustomerId::parse(&input.customer_id));
        let contact = parse_contact(&input.contact, &mut errors);
        let vehicles = parse_vehicles(&input.vehicles, &mut errors);
        let drivers = parse_drivers(&input.drivers, today, &mut errors);
        let coverage = parse_coverage(&input.coverage, &mut errors);
        let notify = parse_notify(input.notify.as_ref(), &input.contact, &mut errors);

        if !errors.0.is_empty() {
            return Err(errors);
        }
        match (customer_id, contact, vehicles, drivers, coverage, notify) {
            (
                Some(customer_id),
                Some(contact),
                Some(vehicles),
                Some(drivers),
                Some(coverage),
                Some(notify),
            ) => Ok(QuoteRequest {
                customer_id,
                contact,
                vehicles,
                drivers,
                coverage,
                notify,
            }),
            // Every `None` above recorded an error, so this is unreachable; report rather
            // than panic.
            _ => Err(ValidationErrors(vec![FieldError::new(
                "",
                "the request could not be validated",
            )])),
        }
    }

    /// The raw form of this request (what a client would send to get it back).
    pub fn to_input(&self) -> QuoteRequestInput {
        QuoteRequestInput::from(self)
    }
}

fn parse_contact(raw: &RawContact, errors: &mut ValidationErrors) -> Option<Contact> {
    if raw.email.is_none() && raw.phone.is_none() {
        errors.push("contact", "at least one of email or phone is required");
        return None;
    }
    let email = raw
        .email
        .as_deref()
        .map(|e| errors.check("contact.email", Email::parse(e)));
    let phone = raw
        .phone
        .as_deref()
        .map(|p| errors.check("contact.phone", PhoneE164::parse(p)));
    // `Some(None)` means present but invalid.
    Some(Contact {
        email: email.map(|e| e.ok_or(())).transpose().ok()?,
        phone: phone.map(|p| p.ok_or(())).transpose().ok()?,
    })
}

fn parse_vehicles(raw: &[RawVehicle], errors: &mut ValidationErrors) -> Option<Vec<Vehicle>> {
    let mut ok = true;
    if raw.len() < MIN_VEHICLES {
        errors.push("vehicles", "at least one vehicle is required");
        ok = false;
    } else if raw.len() > MAX_VEHICLES {
        errors.push(
            "vehicles",
            format!(
                "at most {MAX_VEHICLES} vehicles per quote, got {}",
                raw.len()
            ),
        );
        ok = false;
    }
    let mut seen: HashMap<Vin, usize> = HashMap::new();
    let mut vehicles = Vec::with_capacity(raw.len());
    for (i, v) in raw.iter().enumerate() {
        let path = |field: &str| format!("vehicles[{i}].{field}");
        let mut vin = errors.check(path("vin"), Vin::parse(&v.vin));
        if let Some(parsed) = &vin {
            if let Some(first) = seen.get(parsed) {
                errors.push(
                    path("vin"),
                    format!("the same VIN is already listed as vehicles[{first}]"),
                );
                vin = None;
            } else {
                seen.insert(parsed.clone(), i);
            }
        }
        let annual_mileage = match u32::try_from(v.annual_mileage) {
            Ok(m) if m <= MAX_ANNUAL_MILEAGE => Some(m),
            _ => {
                errors.push(
                    path("annual_mileage"),
                    format!(
                        "annual mileage must be between 0 and 200,000, got {}",
                        v.annual_mileage
                    ),
                );
                None
            }
        };
        let garaging_zip = errors.check(path("garaging_zip"), ZipCode::parse(&v.garaging_zip));
        let vehicle_use = errors.check(path("use"), VehicleUse::parse(&v.vehicle_use));
        match (vin, annual_mileage, garaging_zip, vehicle_use) {
            (Some(vin), Some(annual_mileage), Some(garaging_zip), Some(vehicle_use)) => {
                vehicles.push(Vehicle {
                    vin,
                    annual_mileage,
                    garaging_zip,
                    vehicle_use,
                });
            }
            _ => ok = false,
        }
    }
    ok.then_some(vehicles)
}

fn parse_drivers(
    raw: &[RawDriver],
    today: Date,
    errors: &mut ValidationErrors,
) -> Option<Vec<Driver>> {
    let mut ok = true;
    if raw.len() < MIN_DRIVERS {
        errors.push("drivers", "at least one driver is required");
        ok = false;
    } else if raw.len() > MAX_DRIVERS {
        errors.push(
            "drivers",
            format!("at most {MAX_DRIVERS} drivers per quote, got {}", raw.len()),
        );
        ok = false;
    }
    let mut seen: HashMap<(UsState, LicenseNumber), usize> = HashMap::new();
    let mut drivers = Vec::with_capacity(raw.len());
    for (i, d) in raw.iter().enumerate() {
        let path = |field: &str| format!("drivers[{i}].{field}");
        let first_name = errors.check(path("first_name"), PersonName::parse(&d.first_name));
        let last_name = errors.check(path("last_name"), PersonName::parse(&d.last_name));
        let date_of_birth = errors.check(
            path("date_of_birth"),
            DateOfBirth::parse(&d.date_of_birth, today),
        );
        let mut license_number = errors.check(
            path("license_number"),
            LicenseNumber::parse(&d.license_number),
        );
        let license_state = errors.check(path("license_state"), UsState::parse(&d.license_state));
        let first_licensed = match &date_of_birth {
            Some(dob) => errors.check(
                path("first_licensed"),
                FirstLicensed::parse(&d.first_licensed, dob, today),
            ),
            None => {
                // Without a valid birth date only the format and "not in the future" can be
                // checked; the driver is invalid anyway.
                let checked = crate::types::parse_iso_date(&d.first_licensed).and_then(|date| {
                    if date > today {
                        Err(crate::types::DateError::LicensedInFuture { on: today })
                    } else {
                        Ok(date)
                    }
                });
                errors.check(path("first_licensed"), checked);
                None
            }
        };
        if let (Some(state), Some(number)) = (license_state, &license_number) {
            let key = (state, number.clone());
            if let Some(first) = seen.get(&key) {
                errors.push(
                    path("license_number"),
                    format!("licence {state} {number} is already listed as drivers[{first}]"),
                );
                license_number = None;
            } else {
                seen.insert(key, i);
            }
        }
        match (
            first_name,
            last_name,
            date_of_birth,
            license_number,
            license_state,
            first_licensed,
        ) {
            (
                Some(first_name),
                Some(last_name),
                Some(date_of_birth),
                Some(license_number),
                Some(license_state),
                Some(first_licensed),
            ) => drivers.push(Driver {
                first_name,
                last_name,
                date_of_birth,
                license_number,
                license_state,
                first_licensed,
            }),
            _ => ok = false,
        }
    }
    ok.then_some(drivers)
}

fn parse_coverage(raw: &RawCoverage, errors: &mut ValidationErrors) -> Option<Coverage> {
    let liability_limit = errors.check(
        "coverage.liability_limit",
        LiabilityLimit::parse(&raw.liability_limit),
    );
    let collision_deductible = errors.check(
        "coverage.collision_deductible",
        Deductible::parse(raw.collision_deductible),
    );
    let comprehensive_deductible = errors.check(
        "coverage.comprehensive_deductible",
        Deductible::parse(raw.comprehensive_deductible),
    );
    Some(Coverage {
        liability_limit: liability_limit?,
        collision_deductible: collision_deductible?,
        comprehensive_deductible: comprehensive_deductible?,
    })
}

fn parse_notify(
    raw: Option<&RawNotify>,
    contact: &RawContact,
    errors: &mut ValidationErrors,
) -> Option<NotifyPreferences> {
    let Some(raw) = raw else {
        return Some(NotifyPreferences::default());
    };
    let mut ok = true;
    if raw.email && contact.email.is_none() {
        errors.push("notify.email", "e-mail notifications need contact.email");
        ok = false;
    }
    if raw.sms && contact.phone.is_none() {
        errors.push("notify.sms", "SMS notifications need contact.phone");
        ok = false;
    }
    let max_premium = match raw.max_premium {
        None => None,
        Some(dollars) => match whole_dollars(dollars) {
            Some(money) => Some(money),
            None => {
                errors.push(
                    "notify.max_premium",
                    format!(
                        "max premium must be a whole number of dollars between 1 and {MAX_PREMIUM_CEILING_DOLLARS}, got {dollars}"
                    ),
                );
                ok = false;
                None
            }
        },
    };
    ok.then_some(NotifyPreferences {
        email: raw.email,
        sms: raw.sms,
        max_premium,
    })
}

/// A positive whole number of dollars up to the ceiling, as [`Money`].
fn whole_dollars(dollars: f64) -> Option<Money> {
    let in_range = dollars.is_finite()
        && dollars >= 1.0
        && dollars.fract() == 0.0
        && dollars <= MAX_PREMIUM_CEILING_DOLLARS as f64;
    if in_range {
        // In range and integral, so the conversion is exact.
        Money::from_dollars(dollars as u64)
    } else {
        None
    }
}

impl From<&QuoteRequest> for QuoteRequestInput {
    fn from(r: &QuoteRequest) -> Self {
        let notify = &r.notify;
        let has_notify = notify.email || notify.sms || notify.max_premium.is_some();
        QuoteRequestInput {
            customer_id: r.customer_id.to_string(),
            contact: RawContact {
                email: r.contact.email.as_ref().map(ToString::to_string),
                phone: r.contact.phone.as_ref().map(ToString::to_string),
            },
            vehicles: r
                .vehicles
                .iter()
                .map(|v| RawVehicle {
                    vin: v.vin.to_string(),
                    annual_mileage: i64::from(v.annual_mileage),
                    garaging_zip: v.garaging_zip.to_string(),
                    vehicle_use: v.vehicle_use.to_string(),
                })
                .collect(),
            drivers: r
                .drivers
                .iter()
                .map(|d| RawDriver {
                    first_name: d.first_name.to_string(),
                    last_name: d.last_name.to_string(),
                    date_of_birth: d.date_of_birth.to_string(),
                    license_number: d.license_number.to_string(),
                    license_state: d.license_state.to_string(),
                    first_licensed: d.first_licensed.to_string(),
                })
                .collect(),
            coverage: RawCoverage {
                liability_limit: r.coverage.liability_limit.to_string(),
                collision_deductible: i64::from(r.coverage.collision_deductible.amount()),
                comprehensive_deductible: i64::from(r.coverage.comprehensive_deductible.amount()),
            },
            notify: has_notify.then(|| RawNotify {
                email: notify.email,
                sms: notify.sms,
                max_premium: notify.max_premium.map(|m| m.dollars_f64()),
            }),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use time::macros::date;

    const TODAY: Date = date!(2026 - 11 - 27);

    const EXAMPLE: &str = r#"{"customer_id": "cust-42",
     "contact": {"email": "ana@example.com", "phone": "+18045550142"},
     "vehicles": [{"vin": "1HGCM82633A004352", "annual_mileage": 12000, "garaging_zip": "23220", "use": "commute"}],
     "drivers": [{"first_name": "Ana", "last_name": "Diaz", "date_of_birth": "1988-03-14", "license_number": "T12345678", "license_state": "VA", "first_licensed": "2006-05-01"}],
     "coverage": {"liability_limit": "100/300/100", "collision_deductible": 500, "comprehensive_deductible": 500},
     "notify": {"email": true, "sms": false, "max_premium": 1800}}"#;

    fn example() -> QuoteRequestInput {
        serde_json::from_str(EXAMPLE).unwrap()
    }

    fn fields(err: &ValidationErrors) -> Vec<&str> {
        err.fields().collect()
    }

    #[test]
    fn the_example_parses() {
        let r = QuoteRequest::parse(&example(), TODAY).unwrap();
        assert_eq!(r.customer_id.as_str(), "cust-42");
        assert_eq!(
            r.contact.email.as_ref().unwrap().as_str(),
            "ana@example.com"
        );
        assert_eq!(r.contact.phone.as_ref().unwrap().as_str(), "+18045550142");
        assert_eq!(r.vehicles.len(), 1);
        assert_eq!(r.vehicles[0].annual_mileage, 12_000);
        assert_eq!(r.vehicles[0].vehicle_use, VehicleUse::Commute);
        assert_eq!(r.drivers[0].date_of_birth.age_on(TODAY), 38);
        assert_eq!(r.drivers[0].license_state.as_str(), "VA");
        assert_eq!(r.coverage.liability_limit, LiabilityLimit::L100_300_100);
        assert_eq!(r.coverage.collision_deductible.amount(), 500);
        assert!(r.notify.email);
        assert!(!r.notify.sms);
        assert_eq!(r.notify.max_premium, Some(Money::from_cents(180_000)));
    }

    #[test]
    fn validated_request_round_trips_through_json_and_input() {
        let r = QuoteRequest::parse(&example(), TODAY).unwrap();
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["vehicles"][0]["use"], "commute");
        assert_eq!(json["notify"]["max_premium"], 180_000);
        let back: QuoteRequest = serde_json::from_value(json).unwrap();
        assert_eq!(back, r);
        assert_eq!(r.to_input(), example());
        let input_json = serde_json::to_string(&example()).unwrap();
        let back: QuoteRequestInput = serde_json::from_str(&input_json).unwrap();
        assert_eq!(back, example());
    }

    #[test]
    fn notify_and_contact_fields_are_optional() {
        let mut input = example();
        input.notify = None;
        input.contact.phone = None;
        let r = QuoteRequest::parse(&input, TODAY).unwrap();
        assert_eq!(r.notify, NotifyPreferences::default());
        assert_eq!(r.contact.phone, None);

        let json = EXAMPLE.replace(r#", "max_premium": 1800"#, "");
        let input: QuoteRequestInput = serde_json::from_str(&json).unwrap();
        let r = QuoteRequest::parse(&input, TODAY).unwrap();
        assert_eq!(r.notify.max_premium, None);
    }

    #[test]
    fn five_vehicles_bad_vin_and_bad_zip_are_all_reported() {
        let mut input = example();
        let good = input.vehicles[0].clone();
        input.vehicles = (0..5)
            .map(|i| {
                let mut v = good.clone();
                // Distinct valid VINs.
                let mut vin: Vec<char> = good.vin.chars().collect();
                vin[16] = char::from_digit(i, 10).unwrap();
                vin[8] = '0';
                let body: String = vin.iter().collect();
                vin[8] = Vin::compute_check_digit(&body).unwrap();
                v.vin = vin.iter().collect();
                v
            })
            .collect();
        input.vehicles[1].vin = "1HGCM82633A004353".into();
        input.vehicles[3].garaging_zip = "2322".into();
        let err = QuoteRequest::parse(&input, TODAY).unwrap_err();
        assert_eq!(
            fields(&err),
            ["vehicles", "vehicles[1].vin", "vehicles[3].garaging_zip"]
        );
        assert!(err
            .get("vehicles[1].vin")
            .unwrap()
            .reason
            .starts_with("check digit is "));
        assert_eq!(
            err.get("vehicles").unwrap().reason,
            "at most 4 vehicles per quote, got 5"
        );
        let text = err.to_string();
        assert!(
            text.starts_with("invalid quote request: vehicles: "),
            "{text}"
        );
    }

    #[test]
    fn reports_every_field_of_a_bad_request() {
        let json = r#"{"customer_id": "cust 42",
          "contact": {"email": "ana@localhost", "phone": "8045550142"},
          "vehicles": [{"vin": "1HGCM82633A004352", "annual_mileage": -1, "garaging_zip": "23220", "use": "racing"}],
          "drivers": [
            {"first_name": " ", "last_name": "Diaz", "date_of_birth": "2015-01-01", "license_number": "T1-2", "license_state": "PR", "first_licensed": "2030-01-01"},
            {"first_name": "Bo", "last_name": "Diaz", "date_of_birth": "1990-01-01", "license_number": "B1", "license_state": "VA", "first_licensed": "2003-12-31"}
          ],
          "coverage": {"liability_limit": "10/20/10", "collision_deductible": 300, "comprehensive_deductible": 500},
          "notify": {"email": true, "sms": true, "max_premium": 12.5}}"#;
        let input: QuoteRequestInput = serde_json::from_str(json).unwrap();
        let err = QuoteRequest::parse(&input, TODAY).unwrap_err();
        assert_eq!(
            fields(&err),
            [
                "customer_id",
                "contact.email",
                "contact.phone",
                "vehicles[0].annual_mileage",
                "vehicles[0].use",
                "drivers[0].first_name",
                "drivers[0].date_of_birth",
                "drivers[0].license_number",
                "drivers[0].license_state",
                "drivers[0].first_licensed",
                "drivers[1].first_licensed",
                "coverage.liability_limit",
                "coverage.collision_deductible",
                "notify.max_premium",
            ]
        );
        assert_eq!(
            err.get("drivers[0].date_of_birth").unwrap().reason,
            "the driver is 11; drivers must be at least 16"
        );
    }

    #[test]
    fn counts_duplicates_and_notification_rules() {
        let mut input = example();
        input.vehicles.push(input.vehicles[0].clone());
        let mut second = input.drivers[0].clone();
        second.license_number = "t12345678".into();
        second.license_state = "va".into();
        input.drivers.push(second);
        let err = QuoteRequest::parse(&input, TODAY).unwrap_err();
        assert_eq!(
            fields(&err),
            ["vehicles[1].vin", "drivers[1].license_number"]
        );
        assert_eq!(
            err.0[0].reason,
            "the same VIN is already listed as vehicles[0]"
        );
        assert_eq!(
            err.0[1].reason,
            "licence VA T12345678 is already listed as drivers[0]"
        );

        // Same number in another state is another licence.
        input.vehicles.pop();
        input.drivers[1].license_state = "MD".into();
        assert!(QuoteRequest::parse(&input, TODAY).is_ok());

        let mut input = example();
        input.vehicles.clear();
        input.drivers = vec![input.drivers[0].clone(); 7];
        input.contact = RawContact::default();
        input.notify = Some(RawNotify {
            email: true,
            sms: true,
            max_premium: Some(0.0),
        });
        let err = QuoteRequest::parse(&input, TODAY).unwrap_err();
        assert_eq!(
            fields(&err)[..3],
            ["contact", "vehicles", "drivers"],
            "{err}"
        );
        assert_eq!(
            fields(&err)[err.0.len() - 3..],
            ["notify.email", "notify.sms", "notify.max_premium"]
        );
    }

    #[test]
    fn wrong_json_shape_fails_serde_but_wrong_values_do_not() {
        let unknown = EXAMPLE.replace(r#""customer_id""#, r#""extra": 1, "customer_id""#);
        assert!(serde_json::from_str::<QuoteRequestInput>(&unknown).is_err());
        let nested_unknown =
            EXAMPLE.replace(r#""use": "commute""#, r#""use": "commute", "color": "red""#);
        assert!(serde_json::from_str::<QuoteRequestInput>(&nested_unknown).is_err());
        let wrong_type = EXAMPLE.replace("12000", r#""12000""#);
        assert!(serde_json::from_str::<QuoteRequestInput>(&wrong_type).is_err());
        let wrong_value = EXAMPLE.replace("12000", "-5");
        assert!(serde_json::from_str::<QuoteRequestInput>(&wrong_value).is_ok());
    }

    #[test]
    fn field_error_display_and_serde() {
        let e = ValidationErrors(vec![
            FieldError::new("vehicles", "too many"),
            FieldError::new("contact.email", "bad"),
        ]);
        assert_eq!(
            e.to_string(),
            "invalid quote request: vehicles: too many; contact.email: bad"
        );
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            serde_json::json!([
                {"field": "vehicles", "reason": "too many"},
                {"field": "contact.email", "reason": "bad"}
            ])
        );
    }
}
