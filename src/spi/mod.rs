//! The Sitoo CRM SPI v2 side: the operations, the route table and the error envelope.

pub mod error;
pub mod operation;
pub mod routes;

pub use error::{ErrorTable, ProxyError, Reason, Refusal};
pub use operation::Operation;
