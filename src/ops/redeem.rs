//! Redeem and undo: all or nothing, never duplicated.
//!
//! Redeem checks every item against the customer's full lists (every page) before any write. A
//! promotion Voyado does not list is asked about by redeeming it, first; then bonus checks
//! (reversible), then the listed promotions (irreversible). If a later item fails, the bonus checks
//! whose redeem Voyado answered in this request are reactivated. A redeem has its own timeout,
//! longer than other calls' (Voyado works on one for up to 4.5 s); an unclear result is settled by
//! reading Voyado's state once that window has passed, never by a blind retry, and one only read
//! back as redeemed is never reactivated (contract §6.4). Undo reactivates only this customer's
//! redeemed bonus checks; a promotion redemption cannot be reverted in Voyado, so undoing one is
//! refused.
//!
//! Answered once: a till's repeat of a redeem (same `Request-ID`) never reaches this file; it is
//! answered from `server/replay.rs`, and the redeem runs in its own task (`server/operation.rs`)
//! so a till's deadline never cuts a sequence short.

use serde_json::{Map, Value, json};

use super::{OpRequest, upstream};
use crate::config::UndoPromotion;
use crate::keys;
use crate::mapping::RedeemNames;
use crate::market::Market;
use crate::spi::{ProxyError, Reason};
use crate::telemetry::events::redeem::{
    BonusChecksLeftRedeemed, Compensating, PromotionUndoRefused, PromotionsRedeemedBeforeFailure,
    ReadBack, RedeemReadBack, RedeemRollbackFailed,
};
use crate::telemetry::events::{Guid, Guids};
use crate::voyado::{Call, Endpoint, Part, Read, VoyadoError};
use tokio::time::Instant;

const BONUS_CHECK: &str = "bonus check";
const PROMOTION: &str = "promotion";

/// The ids a redeem or undo names, each a GUID, without repeats.
#[derive(Debug, Default, PartialEq, Eq)]
struct Items {
    bonus_checks: Vec<String>,
    promotions: Vec<String>,
}

impl Items {
    fn push(list: &mut Vec<String>, field: &str, raw: Option<&str>) -> Result<(), ProxyError> {
        let raw = raw.ok_or_else(|| ProxyError::field(field, "must be a string id"))?;
        let id = keys::guid(raw).map_err(|m| ProxyError::field(field, m))?;
        if !list.contains(&id) {
            list.push(id);
        }
        Ok(())
    }

    /// Reads `{"bonus_checks": [...], "promotions": [...]}` or `{"items": [{type, id}]}`.
    fn from_body(names: &RedeemNames, body: &Value, max: usize) -> Result<Items, ProxyError> {
        let Some(object) = body.as_object() else {
            return Err(ProxyError::field("body", "must be a JSON object"));
        };
        let mut items = Items::default();
        if let Some(list) = object.get(&names.items) {
            let list = list
                .as_array()
                .ok_or_else(|| ProxyError::field(&names.items, "must be a list"))?;
            for (i, item) in list.iter().enumerate() {
                let kind = item.get(&names.item_type).and_then(Value::as_str);
                let id = item.get(&names.item_id).and_then(Value::as_str);
                let field = format!("{}[{i}]", names.items);
                let target = match kind {
                    Some(k) if k == names.bonus_check_type => &mut items.bonus_checks,
                    Some(k) if k == names.promotion_type => &mut items.promotions,
                    _ => {
                        return Err(ProxyError::field(
                            &format!("{field}.{}", names.item_type),
                            &format!(
                                "must be {} or {}",
                                names.bonus_check_type, names.promotion_type
                            ),
                        ));
                    }
                };
                Items::push(target, &format!("{field}.{}", names.item_id), id)?;
            }
        }
        for (name, target) in [
            (&names.bonus_checks, &mut items.bonus_checks),
            (&names.promotions, &mut items.promotions),
        ] {
            let Some(list) = object.get(name) else {
                continue;
            };
            let list = list
                .as_array()
                .ok_or_else(|| ProxyError::field(name, "must be a list of ids"))?;
            for (i, id) in list.iter().enumerate() {
                Items::push(target, &format!("{name}[{i}]"), id.as_str())?;
            }
        }
        items.checked(names, max)
    }

