//! sitoo-voyado-proxy: Sitoo POS's CRM SPI v2 answered from Voyado Engage.
//!
//! Rooms: `spi` (routes, input validation, the error envelope), `voyado` (the client), `mapping`
//! (the declarative engine, pure), `ops` (one file per SPI operation), `server` (the tower stack),
//! `config`, `sim` (the Voyado simulator) and `demo` (proxy + simulator with no config).

pub mod config;
pub mod demo;
pub mod mapping;
pub mod metrics;
pub mod ops;
pub mod server;
pub mod sim;
pub mod spi;
pub mod voyado;
