//! Everything the proxy both logs and counts, as types (Vector's `internal_events`): one struct or
//! enum per thing that happens, whose `emit` writes its log line and moves its series at once, so
//! a call site states what happened once — `metrics.emit(PromotionUndoRefused { .. })` — and this
//! folder is the list of those log lines and the series they move. Each event's doc comment says
//! when it happens and what it writes.
//!
//! Grouped by the room they happen in: [`server`] (a request answered, writes abandoned at
//! shutdown), [`voyado`] (one call), [`redeem`] (unclear answers, compensations, refusals),
//! [`orders`] (Sitoo's events becoming receipts), [`mappings`] (load and reload) and [`cluster`]
//! (the shared Redis lost and back). Three of the `orders` events only count (a batch received, a
//! receipt Voyado already had, an event that is not an order): they are here so that every
//! result of `svp_events_total` is counted in one file. Other measurements with no log line are plain [`Metrics`] methods.
//!
//! A field is a `&'static str` label, a number, a duration, an error (`&dyn Error`: the crate's
//! own, whose text is kept free of personal data — `tests/privacy.rs` checks), the mapping files'
//! digest (a hash, already a metric label), or a Voyado id as a [`Guid`], which can print nothing
//! but a GUID: a name, an email or a key given as an id shows as `<not a GUID>`. No field takes a
//! `String`.
//!
//! The log lines' target is this folder's module path, so
//! `RUST_LOG=info,sitoo_voyado_proxy::telemetry::events=debug` adds one `DEBUG` line per Voyado
//! call to the usual lines.

pub mod cluster;
pub mod mappings;
pub mod orders;
pub mod redeem;
pub mod server;
pub mod voyado;

#[cfg(test)]
mod tests;

use std::fmt;
use std::time::Duration;

use super::Metrics;

/// A thing that happened: [`Metrics::emit`] takes one and writes it. Call sites go through
/// `metrics.emit(..)`, which needs no import of this trait and names the registry the event
/// lands in (ours is owned by the app, not a global, so `emit` cannot do without it).
pub trait InternalEvent {
    /// Writes the log line (if any) and moves the series.
    fn emit(self, metrics: &Metrics);
}

/// A Voyado id (a contact, bonus check or promotion) as a log line shows it: the id when it is a
/// GUID, else `<not a GUID>`. Staff need these ids to put things right in Voyado; anything else
/// in their place would be a mistake that may carry personal data.
#[derive(Clone, Copy)]
pub struct Guid<'a>(pub &'a str);

impl<'a> Guid<'a> {
    /// The id when it has a GUID's shape (hyphenated, as `keys::guid` accepts it), else the
    /// placeholder.
    fn shown(self) -> &'a str {
        if self.0.len() == 36 && uuid::Uuid::try_parse(self.0).is_ok() {
            self.0
        } else {
            "<not a GUID>"
        }
    }
}

impl fmt::Display for Guid<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.shown())
    }
}

/// Quoted, as the `String` it stands for would be, so a list of ids reads `["…", "…"]`.
impl fmt::Debug for Guid<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.shown(), f)
    }
}

/// Several Voyado ids, logged as a list (`["…", "…"]`), each shown as a [`Guid`].
#[derive(Clone, Copy)]
pub struct Guids<'a>(pub &'a [String]);

impl fmt::Debug for Guids<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|id| Guid(id)))
            .finish()
    }
}

/// A duration as the `_ms` fields of log lines give it.
fn millis(elapsed: Duration) -> u64 {
    u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
}
