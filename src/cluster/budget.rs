//! One Voyado budget per API key for all replicas (contract §6.3, §6.7): the limiter's rate,
//! burst, new-work share and pause, kept in Redis and updated by one server-side script per
//! permit.
//!
//! The script is GCRA (the generic cell rate algorithm, what governor runs locally): a lane is
//! one number, its theoretical arrival time (TAT), so a permit is one key read and written in
//! one round trip, with no refill job and nothing to clean up (the key expires once the lane is
//! full again). Time is Redis' own (`TIME`), so the replicas' clocks never need to agree.
//!
//! The budget is cut into two lanes that together make it: new work's share, open to all work,
//! and the rest, kept for work under way. New work books only in its lane; work under way books
//! whichever lane gives it the earlier slot. So new work never takes more than its share, work
//! under way can take the whole budget, and it never queues behind slots new work has booked
//! ahead (one lane shared by both would put it there: GCRA serves bookings in order).
//!
//! A permit is a reservation: the script books the earliest slot if the caller would wait no
//! longer than its limit, and answers the wait; the caller sleeps that long once and calls
//! Voyado. New work waits at most the budget's `max_wait` and is refused (429) past it without
//! booking anything; work under way books its turn however far off, up to `UNDER_WAY_LIMIT`.
//! A booked slot whose caller gives up stays used: Voyado gets fewer calls than the budget,
//! never more.

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

/// Books one permit: KEYS = the lane kept for work under way, new work's lane, the pause;
/// ARGV = the kept lane's interval (µs) and burst (0: no such lane), new work's, "1" for new
/// work, the caller's limit (µs). Answers {1, wait µs} when booked, {0, wait µs} when the wait
/// would pass the limit. A lane admits a permit at time t when t >= TAT - (burst - 1) *
/// interval, and moves its TAT to max(TAT, t) + interval; on a tie work under way takes the
/// kept lane, leaving new work's. All numbers are whole microseconds, exact in Lua's doubles,
/// and written with %d (Lua would print a large number in exponent form).
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
local lane, slot, tat, interval
for i = (new_work and 2 or 1), 2 do
  local lane_interval, burst = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
  if burst > 0 then
    local lane_tat = tonumber(redis.call('GET', KEYS[i])) or now
    local lane_slot = math.max(at, lane_tat - (burst - 1) * lane_interval)
    if slot == nil or lane_slot < slot then
      lane, slot, tat, interval = i, lane_slot, lane_tat, lane_interval
    end
  end
end
local wait = slot - now
if wait > tonumber(ARGV[6]) then return {0, wait} end
tat = math.max(tat, slot) + interval
local ttl = math.ceil((tat - now) / 1000) + 1
redis.call('SET', KEYS[lane], string.format('%d', tat), 'PX', string.format('%d', ttl))
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

/// The lane kept for work under way and new work's lane, for all replicas together. New work's
/// is the local limiter's (`new_work_share` of rate and burst, at least one permit and one per
/// second), without its division by `replicas` (that static share is the fallback while Redis
/// is down); the kept lane is the rest of the budget, if any is left. Intervals are rounded up:
/// the two lanes together never exceed the budget.
fn lanes(budget: &Budget) -> (Lane, Lane) {
    let rate = f64::from(budget.rate_per_second.max(1));
    let burst = budget.burst.max(1);
    // NaN can't be clamped: take the default share rather than shed all new work.
    let share = if budget.new_work_share.is_nan() {
        Budget::default().new_work_share
    } else {
        budget.new_work_share.clamp(0.0, 1.0)
    };
    // Float-to-int `as` saturates; the quotients are within range anyway.
    let interval = |per_second: f64| ((1e6 / per_second).ceil() as u64).max(1);
    let new_rate = (rate * share).max(1.0).min(rate);
    let new_work = Lane {
        interval_us: interval(new_rate),
        burst: ((f64::from(burst) * share).floor() as u32).clamp(1, burst),
    };
    let kept_rate = rate - new_rate;
    let kept = if kept_rate > 0.0 && burst > new_work.burst {
        Lane {
            interval_us: interval(kept_rate),
            burst: burst - new_work.burst,
        }
    } else {
        Lane {
            interval_us: 1,
            burst: 0,
        }
    };
    (kept, new_work)
}

fn micros(wait: Duration) -> u64 {
    u64::try_from(wait.as_micros()).unwrap_or(u64::MAX)
}

