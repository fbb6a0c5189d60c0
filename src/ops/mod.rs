//! The nine SPI operations, one file each: what each asks Voyado, in what order, and how the
//! answers become the SPI document through the market's mapping plan.

mod add;
mod card;
mod consents;
mod lookup;
mod redeem;
mod search;
mod transactions;
mod update;

use std::sync::Arc;

use serde_json::Value;

use crate::app::Market;
use crate::keys;
use crate::spi::{Operation, ProxyError};
use crate::voyado::VoyadoError;

/// What an operation gets from the HTTP request, already decoded.
#[derive(Debug, Default)]
pub struct OpRequest {
    pub query: Vec<(String, String)>,
    pub body: Option<Value>,
    /// The path parameter's name and value, percent-decoded but not yet validated.
    pub customer_id: Option<(Arc<str>, String)>,
    /// The decoded `Store-ID` header: Voyado's `storeExternalId` on a create.
    pub store_id: Option<String>,
}

impl OpRequest {
    fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn required_param(&self, name: &str) -> Result<&str, ProxyError> {
        match self.param(name) {
            Some(v) if !v.is_empty() => Ok(v),
            _ => Err(ProxyError::field(name, "is required")),
        }
    }

    /// The customer id from the path, which must be a GUID before it goes near a Voyado URL.
    fn customer_id(&self) -> Result<String, ProxyError> {
        let (name, value) = self.customer_id.as_ref().ok_or_else(ProxyError::internal)?;
        keys::guid(value).map_err(|m| ProxyError::field(name, m))
    }

    fn body(&self) -> Result<&Value, ProxyError> {
        self.body
            .as_ref()
            .ok_or_else(|| ProxyError::field("body", "is required"))
    }
}

pub async fn run(
    operation: Operation,
    market: Arc<Market>,
    request: OpRequest,
) -> Result<Value, ProxyError> {
    match operation {
        Operation::Search => search::run(&market, &request).await,
        Operation::AddCustomer => add::run(&market, &request).await,
        Operation::GetCustomer => card::run(&market, &request).await,
        Operation::UpdateCustomer => update::run(&market, &request).await,
        Operation::Transactions => transactions::run(&market, &request).await,
        Operation::Redeem => redeem::redeem(&market, &request).await,
        Operation::UndoRedeem => redeem::undo(&market, &request).await,
        Operation::Consents => consents::run(&market).await,
        Operation::Lookup => lookup::run(&market, &request).await,
    }
}

/// A Voyado failure about `what`, with the fields Voyado named renamed to their SPI names; the
/// error table decides its answer later, in one place.
fn upstream<'a>(market: &'a Market, what: &'static str) -> impl Fn(VoyadoError) -> ProxyError + 'a {
    move |mut e| {
        if let VoyadoError::Status { fields, .. } = &mut e {
            for field in fields.iter_mut() {
                if let Some(spi) = market.plan.spi_field_for(field) {
                    *field = spi.to_owned();
                }
            }
        }
        ProxyError::voyado(e, what)
    }
}

const CUSTOMER: &str = "customer";
