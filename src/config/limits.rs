//! `[limits]`: what the edge admits and how long shutdown waits (contract §6.6) — as written
//! ([`LimitsFile`], each checked value with its place) and as checked ([`Limits`]).

use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::above_zero;
use super::problem::Problems;

/// What the edge admits and how long shutdown waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Open connections; beyond this a new connection gets `503` and is closed.
    pub max_connections: usize,
    /// Requests being worked on; beyond this a request gets `503` with `Retry-After` at once.
    pub max_in_flight: usize,
    /// The largest request body (`400 body_too_large` above).
    pub body_max_bytes: usize,
    /// After an oversized body is refused, how much of it is still read and discarded so the
    /// client sees the answer rather than a broken pipe.
    pub body_drain_max_bytes: usize,
    /// The largest Voyado answer body read (`502` above).
    pub voyado_reply_max_bytes: usize,
    /// The most items one redeem or undo may name (`400` above).
    pub redeem_max_items: usize,
    /// The most items read from one paged Voyado list (bonus checks, point accounts), page by
    /// page; a longer list is cut there and the cut is logged.
    pub voyado_list_max_items: usize,
    /// How long shutdown waits for open requests and detached writes, together.
    pub shutdown_grace_ms: u64,
    /// After SIGTERM, how long the proxy keeps accepting while `/readyz` answers `503`, so a load
    /// balancer stops sending before the listener closes. 0 closes at once.
    pub shutdown_delay_ms: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: 2048,
            max_in_flight: 512,
            body_max_bytes: 64 * 1024,
            body_drain_max_bytes: 8 * 1024 * 1024,
            voyado_reply_max_bytes: 4 * 1024 * 1024,
            redeem_max_items: 20,
            voyado_list_max_items: 1000,
            shutdown_grace_ms: 20_000,
            shutdown_delay_ms: 0,
        }
    }
}

impl Limits {
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }

    pub fn shutdown_delay(&self) -> Duration {
        Duration::from_millis(self.shutdown_delay_ms)
    }
}

/// `[limits]` as written; a key left out takes its default.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LimitsFile {
    max_connections: Option<Spanned<usize>>,
    max_in_flight: Option<Spanned<usize>>,
    body_max_bytes: Option<Spanned<usize>>,
    body_drain_max_bytes: Option<usize>,
    voyado_reply_max_bytes: Option<Spanned<usize>>,
    redeem_max_items: Option<Spanned<usize>>,
    voyado_list_max_items: Option<Spanned<usize>>,
    shutdown_grace_ms: Option<u64>,
    shutdown_delay_ms: Option<u64>,
}

impl LimitsFile {
    /// The limits; a bound of 0 would refuse everything, so each that is 0 is a problem.
    pub(super) fn check(self, problems: &mut Problems<'_>) -> Limits {
        let default = Limits::default();
        let mut bound = |key: &str, value: Option<Spanned<usize>>, default: usize| {
            above_zero(&format!("limits.{key}"), value, problems).unwrap_or(default)
        };
        Limits {
            max_connections: bound(
                "max_connections",
                self.max_connections,
                default.max_connections,
            ),
            max_in_flight: bound("max_in_flight", self.max_in_flight, default.max_in_flight),
            body_max_bytes: bound(
                "body_max_bytes",
                self.body_max_bytes,
                default.body_max_bytes,
            ),
            body_drain_max_bytes: self
                .body_drain_max_bytes
                .unwrap_or(default.body_drain_max_bytes),
            voyado_reply_max_bytes: bound(
                "voyado_reply_max_bytes",
                self.voyado_reply_max_bytes,
                default.voyado_reply_max_bytes,
            ),
            redeem_max_items: bound(
                "redeem_max_items",
                self.redeem_max_items,
                default.redeem_max_items,
            ),
            voyado_list_max_items: bound(
                "voyado_list_max_items",
                self.voyado_list_max_items,
                default.voyado_list_max_items,
            ),
            shutdown_grace_ms: self.shutdown_grace_ms.unwrap_or(default.shutdown_grace_ms),
            shutdown_delay_ms: self.shutdown_delay_ms.unwrap_or(default.shutdown_delay_ms),
        }
    }
}
