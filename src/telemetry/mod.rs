//! What an operator sees of the running proxy: logs on stderr and metrics for `GET /metrics`.
//! A leaf module, so the rest of the crate can record into it without it knowing about them.

pub mod logging;
pub mod metrics;

pub use metrics::{Event, EventResult, InFlight, Metrics, Shed, UnclearRedeem};
