//! The `[cluster]` table as plain data: where Redis is, how its keys are named, and how long one
//! call to it may take. `validate` names every problem at once; nothing here connects.
//!
//! The config file reads the table with each value's place (`config/cluster.rs`) and places each
//! of `validate`'s problems at its key. `${ENV}` interpolation happens on the raw TOML before it
//! is read, so a password comes in as
//! `redis_url = "rediss://:${REDIS_PASSWORD}@redis.internal:6380"`.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use url::Url;

/// Longest `timeout_ms` accepted: a Redis call must stay well inside the limiter's permit wait
/// (500 ms by default), or the shared budget would hold a till longer than the local one does.
const TIMEOUT_MAX_MS: u64 = 1_000;

/// Longest key prefix accepted: every key carries it, and Redis keys are kept short.
const PREFIX_MAX_LEN: usize = 64;

/// The `[cluster]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// `redis://` or `rediss://` (TLS), user and password included: a secret.
    pub redis_url: RedisUrl,
    /// What every key and channel name starts with, so that several deployments (or other
    /// programs) can share one Redis.
    #[serde(default = "default_key_prefix")]
    pub key_prefix: String,
    /// How long one Redis call may take before it counts as failed and the caller falls back.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

/// A Redis URL: it may carry a password, so it prints as `***` and is never logged.
///
/// Its own type rather than `config::Secret`, so that the config module can hold a
/// `ClusterConfig` without the two rooms importing each other.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct RedisUrl(String);

impl RedisUrl {
    pub fn new(url: impl Into<String>) -> RedisUrl {
        RedisUrl(url.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// `svp:` keeps the proxy's keys apart from anything else in a shared Redis.
fn default_key_prefix() -> String {
    "svp:".into()
}

/// 50 ms: Redis answers in well under a millisecond on the same network and in a few across
/// zones of a managed service, so 50 ms is a wide margin over a healthy round trip, while a
/// stalled Redis costs a request at most a tenth of the limiter's default 500 ms permit wait
/// before it falls back to this replica's own budget.
fn default_timeout_ms() -> u64 {
    50
}

impl ClusterConfig {
    /// A table with the defaults for everything but the URL.
    pub fn new(redis_url: RedisUrl) -> ClusterConfig {
        ClusterConfig {
            redis_url,
            key_prefix: default_key_prefix(),
            timeout_ms: default_timeout_ms(),
        }
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// Every problem, each with its key, so that the config file can place it there (it prints
    /// as `cluster.redis_url: ...`); empty when the table is good. Never repeats the URL: it may
    /// hold a password.
    pub fn validate(&self) -> Vec<Invalid> {
        let mut problems = Vec::new();
        if let Err(problem) = check_url(self.redis_url.expose()) {
            problems.push(Invalid::new(ClusterKey::RedisUrl, problem));
        }
        if let Err(problem) = check_prefix(&self.key_prefix) {
            problems.push(Invalid::new(ClusterKey::KeyPrefix, problem));
        }
        if !(1..=TIMEOUT_MAX_MS).contains(&self.timeout_ms) {
            problems.push(Invalid::new(
                ClusterKey::TimeoutMs,
                format!(
                    "must be from 1 to {TIMEOUT_MAX_MS} (a Redis call must not hold a till longer \
                     than the limiter's permit wait)"
                ),
            ));
        }
        problems
    }
}

/// A key of the `[cluster]` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterKey {
    RedisUrl,
    KeyPrefix,
    TimeoutMs,
}

impl ClusterKey {
    /// The key as written in the table.
    pub fn name(self) -> &'static str {
        match self {
            ClusterKey::RedisUrl => "redis_url",
            ClusterKey::KeyPrefix => "key_prefix",
            ClusterKey::TimeoutMs => "timeout_ms",
        }
    }
}

/// One problem of the table: the key it is about and what is wrong, never the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub key: ClusterKey,
    pub problem: String,
}

impl Invalid {
    fn new(key: ClusterKey, problem: impl Into<String>) -> Invalid {
        Invalid {
            key,
            problem: problem.into(),
        }
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cluster.{}: {}", self.key.name(), self.problem)
    }
}

fn check_url(text: &str) -> Result<(), &'static str> {
    let url = Url::parse(text).map_err(|_| "is not a URL (redis://host:port or rediss://...)")?;
    if !matches!(url.scheme(), "redis" | "rediss") {
        return Err("must start with redis:// or rediss:// (TLS)");
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("has no host");
    }
    // redis-rs reads the rest (database number, user, `#insecure`); its own complaint would
    // quote nothing of the URL either, but ours says what to fix.
    redis::Client::open(text)
        .map(drop)
        .map_err(|_| "is not a Redis URL redis-rs accepts (check the database number)")
}

