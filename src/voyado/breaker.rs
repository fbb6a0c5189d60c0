//! Circuit breaker for one Voyado identity: after repeated failures or timeouts the proxy answers
//! 503 with Retry-After at once for a short cool-off instead of making every POS wait out the
//! timeout, then lets a single probe through to see whether Voyado is back.

use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

/// When a breaker opens and for how long, from config.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerSettings {
    /// Consecutive failures that open it (at least 1).
    pub failures: u32,
    /// How long it stays open before a probe may go.
    pub cool_off: Duration,
}

impl Default for BreakerSettings {
    fn default() -> BreakerSettings {
        BreakerSettings {
            failures: 5,
            cool_off: Duration::from_secs(5),
        }
    }
}

/// The breaker is open: answer 503 with this Retry-After.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("Voyado is failing; cooling off for {retry_after_secs} s")]
pub struct Open {
    pub retry_after_secs: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// Cooling off: calls are refused (also once the cool-off has passed, until a probe goes).
    Open,
    /// One probe is out, or was and got no answer; its outcome decides.
    HalfOpen,
}

impl BreakerState {
    /// The value of the state gauge: 0 closed, 1 open, 2 half-open.
    pub fn as_gauge(self) -> i64 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::Open => 1,
            BreakerState::HalfOpen => 2,
        }
    }
}

/// The breaker of one Voyado identity.
#[derive(Debug)]
pub struct Breaker {
    settings: BreakerSettings,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    state: State,
    /// Counts openings. An attempt admitted before the last opening reports into an episode
    /// that is over: the calls in flight when Voyado went down time out one after another, and
    /// must neither reopen a breaker that a probe just closed nor close one that is open.
    episode: u64,
}

#[derive(Debug, Clone, Copy)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { probe_out: bool },
}

impl Breaker {
    pub fn new(settings: BreakerSettings) -> Breaker {
        Breaker {
            settings: BreakerSettings {
                failures: settings.failures.max(1),
                ..settings
            },
            inner: Mutex::new(Inner {
                state: State::Closed { failures: 0 },
                episode: 0,
            }),
        }
    }

    /// Ok(Attempt) to go ahead; Err(Open) at once while cooling off, or while a half-open probe is
    /// already out.
    pub fn admit(&self) -> Result<Attempt<'_>, Open> {
        let mut inner = self.inner.lock();
        let probe = match inner.state {
            State::Closed { .. } => false,
            State::Open { until } => {
                let now = Instant::now();
                if now < until {
                    return Err(Open {
                        retry_after_secs: whole_secs_up(until - now),
                    });
                }
                inner.state = State::HalfOpen { probe_out: true };
                true
            }
            // The probe's answer is due within one call's timeout; ask again shortly.
            State::HalfOpen { probe_out: true } => {
                return Err(Open {
                    retry_after_secs: 1,
                });
            }
            // The last probe was cancelled before it learnt anything: this call probes instead.
            State::HalfOpen { probe_out: false } => {
                inner.state = State::HalfOpen { probe_out: true };
                true
            }
        };
        Ok(Attempt {
            breaker: self,
            episode: inner.episode,
            probe,
            reported: false,
        })
    }

    pub fn state(&self) -> BreakerState {
        match self.inner.lock().state {
            State::Closed { .. } => BreakerState::Closed,
            State::Open { .. } => BreakerState::Open,
            State::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    fn report(&self, attempt: &Attempt<'_>, outcome: Outcome) {
        let mut inner = self.inner.lock();
        if attempt.episode != inner.episode {
            return;
        }
        inner.state = match (inner.state, outcome) {
            (State::HalfOpen { .. }, Outcome::Cancelled) if attempt.probe => {
                State::HalfOpen { probe_out: false }
            }
            (State::HalfOpen { .. }, Outcome::Succeeded) if attempt.probe => {
                State::Closed { failures: 0 }
            }
            (State::HalfOpen { .. }, Outcome::Failed) if attempt.probe => self.open(&mut inner),
            (State::Closed { .. }, Outcome::Succeeded) => State::Closed { failures: 0 },
            (State::Closed { failures }, Outcome::Failed) => {
                let failures = failures.saturating_add(1);
                if failures >= self.settings.failures {
                    self.open(&mut inner)
                } else {
                    State::Closed { failures }
                }
            }
            // A cancelled call learnt nothing about Voyado.
            (state, _) => state,
        };
    }

    fn open(&self, inner: &mut Inner) -> State {
        inner.episode += 1;
        let now = Instant::now();
        // A cool-off too long to represent (config gone wrong) means a year, not a panic.
        let until = now
            .checked_add(self.settings.cool_off)
            .unwrap_or_else(|| now + Duration::from_secs(365 * 24 * 3600));
        State::Open { until }
    }
}

#[derive(Debug, Clone, Copy)]
enum Outcome {
    Succeeded,
    Failed,
    Cancelled,
}

/// One admitted call; report how it went. Dropped without a report (the caller was cancelled) it
/// counts as neither success nor failure but frees a half-open probe slot.
#[derive(Debug)]
#[must_use = "report how the call went"]
pub struct Attempt<'a> {
    breaker: &'a Breaker,
    episode: u64,
    probe: bool,
    reported: bool,
}

