//! Search customer: `key_type` + `key` → `[customer]` or `[]`.
//!
//! The key is normalised (E.164, 12-digit personal id, trimmed email) before Voyado sees it, then
//! looked up per configured contact type in order; the first type that matches wins. Several
//! matches are never resolved by picking one.

use bytes::{Bytes, BytesMut};

use super::card::fetch_card;
use super::cards::Cards;
use super::{CUSTOMER, OpRequest, upstream};
use crate::config::MemberNumberLookup;
use crate::keys;
use crate::mapping::KeySpec;
use crate::market::Market;
use crate::spi::ProxyError;
use crate::voyado::{Endpoint, Read, VoyadoError};

pub(super) async fn run(
    market: &Market,
    cards: &Cards,
    request: &OpRequest,
) -> Result<Bytes, ProxyError> {
    let key_type = request.required_param("key_type")?;
    let key = request.required_param("key")?;
    let spec = market.plan.search_key(key_type).ok_or_else(|| {
        let known: Vec<&str> = market.plan.search_key_types().collect();
        ProxyError::field("key_type", &format!("must be one of {}", known.join(", ")))
    })?;
    let value = market
        .view(request.now)
        .normalize(spec.normalize, key)
        .map_err(|m| ProxyError::field("key", m))?;
    let types = &market.settings.search_contact_types;
    match find_contact(market, spec, &value, types, Read::Cached).await? {
        Some(id) => {
            // `[card]`, around the card's bytes as they are.
            let card = fetch_card(market, cards, &id, request.now).await?;
            let mut list = BytesMut::with_capacity(card.len() + 2);
            list.extend_from_slice(b"[");
            list.extend_from_slice(&card);
            list.extend_from_slice(b"]");
            Ok(list.freeze())
        }
        None => Ok(Bytes::from_static(b"[]")),
    }
}

/// The id of the contact with this (normalised) key among `types`, first type first.
pub(super) async fn find_contact(
    market: &Market,
    spec: &KeySpec,
    value: &str,
    types: &[String],
    read: Read,
) -> Result<Option<String>, ProxyError> {
    Ok(find_typed(market, spec, value, types, read)
        .await?
        .map(|(id, _)| id))
}

/// The id of the contact with this (normalised) key among `types`, and the type it was found as.
pub(super) async fn find_typed<'t>(
    market: &Market,
    spec: &KeySpec,
    value: &str,
    types: &'t [String],
    read: Read,
) -> Result<Option<(String, &'t str)>, ProxyError> {
    for contact_type in types {
        let found = if spec.member_number
            && market.settings.member_number_lookup == MemberNumberLookup::ByKey
        {
            market
                .voyado
                .read(
                    read,
                    Endpoint::ContactByKey,
                    &[contact_type],
                    &[("keyValue", value)],
                )
                .await
                .map(|contact| market.plan.item_id(&contact).map(str::to_owned))
        } else {
            market
                .voyado
                .read(
                    read,
                    Endpoint::ContactId,
                    &[],
                    &[(spec.param.as_str(), value), ("contactType", contact_type)],
                )
                .await
                .map(|id| id.as_str().map(str::to_owned))
        };
        match found {
            Ok(Some(id)) => {
                return keys::guid(&id)
                    .map(|id| Some((id, contact_type.as_str())))
                    .map_err(|_| upstream(market, CUSTOMER)(VoyadoError::Malformed));
            }
            Ok(None) => return Err(upstream(market, CUSTOMER)(VoyadoError::Malformed)),
            Err(e) if e.is_not_found() => continue,
            Err(e) => {
                if let VoyadoError::Status { matches, .. } = &e
                    && *matches > 0
                {
                    // The count only: the ids are other people's contacts.
                    tracing::info!(matches, "several contacts share the key");
                }
                return Err(upstream(market, CUSTOMER)(e));
            }
        }
    }
    Ok(None)
}
