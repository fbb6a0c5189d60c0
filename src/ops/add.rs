//! Add customer: never a duplicate.
//!
//! Everything is validated before Voyado is called. Then the contact type's key is looked up: an
//! existing approved contact of the market's type is `customer_exists`; an unapproved one, or one of
//! a promotable type (e.g. an e-commerce `Contact`), is updated with the POS fields and adopted in
//! place through the documented calls only (contract §4.3): v3 `updateContactType` to change its
//! type, a preferences call to approve it. Otherwise a contact is created. An unclear create result
//! is settled by looking the key up.

use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::card::fetch_card;
use super::cards::Cards;
use super::search::find_contact;
use super::{CUSTOMER, OpRequest, upstream};
use crate::config::MarketConfig;
use crate::mapping::{KeySpec, Plan, WritePolicy};
use crate::market::Market;
use crate::spi::{ProxyError, Reason};
use crate::voyado::{Endpoint, Read, VoyadoError};

pub(super) async fn run(
    market: &Market,
    cards: &Cards,
    request: &OpRequest,
) -> Result<Bytes, ProxyError> {
    let body = request.body()?;
    let plan = &market.plan;
    let view = market.view(request.now);
    let key = plan.key_value(&market.contact_key, body, &view)?;
    if let Some(missing) = market
        .settings
        .required_fields
        .iter()
        .find(|f| !plan.has_value(f, body))
    {
        return Err(ProxyError::field(missing, "is required"));
    }
    let now = request.now.to_string();
    let policy = WritePolicy {
        clearable: &[],
        ignored: &[],
        source: &market.settings.source,
        now: &now,
    };
    let new_contact = plan.contact_changes(body, &Value::Null, &policy, &view)?;
    let key_spec = plan
        .search_key(&market.contact_key)
        .ok_or_else(ProxyError::internal)?;

    // The market's own type first: an approved contact there is the customer already.
    let own_type = std::slice::from_ref(&market.settings.contact_type);
    for (types, own) in [
        (own_type, true),
        (&market.settings.promote_contact_types[..], false),
    ] {
        if let Some(id) = find_contact(market, key_spec, &key, types, Read::Fresh).await? {
            let contact = market
                .voyado
                .get_fresh(Endpoint::Contact, &[&id], &[])
                .await
                .map_err(upstream(market, CUSTOMER))?;
            if own && plan.is_approved(&contact) {
                return Err(exists());
            }
            adopt(market, &id, &contact, body, &policy, !own, request.now).await?;
            return fetch_card(market, cards, &id, request.now).await;
        }
    }
    let store = request.store_id.as_deref();
    let source = &market.settings.source;
    let id = create(market, store, source, key_spec, &key, new_contact).await?;
    fetch_card(market, cards, &id, request.now).await
}

fn exists() -> ProxyError {
    ProxyError::new(
        Reason::CustomerExists,
        "a customer with this key already exists",
    )
}

/// The preference re-sent (with the contact's own value) to approve an unapproved contact:
/// Voyado documents that a preferences call "will also approve an unapproved contact".
const APPROVING_PREFERENCE: &str = "acceptsEmail";

