//! Offline VIN decoding: what the VIN itself says when the NHTSA vPIC service cannot answer.
//!
//! A VIN (49 CFR 565) encodes two things that need no lookup service:
//!
//! - the **manufacturer**, from the World Manufacturer Identifier in positions 1–3
//!   ([`Vin::wmi`]). [`WMI_TABLE`] is a small hand-made table of common WMIs of vehicles sold
//!   in the US (about a hundred, mapped to the make printed on the car, e.g. `1G1` to
//!   Chevrolet, not to the group, General Motors). A few makes are also matched by a
//!   two-character prefix ([`WMI_PREFIX_TABLE`], e.g. `JT` for Toyota) after the exact WMIs,
//!   so `JTH` stays Lexus. Anything else is `None`: the table is deliberately incomplete.
//! - the **model year**, from position 10 ([`Vin::model_year_code`]): a 30-year cycle of the
//!   letters `A`–`Y` without `I`, `O`, `Q`, `U` and `Z`, then the digits `1`–`9`. `A` is 1980
//!   or 2010, `Y` is 2000 or 2030, `1` is 2001 or 2031, `9` is 2009 or 2039. The cycle is
//!   told apart by position 7: since model year 2010, passenger cars, multipurpose vehicles
//!   and light trucks up to 10,000 lb GVWR carry a letter there, and carried a digit before
//!   (49 CFR 565.15). Codes outside the cycle (`0`, `U`, `Z`) give `None`.
//!
//! The position-7 rule does not hold for heavy trucks, buses, trailers, motorcycles or
//! vehicles built for other markets, and the cycle repeats after 2039: treat the year as a
//! best guess, which is why events carry [`DecodeSource::VinFallback`].
//!
//! ```
//! use quote_domain::{vin_decode, Vin};
//!
//! let vin = Vin::parse("1HGCM82633A004352").expect("valid VIN");
//! let decoded = vin_decode::decode_offline(&vin);
//! assert_eq!(decoded.manufacturer, Some("Honda"));
//! assert_eq!(decoded.model_year, Some(2003));
//! ```

use crate::enrichment::{DecodeSource, Enrichment, VehicleDecodeFailed, VehicleDecoded};
use crate::types::Vin;

/// What a VIN says about itself, without any lookup service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OfflineDecode {
    /// The make the WMI is assigned to, when [`WMI_TABLE`] (or [`WMI_PREFIX_TABLE`]) knows it.
    pub manufacturer: Option<&'static str>,
    /// The model year from position 10, disambiguated by position 7; `None` for a code
    /// outside the cycle.
    pub model_year: Option<u16>,
}

