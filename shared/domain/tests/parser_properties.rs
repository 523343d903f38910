//! Property tests of the value parsers: generated valid values parse and round-trip, near
//! misses fail with the right error, and arbitrary strings never make a parser panic.

#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use proptest::sample::select;
use quote_domain::{
    CustomerId, DateError, DateOfBirth, Email, LiabilityLimit, LicenseNumber, Money, PersonName,
    PhoneE164, QuoteEvent, QuoteId, QuoteRequest, QuoteRequestInput, UsState, VehicleUse, Vin,
    VinError, ZipCode,
};
use time::{Date, Duration, Month};

/// Characters a VIN may contain.
const VIN_ALPHABET: &str = "0123456789ABCDEFGHJKLMNPRSTUVWXYZ";

/// A valid VIN: 16 random allowed characters with the computed check digit at position 9.
fn valid_vin() -> impl Strategy<Value = String> {
    let alphabet: Vec<char> = VIN_ALPHABET.chars().collect();
    proptest::collection::vec(select(alphabet), 16).prop_map(|body| {
        let mut chars = body;
        chars.insert(8, '0');
        let placeholder: String = chars.iter().collect();
        chars[8] = Vin::compute_check_digit(&placeholder).unwrap();
        chars.into_iter().collect()
    })
}

/// A date between 1950-01-01 and 2100-12-31.
fn any_date() -> impl Strategy<Value = Date> {
    let start = Date::from_calendar_date(1950, Month::January, 1)
        .unwrap()
        .to_julian_day();
    let end = Date::from_calendar_date(2100, Month::December, 31)
        .unwrap()
        .to_julian_day();
    (start..=end).prop_map(|jd| Date::from_julian_day(jd).unwrap())
}

/// `date` minus `years` years, 29 February becoming 28 February in non-leap years.
fn years_before(date: Date, years: i32) -> Date {
    let year = date.year() - years;
    Date::from_calendar_date(year, date.month(), date.day())
        .or_else(|_| Date::from_calendar_date(year, date.month(), date.day() - 1))
        .unwrap()
}

