//! Update customer: a partial, safe edit.
//!
//! Absent fields and empty strings change nothing, `null` clears only the market's clearable
//! fields, read-only fields are ignored, and only attributes that differ from the current contact
//! are sent. Consents and channel flags are written as changes only.

use bytes::Bytes;
use serde_json::Value;

use super::card::fetch_card;
use super::cards::Cards;
use super::{CUSTOMER, OpRequest, upstream};
use crate::mapping::WritePolicy;
use crate::market::Market;
use crate::spi::ProxyError;
use crate::voyado::Endpoint;

pub(super) async fn run(
    market: &Market,
    cards: &Cards,
    request: &OpRequest,
) -> Result<Bytes, ProxyError> {
    let id = request.customer_id()?;
    let body = request.body()?;
    let plan = &market.plan;
    let view = market.view(request.now);
    let now = request.now.to_string();
    let policy = WritePolicy {
        clearable: &market.settings.clearable_fields,
        ignored: &market.settings.read_only_fields,
        source: &market.settings.source,
        now: &now,
    };
    // Validate against an empty contact first, so a bad body costs no Voyado call.
    plan.contact_changes(body, &Value::Null, &policy, &view)?;
    let contact = market
        .voyado
        // The edit is diffed against Voyado's contact as it is now, never a remembered one.
        .get_fresh(Endpoint::Contact, &[&id], &[])
        .await
        .map_err(upstream(market, CUSTOMER))?;
    let changes = plan.contact_changes(body, &contact, &policy, &view)?;
    if !changes.is_empty() {
        let update = Value::Object(plan.voyado_body(changes));
        market
            .voyado
            .send(Endpoint::UpdateContact, &[&id], &[], &[], Some(&update))
            .await
            .map_err(upstream(market, CUSTOMER))?;
    }
    fetch_card(market, cards, &id, request.now).await
}
