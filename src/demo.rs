//! The demo: the built-in Voyado simulator and the Sitoo REST simulator seeded from `fixtures/`,
//! and the proxy in front of them with tenant `demo`, markets `SE` and `NO`, and CRM key
//! `demo-key`; demo/SE also takes Sitoo's order events. No files needed. On a loopback address
//! the mapping workbench is open without a token (the data is the simulator's); on any other
//! address it is off, as in a deployment without `[admin] token`.

use std::net::SocketAddr;

use crate::config::{Config, ConfigError, MappingSource, Place};
use crate::sim::{FIXTURE, SITOO_FIXTURE, Simulator, SitooSimulator};

pub const TENANT: &str = "demo";

/// How often the demo's Voyado books the receipts it accepted (Voyado: about every 15 minutes).
pub const RECEIPT_IMPORT_EVERY: std::time::Duration = std::time::Duration::from_secs(60);
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
sitoo_api_url = "{sitoo}"
sitoo_account_id = 1500
sitoo_api_user = "sitoo-api"
sitoo_api_password = "sitoo-secret"
order_customer_create = true

[[market]]
tenant = "demo"
market = "NO"
crm_api_keys = ["demo-key"]
voyado_url = "{voyado}"
voyado_api_key = "sim-demo-key"
default_country = "NO"
"#;

/// The demo's simulators; they stop when this is dropped.
pub struct Simulators {
    pub voyado: Simulator,
    pub sitoo: SitooSimulator,
}

/// Starts both simulators on free loopback ports and returns them with the demo config.
pub async fn start(listen: SocketAddr) -> Result<(Simulators, Config), ConfigError> {
    let any_port = SocketAddr::from(([127, 0, 0, 1], 0));
    let failed = |what: &str, e: std::io::Error| {
        Place::whole(format!("{what} simulator")).problem(e.to_string())
    };
    let voyado = Simulator::start(any_port, FIXTURE)
        .await
        .map_err(|e| failed("Voyado", e))?;
    voyado.import_receipts_every(RECEIPT_IMPORT_EVERY);
    let sitoo = SitooSimulator::start(any_port, SITOO_FIXTURE)
        .await
        .map_err(|e| failed("Sitoo", e))?;
    let text = CONFIG
        .replace("{voyado}", &voyado.url())
        .replace("{sitoo}", &sitoo.url())
        .replace("{listen}", &listen.to_string());
    let mut config = Config::parse(&text, "demo config", |_| MappingSource::BuiltIn, |_| None)?;
    config.admin.open_without_token = listen.ip().is_loopback();
    Ok((Simulators { voyado, sitoo }, config))
}