    /// Undo also takes `?bonus_checks=a,b&promotions=c`: some HTTP stacks drop a DELETE body.
    fn from_query(
        names: &RedeemNames,
        query: &[(String, String)],
        max: usize,
    ) -> Result<Items, ProxyError> {
        let mut items = Items::default();
        for (key, value) in query {
            let target = if key == &names.bonus_checks {
                &mut items.bonus_checks
            } else if key == &names.promotions {
                &mut items.promotions
            } else {
                continue;
            };
            for id in value.split(',').filter(|s| !s.is_empty()) {
                Items::push(target, key, Some(id))?;
            }
        }
        items.checked(names, max)
    }

    /// At least one item, at most `max` (contract §6.6: a redeem list is capped).
    fn checked(self, names: &RedeemNames, max: usize) -> Result<Items, ProxyError> {
        let count = self.bonus_checks.len() + self.promotions.len();
        if count == 0 {
            return Err(ProxyError::field(
                "body",
                &format!("must name {} or {}", names.bonus_checks, names.promotions),
            ));
        }
        if count > max {
            return Err(ProxyError::field(
                "body",
                &format!("names {count} items; at most {max} are taken at once"),
            ));
        }
        Ok(self)
    }

    fn answer(names: &RedeemNames, bonus_checks: Vec<String>, promotions: Vec<String>) -> Value {
        let mut out = Map::with_capacity(2);
        out.insert(names.bonus_checks.clone(), json!(bonus_checks));
        out.insert(names.promotions.clone(), json!(promotions));
        Value::Object(out)
    }
}

/// A list of the customer's, every page of it; `Null` when nothing is to be checked against it.
/// Money is decided on what Voyado says now (`Read::Fresh`), never on a remembered list.
async fn list(
    market: &Market,
    needed: bool,
    read: Read,
    endpoint: Endpoint,
    customer: &str,
) -> Result<Value, ProxyError> {
    if !needed {
        return Ok(Value::Null);
    }
    let voyado = &market.voyado;
    let max = market.limits.voyado_list_max_items;
    let answer = if endpoint == Endpoint::Promotions {
        // Voyado answers this one as a bare array, not a paged list.
        voyado.read(read, endpoint, &[customer], &[]).await
    } else {
        voyado
            .get_pages(read, endpoint, &[customer], &[], max)
            .await
            .map(|(list, _)| list)
    };
    answer.map_err(upstream(market, super::CUSTOMER))
}

/// A write the request asked for, or one that puts money back after a failure (which the
/// breaker never refuses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Write {
    Asked,
    Compensating,
}

/// How a redeem is known to have happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Landed {
    /// Voyado answered it with a 2xx: this request's own redeem, reactivated if a later item
    /// fails.
    Answered,
    /// Its answer was unclear, and Voyado's state read after its window shows the item redeemed:
    /// by this request or by another till, which cannot be told apart, so it is never
    /// reactivated (contract §6.4).
    ReadBack,
}

fn find<'a>(market: &Market, list: &'a Value, id: &str) -> Option<&'a Value> {
    let plan = &market.plan;
    plan.list_items(list).iter().find(|item| {
        plan.item_id(item)
            .is_some_and(|i| i.eq_ignore_ascii_case(id))
    })
}

