//! Get customer (the Customer Card), also the answer of search, add and update.
//!
//! Two Voyado rounds: the contact, promotions, available bonus checks and point accounts together;
//! then the member status by the contact's member number. Only the calls the mapping reads are made.
//! The rendered card is kept (as bytes) for as long as the shortest-lived answer in it, so a warm
//! card costs no Voyado call and no JSON work; a write to the contact drops it.

use std::time::Duration;

use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::{CUSTOMER, OpRequest, upstream};
use crate::app::Market;
use crate::mapping;
use crate::spi::ProxyError;
use crate::voyado::{Endpoint, VoyadoError};

pub(super) async fn run(market: &Market, request: &OpRequest) -> Result<Bytes, ProxyError> {
    fetch_card(market, &request.customer_id()?).await
}

/// The card's bytes for a Voyado contact id (already a GUID): rendered before and still fresh,
/// or rendered now and kept.
pub(super) async fn fetch_card(market: &Market, id: &str) -> Result<Bytes, ProxyError> {
    let key = market
        .voyado
        .card_key(market.key.clone(), id, market.generation);
    if let Some(bytes) = market.voyado.cached_card(&key).await {
        return Ok(bytes);
    }
    let rendered_from = tokio::time::Instant::now();
    let card = Bytes::from(serde_json::to_vec(&render_card(market, id).await?).unwrap_or_default());
    if let Some(ttl) = card_ttl(market) {
        market
            .voyado
            .keep_card(key, card.clone(), ttl, rendered_from)
            .await;
    }
    Ok(card)
}

/// As long as the shortest-lived answer the card is made of may be kept; `None` when one of
/// them may not be kept at all.
fn card_ttl(market: &Market) -> Option<Duration> {
    let needs = market.plan.card_needs();
    let ttls = market.voyado.ttls();
    let mut parts = vec![ttls.for_endpoint(Endpoint::Contact)];
    if needs.promotions {
        parts.push(ttls.for_endpoint(Endpoint::Promotions));
    }
    if needs.bonus_checks {
        parts.push(ttls.for_endpoint(Endpoint::AvailableBonusChecks));
    }
    if needs.points {
        parts.push(ttls.for_endpoint(Endpoint::PointAccounts));
    }
    if needs.status {
        parts.push(ttls.for_endpoint(Endpoint::MemberStatus));
    }
    parts
        .into_iter()
        .try_fold(Duration::MAX, |shortest, ttl| Some(shortest.min(ttl?)))
}

/// Runs `call` only when `needed`; otherwise an absent root.
async fn when<F>(needed: bool, call: F) -> Result<Value, VoyadoError>
where
    F: Future<Output = Result<Value, VoyadoError>>,
{
    if needed { call.await } else { Ok(Value::Null) }
}

/// The full SPI customer for a Voyado contact id, mapped from Voyado's answers.
async fn render_card(market: &Market, id: &str) -> Result<Value, ProxyError> {
    let needs = market.plan.card_needs();
    let voyado = &market.voyado;
    let segments = [id];
    let by_contact = [("contactId", id)];
    let (contact, promotions, bonus_checks, points) = tokio::join!(
        voyado.get(Endpoint::Contact, &segments, &[]),
        when(
            needs.promotions,
            voyado.get(Endpoint::Promotions, &segments, &[])
        ),
        when(
            needs.bonus_checks,
            voyado.get(Endpoint::AvailableBonusChecks, &segments, &[])
        ),
        when(
            needs.points,
            voyado.get(Endpoint::PointAccounts, &[], &by_contact)
        ),
    );
    let fail = upstream(market, CUSTOMER);
    let contact = contact.map_err(&fail)?;
    let promotions = promotions.map_err(&fail)?;
    let bonus_checks = bonus_checks.map_err(&fail)?;
    let points = points.map_err(&fail)?;

    let status = match market.plan.member_number(&contact) {
        Some(number) if needs.status => {
            let query = format!("{}:{number}", market.plan.status_query_field());
            match voyado
                .get(Endpoint::MemberStatus, &[], &[("query", &query)])
                .await
            {
                Ok(status) => status,
                // No status for this member: the mapping's default applies.
                Err(e) if e.is_not_found() => Value::Null,
                Err(e) => return Err(fail(e)),
            }
        }
        _ => Value::Null,
    };

    let mut source = Map::with_capacity(6);
    source.insert(mapping::CONTACT.into(), contact);
    source.insert(mapping::PROMOTIONS.into(), promotions);
    source.insert(mapping::BONUS_CHECKS.into(), bonus_checks);
    source.insert(mapping::POINTS.into(), points);
    source.insert(mapping::STATUS.into(), status);
    source.insert(
        mapping::MARKET.into(),
        json!({ "currency": market.settings.currency }),
    );
    let (customer, omitted) = market
        .plan
        .customer(&Value::Object(source), &market.view(jiff::Timestamp::now()));
    if omitted > 0 {
        tracing::info!(
            omitted,
            "card items left out: no value in the market currency or an unmapped type"
        );
    }
    Ok(customer)
}
