//! Consent types: Voyado's consent definitions with texts in the market's locale and the initial
//! box state from config (never pre-ticked by default). With a consent map, only mapped consents.

use serde_json::{Map, Value};

use super::{OpRequest, upstream};
use crate::mapping;
use crate::market::Market;
use crate::spi::ProxyError;
use crate::voyado::Endpoint;

pub(super) async fn run(market: &Market, request: &OpRequest) -> Result<Value, ProxyError> {
    let definitions = market
        .voyado
        .get(Endpoint::Consents, &[], &[])
        .await
        .map_err(upstream(market, "consents"))?;
    let plan = &market.plan;
    let view = market.view(request.now);
    let out = plan
        .list_items(&definitions)
        .iter()
        .filter_map(|definition| {
            let spi_id = view.consent_to_spi(plan.item_id(definition)?)?;
            let default = market
                .settings
                .consent_defaults
                .get(&spi_id)
                .copied()
                .unwrap_or(false);
            let mut source = Map::with_capacity(2);
            source.insert(mapping::DEFINITION.into(), definition.clone());
            source.insert(mapping::DEFAULT.into(), Value::Bool(default));
            Some(plan.consent_definition(&Value::Object(source), &view))
        })
        .collect();
    Ok(Value::Array(out))
}
