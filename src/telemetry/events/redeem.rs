//! Redeem and undo's events: what staff must know about money in Voyado — unclear answers read
//! back, items left redeemed, compensations that failed, undos refused.

use std::error::Error;

use super::{Guid, Guids, InternalEvent};
use crate::telemetry::Metrics;
use crate::telemetry::metrics::{OutcomeLabels, UnclearRedeem};

fn count_unclear(metrics: &Metrics, outcome: UnclearRedeem, n: u64) {
    metrics
        .redeem_unclear
        .get_or_create(&OutcomeLabels {
            outcome: outcome.label(),
        })
        .inc_by(n);
}

/// A redeem whose Voyado answer was unclear (a timeout, a reset, a 5xx but 503), read back once
/// Voyado's redeem window had passed. When the read-back failed too, writes `ERROR {item} redeem
/// still unclear: its read-back failed too; staff must check it` with `read` (its error); then, in
/// every case, `INFO {item} redeem read back` with `outcome`; counts
/// `svp_redeem_unclear_total{outcome}` (`landed`, `not_landed` or `unknown`).
#[derive(Debug)]
pub struct RedeemReadBack<'a> {
    /// `bonus check` or `promotion`.
    pub item: &'static str,
    pub outcome: ReadBack<'a>,
}

#[derive(Debug)]
pub enum ReadBack<'a> {
    /// It had landed: the request went on as if answered.
    Landed,
    /// It had not: the item failed.
    NotLanded,
    /// The read-back failed too, so its state is unknown: the till was told it failed, yet it may
    /// be redeemed.
    Unknown { read: &'a dyn Error },
}

impl InternalEvent for RedeemReadBack<'_> {
    fn emit(self, metrics: &Metrics) {
        let RedeemReadBack { item, outcome } = self;
        let outcome = match outcome {
            ReadBack::Landed => UnclearRedeem::Landed,
            ReadBack::NotLanded => UnclearRedeem::NotLanded,
            ReadBack::Unknown { read } => {
                tracing::error!(
                    %read,
                    "{item} redeem still unclear: its read-back failed too; staff must check it"
                );
                UnclearRedeem::Unknown
            }
        };
        count_unclear(metrics, outcome, 1);
        tracing::info!(outcome = outcome.label(), "{item} redeem read back");
    }
}

/// A redeem failed at a later item after bonus checks were read back as redeemed (their answer
/// was unclear): those are left redeemed, never reactivated, since another till may have used
/// them. Writes `ERROR bonus checks read back as redeemed after an unclear answer are not
/// reactivated after a later failure; staff must check them` with `customer_id` and
/// `bonus_checks`; counts `svp_redeem_unclear_total{outcome="left_redeemed"}` by how many.
#[derive(Debug)]
pub struct BonusChecksLeftRedeemed<'a> {
    pub customer_id: Guid<'a>,
    pub bonus_checks: Guids<'a>,
}

impl InternalEvent for BonusChecksLeftRedeemed<'_> {
    fn emit(self, metrics: &Metrics) {
        let n = self.bonus_checks.0.len() as u64;
        count_unclear(metrics, UnclearRedeem::LeftRedeemed, n);
        tracing::error!(
            customer_id = %self.customer_id,
            bonus_checks = ?self.bonus_checks,
            "bonus checks read back as redeemed after an unclear answer are not reactivated after a later failure; staff must check them"
        );
    }
}

/// A redeem failed after promotions were already redeemed in Voyado, which cannot revert them.
/// Writes `ERROR promotions redeemed before a failure cannot be reverted; staff must re-issue
/// them` with `customer_id` and `promotions`; counts `svp_promotions_redeemed_before_failure_total`.
#[derive(Debug)]
pub struct PromotionsRedeemedBeforeFailure<'a> {
    pub customer_id: Guid<'a>,
    pub promotions: Guids<'a>,
}

impl InternalEvent for PromotionsRedeemedBeforeFailure<'_> {
    fn emit(self, metrics: &Metrics) {
        metrics.promotions_redeemed_before_failure.inc();
        tracing::error!(
            customer_id = %self.customer_id,
            promotions = ?self.promotions,
            "promotions redeemed before a failure cannot be reverted; staff must re-issue them"
        );
    }
}

/// Which all-or-nothing sequence a failed compensation belonged to.
#[derive(Debug, Clone, Copy)]
pub enum Compensating {
    /// A redeem failed; reactivating a bonus check it had redeemed failed too.
    Redeem,
    /// An undo failed; redeeming again a bonus check it had reactivated failed too.
    Undo,
}

/// The compensating call for one bonus check failed, leaving it in the wrong state. Writes
/// `ERROR could not reactivate a bonus check after a failed redeem` or `ERROR could not redeem a
/// bonus check again after a failed undo`, with `bonus_check_id` and `e`; counts
/// `svp_redeem_rollback_failed_total`.
#[derive(Debug)]
pub struct RedeemRollbackFailed<'a> {
    pub bonus_check_id: Guid<'a>,
    pub e: &'a dyn Error,
    pub after: Compensating,
}

impl InternalEvent for RedeemRollbackFailed<'_> {
    fn emit(self, metrics: &Metrics) {
        let RedeemRollbackFailed {
            bonus_check_id,
            e,
            after,
        } = self;
        metrics.redeem_rollback_failed.inc();
        match after {
            Compensating::Redeem => tracing::error!(
                %bonus_check_id,
                %e,
                "could not reactivate a bonus check after a failed redeem"
            ),
            Compensating::Undo => tracing::error!(
                %bonus_check_id,
                %e,
                "could not redeem a bonus check again after a failed undo"
            ),
        }
    }
}

/// An undo named redeemed promotions, which Voyado cannot revert (`undo_promotion = "refuse"`):
/// the request is refused. Writes `WARN undo of a promotion refused: Voyado cannot revert it;
/// staff must re-issue it` with `customer_id` and `promotions`; counts
/// `svp_promotion_undo_refused_total`.
#[derive(Debug)]
pub struct PromotionUndoRefused<'a> {
    pub customer_id: Guid<'a>,
    pub promotions: Guids<'a>,
}

impl InternalEvent for PromotionUndoRefused<'_> {
    fn emit(self, metrics: &Metrics) {
        metrics.promotion_undo_refused.inc();
        tracing::warn!(
            customer_id = %self.customer_id,
            promotions = ?self.promotions,
            "undo of a promotion refused: Voyado cannot revert it; staff must re-issue it"
        );
    }
}