fn check_prefix(prefix: &str) -> Result<(), &'static str> {
    if prefix.len() > PREFIX_MAX_LEN {
        return Err("is longer than 64 characters");
    }
    // Braces would change which hash slot a key falls in (our keys carry their own hash tag),
    // and whitespace or control characters only make keys hard to type in redis-cli.
    if prefix
        .chars()
        .any(|c| c == '{' || c == '}' || c.is_whitespace() || c.is_control())
    {
        return Err("must not contain braces, spaces or control characters");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> Result<ClusterConfig, toml::de::Error> {
        toml::from_str(text)
    }

    #[test]
    fn defaults_fill_everything_but_the_url() {
        let config = table(r#"redis_url = "redis://127.0.0.1:6379""#).unwrap();
        assert_eq!(config.key_prefix, "svp:");
        assert_eq!(config.timeout(), Duration::from_millis(50));
        assert_eq!(config.validate(), Vec::<Invalid>::new());
        assert!(table("key_prefix = \"x:\"").is_err(), "the URL is required");
        assert!(
            table("redis_url = \"redis://h\"\nreplicas = 2").is_err(),
            "unknown keys are refused"
        );
    }

    #[test]
    fn every_problem_is_named_at_once_and_the_url_never_repeated() {
        let config = ClusterConfig {
            redis_url: RedisUrl::new("http://:hunter2@cache.internal:6379"),
            key_prefix: "svp {x}".into(),
            timeout_ms: 0,
        };
        let problems: Vec<String> = config.validate().iter().map(Invalid::to_string).collect();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].starts_with("cluster.redis_url: must start with redis://"));
        assert!(problems[1].starts_with("cluster.key_prefix: "));
        assert!(problems[2].starts_with("cluster.timeout_ms: must be from 1 to 1000"));
        for problem in &problems {
            assert!(!problem.contains("hunter2") && !problem.contains("cache.internal"));
        }
        let keys: Vec<ClusterKey> = config.validate().iter().map(|i| i.key).collect();
        assert_eq!(
            keys,
            [
                ClusterKey::RedisUrl,
                ClusterKey::KeyPrefix,
                ClusterKey::TimeoutMs
            ]
        );
        assert_eq!(format!("{config:?}").matches("hunter2").count(), 0);
    }

    #[test]
    fn urls_redis_rs_would_refuse_are_refused() {
        for (url, problem) in [
            ("not a url", "is not a URL"),
            ("redis://", "has no host"),
            ("redis://h:6379/db", "is not a Redis URL"),
        ] {
            let config = ClusterConfig::new(RedisUrl::new(url));
            let problems = config.validate();
            assert_eq!(problems.len(), 1, "{url}: {problems:?}");
            assert!(problems[0].problem.contains(problem), "{url}: {problems:?}");
        }
        for url in [
            "redis://127.0.0.1:6379/2",
            "rediss://user:p%40ss@redis.example:6380",
            "rediss://redis.example:6380/#insecure",
        ] {
            assert_eq!(
                ClusterConfig::new(RedisUrl::new(url)).validate(),
                Vec::<Invalid>::new(),
                "{url}"
            );
        }
    }
}