/// Updates an existing contact with the POS fields, makes it the market's type when it is another
/// (`promote`), and approves it when it is not approved. In that order, so that a failure half-way
/// leaves a contact the next attempt finds and adopts again.
async fn adopt(
    market: &Market,
    id: &str,
    contact: &Value,
    body: &Value,
    policy: &WritePolicy<'_>,
    promote: bool,
    now: jiff::Timestamp,
) -> Result<(), ProxyError> {
    let plan = &market.plan;
    let voyado = &market.voyado;
    let fail = upstream(market, CUSTOMER);
    let changes = plan.contact_changes(body, contact, policy, &market.view(now))?;
    let update = Value::Object(plan.voyado_body(changes));
    if update.as_object().is_some_and(|u| !u.is_empty()) {
        voyado
            .send(Endpoint::UpdateContact, &[id], &[], &[], Some(&update))
            .await
            .map_err(&fail)?;
    }
    if promote {
        voyado
            .send(
                Endpoint::UpdateContactType,
                &[id],
                &[("contactTypeId", &market.settings.contact_type)],
                &[("source", &market.settings.source)],
                None,
            )
            .await
            .map_err(&fail)?;
        tracing::info!(customer_id = id, "existing contact promoted in place");
    }
    if !plan.is_approved(contact) {
        // The value the contact has now (the update above may have just written it), so
        // approving changes nothing else; a contact without one gets Voyado's default, `false`.
        let pointer = format!("/preferences/{APPROVING_PREFERENCE}");
        let value = [&update, contact]
            .iter()
            .find_map(|v| v.pointer(&pointer).and_then(Value::as_bool))
            .unwrap_or(false);
        voyado
            .send(
                Endpoint::Preference,
                &[id, APPROVING_PREFERENCE],
                &[],
                &[],
                Some(&json!({ "value": value })),
            )
            .await
            .map_err(&fail)?;
        tracing::info!(customer_id = id, "unapproved contact approved");
    }
    Ok(())
}

/// The body of a create: the POS fields as Voyado writes them, the market's `create_defaults`
/// where the body has no value, and the market's contact type.
pub fn create_body(
    plan: &Plan,
    settings: &MarketConfig,
    new_contact: Map<String, Value>,
) -> Map<String, Value> {
    let mut body = plan.voyado_body(new_contact);
    for (k, v) in &settings.create_defaults {
        body.entry(k.clone()).or_insert_with(|| v.clone());
    }
    body.insert(
        plan.create_type_field().to_owned(),
        Value::String(settings.contact_type.clone()),
    );
    body
}

/// Creates the contact (`source` and `storeExternalId` as Voyado headers) and returns its id.
pub(super) async fn create(
    market: &Market,
    store: Option<&str>,
    source: &str,
    key_spec: &KeySpec,
    key: &str,
    new_contact: Map<String, Value>,
) -> Result<String, ProxyError> {
    let body = create_body(&market.plan, &market.settings, new_contact);
    let mut headers = vec![("source", source)];
    if let Some(store) = store {
        headers.push(("storeExternalId", store));
    }
    if market.settings.create_as_unapproved {
        headers.push(("createAsUnapproved", "true"));
    }
    let own_type = std::slice::from_ref(&market.settings.contact_type);
    let reply = market
        .voyado
        .send(
            Endpoint::CreateContact,
            &[],
            &[],
            &headers,
            Some(&Value::Object(body)),
        )
        .await;
    match reply {
        // Voyado's v2 create may answer 200 with the id of a contact that already had the key.
        Ok(reply) if reply.body.is_string() => Err(exists()),
        Ok(reply) => match market.plan.item_id(&reply.body) {
            Some(id) => Ok(id.to_owned()),
            None => Err(upstream(market, CUSTOMER)(VoyadoError::Malformed)),
        },
        Err(e) if e.code() == Some("ContactWithKeyIsBeingCreated") => {
            // Someone else is creating it right now: look once more. Found or not, it is theirs,
            // never a second contact; the log says whether it has landed yet.
            let landed = matches!(
                find_contact(market, key_spec, key, own_type, Read::Fresh).await,
                Ok(Some(_))
            );
            tracing::info!(landed, "the key is being created by another client");
            Err(exists())
        }
        Err(e) if e.unclear() => {
            // The create may or may not have happened: Voyado's state decides, never a retry.
            tracing::warn!(%e, "create result unclear; reading it back");
            match find_contact(market, key_spec, key, own_type, Read::Fresh).await? {
                Some(id) => Ok(id),
                None => Err(upstream(market, CUSTOMER)(e)),
            }
        }
        Err(e) => Err(upstream(market, CUSTOMER)(e)),
    }
}