pub(super) async fn redeem(market: &Market, request: &OpRequest) -> Result<Value, ProxyError> {
    let customer = request.customer_id()?;
    let names = market.plan.redeem();
    let items = Items::from_body(names, request.body()?, market.limits.redeem_max_items)?;
    let (checks, promotions) = tokio::join!(
        list(
            market,
            !items.bonus_checks.is_empty(),
            Read::Fresh,
            Endpoint::BonusChecks,
            &customer
        ),
        list(
            market,
            !items.promotions.is_empty(),
            Read::Fresh,
            Endpoint::Promotions,
            &customer
        ),
    );
    let (checks, promotions) = (checks?, promotions?);

    // Every item is checked before the first write.
    let plan = &market.plan;
    let now = request.now;
    let refuse = |item: &Value, what: &str| -> Result<(), ProxyError> {
        if plan.item_redeemed(item) {
            Err(ProxyError::new(
                Reason::AlreadyRedeemed,
                format!("the {what} is already redeemed"),
            ))
        } else if plan.item_expired(item, now) {
            Err(ProxyError::new(
                Reason::Expired,
                format!("the {what} has expired"),
            ))
        } else {
            Ok(())
        }
    };
    for id in &items.bonus_checks {
        let item = find(market, &checks, id).ok_or_else(|| ProxyError::not_found(BONUS_CHECK))?;
        refuse(item, BONUS_CHECK)?;
    }
    for id in &items.promotions {
        // Voyado lists the promotions available; whether a redeemed one stays in that list is
        // not documented. One that is not there is asked for by redeeming it: Voyado's answer
        // (`PromotionAlreadyRedeemed`, not found, ...) decides.
        let Some(item) = find(market, &promotions, id) else {
            continue;
        };
        refuse(item, PROMOTION)?;
        if !plan.has_pos_channel(item) {
            return Err(ProxyError::new(
                Reason::NotPosChannel,
                "the promotion cannot be redeemed at the POS",
            ));
        }
    }

    // A promotion Voyado did not list goes first: it is the likeliest item to be refused
    // (redeemed elsewhere, or not this customer's), and refused first it costs nothing — no bonus
    // check redeemed and reactivated for it. The listed ones go last: they cannot be reverted.
    let (listed, unlisted): (Vec<String>, Vec<String>) = items
        .promotions
        .into_iter()
        .partition(|id| find(market, &promotions, id).is_some());
    let mut redeemed = Redeemed::default();
    for id in unlisted {
        if let Err(e) = redeem_promotion(market, &customer, &id).await {
            return Err(redeemed.put_back(market, &customer, e).await);
        }
        redeemed.promotions.push(id);
    }
    for id in items.bonus_checks {
        match redeem_bonus_check(market, &customer, &id, Write::Asked).await {
            Ok(Landed::Answered) => redeemed.own_checks.push(id.clone()),
            Ok(Landed::ReadBack) => {}
            Err(e) => return Err(redeemed.put_back(market, &customer, e).await),
        }
        redeemed.checks.push(id);
    }
    for id in listed {
        if let Err(e) = redeem_promotion(market, &customer, &id).await {
            return Err(redeemed.put_back(market, &customer, e).await);
        }
        redeemed.promotions.push(id);
    }
    Ok(Items::answer(names, redeemed.checks, redeemed.promotions))
}

/// What one redeem request has redeemed so far.
#[derive(Debug, Default)]
struct Redeemed {
    checks: Vec<String>,
    /// The bonus checks whose redeem Voyado answered: the only ones ever reactivated.
    own_checks: Vec<String>,
    promotions: Vec<String>,
}

impl Redeemed {
    /// After a later item failed with `e`: the bonus checks whose redeem Voyado answered are
    /// reactivated; those only read back as redeemed are left as they are (another till may
    /// have used one), and redeemed promotions cannot be reverted; both are logged and counted
    /// for staff. Answers `e`.
    async fn put_back(self, market: &Market, customer: &str, e: ProxyError) -> ProxyError {
        reactivate_all(market, customer, &self.own_checks).await;
        let unclear: Vec<String> = self
            .checks
            .into_iter()
            .filter(|id| !self.own_checks.contains(id))
            .collect();
        if !unclear.is_empty() {
            market.metrics.emit(BonusChecksLeftRedeemed {
                customer_id: Guid(customer),
                bonus_checks: Guids(&unclear),
            });
        }
        if !self.promotions.is_empty() {
            market.metrics.emit(PromotionsRedeemedBeforeFailure {
                customer_id: Guid(customer),
                promotions: Guids(&self.promotions),
            });
        }
        e
    }
}

async fn redeem_bonus_check(
    market: &Market,
    customer: &str,
    id: &str,
    write: Write,
) -> Result<Landed, ProxyError> {
    let segments = [customer, id];
    let call = Call::new(Endpoint::RedeemBonusCheck, &segments, &[])
        .with_timeout(market.settings.redeem_timeout);
    let sent = Instant::now();
    let result = match write {
        Write::Asked => market.voyado.send_call(call).await,
        Write::Compensating => market.voyado.send_compensating(call).await,
    };
    settle(market, sent, result.map(drop), BONUS_CHECK, || async {
        let list = list(
            market,
            true,
            Read::Settling,
            Endpoint::RedeemedBonusChecks,
            customer,
        )
        .await?;
        if find(market, &list, id).is_some() {
            return Ok(true);
        }
        // Not in a list that was cut short: it may be in the part not read.
        let total = list.get("totalCount").and_then(Value::as_u64).unwrap_or(0);
        if total > market.plan.list_items(&list).len() as u64 {
            return Err(ProxyError::new(
                Reason::BadGateway,
                "the redeemed list is longer than limits.voyado_list_max_items",
            ));
        }
        Ok(false)
    })
    .await
}

