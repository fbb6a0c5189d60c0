//! sitoo-voyado-proxy: Sitoo POS's CRM SPI v2 answered from Voyado Engage.
//!
//! Rooms, used in one direction (leaves first): `keys` (normalisation of phones, emails, personal
//! ids, dates), `limiter` (an upstream key's request budget), `telemetry` (metrics and logs),
//! `voyado` (the client), `mapping` (the declarative engine, pure), `spi` (operations, route
//! table, the error envelope), `config` (the file, parsed into plain data), `sitoo` (the Sitoo
//! REST client), `market` (the state a request is served with), `app` (the composition root:
//! markets, clients and plans from the config), `ops` (one file per SPI operation, Sitoo's order
//! events too), `server` (the tower stack); tools: `dryrun` (`map`), `probe`, `reload`,
//! `workbench` (the mapping workbench on the admin side, over `dryrun` and the card's reads). `sim`
//! (the Voyado and Sitoo simulators) and `demo` sit behind the default-on `simulator` feature, the
//! load generator (`bench`) behind the default-on `bench` feature.

/// The allocator of every binary built on this crate (the proxy, its tests and benches): mimalloc
/// rather than glibc's malloc. The caches keep many small entries for minutes to an hour, made
/// by requests that allocate and free many times as much on the way; glibc keeps the pages
/// those freed buffers leave between the entries resident, mimalloc groups allocations by size
/// and returns emptied pages. Measured with `cargo bench --bench cache` (BENCHMARKS.md,
/// "Memory with 100,000 customers").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod app;
pub mod cluster;
// The load-test command, behind the default-on `bench` feature (the production image leaves it
// out). Not behind `simulator`: it runs against a target; only its in-process mode needs the
// simulator.
#[cfg(feature = "bench")]
pub mod bench;
pub mod config;
#[cfg(feature = "simulator")]
pub mod demo;
pub mod dryrun;
pub mod keys;
pub mod limiter;
pub mod mapping;
pub mod market;
pub mod ops;
pub mod probe;
pub mod reload;
pub mod server;
#[cfg(feature = "simulator")]
pub mod sim;
pub mod sitoo;
pub mod spi;
pub mod telemetry;
pub mod voyado;
pub mod workbench;
