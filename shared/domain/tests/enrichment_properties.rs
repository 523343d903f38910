//! Property tests of the enrichment helpers: offline VIN decoding accepts every valid VIN,
//! simulated histories are deterministic and well-formed for any licence and day, and the
//! enrichment events round-trip through their stored form.

#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use proptest::sample::select;
use quote_domain::driver_simulation::{self, HISTORY_YEARS};
use quote_domain::vin_decode::{self, decode_offline};
use quote_domain::{
    DecodeSource, Enrichment, HistorySource, LicenseNumber, QuoteEvent, UsState, VehicleDecoded,
    Vin,
};
use time::{Date, Month};

/// Characters a VIN may contain.
const VIN_ALPHABET: &str = "0123456789ABCDEFGHJKLMNPRSTUVWXYZ";

/// A valid VIN: 16 random allowed characters with the computed check digit at position 9.
fn valid_vin() -> impl Strategy<Value = Vin> {
    let alphabet: Vec<char> = VIN_ALPHABET.chars().collect();
    proptest::collection::vec(select(alphabet), 16).prop_map(|body| {
        let mut chars = body;
        chars.insert(8, '0');
        let placeholder: String = chars.iter().collect();
        chars[8] = Vin::compute_check_digit(&placeholder).unwrap();
        Vin::parse(&chars.into_iter().collect::<String>()).unwrap()
    })
}

/// A VIN whose WMI is one of the table's, the rest random.
fn known_wmi_vin() -> impl Strategy<Value = Vin> {
    let wmis: Vec<&str> = vin_decode::WMI_TABLE.iter().map(|(w, _)| *w).collect();
    (select(wmis), valid_vin()).prop_map(|(wmi, vin)| {
        let mut chars: Vec<char> = wmi.chars().chain(vin.as_str()[3..].chars()).collect();
        chars[8] = '0';
        let placeholder: String = chars.iter().collect();
        chars[8] = Vin::compute_check_digit(&placeholder).unwrap();
        Vin::parse(&chars.into_iter().collect::<String>()).unwrap()
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

fn any_state() -> impl Strategy<Value = UsState> {
    select(UsState::all().collect::<Vec<_>>())
}

fn round_trip(event: &QuoteEvent) -> QuoteEvent {
    QuoteEvent::decode(
        event.event_type(),
        event.schema_version(),
        &event.to_data().unwrap(),
    )
    .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_valid_vin_decodes_offline(vin in valid_vin()) {
        let decoded = decode_offline(&vin);
        prop_assert_eq!(decoded.manufacturer, vin_decode::manufacturer(vin.wmi()));
        let code = vin.model_year_code();
        match decoded.model_year {
            None => prop_assert!(matches!(code, '0' | 'U' | 'Z'), "{}", vin),
            Some(year) => {
                let letter_at_7 = vin.as_str().as_bytes()[6].is_ascii_alphabetic();
                let range = if letter_at_7 { 2010..=2039 } else { 1980..=2009 };
                prop_assert!(range.contains(&year), "{} -> {}", vin, year);
            }
        }
        let event = QuoteEvent::from(vin_decode::fallback_enrichment(&vin));
        prop_assert_eq!(round_trip(&event), event);
    }

    #[test]
    fn known_wmis_decode_to_their_make(vin in known_wmi_vin()) {
        let decoded = decode_offline(&vin);
        prop_assert!(decoded.manufacturer.is_some(), "{}", vin);
        let Enrichment::VehicleDecoded(e) = vin_decode::fallback_enrichment(&vin) else {
            return Err(TestCaseError::fail("a known WMI must decode"));
        };
        prop_assert_eq!(e.source, DecodeSource::VinFallback);
        prop_assert_eq!(Some(e.make.as_str()), decoded.manufacturer);
        prop_assert_eq!(e.model_year, decoded.model_year);
    }

    #[test]
    fn simulated_histories_are_deterministic_and_recent(
        state in any_state(),
        number in "[A-Za-z0-9]{1,20}",
        today in any_date(),
    ) {
        let number = LicenseNumber::parse(&number).unwrap();
        let history = driver_simulation::simulate(state, &number, today);
        prop_assert_eq!(&driver_simulation::simulate(state, &number, today), &history);
        prop_assert_eq!(history.source, HistorySource::Simulated);
        prop_assert_eq!(history.license_state, state);
        prop_assert_eq!(&history.license_number, &number);
        let earliest = Date::from_calendar_date(
            today.year() - HISTORY_YEARS,
            today.month(),
            today.day().min(28),
        )
        .unwrap();
        for date in history
            .accidents
            .iter()
            .map(|a| a.date)
            .chain(history.violations.iter().map(|v| v.date))
        {
            prop_assert!(earliest <= date && date < today, "{} on {}", date, today);
        }
        let event = QuoteEvent::DriverHistoryRetrieved(history);
        prop_assert_eq!(round_trip(&event), event);
    }

    #[test]
    fn vehicle_decoded_round_trips(
        vin in valid_vin(),
        make in ".{0,20}",
        model in ".{0,20}",
        model_year in proptest::option::of(1900u16..2100),
        body_class in proptest::option::of(".{0,20}"),
        vehicle_type in proptest::option::of(".{0,20}"),
        vpic in any::<bool>(),
    ) {
        let event = QuoteEvent::VehicleDecoded(VehicleDecoded {
            vin,
            make,
            model,
            model_year,
            body_class,
            vehicle_type,
            source: if vpic { DecodeSource::Vpic } else { DecodeSource::VinFallback },
        });
        prop_assert_eq!(round_trip(&event), event);
    }
}
