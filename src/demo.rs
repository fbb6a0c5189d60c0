//! The demo: the built-in Voyado simulator seeded from `fixtures/`, and the proxy in front of it
//! with tenant `demo`, markets `SE` and `NO`, and CRM key `demo-key`. No files needed.

use std::net::SocketAddr;

use crate::config::{Config, ConfigError, MappingSource};
use crate::sim::{FIXTURE, Simulator};

pub const TENANT: &str = "demo";
pub const CRM_KEY: &str = "demo-key";

/// The demo config; `{voyado}` becomes the simulator's URL and `{listen}` the address.
const CONFIG: &str = r#"
listen = "{listen}"

[[market]]
tenant = "demo"
market = "SE"
crm_api_keys = ["demo-key"]
voyado_url = "{voyado}"
voyado_api_key = "sim-demo-key"
default_country = "SE"
lookup_enabled = true
clearable_fields = ["name_last", "invoice_address.address", "birth_date"]
required_fields = ["name_first"]
consent_defaults = { consent_personal_offers = false, memberTerms = false }

[[market]]
tenant = "demo"
market = "NO"
crm_api_keys = ["demo-key"]
voyado_url = "{voyado}"
voyado_api_key = "sim-demo-key"
default_country = "NO"
"#;

/// Starts the simulator on a free loopback port and returns it with the demo config.
pub async fn start(listen: SocketAddr) -> Result<(Simulator, Config), ConfigError> {
    let sim = Simulator::start(SocketAddr::from(([127, 0, 0, 1], 0)), FIXTURE)
        .await
        .map_err(|e| ConfigError {
            errors: vec![format!("simulator: {e}")],
        })?;
    let text = CONFIG
        .replace("{voyado}", &sim.url())
        .replace("{listen}", &listen.to_string());
    let config = Config::parse(&text, "demo config", |_| MappingSource::BuiltIn, |_| None)?;
    Ok((sim, config))
}
