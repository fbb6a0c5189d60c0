//! One Voyado budget per API key for all replicas (contract §6.3, §6.7): the limiter's rate,
//! burst, new-work share and pause, kept in Redis and updated by one server-side script per
//! permit.
//!
//! The script is GCRA (the generic cell rate algorithm, what governor runs locally): a lane is
//! one number, its theoretical arrival time (TAT), so a permit is one key read and written in
//! one round trip, with no refill job and nothing to clean up (the key expires once the lane is
//! full again). Time is Redis' own (`TIME`), so the replicas' clocks never need to agree.
//!
//! Two lanes, as in the local limiter (`limiter.rs`): the whole budget, and new work's share of it.
//! Work under way books its turn in the whole budget's lane — a reservation: the script books the
//! earliest slot and answers the wait, the caller sleeps that long once and calls Voyado — however
//! far off, up to `UNDER_WAY_LIMIT`. New work books nothing ahead: it takes a permit only when both
//! lanes have one now, and otherwise hears how long until they may, sleeps, and asks again, until
//! it would pass `max_wait` and is refused (429). So new work never takes more than its share, work
//! under way can take the whole budget, and work under way never queues behind new work: under
//! overload a waiting search holds no slot that a card of an admitted search would wait behind
//! (a first version booked new work ahead too, and under five times the budget work under way
//! waited seconds behind it). A booked slot whose caller gives up stays used: Voyado gets fewer
//! calls than the budget, never more.

use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;

use super::{Cluster, Down};
use crate::limiter::{Budget, Priority, Throttled};

/// The most work under way may be booked ahead: longer than any request's deadline (8 s by
/// default), so that in practice it waits its turn as with the local limiter, yet bounded, so
/// that a storm of callers who have long given up cannot book the budget for minutes ahead.
const UNDER_WAY_LIMIT: Duration = Duration::from_secs(10);

/// The longest pause a Voyado 429 can set: a nonsensical Retry-After must not stop a tenant
/// for longer than a day.
const PAUSE_MAX: Duration = Duration::from_secs(24 * 3600);

/// Asks for one permit: KEYS = the whole budget's lane, new work's lane, the pause; ARGV = the
/// whole lane's interval (µs) and burst, new work's, "1" for new work, the caller's limit (µs,
/// work under way only). Answers {1, wait µs} when booked (new work: wait 0), {2, wait µs} when
/// new work may ask again after the wait (nothing booked), {0, wait µs} when refused (new work
/// while paused; work under way past its limit). A lane admits a permit at time t when
/// t >= TAT - (burst - 1) * interval, and moves its TAT to max(TAT, t) + interval. All numbers
/// are whole microseconds, exact in Lua's doubles, and written with %d (Lua would print a large
/// number in exponent form).
static RESERVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local new_work = ARGV[5] == '1'
local at = now
local paused = redis.call('PTTL', KEYS[3])
if paused > 0 then
  if new_work then return {0, paused * 1000} end
  at = now + paused * 1000
end
local function lane(i)
  local interval, burst = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', KEYS[i])) or now
  return interval, tat, math.max(at, tat - (burst - 1) * interval)
end
local function book(i, interval, tat, slot)
  local next_tat = math.max(tat, slot) + interval
  local ttl = math.ceil((next_tat - now) / 1000) + 1
  redis.call('SET', KEYS[i], string.format('%d', next_tat), 'PX', string.format('%d', ttl))
end
local all_interval, all_tat, all_slot = lane(1)
if new_work then
  local new_interval, new_tat, new_slot = lane(2)
  local slot = math.max(all_slot, new_slot)
  if slot > now then return {2, slot - now} end
  book(2, new_interval, new_tat, now)
  book(1, all_interval, all_tat, now)
  return {1, 0}
end
local wait = all_slot - now
if wait > tonumber(ARGV[6]) then return {0, wait} end
book(1, all_interval, all_tat, all_slot)
return {1, wait}
",
    )
});

/// Pauses a tenant unless a longer pause is already set: KEYS = the pause; ARGV = its length
/// (ms).
static PAUSE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
end
return 0
",
    )
});

/// A lane as the script reads it; a burst of 0 is no lane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Lane {
    interval_us: u64,
    burst: u32,
}

/// The whole budget's lane and new work's, for all replicas together: the local limiter's
/// (`new_work_share` of rate and burst for new work, at least one permit and one per second)
/// without its division by `replicas` (that static share is the fallback while Redis is down).
fn lanes(budget: &Budget) -> (Lane, Lane) {
    let rate = f64::from(budget.rate_per_second.max(1));
    let burst = budget.burst.max(1);
    // NaN can't be clamped: take the default share rather than shed all new work.
    let share = if budget.new_work_share.is_nan() {
        Budget::default().new_work_share
    } else {
        budget.new_work_share.clamp(0.0, 1.0)
    };
    // Float-to-int `as` saturates; the quotients are within range anyway. Rounded up: a lane
    // never gives more than its rate.
    let interval = |per_second: f64| ((1e6 / per_second).ceil() as u64).max(1);
    let all = Lane {
        interval_us: interval(rate),
        burst,
    };
    let new_work = Lane {
        interval_us: interval((rate * share).max(1.0).min(rate)),
        burst: ((f64::from(burst) * share).floor() as u32).clamp(1, burst),
    };
    (all, new_work)
}

