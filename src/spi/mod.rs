//! The Sitoo CRM SPI v2 side: the route table, input validation and the error envelope.

pub mod error;
pub mod input;
pub mod routes;

pub use error::{ErrorTable, ProxyError};