async fn redeem_promotion(market: &Market, customer: &str, id: &str) -> Result<Landed, ProxyError> {
    let body = json!({ "redemptionChannel": market.plan.redeem().channel });
    let segments = [customer, id];
    let call = Call::new(Endpoint::RedeemPromotion, &segments, &[])
        .with_body(Some(&body))
        .with_timeout(market.settings.redeem_timeout);
    let sent = Instant::now();
    let result = market.voyado.send_call(call).await;
    settle(market, sent, result.map(drop), PROMOTION, || async {
        let list = list(market, true, Read::Settling, Endpoint::Promotions, customer).await?;
        if let Some(item) = find(market, &list, id) {
            return Ok(market.plan.item_redeemed(item));
        }
        // Gone from the list: redeemed, or the list leaves redeemed ones out. Asking again is
        // safe (Voyado never redeems one twice) and its answer decides.
        match market.voyado.send_compensating(call).await {
            Ok(_) => Ok(true),
            Err(e) if e.code() == Some("PromotionAlreadyRedeemed") => Ok(true),
            Err(e) => Err(upstream(market, PROMOTION)(e)),
        }
    })
    .await
}

/// Whether a failed write may still have happened, or still be happening, in Voyado: no clear
/// answer (a timeout, a reset), or a server error other than "unavailable" (which Voyado answers
/// before doing anything) — 504 `GatewayTimeout` included: Voyado gave up waiting, not working.
fn unclear(e: &VoyadoError) -> bool {
    e.unclear() || e.status().is_some_and(|s| s >= 500 && s != 503)
}

/// A write whose result is unclear is settled by reading Voyado's state — only once Voyado's
/// redeem window after `sent` has passed, so a redeem still landing is seen as landed.
async fn settle<F, Fut>(
    market: &Market,
    sent: Instant,
    result: Result<(), VoyadoError>,
    what: &'static str,
    happened: F,
) -> Result<Landed, ProxyError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<bool, ProxyError>>,
{
    let e = match result {
        Ok(()) => return Ok(Landed::Answered),
        Err(e) if unclear(&e) => e,
        Err(e) => return Err(upstream(market, what)(e)),
    };
    tracing::warn!(%e, "{what} redeem result unclear; reading it back after Voyado's window");
    tokio::time::sleep_until(sent + market.settings.redeem_window).await;
    let read_back = happened().await;
    let (outcome, answer) = match &read_back {
        Ok(true) => (ReadBack::Landed, Ok(Landed::ReadBack)),
        Ok(false) => (ReadBack::NotLanded, Err(upstream(market, what)(e))),
        Err(read) => (ReadBack::Unknown { read }, Err(upstream(market, what)(e))),
    };
    market.metrics.emit(RedeemReadBack {
        item: what,
        outcome,
    });
    answer
}

/// Compensation after a failed redeem. A failure here is logged with the ids so staff can act.
async fn reactivate_all(market: &Market, customer: &str, ids: &[String]) {
    for id in ids {
        if let Err(e) = reactivate(market, customer, id, Write::Compensating).await {
            market.metrics.emit(RedeemRollbackFailed {
                bonus_check_id: Guid(id),
                e: &e,
                after: Compensating::Redeem,
            });
        }
    }
}

async fn reactivate(
    market: &Market,
    customer: &str,
    id: &str,
    write: Write,
) -> Result<(), VoyadoError> {
    let voyado = &market.voyado;
    let segments = [id];
    let call = Call::new(Endpoint::ReactivateVoucher, &segments, &[]);
    let result = match write {
        Write::Asked => voyado.send_call(call).await,
        Write::Compensating => voyado.send_compensating(call).await,
    };
    // The path names the voucher, not the contact: its card is forgotten here, whatever the
    // answer (a reactivation that failed may still have landed).
    voyado.forget_contact(customer, Part::Offers).await;
    match result {
        Err(e) if e.code() == Some("RewardVoucherAlreadyActivated") => Ok(()),
        other => other.map(drop),
    }
}

