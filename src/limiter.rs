//! The request budget of one upstream API key, shared by both clients: Voyado's (contract §6.3:
//! Voyado wants < 50 requests/s per key and answers 429 above ~200/s, so every call to Voyado
//! first takes a permit here) and Sitoo's REST client (`sitoo.rs`), which has a budget of its own.
//! New work is shed early with a 429 of our own; work already under way waits its turn.
//!
//! The 429 story, room by room: a Voyado 429 is decoded in `voyado/error.rs`, pauses this key
//! here (`KeyLimiter::pause`, called by the call path in `voyado/mod.rs`), and reaches the till as
//! the reason `too_many_requests` with `Retry-After`, which `spi/error.rs` maps to its status; the
//! admission gate's own shedding (`server/mod.rs`) is the proxy's 503, not Voyado's 429.

use std::fmt;
use std::num::NonZeroU32;
use std::ops::Add;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use governor::clock::{Clock, Reference};
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use tokio::sync::watch;
use tokio::time::{Instant, sleep_until};

/// The budget for one Voyado API key, from config.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget {
    /// Requests per second for the key across all replicas.
    pub rate_per_second: u32,
    /// Requests that may go at once after a quiet spell, across all replicas.
    pub burst: u32,
    /// Replicas sharing the key; each takes an equal share of rate and burst.
    pub replicas: u32,
    /// Longest a new request waits for a permit before it is answered 429.
    pub max_wait: Duration,
    /// Share of the rate and burst that new work may use, e.g. 0.8; clamped to 0..=1.
    pub new_work_share: f64,
}

impl Default for Budget {
    fn default() -> Budget {
        Budget {
            rate_per_second: 40,
            burst: 20,
            replicas: 1,
            max_wait: Duration::from_millis(500),
            new_work_share: 0.8,
        }
    }
}

/// Which class of Voyado call asks for a permit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    /// The first Voyado call of a new SPI request (a search, a card).
    NewWork,
    /// A later call of a request already admitted, or any write: never shed locally, waits as
    /// long as the caller lets it.
    UnderWay,
}

/// No permit within the budget: answer 429 with this Retry-After.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("rate limited for {retry_after_secs} s")]
pub struct Throttled {
    pub retry_after_secs: u64,
}

impl Throttled {
    /// Retry-After for a wait of `wait`: whole seconds rounded up, at least 1 (the local
    /// limiter's and the shared budget's, `cluster/budget.rs`).
    pub fn after(wait: Duration) -> Throttled {
        let secs = wait
            .as_secs()
            .saturating_add(u64::from(wait.subsec_nanos() > 0));
        Throttled {
            retry_after_secs: secs.max(1),
        }
    }
}

/// Rate limiter for one Voyado API key, for this replica.
///
/// Two governor limiters: `total` holds the key's whole per-replica budget and every call takes
/// a permit from it; `new_work` holds `new_work_share` of it and only new work takes from it as
/// well. New searches can so take at most that share of the budget, and calls of operations
/// already under way, and writes, always find the rest: they don't starve behind a flood of new
/// searches, however many arrive.
pub struct KeyLimiter {
    total: Lane,
    new_work: Lane,
    max_wait: Duration,
    /// Until when Voyado told us to stop (429). A watch so that waiters see a pause begin.
    paused_until: watch::Sender<Option<Instant>>,
}

impl fmt::Debug for KeyLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyLimiter")
            .field("total", &self.total.quota)
            .field("new_work", &self.new_work.quota)
            .field("max_wait", &self.max_wait)
            .field("paused_until", &*self.paused_until.borrow())
            .finish()
    }
}

impl KeyLimiter {
    /// This replica's limiter: rate/replicas and burst/replicas, each at least 1; new work gets
    /// `new_work_share` of both, again at least 1.
    pub fn new(budget: Budget) -> KeyLimiter {
        let replicas = budget.replicas.max(1);
        let rate = (f64::from(budget.rate_per_second) / f64::from(replicas)).max(1.0);
        let burst = (budget.burst / replicas).max(1);
        // NaN can't be clamped: take the default share rather than shed all new work.
        let share = if budget.new_work_share.is_nan() {
            Budget::default().new_work_share
        } else {
            budget.new_work_share.clamp(0.0, 1.0)
        };
        // Float-to-int `as` saturates; the product is at most `burst` anyway.
        let new_work_burst = ((f64::from(burst) * share).floor() as u32).max(1);
        KeyLimiter {
            total: Lane::new(quota(rate, burst)),
            new_work: Lane::new(quota(rate * share, new_work_burst)),
            max_wait: budget.max_wait,
            paused_until: watch::Sender::new(None),
        }
    }

