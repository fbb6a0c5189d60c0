//! The Voyado Engage side: the v2 endpoint table, the HTTP client and the decoding of Voyado's
//! success and error bodies. Nothing here knows about the SPI.

mod client;
mod endpoints;
mod error;

pub use client::{Reply, VoyadoClient, build_http_client};
pub use endpoints::Endpoint;
pub use error::VoyadoError;