pub(super) async fn undo(market: &Market, request: &OpRequest) -> Result<Value, ProxyError> {
    let customer = request.customer_id()?;
    let names = market.plan.redeem();
    let max = market.limits.redeem_max_items;
    let items = match &request.body {
        Some(body) => Items::from_body(names, body, max)?,
        None => Items::from_query(names, &request.query, max)?,
    };
    if !items.promotions.is_empty() {
        match market.settings.undo_promotion {
            UndoPromotion::Refuse => {
                market.metrics.emit(PromotionUndoRefused {
                    customer_id: Guid(&customer),
                    promotions: Guids(&items.promotions),
                });
                return Err(ProxyError::new(
                    Reason::CannotUndoPromotion,
                    "a promotion redemption cannot be undone",
                ));
            }
        }
    }
    let redeemed = list(
        market,
        true,
        Read::Fresh,
        Endpoint::RedeemedBonusChecks,
        &customer,
    )
    .await?;
    for id in &items.bonus_checks {
        if find(market, &redeemed, id).is_none() {
            return Err(ProxyError::not_found(BONUS_CHECK));
        }
    }
    let mut done: Vec<String> = Vec::with_capacity(items.bonus_checks.len());
    for id in items.bonus_checks {
        if let Err(e) = reactivate(market, &customer, &id, Write::Asked).await {
            // All or nothing: take back the reactivations this request made.
            for back in &done {
                if let Err(e) =
                    redeem_bonus_check(market, &customer, back, Write::Compensating).await
                {
                    market.metrics.emit(RedeemRollbackFailed {
                        bonus_check_id: Guid(back),
                        e: &e,
                        after: Compensating::Undo,
                    });
                }
            }
            return Err(upstream(market, BONUS_CHECK)(e));
        }
        done.push(id);
    }
    Ok(Items::answer(names, done, Vec::new()))
}

#[cfg(test)]
mod tests {
    use proptest::collection::vec;
    use proptest::option::weighted;
    use proptest::prelude::*;
    use proptest::sample::select;

    use super::*;
    use crate::mapping::Plan;

    const A: &str = "a26d8975-3b86-43c0-9b12-a86401074770";
    const B: &str = "b26d8975-3b86-43c0-9b12-a86401074770";

    fn names() -> RedeemNames {
        let plan = Plan::compile(include_str!("../../mappings/default.toml"), "default").unwrap();
        plan.redeem().clone()
    }

    #[test]
    fn both_body_shapes_are_read() {
        let n = names();
        let lists =
            Items::from_body(&n, &json!({"bonus_checks": [A, A], "promotions": [B]}), 20).unwrap();
        let typed = Items::from_body(
            &n,
            &json!({"items": [{"type": "bonus_check", "id": A}, {"type": "promotion", "id": B}]}),
            20,
        )
        .unwrap();
        assert_eq!(lists, typed);
        assert_eq!(lists.bonus_checks, vec![A]);
    }

    #[test]
    fn bad_bodies_name_the_field() {
        let n = names();
        let cases = [
            (json!([]), "body"),
            (json!({}), "body"),
            (json!({"bonus_checks": "x"}), "bonus_checks"),
            (json!({"bonus_checks": ["..%2F"]}), "bonus_checks[0]"),
            (
                json!({"items": [{"type": "gift", "id": A}]}),
                "items[0].type",
            ),
            (
                json!({"items": [{"type": "promotion", "id": 7}]}),
                "items[0].id",
            ),
        ];
        for (body, field) in cases {
            let Err(ProxyError::Refused(e)) = Items::from_body(&n, &body, 20) else {
                panic!("{body} should be refused");
            };
            assert!(e.message.starts_with(field), "{body}: {}", e.message);
        }
    }

    #[test]
    fn a_list_over_the_cap_is_refused_before_anything_else() {
        let ids: Vec<String> = (0..3)
            .map(|i| format!("a26d8975-3b86-43c0-9b12-a8640107477{i}"))
            .collect();
        let body = json!({ "bonus_checks": ids });
        assert!(Items::from_body(&names(), &body, 3).is_ok());
        let Err(ProxyError::Refused(e)) = Items::from_body(&names(), &body, 2) else {
            panic!("three items over a cap of two should be refused");
        };
        assert!(e.message.starts_with("body names 3 items"), "{}", e.message);
    }