    /// Waits for a permit. NewWork must pass both the new-work limiter (new_work_share of the rate
    /// and burst) and the total one, and gives up with Throttled as soon as it is clear it would
    /// wait past max_wait, without waiting first; UnderWay needs only the total limiter and waits
    /// as long as needed (the caller bounds it with its deadline). While the key is paused (after
    /// a Voyado 429), NewWork fails at once and UnderWay waits until the pause ends.
    ///
    /// Cancel-safe: a caller that gives up frees its place in line.
    pub async fn acquire(&self, priority: Priority) -> Result<(), Throttled> {
        match priority {
            Priority::NewWork => self.acquire_new_work().await,
            Priority::UnderWay => {
                self.acquire_under_way().await;
                Ok(())
            }
        }
    }

    /// Voyado answered 429: no call with this key until `pause` has passed (an existing longer
    /// pause stays).
    pub fn pause(&self, pause: Duration) {
        let until = after(pause);
        self.paused_until.send_if_modified(|current| {
            if current.is_some_and(|current| current >= until) {
                return false;
            }
            *current = Some(until);
            true
        });
    }

    async fn acquire_new_work(&self) -> Result<(), Throttled> {
        let mut pause = self.paused_until.subscribe();
        if let Some(left) = pause_left(&mut pause) {
            return Err(Throttled::after(left));
        }
        let deadline = after(self.max_wait);
        let admit = async {
            // new_work first: a new-work permit taken in vain only holds new work back, while a
            // total permit taken in vain would be missed by work under way.
            self.new_work.acquire(Some(deadline)).await?;
            self.total.acquire(Some(deadline)).await
        };
        tokio::select! {
            admitted = admit => admitted.map_err(Throttled::after),
            // A 429 arrived while we waited: new work is not worth waiting out a pause.
            left = pause_begins(&mut pause) => Err(Throttled::after(left)),
        }
    }

    async fn acquire_under_way(&self) {
        let mut pause = self.paused_until.subscribe();
        loop {
            while let Some(left) = pause_left(&mut pause) {
                tokio::time::sleep(left).await;
            }
            tokio::select! {
                // Without a deadline a lane never refuses.
                _ = self.total.acquire(None) => return,
                // Paused while in line: leave it, and queue again once the pause is over, so that
                // the calls held up don't all reach Voyado the moment it ends.
                _ = pause_begins(&mut pause) => {}
            }
        }
    }
}

/// `wait` from now; an absurd wait (a Retry-After of centuries) means a year rather than a panic.
fn after(wait: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(wait)
        .unwrap_or_else(|| now + Duration::from_secs(365 * 24 * 3600))
}

/// How long the pause still lasts, if the key is paused; marks the current value as seen.
fn pause_left(pause: &mut watch::Receiver<Option<Instant>>) -> Option<Duration> {
    let until = (*pause.borrow_and_update())?;
    let now = Instant::now();
    (until > now).then(|| until - now)
}

/// Resolves with the pause left once a pause begins (or is extended).
async fn pause_begins(pause: &mut watch::Receiver<Option<Instant>>) -> Duration {
    loop {
        if pause.changed().await.is_err() {
            // The sender lives as long as the limiter, which outlives every acquire.
            std::future::pending::<()>().await;
        }
        if let Some(left) = pause_left(pause) {
            return left;
        }
    }
}

fn quota(per_second: f64, burst: u32) -> Quota {
    // per_second >= 1, so the period is at most 1 s; it is zero only for an absurd rate.
    let period = Duration::from_secs_f64(1.0 / per_second.max(1.0));
    Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MAX))
        .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN))
}

type Gcra = RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<TokioInstant>>;

