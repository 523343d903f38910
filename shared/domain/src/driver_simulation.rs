//! Simulated driving histories, for environments without a motor-vehicle-record provider.
//!
//! **Simulated data, not a real record.** [`simulate`] makes up a plausible history for a
//! licence, marked [`HistorySource::Simulated`], so the pipeline can be run end to end (demos,
//! load tests, local development) without a provider contract.
//!
//! The history depends only on the licence (state and number) and on `today`: it is derived
//! from a stable 64-bit FNV-1a hash of `"<STATE>:<NUMBER>"` (not std's randomly seeded
//! hasher), stretched into a sequence of draws with SplitMix64. The same inputs give the same
//! history on every machine, in every process, and across releases as long as this module's
//! algorithm is unchanged (a golden test pins it). Over many licences:
//!
//! - about 70% have a clean record;
//! - about 20% have one accident, half of them at fault;
//! - about 10% have one or two violations (mostly speeding; a DUI suspends the licence).
//!
//! Every date is within the five years before `today` (and before `today`); the licence is
//! valid unless the record has a DUI.

use time::{Date, Duration, Month};

use crate::enrichment::{
    Accident, DriverHistoryRetrieved, HistorySource, LicenseStatus, Violation, ViolationKind,
};
use crate::types::{LicenseNumber, UsState};

/// How far back simulated incidents go, in years.
pub const HISTORY_YEARS: i32 = 5;

/// Percent of licences with a clean record.
const CLEAN_PERCENT: u64 = 70;
/// Percent of licences with one accident (after the clean ones).
const ACCIDENT_PERCENT: u64 = 20;

/// Violation kinds and their weights (out of 100) in simulated records.
const VIOLATION_WEIGHTS: [(ViolationKind, u64); 5] = [
    (ViolationKind::Speeding, 50),
    (ViolationKind::DistractedDriving, 20),
    (ViolationKind::Other, 15),
    (ViolationKind::RecklessDriving, 10),
    (ViolationKind::Dui, 5),
];

/// A simulated, deterministic driving history for the licence `license_number` issued by
/// `license_state`, as of `today` (see the module documentation).
pub fn simulate(
    license_state: UsState,
    license_number: &LicenseNumber,
    today: Date,
) -> DriverHistoryRetrieved {
    let mut draws = Draws::for_license(license_state, license_number);
    let window = HistoryWindow::ending(today);
    let mut accidents = Vec::new();
    let mut violations = Vec::new();

    let profile = draws.below(100);
    if profile < CLEAN_PERCENT {
        // Clean record.
    } else if profile < CLEAN_PERCENT + ACCIDENT_PERCENT {
        accidents.push(Accident {
            date: window.date(&mut draws),
            at_fault: draws.below(2) == 0,
        });
    } else {
        let count = if draws.below(4) == 0 { 2 } else { 1 };
        for _ in 0..count {
            violations.push(Violation {
                kind: violation_kind(draws.below(100)),
                date: window.date(&mut draws),
            });
        }
        violations.sort_by_key(|v| v.date);
    }

    let license_status = if violations.iter().any(|v| v.kind == ViolationKind::Dui) {
        LicenseStatus::Suspended
    } else {
        LicenseStatus::Valid
    };
    DriverHistoryRetrieved {
        license_state,
        license_number: license_number.clone(),
        license_status,
        accidents,
        violations,
        source: HistorySource::Simulated,
    }
}

/// The violation kind of a draw in `0..100`, by [`VIOLATION_WEIGHTS`].
fn violation_kind(draw: u64) -> ViolationKind {
    let mut threshold = 0;
    for (kind, weight) in VIOLATION_WEIGHTS {
        threshold += weight;
        if draw < threshold {
            return kind;
        }
    }
    ViolationKind::Other
}

/// 64-bit FNV-1a.
fn fnv1a64(bytes: &[u8]) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes.iter().fold(OFFSET_BASIS, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(PRIME)
    })
}

/// A deterministic sequence of draws: SplitMix64 seeded with the licence's FNV-1a hash.
#[derive(Debug)]
struct Draws(u64);

impl Draws {
    fn for_license(state: UsState, number: &LicenseNumber) -> Self {
        let key = format!("{}:{}", state.as_str(), number.as_str());
        Self(fnv1a64(key.as_bytes()))
    }

    /// The next SplitMix64 output.
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A draw in `0..n` (`n` > 0; the modulo bias is below 2⁻⁵⁰ for the small `n` used here).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// The days incidents may fall on: from [`HISTORY_YEARS`] years before `today` to the day
/// before `today`.
#[derive(Debug)]
struct HistoryWindow {
    today: Date,
    days: u64,
}

impl HistoryWindow {
    fn ending(today: Date) -> Self {
        let start = years_before(today, HISTORY_YEARS);
        let days = u64::try_from((today - start).whole_days()).unwrap_or(0);
        Self { today, days }
    }

