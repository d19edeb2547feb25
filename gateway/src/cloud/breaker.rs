//! Circuit breaker for the cloud endpoint: after `failures` failed requests in a row the
//! circuit opens and requests fail at once (no waiting on a dead link) for `cooldown`; then one
//! request probes it, and its result closes or re-opens the circuit.

use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// One probe is on its way (since then; a probe that never reports back is replaced
    /// after another cooldown).
    HalfOpen {
        since: Instant,
    },
}

#[derive(Debug)]
pub struct Breaker {
    failures: u32,
    cooldown: Duration,
    state: Mutex<State>,
}

impl Breaker {
    pub fn new(failures: u32, cooldown: Duration) -> Self {
        Self {
            failures: failures.max(1),
            cooldown,
            state: Mutex::new(State::Closed { failures: 0 }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Every critical section writes one whole `State`: a poisoned lock holds a valid one.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a request may go out now; `Err` says for how much longer the circuit is open.
    pub fn permit(&self) -> Result<(), Duration> {
        let mut state = self.lock();
        match *state {
            State::Closed { .. } => Ok(()),
            State::Open { until } => {
                let now = Instant::now();
                if now >= until {
                    *state = State::HalfOpen { since: now };
                    Ok(())
                } else {
                    Err(until - now)
                }
            }
            State::HalfOpen { since } if since.elapsed() >= self.cooldown => {
                *state = State::HalfOpen {
                    since: Instant::now(),
                };
                Ok(())
            }
            // Requests that arrive while the probe runs fail fast too.
            State::HalfOpen { .. } => Err(Duration::ZERO),
        }
    }

    pub fn success(&self) {
        *self.lock() = State::Closed { failures: 0 };
    }

    pub fn failure(&self) {
        let mut state = self.lock();
        *state = match *state {
            State::Closed { failures } if failures + 1 < self.failures => State::Closed {
                failures: failures + 1,
            },
            _ => State::Open {
                until: Instant::now() + self.cooldown,
            },
        };
    }

    /// `closed`, `open` or `half_open`.
    pub fn state(&self) -> &'static str {
        match *self.lock() {
            State::Closed { .. } => "closed",
            State::Open { .. } => "open",
            State::HalfOpen { .. } => "half_open",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_the_failures_and_closes_after_a_good_probe() {
        let breaker = Breaker::new(2, Duration::from_millis(30));
        breaker.failure();
        assert!(breaker.permit().is_ok());
        breaker.failure();
        assert_eq!(breaker.state(), "open");
        assert!(breaker.permit().is_err());
        std::thread::sleep(Duration::from_millis(40));
        assert!(breaker.permit().is_ok(), "the probe goes out");
        assert!(breaker.permit().is_err(), "only one probe at a time");
        breaker.failure();
        assert_eq!(breaker.state(), "open", "a failed probe re-opens");
        std::thread::sleep(Duration::from_millis(40));
        assert!(breaker.permit().is_ok());
        breaker.success();
        assert_eq!(breaker.state(), "closed");
        assert!(breaker.permit().is_ok());
    }
}