/// One governor limiter with a first-come-first-served line in front of it.
///
/// governor only answers "yes" or "not until T"; it holds no line. Waiters that each slept
/// until T and tried again would race, and an unlucky one could lose every round. So one waiter
/// at a time (the holder of `turn`, a fair mutex) sleeps until T and takes the permit; the rest
/// queue behind it, and `waiting` counts them for the up-front decision.
struct Lane {
    limiter: Gcra,
    quota: Quota,
    turn: tokio::sync::Mutex<()>,
    waiting: AtomicUsize,
}

impl Lane {
    fn new(quota: Quota) -> Lane {
        Lane {
            limiter: RateLimiter::direct_with_clock(quota, TokioClock),
            quota,
            turn: tokio::sync::Mutex::new(()),
            waiting: AtomicUsize::new(0),
        }
    }

    /// Takes a permit in turn. With a deadline, refuses at once, with the wait it would have
    /// needed, when the permit could come later than the deadline.
    async fn acquire(&self, deadline: Option<Instant>) -> Result<(), Duration> {
        let place = Place::take(&self.waiting);
        let interval = self.quota.replenish_interval();
        if let Some(deadline) = deadline
            && place.ahead > 0
        {
            // With an empty bucket a permit comes every `interval`, and the first within one
            // `interval` (GCRA), so our turn comes at the latest after (ahead + 1) intervals.
            let ahead = u32::try_from(place.ahead).unwrap_or(u32::MAX);
            let latest = interval.saturating_mul(ahead.saturating_add(1));
            if after(latest) > deadline {
                return Err(latest);
            }
        }
        let _turn = self.turn.lock().await;
        loop {
            let not_until = match self.limiter.check() {
                Ok(()) => return Ok(()),
                Err(not_until) => not_until.earliest_possible().0,
            };
            // Nobody ahead (or our turn has come): governor says exactly when.
            if deadline.is_some_and(|deadline| not_until > deadline) {
                return Err(not_until - Instant::now());
            }
            sleep_until(not_until).await;
        }
    }
}

/// A place in a lane's line; leaving it (done or cancelled) shortens the line.
struct Place<'a> {
    waiting: &'a AtomicUsize,
    ahead: usize,
}

impl<'a> Place<'a> {
    fn take(waiting: &'a AtomicUsize) -> Place<'a> {
        let ahead = waiting.fetch_add(1, Ordering::AcqRel);
        Place { waiting, ahead }
    }
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        self.waiting.fetch_sub(1, Ordering::AcqRel);
    }
}

/// governor's clock over tokio's, so that paused tokio time (tests) drives the limiters too.
#[derive(Debug, Clone, Copy, Default)]
struct TokioClock;

impl Clock for TokioClock {
    type Instant = TokioInstant;

