//! Sitoo's events and what became of each: a batch received, an order exported as a receipt (or
//! found already there), skipped, or failed for good. Every event of a batch ends in exactly one
//! of these; an order that could not be exported *now* (the batch comes again) is not counted,
//! since it will be when it comes again.

use std::error::Error;

use super::{Guid, InternalEvent};
use crate::telemetry::Metrics;
use crate::telemetry::metrics::{EventResult, ResultLabels};

fn count(metrics: &Metrics, result: EventResult, n: u64) {
    metrics
        .events
        .get_or_create(&ResultLabels {
            result: result.label(),
        })
        .inc_by(n);
}

/// A batch of Sitoo events arrived and parsed. No log line (the request's own says it); counts
/// `svp_events_total{result="received"}` by the batch's size.
#[derive(Debug)]
pub struct SitooEventsReceived {
    pub count: usize,
}

impl InternalEvent for SitooEventsReceived {
    fn emit(self, metrics: &Metrics) {
        count(metrics, EventResult::Received, self.count as u64);
    }
}

/// An order's receipt was accepted by Voyado. Writes `INFO receipt exported` with `order_id` and
/// `customer_id`; counts `svp_events_total{result="processed"}` and
/// `svp_receipts_exported_total`.
#[derive(Debug)]
pub struct ReceiptExported<'a> {
    pub order_id: u64,
    pub customer_id: Guid<'a>,
}

impl InternalEvent for ReceiptExported<'_> {
    fn emit(self, metrics: &Metrics) {
        count(metrics, EventResult::Processed, 1);
        metrics.receipts_exported.inc();
        tracing::info!(
            order_id = self.order_id,
            customer_id = %self.customer_id,
            "receipt exported"
        );
    }
}

/// Voyado already had the order's receipt (its id comes from the order, and Voyado ignores a
/// second one): the event is done. No log line; counts `svp_events_total{result="duplicate"}`.
#[derive(Debug)]
pub struct ReceiptDuplicate;

impl InternalEvent for ReceiptDuplicate {
    fn emit(self, metrics: &Metrics) {
        count(metrics, EventResult::Duplicate, 1);
    }
}

/// An event that does not book a receipt, and is done. Counts
/// `svp_events_total{result="skipped"}`; the log line is the variant's.
#[derive(Debug)]
pub enum SitooEventSkipped {
    /// Not an order event. No log line: Sitoo sends what it was set up to send.
    NotAnOrder,
    /// For another Sitoo account than the market's. Writes `WARN an order event for another
    /// Sitoo account; ignored` with `order_id`.
    OtherAccount { order_id: u64 },
    /// The order is open, cancelled or abandoned. Writes `INFO the order is not closed; not
    /// exported` with `order_id` and `state`.
    NotClosed {
        order_id: u64,
        /// The order state's name (`Open`, `Cancelled`, `Abandoned`).
        state: &'static str,
    },
    /// No customer could be found or made for the order. Writes `INFO an order with no known
    /// customer; not exported` with `order_id`.
    NoCustomer { order_id: u64 },
}

impl InternalEvent for SitooEventSkipped {
    fn emit(self, metrics: &Metrics) {
        count(metrics, EventResult::Skipped, 1);
        match self {
            SitooEventSkipped::NotAnOrder => {}
            SitooEventSkipped::OtherAccount { order_id } => {
                tracing::warn!(
                    order_id,
                    "an order event for another Sitoo account; ignored"
                );
            }
            SitooEventSkipped::NotClosed { order_id, state } => {
                tracing::info!(order_id, %state, "the order is not closed; not exported");
            }
            SitooEventSkipped::NoCustomer { order_id } => {
                tracing::info!(order_id, "an order with no known customer; not exported");
            }
        }
    }
}

/// An order event refused for good: the same order would fail the same way next time, so the
/// batch goes on without it. Counts `svp_events_total{result="failed"}`; writes the variant's
/// `ERROR` line, with `order_id` (and `e`, the reason, where there is one).
#[derive(Debug)]
pub enum SitooEventFailed<'a> {
    /// `the order of an event is not in Sitoo; not exported`.
    NotInSitoo { order_id: u64 },
    /// `the order has no state Sitoo documents; not exported`.
    NoState { order_id: u64 },
    /// `an order Voyado cannot book as it stands; not exported` (a row's quantity, say).
    Unbookable { order_id: u64, e: &'a dyn Error },
    /// `an order was refused for good; not exported`: resolving its customer was refused.
    Refused { order_id: u64, e: &'a dyn Error },
    /// `Voyado refused the order's receipt; not exported`.
    ReceiptRefused { order_id: u64, e: &'a dyn Error },
}

impl InternalEvent for SitooEventFailed<'_> {
    fn emit(self, metrics: &Metrics) {
        count(metrics, EventResult::Failed, 1);
        match self {
            SitooEventFailed::NotInSitoo { order_id } => {
                tracing::error!(
                    order_id,
                    "the order of an event is not in Sitoo; not exported"
                );
            }
            SitooEventFailed::NoState { order_id } => {
                tracing::error!(
                    order_id,
                    "the order has no state Sitoo documents; not exported"
                );
            }
            SitooEventFailed::Unbookable { order_id, e } => {
                tracing::error!(
                    order_id,
                    %e,
                    "an order Voyado cannot book as it stands; not exported"
                );
            }
            SitooEventFailed::Refused { order_id, e } => {
                tracing::error!(order_id, %e, "an order was refused for good; not exported");
            }
            SitooEventFailed::ReceiptRefused { order_id, e } => {
                tracing::error!(
                    order_id,
                    %e,
                    "Voyado refused the order's receipt; not exported"
                );
            }
        }
    }
}
