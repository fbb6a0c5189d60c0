//! What an operator sees of the running proxy: logs on stderr and metrics for `GET /metrics`.
//! A leaf module, so the rest of the crate can record into it without it knowing about them.
//!
//! `metrics` holds the registry and its families; `events` has one type per thing that is both
//! logged and counted, so a call site says what happened once — `metrics.emit(Event { .. })` —
//! and its doc comment says which log line and which series it writes. Measurements with no log
//! line (in flight, cache reads, the breaker gauge, shed, throttled and replayed requests, cluster
//! fallbacks) are plain [`Metrics`] methods. `logging` installs the subscriber the log lines go to.

pub mod events;
pub mod logging;
pub mod metrics;

#[cfg(test)]
mod test_support;

pub use events::InternalEvent;
pub use metrics::{Fallback, InFlight, Metrics, Shed};
