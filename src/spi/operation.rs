//! The SPI operations (the nine of the CRM SPI, Sitoo's order events and the order-import
//! customer resolution) by name: what the route table points at and what logs and metrics
//! call them. What each one does lives in `ops/`.

use serde::Deserialize;

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
    /// Sitoo's Events SPI: a batch of events; closed orders become Voyado receipts.
    Events,
    /// An order's customer found, or created, in Voyado (for an order-import system).
    ResolveCustomer,
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
            Operation::Events => "events",
            Operation::ResolveCustomer => "resolve_customer",
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
                | Operation::Events
                | Operation::ResolveCustomer
        )
    }

    /// Whether the operation reads a JSON body (lookup: Sitoo's newer lookup SPIs POST one).
    pub fn takes_body(self) -> bool {
        self.is_write() || self == Operation::Lookup
    }

    /// Whether an empty body is acceptable: undo may come as query parameters on a DELETE, a
    /// lookup as a GET with a query.
    pub fn body_optional(self) -> bool {
        matches!(self, Operation::UndoRedeem | Operation::Lookup)
    }
}
