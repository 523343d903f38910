//! Resilience for calls to outside services (vPIC, driver-record providers): bounded retries
//! with full-jitter backoff, and a circuit breaker that fails fast while a service is down so
//! handlers fall back at once instead of waiting out timeouts on every record.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::backoff::Backoff;

/// Circuit states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    /// Calls go through.
    Closed,
    /// Calls fail fast until the cool-down ends.
    Open,
    /// One trial call is allowed; its result closes or re-opens the circuit.
    HalfOpen,
}

#[derive(Debug)]
struct Inner {
    consecutive_failures: u32,
    opened_at: Option<Instant>,
    trial_in_flight: bool,
}

/// Opens after `failure_threshold` consecutive failures, for `cool_down`; then lets one trial
/// call through (half-open).
#[derive(Debug)]
pub struct CircuitBreaker {
    failure_threshold: u32,
    cool_down: Duration,
    inner: Mutex<Inner>,
}

impl CircuitBreaker {
    /// A closed breaker.
    pub fn new(failure_threshold: u32, cool_down: Duration) -> Self {
        Self {
            failure_threshold: failure_threshold.max(1),
            cool_down,
            inner: Mutex::new(Inner {
                consecutive_failures: 0,
                opened_at: None,
                trial_in_flight: false,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current state.
    pub fn state(&self) -> CircuitState {
        let inner = self.lock();
        match inner.opened_at {
            None => CircuitState::Closed,
            Some(at) if at.elapsed() < self.cool_down => CircuitState::Open,
            Some(_) => CircuitState::HalfOpen,
        }
    }

    /// Whether a call may go out now (claims the half-open trial if that is the case).
    pub fn try_acquire(&self) -> bool {
        let mut inner = self.lock();
        match inner.opened_at {
            None => true,
            Some(at) if at.elapsed() < self.cool_down => false,
            Some(_) if inner.trial_in_flight => false,
            Some(_) => {
                inner.trial_in_flight = true;
                true
            }
        }
    }

    /// Records a success: closes the circuit.
    pub fn record_success(&self) {
        let mut inner = self.lock();
        inner.consecutive_failures = 0;
        inner.opened_at = None;
        inner.trial_in_flight = false;
    }

    /// Records a failure: opens the circuit at the threshold (or re-opens after a failed trial).
    pub fn record_failure(&self) {
        let mut inner = self.lock();
        inner.consecutive_failures = inner.consecutive_failures.saturating_add(1);
        if inner.trial_in_flight || inner.consecutive_failures >= self.failure_threshold {
            inner.opened_at = Some(Instant::now());
        }
        inner.trial_in_flight = false;
    }
}

/// Why a guarded call did not produce a value.
#[derive(Debug, thiserror::Error)]
pub enum CallError<E: std::error::Error + 'static> {
    /// The circuit is open: the service is considered down.
    #[error("circuit open: the service is considered down")]
    CircuitOpen,
    /// Every attempt failed; the last error.
    #[error("all {attempts} attempts failed: {last}")]
    Exhausted {
        /// Attempts made.
        attempts: u32,
        /// The last error.
        #[source]
        last: E,
    },
    /// The error is permanent (not worth retrying).
    #[error(transparent)]
    Permanent(E),
}

/// Whether an error is worth retrying.
pub trait Retryable {
    /// True for transient failures (timeouts, 5xx, 429, connection errors).
    fn is_retryable(&self) -> bool;
}

/// Runs `call` up to `attempts` times with full-jitter backoff, through the breaker.
pub async fn call_with_retries<T, E, F, Fut>(
    breaker: &CircuitBreaker,
    attempts: u32,
    backoff: Backoff,
    mut call: F,
) -> Result<T, CallError<E>>
where
    E: std::error::Error + Retryable + 'static,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut backoff = backoff;
    let mut made = 0;
    loop {
        if !breaker.try_acquire() {
            return Err(CallError::CircuitOpen);
        }
        made += 1;
        match call().await {
            Ok(value) => {
                breaker.record_success();
                return Ok(value);
            }
            Err(err) if !err.is_retryable() => {
                // The service answered; it is up, the request is at fault.
                breaker.record_success();
                return Err(CallError::Permanent(err));
            }
            Err(err) => {
                breaker.record_failure();
                if made >= attempts.max(1) {
                    return Err(CallError::Exhausted {
                        attempts: made,
                        last: err,
                    });
                }
                tokio::time::sleep(backoff.next_delay()).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("{0}")]
    struct Failure(&'static str, bool);

    impl Retryable for Failure {
        fn is_retryable(&self) -> bool {
            self.1
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_breaker_opens_fails_fast_and_recovers_through_a_trial() {
        let breaker = CircuitBreaker::new(3, Duration::from_secs(30));
        let backoff = Backoff::new(Duration::from_millis(10), Duration::from_millis(50));
        let result: Result<(), _> = call_with_retries(&breaker, 5, backoff.clone(), || async {
            Err(Failure("down", true))
        })
        .await;
        assert!(
            matches!(result, Err(CallError::CircuitOpen)),
            "opened after 3 failures"
        );
        assert_eq!(breaker.state(), CircuitState::Open);

        tokio::time::advance(Duration::from_secs(31)).await;
        assert_eq!(breaker.state(), CircuitState::HalfOpen);
        let ok = call_with_retries(&breaker, 1, backoff.clone(), || async {
            Ok::<_, Failure>(7)
        })
        .await;
        assert_eq!(ok.ok(), Some(7));
        assert_eq!(breaker.state(), CircuitState::Closed);

        let permanent: Result<(), _> = call_with_retries(&breaker, 5, backoff, || async {
            Err(Failure("bad input", false))
        })
        .await;
        assert!(matches!(permanent, Err(CallError::Permanent(_))));
        assert_eq!(breaker.state(), CircuitState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_trial_reopens_the_circuit() {
        let breaker = CircuitBreaker::new(1, Duration::from_secs(5));
        breaker.record_failure();
        tokio::time::advance(Duration::from_secs(6)).await;
        assert!(breaker.try_acquire());
        assert!(!breaker.try_acquire(), "only one trial at a time");
        breaker.record_failure();
        assert_eq!(breaker.state(), CircuitState::Open);
    }
}
