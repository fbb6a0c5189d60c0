//! Get customer (the Customer Card), also the answer of search, add and update.
//!
//! Two Voyado rounds: the contact, promotions, available bonus checks and point accounts (every
//! page of each paged list) together; then the member status by the contact's member number.
//! Only the calls the mapping reads are made.
//!
//! The rendered card is kept (as bytes) for as long as the shortest-lived answer in it, so a warm
//! card costs no Voyado call and no JSON work; a write to the contact drops it (`cards.rs`).

use bytes::Bytes;
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use super::cards::{CardKey, Cards};
use super::{CUSTOMER, OpRequest, upstream};
use crate::config::MarketConfig;
use crate::keys;
use crate::mapping;
use crate::market::Market;
use crate::spi::ProxyError;
use crate::voyado::{Endpoint, Read, VoyadoError};

/// The card of a `GET /customers/{id}` that [`warm`] did not find current: it is rendered (and
/// the miss counted) without looking in the cache again.
pub(super) async fn run(
    market: &Market,
    cards: &Cards,
    request: &OpRequest,
) -> Result<Bytes, ProxyError> {
    let id = request.customer_id()?;
    cards.missed();
    render(market, cards, &id, request.now).await
}

/// The card the path's raw id names, if it is kept and current; nothing is counted for a miss
/// here ([`run`] counts it).
pub(super) fn warm(market: &Market, cards: &Cards, raw_id: &str) -> Option<Bytes> {
    // The key lower-cases the id itself: no copy of it here.
    keys::is_guid(raw_id)
        .then(|| cards.hit(&card_key(market, raw_id)))
        .flatten()
}

/// The card's bytes for a Voyado contact id (already a GUID): rendered before and still fresh,
/// or rendered now and kept.
pub(super) async fn fetch_card(
    market: &Market,
    cards: &Cards,
    id: &str,
    now: jiff::Timestamp,
) -> Result<Bytes, ProxyError> {
    if let Some(bytes) = cards.get(&card_key(market, id)) {
        return Ok(bytes);
    }
    render(market, cards, id, now).await
}

fn card_key(market: &Market, id: &str) -> CardKey {
    CardKey::new(&market.voyado, market.key.clone(), id, market.generation)
}

/// Renders the card now from Voyado's answers, and keeps it while every part is fresh.
async fn render(
    market: &Market,
    cards: &Cards,
    id: &str,
    now: jiff::Timestamp,
) -> Result<Bytes, ProxyError> {
    let rendered_from = Instant::now();
    // Boxed: a warm card's future then holds no room for a cold one's Voyado round trips.
    let (card, fresh_until) = Box::pin(render_card(market, id, now)).await?;
    let card = Bytes::from(serde_json::to_vec(&card).unwrap_or_default());
    if fresh_until > Instant::now() {
        cards.keep(
            card_key(market, id),
            card.clone(),
            fresh_until,
            rendered_from,
        );
    }
    Ok(card)
}

/// The document a card is mapped from: Voyado's contact, promotions, bonus checks, point
/// accounts and member status, in that order, under the mapping's root names, and the market.
pub fn card_source(
    settings: &MarketConfig,
    [contact, promotions, bonus_checks, points, status]: [Value; 5],
) -> Value {
    let mut source = Map::with_capacity(6);
    source.insert(mapping::CONTACT.into(), contact);
    source.insert(mapping::PROMOTIONS.into(), promotions);
    source.insert(mapping::BONUS_CHECKS.into(), bonus_checks);
    source.insert(mapping::POINTS.into(), points);
    source.insert(mapping::STATUS.into(), status);
    source.insert(
        mapping::MARKET.into(),
        json!({ "currency": settings.currency }),
    );
    Value::Object(source)
}

/// Runs `call` only when `needed`; otherwise an absent root, which limits nothing.
async fn when<F>(needed: bool, call: F) -> Result<(Value, Instant), VoyadoError>
where
    F: Future<Output = Result<(Value, Instant), VoyadoError>>,
{
    if needed {
        call.await
    } else {
        Ok((Value::Null, far_future()))
    }
}

/// Later than any answer's expiry: the neutral element of `min`.
fn far_future() -> Instant {
    Instant::now() + std::time::Duration::from_secs(365 * 24 * 3600)
}

/// The full SPI customer for a Voyado contact id, mapped from Voyado's answers, and until when
/// it may be kept: the earliest expiry of the answers it was made of.
async fn render_card(
    market: &Market,
    id: &str,
    now: jiff::Timestamp,
) -> Result<(Value, Instant), ProxyError> {
    let (source, fresh_until) = read_card_source(market, id).await?;
    let (customer, omitted) = market.plan.customer(&source, &market.view(now));
    if omitted > 0 {
        tracing::info!(
            omitted,
            "card items left out: no value in the market currency or an unmapped type"
        );
    }
    Ok((customer, fresh_until))
}

/// The card's source document for a Voyado contact id (a GUID): only the reads the mapping
/// needs, through the market's client (its caches, budget and breaker), and until when it may be
/// kept. Never a write. The workbench fetches a contact by id through it too.
pub async fn read_card_source(market: &Market, id: &str) -> Result<(Value, Instant), ProxyError> {
    let needs = market.plan.card_needs();
    let voyado = &market.voyado;
    let segments = [id];
    let by_contact = [("contactId", id)];
    let max = market.limits.voyado_list_max_items;
    let (contact, promotions, bonus_checks, points) = tokio::join!(
        voyado.get_until(Endpoint::Contact, &segments, &[]),
        when(
            needs.promotions,
            voyado.get_until(Endpoint::Promotions, &segments, &[])
        ),
        when(
            needs.bonus_checks,
            voyado.get_pages(
                Read::Cached,
                Endpoint::AvailableBonusChecks,
                &segments,
                &[],
                max
            )
        ),
        when(
            needs.points,
            voyado.get_pages(Read::Cached, Endpoint::PointAccounts, &[], &by_contact, max)
        ),
    );
    let fail = upstream(market, CUSTOMER);
    let (contact, mut fresh_until) = contact.map_err(&fail)?;
    let mut part = |answer: Result<(Value, Instant), VoyadoError>| {
        let (value, until) = answer.map_err(&fail)?;
        fresh_until = fresh_until.min(until);
        Ok::<_, ProxyError>(value)
    };
    let promotions = part(promotions)?;
    let bonus_checks = part(bonus_checks)?;
    let points = part(points)?;

    let status = match market.plan.member_number(&contact) {
        Some(number) if needs.status => {
            let query = format!("{}:{number}", market.plan.status_query_field());
            match voyado
                .get_until(Endpoint::MemberStatus, &[], &[("query", &query)])
                .await
            {
                Ok((status, until)) => {
                    fresh_until = fresh_until.min(until);
                    status
                }
                // No status for this member: the mapping's default applies.
                Err(e) if e.is_not_found() => Value::Null,
                Err(e) => return Err(fail(e)),
            }
        }
        _ => Value::Null,
    };

    let source = card_source(
        &market.settings,
        [contact, promotions, bonus_checks, points, status],
    );
    Ok((source, fresh_until))
}
