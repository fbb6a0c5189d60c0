//! Purchase history: the customer's transactions, newest first, `?limit=` (default 20, max 100).
//!
//! If Voyado pages oldest first (the mapping says how it pages), the newest are on the last page,
//! so the first call learns the total and a second reads that page.

use serde_json::{Map, Value};

use super::{CUSTOMER, OpRequest, upstream};
use crate::mapping::{self, PageOrder};
use crate::market::Market;
use crate::spi::ProxyError;
use crate::voyado::Endpoint;

const DEFAULT_LIMIT: u64 = 20;
const MAX_LIMIT: u64 = 100;

pub(super) async fn run(market: &Market, request: &OpRequest) -> Result<Value, ProxyError> {
    let id = request.customer_id()?;
    let limit = match request.param("limit") {
        None => DEFAULT_LIMIT,
        Some(text) => text
            .parse()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| ProxyError::field("limit", "must be a whole number from 1 to 100"))?,
    };
    let plan = &market.plan;
    let mut list = page(market, &id, 0, limit).await?;
    let total = plan.transaction_total(&list).unwrap_or(0);
    if plan.transactions_order() == PageOrder::OldestFirst && total > limit {
        list = page(market, &id, total - limit, limit).await?;
    }
    let mut items: Vec<&Value> = plan.transaction_items(&list).iter().collect();
    items.sort_by_key(|item| std::cmp::Reverse(plan.transaction_time(item)));
    items.truncate(limit as usize);
    let view = market.view(request.now);
    let out = items
        .into_iter()
        .map(|item| {
            let mut source = Map::with_capacity(1);
            source.insert(mapping::TRANSACTION.into(), item.clone());
            plan.transaction(&Value::Object(source), &view)
        })
        .collect();
    Ok(Value::Array(out))
}

async fn page(market: &Market, id: &str, offset: u64, count: u64) -> Result<Value, ProxyError> {
    let (offset, count) = (offset.to_string(), count.to_string());
    let (offset_param, count_param) = market.plan.transactions_params();
    market
        .voyado
        .get(
            Endpoint::Transactions,
            &[id],
            &[(offset_param, &offset), (count_param, &count)],
        )
        .await
        .map_err(upstream(market, CUSTOMER))
}