    #[test]
    fn undo_reads_query_lists() {
        let q = vec![("bonus_checks".to_owned(), format!("{A},{B}"))];
        assert_eq!(
            Items::from_query(&names(), &q, 20).unwrap().bonus_checks,
            vec![A, B]
        );
    }

    /// Stands for personal data in an id: no refusal message may repeat it.
    const MARKER: &str = "Q7X2Z9K4";

    /// The default profile's names, compiled once for all cases.
    static NAMES: std::sync::LazyLock<RedeemNames> = std::sync::LazyLock::new(names);

    /// GUIDs a redeem takes: a few in any letter case (so lists repeat), and any.
    fn good_ids() -> BoxedStrategy<String> {
        let known = select(&[A, B, "00000000-0000-0000-0000-000000000000"][..]);
        let cased = (known, any::<u64>()).prop_map(|(id, mask)| {
            id.chars()
                .enumerate()
                .map(|(i, c)| {
                    if mask >> (i % 64) & 1 == 1 {
                        c.to_ascii_uppercase()
                    } else {
                        c
                    }
                })
                .collect::<String>()
        });
        let random = any::<u128>().prop_map(|n| uuid::Uuid::from_u128(n).hyphenated().to_string());
        prop_oneof![3 => cased, 1 => random].boxed()
    }

    /// Ids as a POS might send them: good ones, forms `uuid` parses but a URL must not carry, near
    /// misses, the marker, and any text.
    fn ids() -> BoxedStrategy<String> {
        let forms = any::<u128>().prop_map(|n| {
            let id = uuid::Uuid::from_u128(n);
            let hyphenated = id.hyphenated().to_string();
            match n % 6 {
                0 => id.simple().to_string(),
                1 => id.braced().to_string(),
                2 => id.urn().to_string(),
                3 => format!("{}é", &hyphenated[..34]),
                4 => format!(" {hyphenated}"),
                _ => format!("{}{MARKER}", &hyphenated[..28]),
            }
        });
        let odd = select(&["", ",", "..%2F", "../x", "%00", MARKER, "bonus_check"][..]);
        prop_oneof![
            4 => good_ids(),
            2 => forms,
            1 => odd.prop_map(str::to_owned),
            1 => "\\PC{0,40}",
        ]
        .boxed()
    }