    /// A date in the window (`today` itself only when the window is empty, at the edge of
    /// the calendar).
    fn date(&self, draws: &mut Draws) -> Date {
        if self.days == 0 {
            return self.today;
        }
        let days_ago = 1 + draws.below(self.days);
        i64::try_from(days_ago)
            .ok()
            .and_then(|d| self.today.checked_sub(Duration::days(d)))
            .unwrap_or(self.today)
    }
}

/// `date` minus `years` calendar years (29 February becomes 28 February); `date` itself when
/// out of the calendar's range.
fn years_before(date: Date, years: i32) -> Date {
    let year = date.year() - years;
    Date::from_calendar_date(year, date.month(), date.day())
        .or_else(|_| Date::from_calendar_date(year, Month::February, 28))
        .unwrap_or(date)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use time::macros::date;

    const TODAY: Date = date!(2026 - 11 - 27);

    fn license(n: usize) -> LicenseNumber {
        LicenseNumber::parse(&format!("D{n:08}")).unwrap()
    }

    #[test]
    fn fnv1a_matches_the_reference_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn the_same_licence_always_gets_the_same_history() {
        let va = UsState::parse("VA").unwrap();
        for n in 0..200 {
            let number = license(n);
            let first = simulate(va, &number, TODAY);
            assert_eq!(simulate(va, &number, TODAY), first);
            assert_eq!(first.source, HistorySource::Simulated);
            assert_eq!(first.license_state, va);
            assert_eq!(first.license_number, number);
            // Another day: the same profile, dates shifted along.
            let later = simulate(va, &number, TODAY + Duration::days(30));
            assert_eq!(later.accidents.len(), first.accidents.len());
            assert_eq!(later.violations.len(), first.violations.len());
            assert_eq!(later.license_status, first.license_status);
        }
        // The state is part of the key.
        let differs = (0..200).any(|n| {
            simulate(va, &license(n), TODAY).accidents
                != simulate(UsState::parse("MD").unwrap(), &license(n), TODAY).accidents
        });
        assert!(differs);
    }

    #[test]
    fn golden_history_pins_the_algorithm() {
        let va = UsState::parse("VA").unwrap();
        let summary: Vec<(usize, usize)> = (0..20)
            .map(|n| {
                let h = simulate(va, &license(n), TODAY);
                (h.accidents.len(), h.violations.len())
            })
            .collect();
        assert_eq!(summary, GOLDEN);
        let h = simulate(va, &license(4), TODAY);
        assert_eq!(
            h.accidents,
            [Accident {
                date: date!(2023 - 12 - 27),
                at_fault: true
            }]
        );
        let h = simulate(va, &license(14), TODAY);
        assert_eq!(h.license_status, LicenseStatus::Valid);
        assert_eq!(
            h.violations,
            [
                Violation {
                    kind: ViolationKind::RecklessDriving,
                    date: date!(2022 - 03 - 22)
                },
                Violation {
                    kind: ViolationKind::Speeding,
                    date: date!(2023 - 11 - 23)
                }
            ]
        );
    }

    const GOLDEN: [(usize, usize); 20] = [
        (0, 0),
        (0, 0),
        (0, 0),
        (0, 0),
        (1, 0),
        (0, 0),
        (0, 0),
        (0, 0),
        (1, 0),
        (0, 0),
        (0, 0),
        (0, 0),
        (0, 1),
        (0, 0),
        (0, 2),
        (0, 0),
        (0, 1),
        (0, 0),
        (0, 0),
        (0, 0),
    ];

    #[test]
    fn distribution_over_ten_thousand_licences() {
        let states: Vec<UsState> = UsState::all().collect();
        let (mut clean, mut accident, mut at_fault, mut violation, mut dui) = (0, 0, 0, 0, 0);
        let earliest = date!(2021 - 11 - 27);
        for n in 0..10_000 {
            let state = states[n % states.len()];
            let h = simulate(state, &license(n), TODAY);
            for date in h
                .accidents
                .iter()
                .map(|a| a.date)
                .chain(h.violations.iter().map(|v| v.date))
            {
                assert!(earliest <= date && date < TODAY, "{date}");
            }
            match (h.accidents.len(), h.violations.len()) {
                (0, 0) => clean += 1,
                (1, 0) => {
                    accident += 1;
                    if h.accidents[0].at_fault {
                        at_fault += 1;
                    }
                }
                (0, 1 | 2) => violation += 1,
                other => panic!("unexpected profile {other:?}"),
            }
            let has_dui = h.violations.iter().any(|v| v.kind == ViolationKind::Dui);
            if has_dui {
                dui += 1;
            }
            assert_eq!(
                h.license_status,
                if has_dui {
                    LicenseStatus::Suspended
                } else {
                    LicenseStatus::Valid
                }
            );
            assert!(h.violations.windows(2).all(|w| w[0].date <= w[1].date));
        }
        assert!((6_500..=7_500).contains(&clean), "clean {clean}");
        assert!((1_700..=2_300).contains(&accident), "accident {accident}");
        assert!((750..=1_250).contains(&violation), "violation {violation}");
        let at_fault_share = f64::from(at_fault) / f64::from(accident);
        assert!(
            (0.4..=0.6).contains(&at_fault_share),
            "at fault {at_fault_share}"
        );
        assert!(dui > 0 && dui < violation / 4, "dui {dui}");
    }

    #[test]
    fn windows_at_the_edge_of_the_calendar_do_not_panic() {
        let va = UsState::parse("VA").unwrap();
        for today in [Date::MIN, Date::MAX, date!(2024 - 02 - 29)] {
            for n in 0..100 {
                let h = simulate(va, &license(n), today);
                for a in &h.accidents {
                    assert!(a.date <= today);
                }
            }
        }
        assert_eq!(
            years_before(date!(2024 - 02 - 29), 5),
            date!(2019 - 02 - 28)
        );
    }
}