    fn now(&self) -> TokioInstant {
        TokioInstant(Instant::now())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct TokioInstant(Instant);

impl Add<Nanos> for TokioInstant {
    type Output = TokioInstant;

    fn add(self, other: Nanos) -> TokioInstant {
        // governor adds to the limiter's start the time since then plus at most one burst's worth
        // of periods: this can't overflow within the life of a process.
        TokioInstant(self.0.checked_add(other.into()).unwrap_or(self.0))
    }
}

impl Reference for TokioInstant {
    fn duration_since(&self, earlier: TokioInstant) -> Nanos {
        self.0.saturating_duration_since(earlier.0).into()
    }

    fn saturating_sub(&self, duration: Nanos) -> TokioInstant {
        TokioInstant(self.0.checked_sub(duration.into()).unwrap_or(self.0))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicU64;

    use tokio::task::JoinHandle;
    use tokio::time::{advance, sleep};

    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn limiter(budget: Budget) -> Arc<KeyLimiter> {
        Arc::new(KeyLimiter::new(budget))
    }

    /// Acquires and reports how long it took.
    async fn timed(limiter: &KeyLimiter, priority: Priority) -> (Result<(), Throttled>, Duration) {
        let start = Instant::now();
        let result = limiter.acquire(priority).await;
        (result, start.elapsed())
    }

    fn spawn_timed(
        limiter: &Arc<KeyLimiter>,
        priority: Priority,
    ) -> JoinHandle<(Result<(), Throttled>, Duration)> {
        let limiter = Arc::clone(limiter);
        tokio::spawn(async move { timed(&limiter, priority).await })
    }

    /// Lets spawned tasks run up to their next wait, without time passing.
    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_passes_at_once_then_permits_come_at_the_rate() {
        // Work under way has the whole budget: 20 at once, then one every 1/40 s.
        let under_way = limiter(Budget::default());
        for _ in 0..20 {
            assert_eq!(
                timed(&under_way, Priority::UnderWay).await,
                (Ok(()), Duration::ZERO)
            );
        }
        let (result, waited) = timed(&under_way, Priority::UnderWay).await;
        assert_eq!(result, Ok(()));
        assert!(waited >= 25 * MS && waited <= 26 * MS, "{waited:?}");

        // New work has 0.8 of it: 16 at once, then one every 1/32 s (31.25 ms).
        let new_work = limiter(Budget::default());
        for _ in 0..16 {
            assert_eq!(
                timed(&new_work, Priority::NewWork).await,
                (Ok(()), Duration::ZERO)
            );
        }
        let (result, waited) = timed(&new_work, Priority::NewWork).await;
        assert_eq!(result, Ok(()));
        assert!(waited >= 31 * MS && waited <= 32 * MS, "{waited:?}");
        // ... and the 20 - 17 permits new work left in the total budget are there at once.
        for _ in 0..3 {
            assert_eq!(
                timed(&new_work, Priority::UnderWay).await,
                (Ok(()), Duration::ZERO)
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn new_work_that_would_wait_past_max_wait_is_refused_without_waiting() {
        // A slow key: one permit a second is always more than the 500 ms new work may wait.
        let slow = limiter(Budget {
            rate_per_second: 1,
            burst: 1,
            new_work_share: 1.0,
            ..Budget::default()
        });
        assert_eq!(
            timed(&slow, Priority::NewWork).await,
            (Ok(()), Duration::ZERO)
        );
        assert_eq!(
            timed(&slow, Priority::NewWork).await,
            (
                Err(Throttled {
                    retry_after_secs: 1
                }),
                Duration::ZERO
            )
        );

        // A line of new work: after the burst of 16, waiter k gets its permit at k/32 s, so 16
        // fit in 500 ms and the 17th in line is refused at once.
        let key = limiter(Budget::default());
        for _ in 0..16 {
            assert_eq!(
                timed(&key, Priority::NewWork).await,
                (Ok(()), Duration::ZERO)
            );
        }
        let line: Vec<_> = (0..16)
            .map(|_| spawn_timed(&key, Priority::NewWork))
            .collect();
        settle().await;
        assert_eq!(
            timed(&key, Priority::NewWork).await,
            (
                Err(Throttled {
                    retry_after_secs: 1
                }),
                Duration::ZERO
            )
        );
        for (k, waiter) in line.into_iter().enumerate() {
            let (result, waited) = waiter.await.unwrap();
            assert_eq!(result, Ok(()), "waiter {k}");
            assert!(
                waited <= Duration::from_millis(500),
                "waiter {k}: {waited:?}"
            );
        }
    }

    /// New work arriving at 200/s from now until `until`; returns when each admitted call got
    /// its permit (from now), and how many were refused.
    fn flood(key: &Arc<KeyLimiter>, until: Duration) -> JoinHandle<(Vec<Duration>, usize)> {
        let key = Arc::clone(key);
        tokio::spawn(async move {
            let start = Instant::now();
            let mut calls = Vec::new();
            while start.elapsed() < until {
                let key = Arc::clone(&key);
                calls.push(tokio::spawn(async move {
                    key.acquire(Priority::NewWork)
                        .await
                        .map(|()| start.elapsed())
                }));
                sleep(5 * MS).await;
            }
            let (mut admitted, mut refused) = (Vec::new(), 0);
            for call in calls {
                match call.await.unwrap() {
                    Ok(at) => admitted.push(at),
                    Err(_) => refused += 1,
                }
            }
            (admitted, refused)
        })
    }

    #[tokio::test(start_paused = true)]
    async fn work_under_way_is_not_starved_by_a_flood_of_new_work() {
        let budget = Budget::default();
        let key = limiter(budget);
        // 200 new searches at once, and new ones arriving at 200/s for 3 s.
        let burst: Vec<_> = (0..200)
            .map(|_| spawn_timed(&key, Priority::NewWork))
            .collect();
        let flood = flood(&key, Duration::from_secs(3));

        // Second rounds of requests already admitted, and writes: three at once every 500 ms, at
        // 6/s within the 8/s that new work leaves.
        let bound = Duration::from_secs_f64(
            2.0 / f64::from(budget.rate_per_second) / (1.0 - budget.new_work_share),
        );
        let mut worst = Duration::ZERO;
        for _ in 0..6 {
            sleep(500 * MS).await;
            let calls: Vec<_> = (0..3)
                .map(|_| spawn_timed(&key, Priority::UnderWay))
                .collect();
            for call in calls {
                let (result, waited) = call.await.unwrap();
                assert_eq!(result, Ok(()));
                worst = worst.max(waited);
            }
        }
        assert!(
            worst <= bound,
            "an under-way call waited {worst:?} (bound {bound:?})"
        );
        // In fact they don't wait at all: they find the reserve in the total budget.
        assert_eq!(worst, Duration::ZERO);

        // The flood really did saturate new work's share: ~32/s got through, the rest was shed.
        let mut admitted = 0;
        for call in burst {
            admitted += usize::from(call.await.unwrap().0.is_ok());
        }
        let (flood_admitted, refused) = flood.await.unwrap();
        let admitted = admitted + flood_admitted.len();
        println!("new work: {admitted} admitted, {refused} refused; worst under way {worst:?}");
        assert!((100..=16 + 112 + 1).contains(&admitted), "{admitted}");
        assert!(refused > 400, "{refused}");
    }

    #[tokio::test(start_paused = true)]
    async fn over_ten_seconds_no_more_than_rate_times_ten_plus_burst_are_granted() {
        let key = limiter(Budget::default());
        let granted = Arc::new(AtomicU64::new(0));
        let start = Instant::now();
        let window = Duration::from_secs(10);
        // Ten callers always asking for work under way, and a flood of new work besides.
        let flood = flood(&key, window);
        let callers: Vec<_> = (0..10)
            .map(|_| {
                let (key, granted) = (key.clone(), granted.clone());
                tokio::spawn(async move {
                    while key.acquire(Priority::UnderWay).await.is_ok() {
                        if start.elapsed() > window {
                            return;
                        }
                        granted.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        for caller in callers {
            caller.await.unwrap();
        }
        let (new_work, _) = flood.await.unwrap();
        let new_work = new_work.iter().filter(|&&at| at <= window).count() as u64;
        let total = granted.load(Ordering::Relaxed) + new_work;
        println!("{total} permits in 10 s, {new_work} of them new work");
        assert!(total <= 40 * 10 + 20, "{total} permits in 10 s");
        // Demand exceeded the budget all the time, so it was used, and new work got some.
        assert!(total >= 40 * 10, "{total} permits in 10 s");
        assert!(new_work > 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_refuses_new_work_at_once_and_holds_work_under_way() {
        let key = limiter(Budget::default());
        key.pause(Duration::from_secs(2));
        assert_eq!(
            timed(&key, Priority::NewWork).await,
            (
                Err(Throttled {
                    retry_after_secs: 2
                }),
                Duration::ZERO
            )
        );
        let under_way = spawn_timed(&key, Priority::UnderWay);
        settle().await;

        // A shorter pause doesn't cut the longer one short; what remains rounds up to whole seconds.
        advance(1500 * MS).await;
        key.pause(Duration::from_millis(100));
        advance(200 * MS).await;
        assert_eq!(
            timed(&key, Priority::NewWork).await,
            (
                Err(Throttled {
                    retry_after_secs: 1
                }),
                Duration::ZERO
            )
        );
        let (result, waited) = under_way.await.unwrap();
        assert_eq!(result, Ok(()));
        assert!(waited >= 2000 * MS && waited <= 2001 * MS, "{waited:?}");
        assert_eq!(
            timed(&key, Priority::NewWork).await,
            (Ok(()), Duration::ZERO)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_turns_away_new_work_already_in_line() {
        let key = limiter(Budget::default());
        for _ in 0..16 {
            key.acquire(Priority::NewWork).await.unwrap();
        }
        let waiting = spawn_timed(&key, Priority::NewWork);
        settle().await;
        key.pause(Duration::from_secs(3));
        assert_eq!(
            waiting.await.unwrap(),
            (
                Err(Throttled {
                    retry_after_secs: 3
                }),
                Duration::ZERO
            )
        );
    }

    #[tokio::test(start_paused = true)]
    async fn two_replicas_each_take_half_the_rate() {
        let key = limiter(Budget {
            replicas: 2,
            ..Budget::default()
        });
        for _ in 0..10 {
            assert_eq!(
                timed(&key, Priority::UnderWay).await,
                (Ok(()), Duration::ZERO)
            );
        }
        let (result, waited) = timed(&key, Priority::UnderWay).await;
        assert_eq!(result, Ok(()));
        assert!(waited >= 50 * MS && waited <= 51 * MS, "{waited:?}");

        // Over 10 s: 20/s plus the burst of 10.
        let start = Instant::now();
        let mut granted = 0;
        while start.elapsed() <= Duration::from_secs(10) {
            key.acquire(Priority::UnderWay).await.unwrap();
            granted += 1;
        }
        assert!((199..=201).contains(&granted), "{granted}");
    }

    #[tokio::test(start_paused = true)]
    async fn callers_that_give_up_leave_the_line() {
        let key = limiter(Budget::default());
        for _ in 0..16 {
            key.acquire(Priority::NewWork).await.unwrap();
        }
        // A full line of new work (permits due up to 500 ms from now) is cancelled: the callers'
        // clients went away.
        let line: Vec<_> = (0..16)
            .map(|_| spawn_timed(&key, Priority::NewWork))
            .collect();
        settle().await;
        advance(MS).await;
        for waiter in &line {
            waiter.abort();
        }
        settle().await;
        // Their places are free again: a new full line gets in, at the same pace.
        let line: Vec<_> = (0..16)
            .map(|_| spawn_timed(&key, Priority::NewWork))
            .collect();
        settle().await;
        for (k, waiter) in line.into_iter().enumerate() {
            let (result, waited) = waiter.await.unwrap();
            assert_eq!(result, Ok(()), "waiter {k}");
            assert!(
                waited <= Duration::from_millis(500),
                "waiter {k}: {waited:?}"
            );
        }

        // The same for work under way, which waits without a limit of its own.
        let slow = limiter(Budget {
            rate_per_second: 1,
            burst: 1,
            ..Budget::default()
        });
        slow.acquire(Priority::UnderWay).await.unwrap();
        let gave_up = tokio::time::timeout(100 * MS, slow.acquire(Priority::UnderWay)).await;
        assert!(gave_up.is_err());
        // The next caller gets the permit due at 1 s, not one after the cancelled caller's.
        let (result, waited) = timed(&slow, Priority::UnderWay).await;
        assert_eq!(result, Ok(()));
        assert!(waited >= 900 * MS && waited <= 901 * MS, "{waited:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn an_absurd_retry_after_does_not_panic() {
        let key = limiter(Budget::default());
        key.pause(Duration::MAX);
        let refused = key.acquire(Priority::NewWork).await.unwrap_err();
        assert!(refused.retry_after_secs > 300 * 24 * 3600, "{refused:?}");
        assert_eq!(Throttled::after(Duration::MAX).retry_after_secs, u64::MAX);
    }

    #[test]
    fn budget_shares() {
        let key = KeyLimiter::new(Budget {
            rate_per_second: 3,
            burst: 1,
            replicas: 4,
            new_work_share: f64::NAN,
            ..Budget::default()
        });
        // Each at least 1.
        assert_eq!(key.total.quota, Quota::per_second(NonZeroU32::MIN));
        assert_eq!(key.new_work.quota, Quota::per_second(NonZeroU32::MIN));
        assert_eq!(Throttled::after(Duration::ZERO).retry_after_secs, 1);
        assert_eq!(
            Throttled::after(Duration::from_millis(2001)).retry_after_secs,
            3
        );
    }
}