fn micros(wait: Duration) -> u64 {
    u64::try_from(wait.as_micros()).unwrap_or(u64::MAX)
}

impl Cluster {
    /// A permit of `identity`'s shared budget (`identity`: the Voyado tenant as cache keys name
    /// it; only its digest reaches Redis). `Ok(Ok(wait))`: sleep `wait`, then call Voyado (new work
    /// has done its waiting here and gets 0). `Ok(Err(throttled))`: new work that would wait past
    /// `max_wait`, or any new work while the tenant is paused; nothing was booked. `Err(Down)`:
    /// Redis cannot say; use the local limiter.
    ///
    /// Cancel-safe: new work waits holding nothing; work under way dropped after booking leaves
    /// one slot unused.
    pub async fn reserve(
        &self,
        identity: &str,
        budget: &Budget,
        priority: Priority,
    ) -> Result<Result<Duration, Throttled>, Down> {
        let give_up = tokio::time::Instant::now() + budget.max_wait;
        loop {
            let (answer, wait) = self.ask(identity, budget, priority).await?;
            match answer {
                1 => return Ok(Ok(wait)),
                // New work, not yet: ask again once both lanes may have a permit, unless that
                // is past what it may wait.
                2 if tokio::time::Instant::now() + wait <= give_up => {
                    tokio::time::sleep(wait).await;
                }
                _ => return Ok(Err(Throttled::after(wait))),
            }
        }
    }

    /// One run of the script: its answer (1 booked, 2 not yet, 0 refused) and the wait.
    async fn ask(
        &self,
        identity: &str,
        budget: &Budget,
        priority: Priority,
    ) -> Result<(i64, Duration), Down> {
        let (all, new_work) = lanes(budget);
        let new = if priority == Priority::NewWork {
            "1"
        } else {
            "0"
        };
        let keys = &self.inner.keys;
        let mut invocation = RESERVE.prepare_invoke();
        invocation
            .key(keys.key("budget:all", &[identity]))
            .key(keys.key("budget:new", &[identity]))
            .key(keys.key("pause", &[identity]))
            .arg(all.interval_us)
            .arg(all.burst)
            .arg(new_work.interval_us)
            .arg(new_work.burst)
            .arg(new)
            .arg(micros(UNDER_WAY_LIMIT));
        let (answer, wait_us): (i64, i64) = self
            .call(|mut connection| async move { invocation.invoke_async(&mut connection).await })
            .await?;
        Ok((
            answer,
            Duration::from_micros(u64::try_from(wait_us).unwrap_or(0)),
        ))
    }

    /// Voyado answered 429: no replica calls with this key until `pause` has passed (a longer
    /// pause already set stays). New work is refused meanwhile; work under way is booked after it.
    pub async fn pause(&self, identity: &str, pause: Duration) -> Result<(), Down> {
        let ms = pause.min(PAUSE_MAX).as_millis().max(1);
        let ms = u64::try_from(ms).unwrap_or(u64::MAX);
        let mut invocation = PAUSE.key(self.inner.keys.key("pause", &[identity]));
        invocation.arg(ms);
        self.call(
            |mut connection| async move { invocation.invoke_async::<()>(&mut connection).await },
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_budget_gives_new_work_its_share_of_the_whole() {
        // 40/s with a burst of 20; new work 0.8 of both: 32/s, 16 at once.
        let (all, new_work) = lanes(&Budget::default());
        assert_eq!(
            all,
            Lane {
                interval_us: 25_000,
                burst: 20
            }
        );
        assert_eq!(
            new_work,
            Lane {
                interval_us: 31_250,
                burst: 16
            }
        );
        // `replicas` divides nothing here: Redis holds the one budget.
        let shared = lanes(&Budget {
            replicas: 4,
            ..Budget::default()
        });
        assert_eq!(shared, (all, new_work));
    }

    #[test]
    fn degenerate_budgets_still_give_new_work_a_lane() {
        let (all, new_work) = lanes(&Budget {
            rate_per_second: 0,
            burst: 0,
            new_work_share: f64::NAN,
            ..Budget::default()
        });
        let one_a_second = Lane {
            interval_us: 1_000_000,
            burst: 1,
        };
        assert_eq!((all, new_work), (one_a_second, one_a_second));
        // No share for new work still lets one through a second, as the local limiter does.
        let (_, none) = lanes(&Budget {
            new_work_share: -1.0,
            ..Budget::default()
        });
        assert_eq!(none, one_a_second);
        let (_, all_new) = lanes(&Budget {
            new_work_share: 1.0,
            ..Budget::default()
        });
        assert_eq!(all_new, lanes(&Budget::default()).0);
        let (fast, _) = lanes(&Budget {
            rate_per_second: u32::MAX,
            ..Budget::default()
        });
        assert_eq!(fast.interval_us, 1);
    }

    #[test]
    fn a_wait_past_any_limit_is_sent_whole() {
        assert_eq!(micros(Duration::MAX), u64::MAX);
        assert_eq!(micros(Duration::from_millis(500)), 500_000);
    }
}