fn valid_email() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9._%+!#'*/=?^`{|}~-]{1,30}@([a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?\\.){1,3}[a-z]{2,6}"
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn generated_vins_parse_and_round_trip(vin in valid_vin(), lower in any::<bool>()) {
        let input = if lower { vin.to_lowercase() } else { vin.clone() };
        let parsed = Vin::parse(&input).unwrap();
        prop_assert_eq!(parsed.as_str(), vin.as_str());
        prop_assert_eq!(parsed.check_digit(), vin.as_bytes()[8] as char);
        prop_assert_eq!(parsed.wmi(), &vin[..3]);
        prop_assert_eq!(parsed.model_year_code(), vin.as_bytes()[9] as char);
        prop_assert_eq!(Vin::parse(parsed.as_str()).unwrap(), parsed.clone());
        let json = serde_json::to_string(&parsed).unwrap();
        prop_assert_eq!(serde_json::from_str::<Vin>(&json).unwrap(), parsed);
    }

    #[test]
    fn any_other_check_digit_fails(
        vin in valid_vin(),
        other in select("0123456789X".chars().collect::<Vec<_>>()),
    ) {
        let expected = vin.as_bytes()[8] as char;
        prop_assume!(other != expected);
        let mut chars: Vec<char> = vin.chars().collect();
        chars[8] = other;
        let wrong: String = chars.into_iter().collect();
        prop_assert_eq!(
            Vin::parse(&wrong),
            Err(VinError::CheckDigit { expected, found: other })
        );
    }

    #[test]
    fn vins_with_i_o_or_q_never_parse(
        vin in valid_vin(),
        position in 0usize..17,
        letter in select(vec!['I', 'O', 'Q', 'i', 'o', 'q']),
    ) {
        let mut chars: Vec<char> = vin.chars().collect();
        chars[position] = letter;
        let bad: String = chars.into_iter().collect();
        prop_assert_eq!(
            Vin::parse(&bad),
            Err(VinError::ForbiddenLetter {
                ch: letter.to_ascii_uppercase(),
                position: position + 1
            })
        );
        prop_assert_eq!(Vin::compute_check_digit(&bad).is_none(), position != 8);
    }

    #[test]
    fn five_digit_and_plus_four_zips_parse(five in "[0-9]{5}", four in "[0-9]{4}") {
        let zip = ZipCode::parse(&five).unwrap();
        prop_assert_eq!(zip.as_str(), five.as_str());
        prop_assert_eq!(zip.prefix3(), &five[..3]);
        let plus = format!("{five}-{four}");
        let zip = ZipCode::parse(&plus).unwrap();
        prop_assert_eq!(zip.as_str(), plus.as_str());
        prop_assert_eq!(zip.five_digit(), five.as_str());
        prop_assert_eq!(zip.plus_four(), Some(four.as_str()));
    }

    #[test]
    fn zips_of_other_lengths_fail(digits in "[0-9]{0,12}") {
        prop_assume!(digits.len() != 5);
        prop_assert!(ZipCode::parse(&digits).is_err());
        if digits.len() > 5 {
            let dashed = format!("{}-{}", &digits[..5], &digits[5..]);
            prop_assert_eq!(ZipCode::parse(&dashed).is_ok(), digits.len() == 9);
        }
    }

    #[test]
    fn date_of_birth_accepts_exactly_ages_16_to_100(today in any_date(), age in 0i32..=130) {
        // Born exactly `age` years ago (their birthday is today, or was yesterday for a
        // 29 February birthday in a non-leap year): `age` full years old.
        let dob = years_before(today, age);
        let parsed = DateOfBirth::parse(&dob.to_string(), today);
        prop_assert_eq!(parsed.is_ok(), (16..=100).contains(&age), "{} on {}: {:?}", dob, today, parsed);
        if let Ok(dob) = parsed {
            prop_assert_eq!(i32::from(dob.age_on(today)), age);
        } else if age < 16 {
            prop_assert_eq!(parsed, Err(DateError::TooYoung { age: age as u8 }));
        } else {
            prop_assert_eq!(parsed, Err(DateError::TooOld { age: age as u8 }));
        }
        // One day later they would still be `age - 1`.
        let next = dob + Duration::days(1);
        prop_assert_eq!(
            DateOfBirth::parse(&next.to_string(), today).is_ok(),
            (17..=101).contains(&age)
        );
    }

    #[test]
    fn dates_of_birth_after_today_are_rejected(today in any_date(), days in 1i64..4000) {
        let dob = today + Duration::days(days);
        prop_assert_eq!(
            DateOfBirth::parse(&dob.to_string(), today),
            Err(DateError::BirthInFuture)
        );
    }

    #[test]
    fn generated_emails_round_trip(email in valid_email()) {
        let parsed = Email::parse(&email).unwrap();
        prop_assert_eq!(parsed.as_str(), email.as_str());
        let json = serde_json::to_string(&parsed).unwrap();
        prop_assert_eq!(serde_json::from_str::<Email>(&json).unwrap(), parsed.clone());
        // Upper-case domains are lower-cased, the local part is kept.
        let (local, domain) = email.split_once('@').unwrap();
        let shouted = format!("{local}@{}", domain.to_uppercase());
        let parsed = Email::parse(&shouted).unwrap();
        prop_assert_eq!(parsed.local_part(), local);
        prop_assert_eq!(parsed.domain(), domain);
    }

    #[test]
    fn generated_phones_round_trip(phone in "\\+[1-9][0-9]{7,14}") {
        let parsed = PhoneE164::parse(&phone).unwrap();
        prop_assert_eq!(parsed.as_str(), phone.as_str());
        prop_assert_eq!(parsed.digits(), &phone[1..]);
        let json = serde_json::to_string(&parsed).unwrap();
        prop_assert_eq!(serde_json::from_str::<PhoneE164>(&json).unwrap(), parsed);
    }

    #[test]
    fn phones_of_the_wrong_length_fail(phone in "\\+[1-9][0-9]{0,6}|\\+[1-9][0-9]{15,20}") {
        prop_assert!(PhoneE164::parse(&phone).is_err());
    }

    #[test]
    fn parsers_never_panic_and_accepted_values_are_canonical(s in any::<String>(), today in any_date()) {
        if let Ok(v) = Vin::parse(&s) { prop_assert_eq!(Vin::parse(v.as_str()).unwrap(), v); }
        if let Ok(v) = ZipCode::parse(&s) { prop_assert_eq!(ZipCode::parse(v.as_str()).unwrap(), v); }
        if let Ok(v) = Email::parse(&s) { prop_assert_eq!(Email::parse(v.as_str()).unwrap(), v); }
        if let Ok(v) = PhoneE164::parse(&s) { prop_assert_eq!(PhoneE164::parse(v.as_str()).unwrap(), v); }
        if let Ok(v) = LicenseNumber::parse(&s) {
            prop_assert_eq!(LicenseNumber::parse(v.as_str()).unwrap(), v);
        }
        if let Ok(v) = UsState::parse(&s) { prop_assert_eq!(UsState::parse(v.as_str()).unwrap(), v); }
        if let Ok(v) = CustomerId::parse(&s) {
            prop_assert_eq!(CustomerId::parse(v.as_str()).unwrap(), v);
        }
        if let Ok(v) = PersonName::parse(&s) {
            prop_assert_eq!(PersonName::parse(v.as_str()).unwrap(), v);
        }
        if let Ok(v) = DateOfBirth::parse(&s, today) {
            prop_assert_eq!(DateOfBirth::parse(&v.to_string(), today).unwrap(), v);
        }
        let _ = LiabilityLimit::parse(&s);
        let _ = VehicleUse::parse(&s);
        let _ = s.parse::<QuoteId>();
        let _ = QuoteId::parse_stream_id(&s);
        let _ = serde_json::from_value::<Vin>(serde_json::Value::String(s.clone()));
    }

    #[test]
    fn arbitrary_raw_requests_never_panic(
        vin in any::<String>(),
        zip in "[0-9-]{0,11}",
        mileage in any::<i64>(),
        dob in "[0-9]{4}-[0-9]{2}-[0-9]{2}|.{0,12}",
        licensed in "[0-9]{4}-[0-9]{2}-[0-9]{2}|.{0,12}",
        deductible in any::<i64>(),
        max_premium in any::<f64>(),
        today in any_date(),
    ) {
        let input: QuoteRequestInput = serde_json::from_value(serde_json::json!({
            "customer_id": "cust-42",
            "contact": {"email": "ana@example.com"},
            "vehicles": [{"vin": vin, "annual_mileage": mileage, "garaging_zip": zip, "use": "pleasure"}],
            "drivers": [{"first_name": "Ana", "last_name": "Diaz", "date_of_birth": dob,
                         "license_number": "T1", "license_state": "VA", "first_licensed": licensed}],
            "coverage": {"liability_limit": "25/50/25", "collision_deductible": deductible,
                         "comprehensive_deductible": 500},
        })).unwrap();
        let mut input = input;
        input.notify = Some(quote_domain::RawNotify { email: true, sms: false, max_premium: Some(max_premium) });
        match QuoteRequest::parse(&input, today) {
            Ok(request) => {
                prop_assert_eq!(QuoteRequest::parse(&request.to_input(), today).unwrap(), request);
            }
            Err(errors) => prop_assert!(!errors.0.is_empty()),
        }
    }

    #[test]
    fn money_display_shows_the_exact_amount(cents in any::<u64>()) {
        let text = Money::from_cents(cents).to_string();
        prop_assert!(text.starts_with('$'));
        let digits: String = text.chars().filter(char::is_ascii_digit).collect();
        prop_assert_eq!(digits.parse::<u64>().unwrap(), cents);
        let json = serde_json::to_string(&Money::from_cents(cents)).unwrap();
        prop_assert_eq!(json, cents.to_string());
    }

    #[test]
    fn v1_dollar_ceilings_upcast_to_cents(cents in 0u64..1_000_000_000) {
        let input: QuoteRequestInput = serde_json::from_str(EXAMPLE).unwrap();
        let request = QuoteRequest::parse(&input, Date::from_calendar_date(2026, Month::November, 27).unwrap()).unwrap();
        let mut request_json = serde_json::to_value(&request).unwrap();
        request_json["notify"].as_object_mut().unwrap().remove("max_premium");
        let v1 = serde_json::json!({
            "quote_id": "0192f0c4-7c1e-7a3b-9c1d-2f6e8a4b5c6d",
            "request": request_json,
            "requested_at": "2026-11-27T14:30:00Z",
            "max_premium_usd": cents as f64 / 100.0,
        });
        let QuoteEvent::QuoteRequested(event) = QuoteEvent::decode("QuoteRequested", 1, &v1).unwrap() else {
            panic!("not QuoteRequested");
        };
        prop_assert_eq!(event.request.notify.max_premium, Some(Money::from_cents(cents)));
    }
}

const EXAMPLE: &str = r#"{"customer_id": "cust-42",
 "contact": {"email": "ana@example.com", "phone": "+18045550142"},
 "vehicles": [{"vin": "1HGCM82633A004352", "annual_mileage": 12000, "garaging_zip": "23220", "use": "commute"}],
 "drivers": [{"first_name": "Ana", "last_name": "Diaz", "date_of_birth": "1988-03-14", "license_number": "T12345678", "license_state": "VA", "first_licensed": "2006-05-01"}],
 "coverage": {"liability_limit": "100/300/100", "collision_deductible": 500, "comprehensive_deductible": 500},
 "notify": {"email": true, "sms": false, "max_premium": 1800}}"#;
