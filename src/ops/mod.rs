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

use serde::Deserialize;
use serde_json::Value;

use crate::config::Market;
use crate::spi::ProxyError;
use crate::spi::input;
use crate::voyado::VoyadoError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    Search,
    AddCustomer,
    GetCustomer,
    UpdateCustomer,
    Transactions,
    Redeem,
    UndoRedeem,
    Consents,
    Lookup,
}

impl Operation {
    pub fn name(self) -> &'static str {
        match self {
            Operation::Search => "search",
            Operation::AddCustomer => "add_customer",
            Operation::GetCustomer => "get_customer",
            Operation::UpdateCustomer => "update_customer",
            Operation::Transactions => "transactions",
            Operation::Redeem => "redeem",
            Operation::UndoRedeem => "undo_redeem",
            Operation::Consents => "consents",
            Operation::Lookup => "lookup",
        }
    }

    /// Writes run in their own task: a deadline stops the waiting, never the write sequence.
    pub fn is_write(self) -> bool {
        matches!(
            self,
            Operation::AddCustomer
                | Operation::UpdateCustomer
                | Operation::Redeem
                | Operation::UndoRedeem
        )
    }

    /// Whether the operation reads a JSON body.
    pub fn takes_body(self) -> bool {
        self.is_write()
    }

    /// Whether an empty body is acceptable (undo may come as query parameters on a DELETE).
    pub fn body_optional(self) -> bool {
        self == Operation::UndoRedeem
    }
}

/// What an operation gets from the HTTP request, already decoded.
#[derive(Debug, Default)]
pub struct OpRequest {
    pub query: Vec<(String, String)>,
    pub body: Option<Value>,
    /// The path parameter's name and value, percent-decoded but not yet validated.
    pub customer_id: Option<(String, String)>,
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
        input::guid(value).map_err(|m| ProxyError::field(name, m))
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

/// Turns a Voyado failure about `what` into the SPI refusal through the market's error table.
fn upstream<'a>(market: &'a Market, what: &'static str) -> impl Fn(VoyadoError) -> ProxyError + 'a {
    move |mut e| {
        if let VoyadoError::Status { fields, .. } = &mut e {
            for field in fields.iter_mut() {
                if let Some(spi) = market.plan.spi_field_for(field) {
                    *field = spi.to_owned();
                }
            }
        }
        market.errors.from_voyado(&e, what)
    }
}

const CUSTOMER: &str = "customer";