/// Common World Manufacturer Identifiers and their makes, sorted by WMI.
///
/// Sources: the WMIs manufacturers registered with NHTSA (as returned by vPIC's
/// `GetWMIsForManufacturer`) for the brands' US-market passenger cars, SUVs and light trucks.
/// Where one WMI is shared by brands of a group, the table names the main one (`1C4`, used
/// by Jeep and the Dodge Durango, is Jeep; `2C3`, Dodge and Chrysler cars built in Canada, is
/// Dodge).
pub const WMI_TABLE: &[(&str, &str)] = &[
    ("19U", "Acura"),
    ("1C3", "Dodge"),
    ("1C4", "Jeep"),
    ("1C6", "Ram"),
    ("1FA", "Ford"),
    ("1FM", "Ford"),
    ("1FT", "Ford"),
    ("1G1", "Chevrolet"),
    ("1G4", "Buick"),
    ("1G6", "Cadillac"),
    ("1GC", "Chevrolet"),
    ("1GK", "GMC"),
    ("1GN", "Chevrolet"),
    ("1GT", "GMC"),
    ("1GY", "Cadillac"),
    ("1HG", "Honda"),
    ("1J4", "Jeep"),
    ("1LN", "Lincoln"),
    ("1N4", "Nissan"),
    ("1N6", "Nissan"),
    ("1V2", "Volkswagen"),
    ("1VW", "Volkswagen"),
    ("2C3", "Dodge"),
    ("2C4", "Chrysler"),
    ("2FM", "Ford"),
    ("2G1", "Chevrolet"),
    ("2HG", "Honda"),
    ("2HK", "Honda"),
    ("2T1", "Toyota"),
    ("2T2", "Lexus"),
    ("2T3", "Toyota"),
    ("3C6", "Ram"),
    ("3FA", "Ford"),
    ("3FM", "Ford"),
    ("3FT", "Ford"),
    ("3GC", "Chevrolet"),
    ("3GN", "Chevrolet"),
    ("3GT", "GMC"),
    ("3MZ", "Mazda"),
    ("3N1", "Nissan"),
    ("3TM", "Toyota"),
    ("3VW", "Volkswagen"),
    ("4JG", "Mercedes-Benz"),
    ("4S3", "Subaru"),
    ("4S4", "Subaru"),
    ("4T1", "Toyota"),
    ("55S", "Mercedes-Benz"),
    ("58A", "Lexus"),
    ("5FN", "Honda"),
    ("5J6", "Honda"),
    ("5J8", "Acura"),
    ("5LM", "Lincoln"),
    ("5N1", "Nissan"),
    ("5NM", "Hyundai"),
    ("5NP", "Hyundai"),
    ("5TD", "Toyota"),
    ("5TF", "Toyota"),
    ("5UX", "BMW"),
    ("5XX", "Kia"),
    ("5XY", "Kia"),
    ("5YJ", "Tesla"),
    ("7FC", "Rivian"),
    ("7JR", "Volvo"),
    ("7MM", "Mazda"),
    ("7SA", "Tesla"),
    ("JA3", "Mitsubishi"),
    ("JA4", "Mitsubishi"),
    ("JF1", "Subaru"),
    ("JF2", "Subaru"),
    ("JH4", "Acura"),
    ("JHM", "Honda"),
    ("JM1", "Mazda"),
    ("JM3", "Mazda"),
    ("JN1", "Nissan"),
    ("JN8", "Nissan"),
    ("JNK", "Infiniti"),
    ("JTH", "Lexus"),
    ("JTJ", "Lexus"),
    ("KL4", "Buick"),
    ("KM8", "Hyundai"),
    ("KMH", "Hyundai"),
    ("KMT", "Genesis"),
    ("KNA", "Kia"),
    ("KND", "Kia"),
    ("LRW", "Tesla"),
    ("SAJ", "Jaguar"),
    ("SAL", "Land Rover"),
    ("W1K", "Mercedes-Benz"),
    ("W1N", "Mercedes-Benz"),
    ("WA1", "Audi"),
    ("WAU", "Audi"),
    ("WBA", "BMW"),
    ("WBS", "BMW"),
    ("WDB", "Mercedes-Benz"),
    ("WDC", "Mercedes-Benz"),
    ("WDD", "Mercedes-Benz"),
    ("WMW", "MINI"),
    ("WP0", "Porsche"),
    ("WP1", "Porsche"),
    ("WVG", "Volkswagen"),
    ("WVW", "Volkswagen"),
    ("YV1", "Volvo"),
    ("YV4", "Volvo"),
    ("ZAR", "Alfa Romeo"),
    ("ZFA", "Fiat"),
];

/// Two-character WMI prefixes used by a single make for many third characters, tried after
/// [`WMI_TABLE`]: `JT` is Toyota Japan (`JTD`, `JTE`, `JTM`, `JTN`, …), except the Lexus
/// WMIs `JTH`/`JTJ` listed in [`WMI_TABLE`].
pub const WMI_PREFIX_TABLE: &[(&str, &str)] = &[("JT", "Toyota")];

/// The model-year codes of one 30-year cycle, in order: `A` is the first year of the cycle.
const YEAR_CODES: &[u8; 30] = b"ABCDEFGHJKLMNPRSTVWXY123456789";

/// First model year of the cycle used when position 7 is a digit.
const FIRST_CYCLE_START: u16 = 1980;
/// First model year of the cycle used when position 7 is a letter.
const SECOND_CYCLE_START: u16 = 2010;

