//! The operator's config file: one TOML file with `listen`, `mappings`, `[limits]`, `[cache]`,
//! `[voyado]`, `[telemetry]`, an optional `[admin]` (the workbench's token), an optional `[cluster]` and one `[[market]]` per (tenant, market)
//! pair. Secrets come from
//! `${ENV}`; unknown keys are refused; every problem is reported at once, each at its file, line,
//! column and key ([`Problem`]).
//!
//! Each table has its file here, with the table as written (values a check may refuse keep their
//! place) and as checked; this one reads the text, fills in `${ENV}` and runs every table's checks
//! right after the parse. Parsing produces [`Config`]: plain, validated data. It builds no client
//! and compiles no mapping; `app` does that from it, so `check` needs no network.

mod admin;
mod cache;
mod cluster;
mod limits;
mod mappings;
mod market;
mod problem;
mod secrets;
mod telemetry;
mod voyado;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;
use toml::de::DeTable;
use url::Url;

pub use admin::{AdminConfig, TOKEN_MIN_CHARS};
pub use cache::{CACHE_TTL_MAX_MS, CacheConfig, CacheTtlsMs};
pub use limits::Limits;
pub use mappings::MappingSource;
pub use market::{MarketConfig, MarketPlaces, MemberNumberLookup, SitooSettings, UndoPromotion};
pub use problem::{ConfigError, Place, Position, Problem};
pub use secrets::{CrmKeyDigest, Secret};
pub use voyado::VoyadoBudget;

use admin::AdminFile;
use cache::CacheFile;
use cluster::ClusterFile;
use limits::LimitsFile;
use market::MarketFile;
use problem::Problems;
use telemetry::TelemetryFile;
use voyado::VoyadoFile;

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// Health and metrics also on this address, if set (and the workbench only there).
    pub admin_listen: Option<SocketAddr>,
    /// `[admin]`: the workbench's token.
    pub admin: AdminConfig,
    pub mappings: MappingSource,
    /// Where `mappings` is written (the file, when it is left to its default): the error and
    /// route tables' problems are reported there.
    pub mappings_at: Place,
    /// How often the mappings directory is read for changes (its files' digest); zero: only
    /// on SIGHUP.
    pub mappings_poll: Duration,
    pub limits: Limits,
    pub cache: CacheConfig,
    pub voyado: VoyadoBudget,
    /// An OTLP/HTTP collector for the proxy's spans (`[telemetry] otlp_endpoint`, e.g.
    /// `http://collector:4318`); a build without the `otlp` feature refuses one.
    pub otlp_endpoint: Option<Url>,
    /// The Redis several replicas share (`[cluster]`); without it each replica stands alone, as
    /// the demo and a small shop run.
    pub cluster: Option<crate::cluster::ClusterConfig>,
    pub markets: Vec<MarketConfig>,
}

/// The file as written: each table in its own type, which checks it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    listen: Option<Spanned<String>>,
    admin_listen: Option<Spanned<String>>,
    mappings: Option<Spanned<String>>,
    mappings_poll_ms: Option<u64>,
    #[serde(default)]
    limits: LimitsFile,
    #[serde(default)]
    cache: CacheFile,
    #[serde(default)]
    voyado: VoyadoFile,
    #[serde(default)]
    telemetry: TelemetryFile,
    #[serde(default)]
    admin: AdminFile,
    cluster: Option<ClusterFile>,
    #[serde(default)]
    market: Vec<Spanned<MarketFile>>,
}

impl Config {
    /// Loads and validates a config file; mappings are relative to the file, `${ENV}` comes from
    /// the process environment.
    pub fn load(file: &Path) -> Result<Config, ConfigError> {
        Config::load_unchecked(file)?.checked()
    }

    /// Like [`Config::load`], but a config whose values have problems still comes back, with the
    /// problems beside it, so that `check` can look at its mappings too and report everything at
    /// once. Such a config is never served.
    pub fn load_unchecked(file: &Path) -> Result<(Config, Vec<Problem>), ConfigError> {
        let name = file.display().to_string();
        let text = std::fs::read_to_string(file)
            .map_err(|e| Place::whole(name.as_str()).problem(format!("cannot read: {e}")))?;
        let base = file.parent().unwrap_or(Path::new("."));
        Config::parse_unchecked(
            &text,
            &name,
            |dir| MappingSource::Dir(base.join(dir)),
            |var| std::env::var(var).ok(),
        )
    }

    /// Parses config text. `mappings` turns the `mappings` key into a source of profiles; `env`
    /// looks up `${NAME}` (tests pass their own instead of touching the process environment).
    pub fn parse(
        text: &str,
        name: &str,
        mappings: impl FnOnce(&str) -> MappingSource,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        Config::parse_unchecked(text, name, mappings, env)?.checked()
    }

