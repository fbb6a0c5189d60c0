//! Lookup: pre-fill a new customer from Voyado's person register (not a contact search).
//! Only for markets that enable it; never cached; not found is `[]`. Asked as a `GET` with
//! `?key_type=&key=`, or as a `POST` with the JSON body `{"key_type", "key"}`.

use serde_json::{Map, Value, json};

use super::{OpRequest, upstream};
use crate::mapping;
use crate::market::Market;
use crate::spi::{ProxyError, Reason};
use crate::voyado::Endpoint;

pub(super) async fn run(market: &Market, request: &OpRequest) -> Result<Value, ProxyError> {
    if !market.settings.lookup_enabled {
        return Err(ProxyError::new(
            Reason::Forbidden,
            "person lookup is not enabled for this market",
        ));
    }
    let key_type = request.body_or_param("key_type")?;
    let key = request.body_or_param("key")?;
    let spec = market
        .plan
        .lookup_key(key_type)
        .ok_or_else(|| ProxyError::field("key_type", "is not supported by lookup"))?;
    let value = market
        .view(request.now)
        .normalize(spec.normalize, key)
        .map_err(|m| ProxyError::field("key", m))?;
    let person = match market
        .voyado
        .get(
            Endpoint::PersonLookup,
            &[],
            &[
                (spec.param.as_str(), &value),
                ("countryCode", &market.settings.region),
            ],
        )
        .await
    {
        Ok(person) => person,
        Err(e) if e.is_not_found() => return Ok(json!([])),
        Err(e) => return Err(upstream(market, "person")(e)),
    };
    if person.as_object().is_none_or(Map::is_empty) {
        return Ok(json!([]));
    }
    let mut key_doc = Map::with_capacity(1);
    key_doc.insert(key_type.to_owned(), Value::String(value));
    let mut source = Map::with_capacity(2);
    source.insert(mapping::PERSON.into(), person);
    source.insert("key".into(), Value::Object(key_doc));
    Ok(json!([market.plan.person(
        &Value::Object(source),
        &market.view(request.now)
    )]))
}