    fn scalar() -> BoxedStrategy<Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
        ]
        .boxed()
    }

    /// An id in a body: in a clean body always a good one.
    fn id_value(clean: bool) -> BoxedStrategy<Value> {
        if clean {
            good_ids().prop_map(Value::String).boxed()
        } else {
            prop_oneof![6 => ids().prop_map(Value::String), 1 => scalar()].boxed()
        }
    }

    fn id_list(clean: bool) -> BoxedStrategy<Value> {
        let list = vec(id_value(clean), 0..8).prop_map(Value::Array);
        if clean {
            list.boxed()
        } else {
            prop_oneof![6 => list, 1 => id_value(false), 1 => Just(json!({}))].boxed()
        }
    }

    fn typed_item(clean: bool) -> BoxedStrategy<Value> {
        let good = select(&["bonus_check", "promotion"][..]).prop_map(Value::from);
        let kinds = if clean {
            good.boxed()
        } else {
            let bad = select(&["gift", "Promotion", "", MARKER][..]).prop_map(Value::from);
            prop_oneof![6 => good, 1 => bad, 1 => scalar()].boxed()
        };
        let item = |kind: Option<Value>, id: Option<Value>| {
            let mut map = Map::new();
            if let Some(kind) = kind {
                map.insert("type".to_owned(), kind);
            }
            if let Some(id) = id {
                map.insert("id".to_owned(), id);
            }
            Value::Object(map)
        };
        if clean {
            (kinds, id_value(true))
                .prop_map(move |(kind, id)| item(Some(kind), Some(id)))
                .boxed()
        } else {
            let item = (weighted(0.9, kinds), weighted(0.9, id_value(false)))
                .prop_map(move |(kind, id)| item(kind, id));
            prop_oneof![6 => item, 1 => id_value(false), 1 => Just(json!([]))].boxed()
        }
    }

    /// A redeem or undo body: either list shape, both or neither, with every id good (clean) or
    /// not; or no object at all.
    fn bodies() -> BoxedStrategy<Value> {
        let object = |clean: bool| {
            let items = vec(typed_item(clean), 0..8).prop_map(Value::Array);
            let items = if clean {
                items.boxed()
            } else {
                prop_oneof![6 => items, 1 => id_value(false)].boxed()
            };
            (
                weighted(0.5, id_list(clean)),
                weighted(0.5, id_list(clean)),
                weighted(0.4, items),
                weighted(0.2, ("\\PC{0,8}", scalar())),
            )
                .prop_map(|(checks, promotions, items, extra)| {
                    let mut map = Map::new();
                    if let Some((k, v)) = extra {
                        map.insert(k, v);
                    }
                    let lists = [
                        ("bonus_checks", checks),
                        ("promotions", promotions),
                        ("items", items),
                    ];
                    for (name, list) in lists {
                        if let Some(list) = list {
                            map.insert(name.to_owned(), list);
                        }
                    }
                    Value::Object(map)
                })
        };
        prop_oneof![
            4 => object(true),
            4 => object(false),
            1 => id_value(false),
            1 => vec(id_value(false), 0..3).prop_map(Value::Array),
        ]
        .boxed()
    }

    /// Query pairs: the list names (repeated or not), other names, and comma-joined ids.
    fn queries() -> impl Strategy<Value = Vec<(String, String)>> {
        let key = prop_oneof![
            6 => select(&["bonus_checks", "promotions"][..]).prop_map(str::to_owned),
            1 => select(&["items", "Bonus_checks", "", MARKER][..]).prop_map(str::to_owned),
            1 => "\\PC{0,8}",
        ];
        let value = prop_oneof![
            3 => vec(good_ids(), 0..6).prop_map(|ids| ids.join(",")),
            3 => vec(ids(), 0..6).prop_map(|ids| ids.join(",")),
            1 => "\\PC{0,40}",
        ];
        vec((key, value), 0..5)
    }

    /// An accepted list: 1..=max lowercase GUIDs from the input, none repeated; a refusal: invalid
    /// input, its message naming a field and repeating none of the input.
    fn check(
        result: Result<Items, ProxyError>,
        max: usize,
        input: &str,
    ) -> Result<(), TestCaseError> {
        match result {
            Ok(items) => {
                let count = items.bonus_checks.len() + items.promotions.len();
                prop_assert!((1..=max).contains(&count), "{count} items, max {max}");
                for list in [&items.bonus_checks, &items.promotions] {
                    for (i, id) in list.iter().enumerate() {
                        prop_assert!(!list[..i].contains(id), "{id} twice in {list:?}");
                        prop_assert!(
                            id.len() == 36 && uuid::Uuid::try_parse(id).is_ok(),
                            "{id} is no GUID"
                        );
                        prop_assert_eq!(id, &id.to_ascii_lowercase());
                        prop_assert!(
                            input.to_ascii_lowercase().contains(id.as_str()),
                            "{id} not asked for"
                        );
                    }
                }
            }
            Err(ProxyError::Refused(refusal)) => {
                prop_assert_eq!(refusal.reason, Reason::InvalidInput);
                let fields = [
                    "body ",
                    "bonus_checks ",
                    "bonus_checks[",
                    "promotions ",
                    "promotions[",
                    "items[",
                    "items ",
                ];
                prop_assert!(
                    fields.iter().any(|f| refusal.message.starts_with(f)),
                    "{}",
                    refusal.message
                );
                prop_assert!(!refusal.message.contains(MARKER), "{}", refusal.message);
            }
            Err(other) => prop_assert!(false, "{other:?}"),
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 512,
            rng_algorithm: proptest::test_runner::RngAlgorithm::XorShift,
            ..ProptestConfig::default()
        })]

        #[test]
        fn any_body_names_items_or_is_refused(body in bodies(), max in 0usize..=12) {
            check(Items::from_body(&NAMES, &body, max), max, &body.to_string())?;
        }

        #[test]
        fn any_query_names_items_or_is_refused(query in queries(), max in 0usize..=12) {
            check(Items::from_query(&NAMES, &query, max), max, &format!("{query:?}"))?;
        }
    }
}