    /// Parses config text; `Err` only when nothing usable could be read (syntax, a missing
    /// `${ENV}`, a wrong type, an unknown key), otherwise the config with its problems (see
    /// `load_unchecked`).
    pub fn parse_unchecked(
        text: &str,
        name: &str,
        mappings: impl FnOnce(&str) -> MappingSource,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<(Config, Vec<Problem>), ConfigError> {
        let mut problems = Problems::new(name, text);
        let Some(file) = read(text, &env, &mut problems) else {
            return Err(ConfigError::new(problems.into_vec()));
        };
        let listen = file
            .listen
            .as_ref()
            .and_then(|a| address("listen", a, &mut problems));
        let admin_listen = file
            .admin_listen
            .as_ref()
            .and_then(|a| address("admin_listen", a, &mut problems));
        let mappings_at = match &file.mappings {
            Some(dir) => problems.place("mappings", dir.span()),
            None => problems.absent("mappings"),
        };
        let cache = file.cache.global(&mut problems);
        let config = Config {
            listen: listen.unwrap_or(SocketAddr::from(([0, 0, 0, 0], 8080))),
            admin_listen,
            admin: file.admin.check(&mut problems),
            mappings: mappings(file.mappings.as_ref().map_or("mappings", |m| m.get_ref())),
            mappings_at,
            mappings_poll: Duration::from_millis(file.mappings_poll_ms.unwrap_or(1_000)),
            limits: file.limits.check(&mut problems),
            cache,
            voyado: file.voyado.check(&mut problems),
            otlp_endpoint: file.telemetry.otlp_endpoint(&mut problems),
            cluster: file.cluster.and_then(|c| c.check(&mut problems)),
            markets: market::markets(file.market, cache.ttls, &mut problems),
        };
        Ok((config, problems.into_vec()))
    }
}

/// The text as typed tables, `${ENV}` filled in; `None` when nothing usable could be read — every
/// syntax error, or every missing variable, or the first value of the wrong shape, is in
/// `problems`.
fn read(
    text: &str,
    env: &impl Fn(&str) -> Option<String>,
    problems: &mut Problems<'_>,
) -> Option<ConfigFile> {
    let (mut root, syntax) = DeTable::parse_recoverable(text);
    for error in &syntax {
        problems.toml(error);
    }
    if !problems.is_empty() {
        return None;
    }
    secrets::interpolate(root.get_mut(), "", env, problems);
    if !problems.is_empty() {
        return None;
    }
    ConfigFile::deserialize(toml::de::Deserializer::from(root))
        .map_err(|error| problems.toml(&error))
        .ok()
}

/// What `parse_unchecked` returns: usable only without problems.
trait Checked {
    fn checked(self) -> Result<Config, ConfigError>;
}

impl Checked for (Config, Vec<Problem>) {
    fn checked(self) -> Result<Config, ConfigError> {
        match self {
            (config, problems) if problems.is_empty() => Ok(config),
            (_, problems) => Err(ConfigError::new(problems)),
        }
    }
}

fn address(key: &str, value: &Spanned<String>, problems: &mut Problems<'_>) -> Option<SocketAddr> {
    let text = value.get_ref();
    text.parse()
        .map_err(|_| {
            problems.push(
                key,
                value.span(),
                format!("'{text}' is not an address:port"),
            )
        })
        .ok()
}

/// A count or bound that 0 would make useless: the value if it is given and above 0; a 0 is a
/// problem at `path`.
fn above_zero<T: Default + PartialEq>(
    path: &str,
    value: Option<Spanned<T>>,
    problems: &mut Problems<'_>,
) -> Option<T> {
    let value = value?;
    if *value.get_ref() == T::default() {
        problems.push(path, value.span(), "must be above 0");
        return None;
    }
    Some(value.into_inner())
}

/// An upstream's base URL: http(s) with a host, and nothing that metrics (which name a tenant by
/// its URL) or logs could leak — no user, password, query or fragment.
fn base_url(text: &str) -> Result<Url, &'static str> {
    match Url::parse(text) {
        Ok(url)
            if !url.username().is_empty()
                || url.password().is_some()
                || url.query().is_some()
                || url.fragment().is_some() =>
        {
            Err("must have no user, password, query or fragment")
        }
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => Ok(url),
        Ok(_) => Err("must be an http(s) URL with a host"),
        Err(_) => Err("is not a URL"),
    }
}

/// Stands in for a URL with a problem, so later checks still see the market.
fn placeholder_url() -> Url {
    Url::from_directory_path("/").expect("'/' is an absolute directory")
}

#[cfg(test)]
mod tests;
