//! Redeem and undo: all or nothing, never duplicated.
//!
//! Redeem checks every item against the customer's full lists before any write, then redeems bonus
//! checks (reversible) before promotions (irreversible); if a later item fails, the bonus checks
//! redeemed in this request are reactivated. An unclear write result is settled by reading Voyado's
//! redeemed state, never by a blind retry. Undo reactivates only this customer's redeemed bonus
//! checks; a promotion redemption cannot be reverted in Voyado, so undoing one is refused.

use serde_json::{Map, Value, json};

use super::{OpRequest, upstream};
use crate::app::Market;
use crate::config::UndoPromotion;
use crate::keys;
use crate::mapping::RedeemNames;
use crate::spi::{ProxyError, Reason};
use crate::telemetry::Event;
use crate::voyado::{Endpoint, VoyadoError};

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

/// Fetches a list only when there is something to check against it.
async fn list_if(
    market: &Market,
    needed: bool,
    endpoint: Endpoint,
    id: &str,
) -> Result<Value, ProxyError> {
    if !needed {
        return Ok(Value::Null);
    }
    // Money is decided on what Voyado says now, never on a remembered list.
    market
        .voyado
        .get_fresh(endpoint, &[id], &[])
        .await
        .map_err(upstream(market, super::CUSTOMER))
}

/// Reads a list to settle a write whose result was unclear: fresh, and even while the tenant's
/// Voyado is cooling off (the breaker must not stand between a redeem and the check of it).
async fn settling_list(market: &Market, endpoint: Endpoint, id: &str) -> Result<Value, ProxyError> {
    market
        .voyado
        .get_settling(endpoint, &[id], &[])
        .await
        .map_err(upstream(market, super::CUSTOMER))
}

/// A write the request asked for, or one that puts money back after a failure (which the
/// breaker never refuses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Write {
    Asked,
    Compensating,
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
        list_if(
            market,
            !items.bonus_checks.is_empty(),
            Endpoint::BonusChecks,
            &customer
        ),
        list_if(
            market,
            !items.promotions.is_empty(),
            Endpoint::Promotions,
            &customer
        ),
    );
    let (checks, promotions) = (checks?, promotions?);

    // Every item is checked before the first write.
    let plan = &market.plan;
    let now = jiff::Timestamp::now();
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
        let item = find(market, &promotions, id).ok_or_else(|| ProxyError::not_found(PROMOTION))?;
        refuse(item, PROMOTION)?;
        if !plan.has_pos_channel(item) {
            return Err(ProxyError::new(
                Reason::NotPosChannel,
                "the promotion cannot be redeemed at the POS",
            ));
        }
    }

    let mut redeemed_checks = Vec::with_capacity(items.bonus_checks.len());
    for id in items.bonus_checks {
        if let Err(e) = redeem_bonus_check(market, &customer, &id, Write::Asked).await {
            // A failure Voyado may have half-done (timeout, 5xx) might still have redeemed it:
            // reactivating an active check is harmless, losing a redeemed one is not.
            if may_have_landed(&e) {
                redeemed_checks.push(id);
            }
            reactivate_all(market, &customer, &redeemed_checks).await;
            return Err(e);
        }
        redeemed_checks.push(id);
    }
    let mut redeemed_promotions = Vec::with_capacity(items.promotions.len());
    for id in items.promotions {
        if let Err(e) = redeem_promotion(market, &customer, &id).await {
            reactivate_all(market, &customer, &redeemed_checks).await;
            if !redeemed_promotions.is_empty() {
                market.metrics.count(Event::PromotionsRedeemedBeforeFailure);
                tracing::error!(
                    customer_id = %customer,
                    promotions = ?redeemed_promotions,
                    "promotions redeemed before a failure cannot be reverted; staff must re-issue them"
                );
            }
            return Err(e);
        }
        redeemed_promotions.push(id);
    }
    Ok(Items::answer(names, redeemed_checks, redeemed_promotions))
}

