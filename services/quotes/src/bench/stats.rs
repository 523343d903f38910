//! Latency recording and its summary: each load-generating task records into its own
//! [`Recorder`] (an HDR histogram in microseconds plus counters); the recorders are merged and
//! turned into a [`Summary`] (throughput and latency percentiles in milliseconds).

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Highest latency the histogram tracks exactly (60 s, in microseconds); longer ones are
/// clamped to it.
const MAX_TRACKED_MICROS: u64 = 60_000_000;

/// Significant decimal digits kept (0.1 % relative precision).
const SIGNIFICANT_DIGITS: u8 = 3;

/// Why a recorder could not be built or merged.
#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    /// The histogram could not be created.
    #[error("cannot create the latency histogram: {0}")]
    Create(#[from] hdrhistogram::CreationError),
    /// Two histograms could not be merged.
    #[error("cannot merge latency histograms: {0}")]
    Merge(#[from] hdrhistogram::AdditionError),
}

/// Latencies and outcomes of the requests of one phase.
#[derive(Debug, Clone)]
pub struct Recorder {
    histogram: Histogram<u64>,
    requests: u64,
    errors: u64,
    first_error: Option<String>,
}

impl Recorder {
    /// An empty recorder.
    pub fn new() -> Result<Self, StatsError> {
        Ok(Self {
            histogram: Histogram::new_with_bounds(1, MAX_TRACKED_MICROS, SIGNIFICANT_DIGITS)?,
            requests: 0,
            errors: 0,
            first_error: None,
        })
    }

    /// Records one request's latency and whether it succeeded (errors are timed too).
    pub fn record(&mut self, latency: Duration, outcome: Result<(), String>) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.histogram.saturating_record(micros.max(1));
        self.requests += 1;
        if let Err(reason) = outcome {
            self.errors += 1;
            if self.first_error.is_none() {
                self.first_error = Some(reason);
            }
        }
    }

    /// Adds another recorder's requests to this one.
    pub fn merge(&mut self, other: &Recorder) -> Result<(), StatsError> {
        self.histogram.add(&other.histogram)?;
        self.requests += other.requests;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error.clone_from(&other.first_error);
        }
        Ok(())
    }

    /// Requests recorded (successful or not).
    pub fn requests(&self) -> u64 {
        self.requests
    }

    /// Requests that failed.
    pub fn errors(&self) -> u64 {
        self.errors
    }

    /// The reason of the first failed request, for diagnostics.
    pub fn first_error(&self) -> Option<&str> {
        self.first_error.as_deref()
    }

    /// The summary of the requests recorded over `elapsed`.
    pub fn summary(&self, elapsed: Duration) -> Summary {
        let ms = |micros: u64| micros as f64 / 1000.0;
        let seconds = elapsed.as_secs_f64();
        let succeeded = self.requests - self.errors;
        let empty = self.histogram.is_empty();
        let quantile = |q: f64| {
            if empty {
                0.0
            } else {
                ms(self.histogram.value_at_quantile(q))
            }
        };
        Summary {
            requests: self.requests,
            errors: self.errors,
            rps: if seconds > 0.0 {
                succeeded as f64 / seconds
            } else {
                0.0
            },
            p50_ms: quantile(0.50),
            p95_ms: quantile(0.95),
            p99_ms: quantile(0.99),
            max_ms: if empty { 0.0 } else { ms(self.histogram.max()) },
        }
    }
}

/// Throughput and latency of one side of the benchmark.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Requests completed in the measured window, successful or not.
    pub requests: u64,
    /// Requests that failed (for HTTP: any status other than 202).
    pub errors: u64,
    /// Successful requests per second of the measured window.
    pub rps: f64,
    /// Median latency (of every request), in milliseconds.
    pub p50_ms: f64,
    /// 95th percentile latency, in milliseconds.
    pub p95_ms: f64,
    /// 99th percentile latency, in milliseconds.
    pub p99_ms: f64,
    /// Highest latency, in milliseconds.
    pub max_ms: f64,
}

/// `target / baseline`, or `None` when the baseline is zero (nothing to compare with).
pub fn ratio(target: f64, baseline: f64) -> Option<f64> {
    (baseline > 0.0 && baseline.is_finite() && target.is_finite()).then(|| target / baseline)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Within the histogram's 0.1 % precision.
    fn close(actual: f64, expected: f64) -> bool {
        (actual - expected).abs() <= expected * 0.001 + 1e-9
    }

    #[test]
    fn percentiles_of_one_to_a_hundred_milliseconds() {
        // Spread over two recorders to exercise merging.
        let mut a = Recorder::new().unwrap();
        let mut b = Recorder::new().unwrap();
        for ms in 1..=100u64 {
            let outcome = if ms % 10 == 0 {
                Err(format!("failure at {ms}"))
            } else {
                Ok(())
            };
            let target = if ms % 2 == 0 { &mut a } else { &mut b };
            target.record(Duration::from_millis(ms), outcome);
        }
        a.merge(&b).unwrap();
        let summary = a.summary(Duration::from_secs(2));
        assert_eq!(summary.requests, 100);
        assert_eq!(summary.errors, 10);
        assert!(close(summary.rps, 45.0), "{summary:?}");
        assert!(close(summary.p50_ms, 50.0), "{summary:?}");
        assert!(close(summary.p95_ms, 95.0), "{summary:?}");
        assert!(close(summary.p99_ms, 99.0), "{summary:?}");
        assert!(close(summary.max_ms, 100.0), "{summary:?}");
        assert_eq!(a.first_error(), Some("failure at 10"));
    }

    #[test]
    fn constant_latency_gives_equal_percentiles() {
        let mut r = Recorder::new().unwrap();
        for _ in 0..1000 {
            r.record(Duration::from_micros(1500), Ok(()));
        }
        let s = r.summary(Duration::from_secs(1));
        assert!(close(s.p50_ms, 1.5) && close(s.p99_ms, 1.5) && close(s.max_ms, 1.5));
        assert!(close(s.rps, 1000.0));
    }

    #[test]
    fn empty_recorder_summarises_to_zeros() {
        let s = Recorder::new().unwrap().summary(Duration::ZERO);
        assert_eq!(
            s,
            Summary {
                requests: 0,
                errors: 0,
                rps: 0.0,
                p50_ms: 0.0,
                p95_ms: 0.0,
                p99_ms: 0.0,
                max_ms: 0.0
            }
        );
    }

    #[test]
    fn ratios_need_a_positive_baseline() {
        assert_eq!(ratio(50.0, 100.0), Some(0.5));
        assert_eq!(ratio(50.0, 0.0), None);
    }
}