/// Decodes the manufacturer and the model year from the VIN alone. Never fails: unknown
/// parts are `None`.
pub fn decode_offline(vin: &Vin) -> OfflineDecode {
    OfflineDecode {
        manufacturer: manufacturer(vin.wmi()),
        model_year: model_year(vin),
    }
}

/// The make a WMI (the first three characters of a VIN, upper-case) is assigned to, if the
/// tables know it.
pub fn manufacturer(wmi: &str) -> Option<&'static str> {
    WMI_TABLE
        .binary_search_by(|(w, _)| (*w).cmp(wmi))
        .ok()
        .map(|i| WMI_TABLE[i].1)
        .or_else(|| {
            WMI_PREFIX_TABLE
                .iter()
                .find(|(prefix, _)| wmi.starts_with(prefix))
                .map(|(_, make)| *make)
        })
}

/// The model year from position 10, in the cycle chosen by position 7 (1980–2009 for a
/// digit, 2010–2039 for a letter); `None` for a code outside the cycle (`0`, `U`, `Z`).
pub fn model_year(vin: &Vin) -> Option<u16> {
    let code = vin.model_year_code() as u8;
    let offset = YEAR_CODES.iter().position(|c| *c == code)?;
    let position_7 = vin.as_str().as_bytes()[6];
    let start = if position_7.is_ascii_digit() {
        FIRST_CYCLE_START
    } else {
        SECOND_CYCLE_START
    };
    // `offset` is below 30, so the conversion and the sum cannot overflow.
    u16::try_from(offset).ok().map(|o| start + o)
}

