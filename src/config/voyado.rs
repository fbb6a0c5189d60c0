//! `[voyado]`: Voyado's rate budget per API key (contract §6.3) and when to stop calling a failing
//! tenant — as written ([`VoyadoFile`]) and as checked ([`VoyadoBudget`]).

use serde::Deserialize;
use toml::Spanned;

use super::above_zero;
use super::problem::Problems;

/// Voyado's rate budget per API key and the breaker's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VoyadoBudget {
    /// Calls per second per API key, for all replicas together (Voyado asks for under 50).
    pub rate_per_second: u32,
    pub burst: u32,
    /// How many replicas share the budget: each takes its share.
    pub replicas: u32,
    /// How long a new request may wait for a permit before it is answered 429.
    pub permit_wait_ms: u64,
    /// The share of the rate new requests may use; the rest is kept for calls of requests
    /// already under way and for writes.
    pub new_work_share: f64,
    /// Consecutive failures (timeouts, connection errors, 5xx) that make a tenant fail fast.
    pub breaker_failures: u32,
    /// How long a failing tenant is answered 503 at once before one probe call is let through.
    pub breaker_cool_off_ms: u64,
}

impl Default for VoyadoBudget {
    fn default() -> VoyadoBudget {
        VoyadoBudget {
            rate_per_second: 40,
            burst: 20,
            replicas: 1,
            permit_wait_ms: 500,
            new_work_share: 0.8,
            breaker_failures: 5,
            breaker_cool_off_ms: 5_000,
        }
    }
}

/// `[voyado]` as written; a key left out takes its default.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct VoyadoFile {
    rate_per_second: Option<Spanned<u32>>,
    burst: Option<Spanned<u32>>,
    replicas: Option<Spanned<u32>>,
    permit_wait_ms: Option<u64>,
    new_work_share: Option<Spanned<f64>>,
    breaker_failures: Option<Spanned<u32>>,
    breaker_cool_off_ms: Option<u64>,
}

impl VoyadoFile {
    /// The budget; a rate, burst, replica count or failure count of 0 would stop every call, and
    /// the new-work share is a part of the whole.
    pub(super) fn check(self, problems: &mut Problems<'_>) -> VoyadoBudget {
        let default = VoyadoBudget::default();
        let new_work_share = share(self.new_work_share, problems).unwrap_or(default.new_work_share);
        let mut count = |key: &str, value: Option<Spanned<u32>>, default: u32| {
            above_zero(&format!("voyado.{key}"), value, problems).unwrap_or(default)
        };
        VoyadoBudget {
            rate_per_second: count(
                "rate_per_second",
                self.rate_per_second,
                default.rate_per_second,
            ),
            burst: count("burst", self.burst, default.burst),
            replicas: count("replicas", self.replicas, default.replicas),
            permit_wait_ms: self.permit_wait_ms.unwrap_or(default.permit_wait_ms),
            new_work_share,
            breaker_failures: count(
                "breaker_failures",
                self.breaker_failures,
                default.breaker_failures,
            ),
            breaker_cool_off_ms: self
                .breaker_cool_off_ms
                .unwrap_or(default.breaker_cool_off_ms),
        }
    }
}

/// The new-work share if it is given and a part of the whole; otherwise a problem at it.
fn share(value: Option<Spanned<f64>>, problems: &mut Problems<'_>) -> Option<f64> {
    let value = value?;
    let share = *value.get_ref();
    if share > 0.0 && share <= 1.0 {
        return Some(share);
    }
    problems.push(
        "voyado.new_work_share",
        value.span(),
        "must be above 0 and at most 1",
    );
    None
}