impl Attempt<'_> {
    /// Voyado answered (any answer that shows it is up, a 4xx included).
    pub fn succeeded(mut self) {
        self.reported = true;
        self.breaker.report(&self, Outcome::Succeeded);
    }

    /// Voyado failed: no connection, a timeout, a 5xx.
    pub fn failed(mut self) {
        self.reported = true;
        self.breaker.report(&self, Outcome::Failed);
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if !self.reported {
            self.breaker.report(self, Outcome::Cancelled);
        }
    }
}

/// Retry-After in whole seconds, rounded up, at least 1.
fn whole_secs_up(wait: Duration) -> u64 {
    wait.as_secs()
        .saturating_add(u64::from(wait.subsec_nanos() > 0))
        .max(1)
}

#[cfg(test)]
mod tests {
    use tokio::time::advance;

    use super::*;

    const COOL_OFF: Duration = Duration::from_secs(5);

    fn breaker() -> Breaker {
        Breaker::new(BreakerSettings::default())
    }

    fn fail(breaker: &Breaker, times: u32) {
        for _ in 0..times {
            breaker.admit().unwrap().failed();
        }
    }

    /// Opens the breaker and waits out the cool-off.
    async fn cooled_off(breaker: &Breaker) {
        fail(breaker, 5);
        assert_eq!(breaker.state(), BreakerState::Open);
        advance(COOL_OFF).await;
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_the_set_number_of_consecutive_failures() {
        let breaker = breaker();
        fail(&breaker, 4);
        assert_eq!(breaker.state(), BreakerState::Closed);
        fail(&breaker, 1);
        assert_eq!(breaker.state(), BreakerState::Open);
        assert_eq!(
            breaker.admit().unwrap_err(),
            Open {
                retry_after_secs: 5
            }
        );

        let one = Breaker::new(BreakerSettings {
            failures: 1,
            ..BreakerSettings::default()
        });
        fail(&one, 1);
        assert_eq!(one.state(), BreakerState::Open);
    }

    #[tokio::test(start_paused = true)]
    async fn a_success_while_closed_resets_the_count() {
        let breaker = breaker();
        fail(&breaker, 4);
        breaker.admit().unwrap().succeeded();
        fail(&breaker, 4);
        assert_eq!(breaker.state(), BreakerState::Closed);
        fail(&breaker, 1);
        assert_eq!(breaker.state(), BreakerState::Open);
    }

    #[tokio::test(start_paused = true)]
    async fn open_refuses_at_once_with_the_cool_off_left() {
        let breaker = breaker();
        fail(&breaker, 5);
        advance(Duration::from_millis(2500)).await;
        assert_eq!(
            breaker.admit().unwrap_err(),
            Open {
                retry_after_secs: 3
            }
        );
        advance(Duration::from_millis(2499)).await;
        assert_eq!(
            breaker.admit().unwrap_err(),
            Open {
                retry_after_secs: 1
            }
        );
        assert_eq!(breaker.state(), BreakerState::Open);
    }

    #[tokio::test(start_paused = true)]
    async fn after_the_cool_off_exactly_one_probe_goes() {
        let breaker = breaker();
        cooled_off(&breaker).await;
        let probe = breaker.admit().unwrap();
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
        for _ in 0..3 {
            assert_eq!(
                breaker.admit().unwrap_err(),
                Open {
                    retry_after_secs: 1
                }
            );
        }
        drop(probe);
    }

    #[tokio::test(start_paused = true)]
    async fn a_probe_that_succeeds_closes_it_with_a_fresh_count() {
        let breaker = breaker();
        cooled_off(&breaker).await;
        breaker.admit().unwrap().succeeded();
        assert_eq!(breaker.state(), BreakerState::Closed);
        // Everyone goes again, and it takes the full number of failures to open it.
        let calls: Vec<_> = (0..10).map(|_| breaker.admit().unwrap()).collect();
        calls.into_iter().for_each(Attempt::succeeded);
        fail(&breaker, 4);
        assert_eq!(breaker.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn a_probe_that_fails_opens_it_for_another_cool_off() {
        let breaker = breaker();
        cooled_off(&breaker).await;
        breaker.admit().unwrap().failed();
        assert_eq!(breaker.state(), BreakerState::Open);
        assert_eq!(
            breaker.admit().unwrap_err(),
            Open {
                retry_after_secs: 5
            }
        );
        advance(COOL_OFF - Duration::from_millis(1)).await;
        assert!(breaker.admit().is_err());
        advance(Duration::from_millis(1)).await;
        assert!(breaker.admit().is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_probe_frees_the_slot() {
        let breaker = breaker();
        cooled_off(&breaker).await;
        drop(breaker.admit().unwrap());
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
        let probe = breaker.admit().expect("the next call probes");
        assert!(breaker.admit().is_err());
        probe.succeeded();
        assert_eq!(breaker.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_call_is_neither_success_nor_failure() {
        let breaker = breaker();
        fail(&breaker, 4);
        for _ in 0..10 {
            drop(breaker.admit().unwrap());
        }
        assert_eq!(breaker.state(), BreakerState::Closed);
        fail(&breaker, 1);
        assert_eq!(breaker.state(), BreakerState::Open);
    }

    #[tokio::test(start_paused = true)]
    async fn calls_from_before_it_opened_do_not_decide() {
        let breaker = breaker();
        let stragglers: Vec<_> = (0..6).map(|_| breaker.admit().unwrap()).collect();
        let mut stragglers = stragglers.into_iter();
        fail(&breaker, 5);
        advance(COOL_OFF).await;
        let probe = breaker.admit().unwrap();
        // A call admitted while closed answers during the probe: the probe still decides.
        stragglers.next().unwrap().succeeded();
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
        probe.succeeded();
        // The rest time out after the probe closed it: they don't reopen it.
        stragglers.for_each(Attempt::failed);
        assert_eq!(breaker.state(), BreakerState::Closed);
        fail(&breaker, 4);
        assert_eq!(breaker.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn breakers_are_independent() {
        let down = breaker();
        let up = breaker();
        fail(&down, 5);
        assert!(down.admit().is_err());
        assert_eq!(up.state(), BreakerState::Closed);
        assert!(up.admit().is_ok());
    }

    #[test]
    fn gauge_values() {
        assert_eq!(BreakerState::Closed.as_gauge(), 0);
        assert_eq!(BreakerState::Open.as_gauge(), 1);
        assert_eq!(BreakerState::HalfOpen.as_gauge(), 2);
    }
}