/// The fact the vehicle enricher appends when vPIC cannot answer: [`VehicleDecoded`] from
/// [`decode_offline`] with [`DecodeSource::VinFallback`] (the model left empty) when the
/// manufacturer is known, [`VehicleDecodeFailed`] otherwise.
pub fn fallback_enrichment(vin: &Vin) -> Enrichment {
    let decoded = decode_offline(vin);
    match decoded.manufacturer {
        Some(make) => Enrichment::VehicleDecoded(VehicleDecoded {
            vin: vin.clone(),
            make: make.to_owned(),
            model: String::new(),
            model_year: decoded.model_year,
            body_class: None,
            vehicle_type: None,
            source: DecodeSource::VinFallback,
        }),
        None => Enrichment::VehicleDecodeFailed(VehicleDecodeFailed {
            vin: vin.clone(),
            reason: format!(
                "the vehicle could not be decoded: manufacturer code {} is unknown",
                vin.wmi()
            ),
        }),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A valid VIN from a 17-character body whose position 9 is a placeholder.
    fn vin(body: &str) -> Vin {
        let check = Vin::compute_check_digit(body).unwrap();
        let mut chars: Vec<char> = body.chars().collect();
        chars[8] = check;
        Vin::parse(&chars.into_iter().collect::<String>()).unwrap()
    }

    #[test]
    fn tables_are_sorted_upper_case_and_large_enough() {
        assert!(WMI_TABLE.len() >= 40);
        assert!(
            WMI_TABLE.windows(2).all(|w| w[0].0 < w[1].0),
            "sorted, no duplicates"
        );
        for (wmi, make) in WMI_TABLE {
            assert_eq!(wmi.len(), 3, "{wmi}");
            assert!(
                wmi.bytes()
                    .all(|b| b"0123456789ABCDEFGHJKLMNPRSTUVWXYZ".contains(&b)),
                "{wmi}"
            );
            assert!(!make.is_empty());
        }
        for (prefix, _) in WMI_PREFIX_TABLE {
            assert_eq!(prefix.len(), 2);
        }
    }

    #[test]
    fn the_reference_honda() {
        let vin = Vin::parse("1HGCM82633A004352").unwrap();
        assert_eq!(
            decode_offline(&vin),
            OfflineDecode {
                manufacturer: Some("Honda"),
                model_year: Some(2003),
            }
        );
    }

    #[test]
    fn a_2019_tesla() {
        let vin = vin("5YJ3E1EA0KF317000");
        assert_eq!(vin.wmi(), "5YJ");
        let decoded = decode_offline(&vin);
        assert_eq!(decoded.manufacturer, Some("Tesla"));
        assert_eq!(decoded.model_year, Some(2019));
    }

    #[test]
    fn known_wmis() {
        for (wmi, make) in [
            ("1HG", "Honda"),
            ("JHM", "Honda"),
            ("2HG", "Honda"),
            ("JTD", "Toyota"),
            ("JTN", "Toyota"),
            ("4T1", "Toyota"),
            ("JTH", "Lexus"),
            ("1FA", "Ford"),
            ("1FT", "Ford"),
            ("3FA", "Ford"),
            ("1G1", "Chevrolet"),
            ("1GC", "Chevrolet"),
            ("1GT", "GMC"),
            ("JN1", "Nissan"),
            ("1N4", "Nissan"),
            ("WBA", "BMW"),
            ("5UX", "BMW"),
            ("WDD", "Mercedes-Benz"),
            ("4JG", "Mercedes-Benz"),
            ("WVW", "Volkswagen"),
            ("3VW", "Volkswagen"),
            ("JF1", "Subaru"),
            ("4S3", "Subaru"),
            ("KMH", "Hyundai"),
            ("5NP", "Hyundai"),
            ("KNA", "Kia"),
            ("5XY", "Kia"),
            ("JM1", "Mazda"),
            ("5YJ", "Tesla"),
            ("7SA", "Tesla"),
            ("1C4", "Jeep"),
            ("2C3", "Dodge"),
            ("1C3", "Dodge"),
            ("3C6", "Ram"),
            ("YV1", "Volvo"),
            ("WAU", "Audi"),
            ("19U", "Acura"),
        ] {
            assert_eq!(manufacturer(wmi), Some(make), "{wmi}");
        }
        assert_eq!(manufacturer("111"), None);
        assert_eq!(manufacturer("J11"), None);
    }

    #[test]
    fn model_years_follow_the_cycle_and_position_7() {
        // Position 7 is a digit: 1980–2009.
        for (code, year) in [
            ('A', 1980),
            ('H', 1987),
            ('Y', 2000),
            ('1', 2001),
            ('9', 2009),
        ] {
            let mut chars: Vec<char> = "1HGCM82633A004352".chars().collect();
            chars[9] = code;
            let v = vin(&chars.iter().collect::<String>());
            assert_eq!(model_year(&v), Some(year), "{v}");
        }
        // Position 7 is a letter: 2010–2039.
        for (code, year) in [
            ('A', 2010),
            ('J', 2018),
            ('K', 2019),
            ('R', 2024),
            ('Y', 2030),
            ('1', 2031),
            ('9', 2039),
        ] {
            let mut chars: Vec<char> = "5YJ3E1E00KF317000".chars().collect();
            chars[9] = code;
            let v = vin(&chars.iter().collect::<String>());
            assert_eq!(model_year(&v), Some(year), "{v}");
        }
        // Outside the cycle.
        for code in ['0', 'U', 'Z'] {
            let mut chars: Vec<char> = "5YJ3E1E00KF317000".chars().collect();
            chars[9] = code;
            let v = vin(&chars.iter().collect::<String>());
            assert_eq!(model_year(&v), None, "{v}");
        }
    }

    #[test]
    fn fallback_enrichment_decodes_or_fails() {
        let honda = Vin::parse("1HGCM82633A004352").unwrap();
        let Enrichment::VehicleDecoded(e) = fallback_enrichment(&honda) else {
            panic!("not decoded");
        };
        assert_eq!(e.make, "Honda");
        assert_eq!(e.model, "");
        assert_eq!(e.model_year, Some(2003));
        assert_eq!(e.source, DecodeSource::VinFallback);

        let unknown = vin("11111111111111111");
        let Enrichment::VehicleDecodeFailed(e) = fallback_enrichment(&unknown) else {
            panic!("not failed");
        };
        assert_eq!(e.vin, unknown);
        assert!(e.reason.contains("111"), "{}", e.reason);
    }
}