impl Cluster {
    /// Books a permit of `identity`'s shared budget (`identity`: the Voyado tenant as cache keys
    /// name it; only its digest reaches Redis). `Ok(Ok(wait))`: sleep `wait`, then call Voyado.
    /// `Ok(Err(throttled))`: new work that would wait past `max_wait`, or any new work while the
    /// tenant is paused; nothing was booked. `Err(Down)`: Redis cannot say; use the local
    /// limiter.
    ///
    /// Cancel-safe in that a dropped call books at most one slot that then goes unused.
    pub async fn reserve(
        &self,
        identity: &str,
        budget: &Budget,
        priority: Priority,
    ) -> Result<Result<Duration, Throttled>, Down> {
        let (kept, new_work) = lanes(budget);
        let (new, limit) = match priority {
            Priority::NewWork => ("1", budget.max_wait),
            Priority::UnderWay => ("0", UNDER_WAY_LIMIT),
        };
        let keys = &self.inner.keys;
        let mut invocation = RESERVE.prepare_invoke();
        invocation
            .key(keys.key("budget:kept", &[identity]))
            .key(keys.key("budget:new", &[identity]))
            .key(keys.key("pause", &[identity]))
            .arg(kept.interval_us)
            .arg(kept.burst)
            .arg(new_work.interval_us)
            .arg(new_work.burst)
            .arg(new)
            .arg(micros(limit));
        let (booked, wait_us): (i64, i64) = self
            .call(|mut connection| async move { invocation.invoke_async(&mut connection).await })
            .await?;
        let wait = Duration::from_micros(u64::try_from(wait_us).unwrap_or(0));
        Ok(if booked == 1 {
            Ok(wait)
        } else {
            Err(Throttled::after(wait))
        })
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
    fn the_default_budget_is_cut_into_new_works_share_and_the_rest() {
        // 40/s with a burst of 20; new work 0.8 of both: 32/s, 16 at once; 8/s and 4 at once
        // kept for work under way.
        let (kept, new_work) = lanes(&Budget::default());
        assert_eq!(
            new_work,
            Lane {
                interval_us: 31_250,
                burst: 16
            }
        );
        assert_eq!(
            kept,
            Lane {
                interval_us: 125_000,
                burst: 4
            }
        );
        // `replicas` divides nothing here: Redis holds the one budget.
        let shared = lanes(&Budget {
            replicas: 4,
            ..Budget::default()
        });
        assert_eq!(shared, (kept, new_work));
    }

    #[test]
    fn the_two_lanes_never_add_up_to_more_than_the_budget() {
        for (rate, burst, share) in [
            (3, 7, 0.5),
            (40, 20, 0.8),
            (7, 3, 0.33),
            (1, 1, 0.8),
            (1000, 10, 0.999),
            (50, 10, 0.0),
        ] {
            let budget = Budget {
                rate_per_second: rate,
                burst,
                new_work_share: share,
                ..Budget::default()
            };
            let (kept, new_work) = lanes(&budget);
            let per_second = |lane: Lane| {
                if lane.burst == 0 {
                    0.0
                } else {
                    1e6 / lane.interval_us as f64
                }
            };
            let total = per_second(kept) + per_second(new_work);
            assert!(total <= f64::from(rate), "{budget:?}: {total}/s");
            assert!(total >= f64::from(rate) * 0.999, "{budget:?}: {total}/s");
            assert_eq!(kept.burst + new_work.burst, burst, "{budget:?}");
        }
    }

    #[test]
    fn degenerate_budgets_still_give_new_work_a_lane() {
        let (kept, new_work) = lanes(&Budget {
            rate_per_second: 0,
            burst: 0,
            new_work_share: f64::NAN,
            ..Budget::default()
        });
        assert_eq!(
            new_work,
            Lane {
                interval_us: 1_000_000,
                burst: 1
            }
        );
        assert_eq!(kept.burst, 0, "nothing left to keep");
        // No share for new work still lets one through a second, as the local limiter does.
        let (kept, new_work) = lanes(&Budget {
            new_work_share: -1.0,
            ..Budget::default()
        });
        assert_eq!(
            new_work,
            Lane {
                interval_us: 1_000_000,
                burst: 1
            }
        );
        assert_eq!(
            kept,
            Lane {
                interval_us: 25_642,
                burst: 19
            }
        );
        let (_, all_new) = lanes(&Budget {
            new_work_share: 1.0,
            ..Budget::default()
        });
        assert_eq!(all_new.burst, 20);
        let (_, fast) = lanes(&Budget {
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