async fn redeem_bonus_check(
    market: &Market,
    customer: &str,
    id: &str,
    write: Write,
) -> Result<(), ProxyError> {
    let segments = [customer, id];
    let result = match write {
        Write::Asked => {
            market
                .voyado
                .send(Endpoint::RedeemBonusCheck, &segments, &[], &[], None)
                .await
        }
        Write::Compensating => {
            market
                .voyado
                .send_compensating(Endpoint::RedeemBonusCheck, &segments)
                .await
        }
    };
    settle(market, result.map(drop), BONUS_CHECK, || async {
        let list = settling_list(market, Endpoint::RedeemedBonusChecks, customer).await?;
        Ok(find(market, &list, id).is_some())
    })
    .await
}

async fn redeem_promotion(market: &Market, customer: &str, id: &str) -> Result<(), ProxyError> {
    let body = json!({ "redemptionChannel": market.plan.redeem().channel });
    let result = market
        .voyado
        .send(
            Endpoint::RedeemPromotion,
            &[customer, id],
            &[],
            &[],
            Some(&body),
        )
        .await;
    settle(market, result.map(drop), PROMOTION, || async {
        let list = settling_list(market, Endpoint::Promotions, customer).await?;
        Ok(find(market, &list, id).is_some_and(|p| market.plan.item_redeemed(p)))
    })
    .await
}

/// Whether a failed write may still have happened in Voyado: no clear answer, or a server error
/// other than "unavailable" (which Voyado answers before doing anything).
fn may_have_landed(e: &ProxyError) -> bool {
    matches!(e, ProxyError::Voyado { error, .. }
        if error.unclear() || error.status().is_some_and(|s| s >= 500 && s != 503))
}

/// A write whose result is unclear (timeout, reset) is settled by reading Voyado's state.
async fn settle<F, Fut>(
    market: &Market,
    result: Result<(), VoyadoError>,
    what: &'static str,
    happened: F,
) -> Result<(), ProxyError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<bool, ProxyError>>,
{
    match result {
        Ok(()) => Ok(()),
        Err(e) if e.unclear() => {
            tracing::warn!(%e, "redeem result unclear; reading it back");
            match happened().await {
                Ok(true) => Ok(()),
                _ => Err(upstream(market, what)(e)),
            }
        }
        Err(e) => Err(upstream(market, what)(e)),
    }
}

/// Compensation after a failed redeem. A failure here is logged with the ids so staff can act.
async fn reactivate_all(market: &Market, customer: &str, ids: &[String]) {
    for id in ids {
        if let Err(e) = reactivate(market, customer, id, Write::Compensating).await {
            market.metrics.count(Event::RedeemRollbackFailed);
            tracing::error!(bonus_check_id = %id, %e, "could not reactivate a bonus check after a failed redeem");
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
    let result = match write {
        Write::Asked => {
            voyado
                .send(Endpoint::ReactivateVoucher, &[id], &[], &[], None)
                .await
        }
        Write::Compensating => {
            voyado
                .send_compensating(Endpoint::ReactivateVoucher, &[id])
                .await
        }
    };
    // The path names the voucher, not the contact: its card is forgotten here, whatever the
    // answer (a reactivation that failed may still have landed).
    voyado.forget_contact(customer);
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
                market.metrics.count(Event::PromotionUndoRefused);
                tracing::warn!(
                    customer_id = %customer,
                    promotions = ?items.promotions,
                    "undo of a promotion refused: Voyado cannot revert it; staff must re-issue it"
                );
                return Err(ProxyError::new(
                    Reason::CannotUndoPromotion,
                    "a promotion redemption cannot be undone",
                ));
            }
        }
    }
    let redeemed = list_if(market, true, Endpoint::RedeemedBonusChecks, &customer).await?;
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
                    market.metrics.count(Event::RedeemRollbackFailed);
                    tracing::error!(bonus_check_id = %back, %e, "could not redeem a bonus check again after a failed undo");
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
