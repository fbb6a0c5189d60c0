//! What several replicas share, through Redis (contract §6.7, `docs/CLUSTER.md`): one Voyado
//! budget per API key (`budget`), the `Request-ID` slots of redeems (`redeem`), and the
//! notifications that make every replica drop what a write changed (`notify`).
//!
//! A [`Cluster`] is one handle on one Redis: a redis-rs `ConnectionManager` (one multiplexed
//! connection that reconnects by itself), the health flag (`health`), and the key names. Every
//! method is bounded by the configured timeout and answers [`Down`] rather than wait when Redis
//! is slow or gone, so the caller can use its local fallback; while Redis is known to be down a
//! method does not even try. Nothing here panics and nothing logs a key, a URL or customer data.
//!
//! This room knows Redis, the limiter's vocabulary (`Budget`, `Priority`, `Throttled`) and the
//! telemetry it reports its health to, and nothing of the server, the caches or the config
//! file: those use it.

mod budget;
mod config;
mod health;
mod notify;
mod redeem;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use redis::RedisError;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use config::{ClusterConfig, ClusterKey, Invalid, RedisUrl};
pub use notify::{Change, Notice, Part, Subscription};
pub use redeem::{Decision, Pending, SlotError, body_digest};

use health::Health;

use crate::telemetry::Metrics;

/// How long opening a connection may take (TCP, TLS and AUTH to a managed Redis take longer
/// than a command). Connections are opened in the background (the probe, the subscriber), so no
/// till waits this long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Why a call to Redis did not happen or did not finish: the caller uses its local fallback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Down {
    /// Redis is known to be down (the probe has not seen it back): not tried.
    #[error("redis is unreachable")]
    Unreachable,
    /// No answer within `timeout_ms`.
    #[error("redis did not answer in time")]
    Timeout,
    /// The connection failed or was lost during the call.
    #[error("the connection to redis failed")]
    Lost,
    /// Redis answered with an error (out of memory, a read-only replica, a script error).
    #[error("redis refused the command")]
    Refused,
}

/// The Redis address is not one redis-rs can use; `ClusterConfig::validate` says why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cluster.redis_url is not a usable Redis URL")]
pub struct InvalidUrl;

/// One handle on the shared Redis; cheap to clone. Dropping the last clone stops its background
/// probe.
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

struct Inner {
    link: Link,
    /// Opens the subscriber's own connection (a subscribed connection can do nothing else).
    client: redis::Client,
    keys: Keys,
    /// This handle's name in the notifications it publishes, so that it can skip its own.
    origin: Box<str>,
    _probe: Background,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("up", &self.is_up())
            .field("key_prefix", &self.inner.keys.prefix)
            .field("timeout", &self.inner.link.timeout)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// A handle on the Redis of `config`, whether or not it answers now: it is probed at once
    /// in the background, then watched, and joined whenever it answers; until the first probe
    /// has answered, the handle reads down (see `up_within`). Each change of state is an event
    /// in `metrics` (its log line and `svp_cluster_up`). Fails only on a URL redis-rs cannot
    /// use. Must be called within a tokio runtime.
    pub fn start(config: &ClusterConfig, metrics: Arc<Metrics>) -> Result<Cluster, InvalidUrl> {
        // `rediss://` goes through rustls on the process' provider, ring, as the Voyado client
        // does; installing it twice is harmless, the first stays.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = redis::Client::open(config.redis_url.expose()).map_err(|_| InvalidUrl)?;
        let timeout = config.timeout();
        let manager = ConnectionManager::new_lazy_with_config(
            client.clone(),
            ConnectionManagerConfig::new()
                .set_connection_timeout(Some(CONNECT_TIMEOUT))
                .set_response_timeout(Some(timeout))
                // One attempt per reconnect: the probe's backoff decides when to try again,
                // and a command never waits behind a series of attempts.
                .set_number_of_retries(0),
        )
        .map_err(|_| InvalidUrl)?;
        let link = Link {
            connection: manager,
            health: Arc::new(Health::new(metrics)),
            timeout,
        };
        let probe = Background(tokio::spawn(health::probe_forever(link.clone())));
        Ok(Cluster {
            inner: Arc::new(Inner {
                link,
                client,
                keys: Keys {
                    prefix: config.key_prefix.as_str().into(),
                },
                origin: uuid::Uuid::new_v4().simple().to_string().into(),
                _probe: probe,
            }),
        })
    }

    /// Waits until Redis reads up, at most `within`; whether it does. For a start that would
    /// rather share the budget from the first request on, and for tests.
    pub async fn up_within(&self, within: Duration) -> bool {
        let mut health = self.watch();
        tokio::time::timeout(within, health.wait_for(|up| *up))
            .await
            .is_ok_and(|up| up.is_ok())
    }

    /// Whether Redis answered lately: while it is not, every method answers `Down` at once.
    pub fn is_up(&self) -> bool {
        self.inner.link.health.is_up()
    }

    /// The health flag, to follow its changes (`svp_cluster_up`).
    pub fn watch(&self) -> watch::Receiver<bool> {
        self.inner.link.health.watch()
    }

    /// One call, bounded by the timeout; not tried while Redis is known to be down.
    async fn call<T, F>(&self, call: impl FnOnce(ConnectionManager) -> F) -> Result<T, Down>
    where
        F: Future<Output = Result<T, RedisError>>,
    {
        if !self.is_up() {
            return Err(Down::Unreachable);
        }
        self.inner.link.call(self.inner.link.timeout, call).await
    }
}

/// The connection, its health and its timeout: what a call and the background probe need.
#[derive(Clone)]
struct Link {
    connection: ConnectionManager,
    health: Arc<Health>,
    timeout: Duration,
}

impl Link {
    /// Runs `call` within `within`. A timeout or a broken connection sets the health down; an
    /// error Redis answered leaves it (Redis is there, and the probe would only set it up again).
    async fn call<T, F>(
        &self,
        within: Duration,
        call: impl FnOnce(ConnectionManager) -> F,
    ) -> Result<T, Down>
    where
        F: Future<Output = Result<T, RedisError>>,
    {
        match tokio::time::timeout(within, call(self.connection.clone())).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => {
                let down = classify(&error);
                if down != Down::Refused {
                    self.health.set_down(reason(&error));
                } else {
                    tracing::debug!(reason = reason(&error), "redis refused a command");
                }
                Err(down)
            }
            Err(_) => {
                self.health.set_down("timeout");
                Err(Down::Timeout)
            }
        }
    }

    /// Whether Redis answers a PING within the call timeout.
    async fn probe(&self) -> Result<(), Down> {
        // The first ping may wait for a connection to open, which may take longer than a
        // command...
        self.ping(CONNECT_TIMEOUT).await?;
        // ...so only a second one, on the open connection, says whether calls fit their timeout.
        self.ping(self.timeout).await
    }

    async fn ping(&self, within: Duration) -> Result<(), Down> {
        let pinged = self
            .call(within, |mut connection| async move {
                redis::cmd("PING").query_async::<()>(&mut connection).await
            })
            .await;
        if pinged == Err(Down::Refused) {
            // LOADING, NOAUTH and the like: Redis is there but not usable.
            self.health.set_down("refused");
        }
        pinged
    }
}

/// Whether an error means the connection is unusable (down) or Redis refused one command.
fn classify(error: &RedisError) -> Down {
    if error.is_timeout() {
        Down::Timeout
    } else if matches!(error.kind(), redis::ErrorKind::Server(_)) && !error.is_unrecoverable_error()
    {
        Down::Refused
    } else {
        Down::Lost
    }
}

/// A reason for the log, from a fixed list: redis-rs' own messages may quote the address.
fn reason(error: &RedisError) -> &'static str {
    if error.is_timeout() {
        "timeout"
    } else if error.is_connection_refusal() {
        "connection refused"
    } else if error.is_io_error() || error.is_connection_dropped() {
        "connection lost"
    } else if error.kind() == redis::ErrorKind::AuthenticationFailed {
        "authentication failed"
    } else if matches!(error.kind(), redis::ErrorKind::Server(_)) {
        "server error"
    } else {
        "client error"
    }
}

/// A task that ends with the handle that started it.
struct Background(JoinHandle<()>);

impl Drop for Background {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Key and channel names. A tenant appears only as a digest, in braces: a Redis Cluster would
/// keep all of one tenant's keys in one slot (a script may touch only keys of one slot), and no
/// key names a Voyado URL.
struct Keys {
    prefix: Box<str>,
}

impl Keys {
    /// `{prefix}{kind}:{digest}`, the digest of `parts` as a hash tag.
    fn key(&self, kind: &str, parts: &[&str]) -> String {
        format!("{}{kind}:{{{}}}", self.prefix, digest(parts))
    }

    fn channel(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }
}

/// 128 bits of SHA-256 over the parts, each ended by a NUL so that ("ab", "c") and ("a", "bc")
/// differ: as hex, short and free of any character that means something to Redis.
fn digest(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    hasher.finalize()[..16]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_carry_the_prefix_and_a_digest_never_the_identity() {
        let keys = Keys {
            prefix: "svp:".into(),
        };
        let identity = "https://shop.voyado.com#0011223344556677";
        let key = keys.key("budget", &[identity]);
        assert!(key.starts_with("svp:budget:{"), "{key}");
        assert!(key.ends_with('}'));
        assert_eq!(key.len(), "svp:budget:{}".len() + 32);
        assert!(!key.contains("voyado"));
        assert_eq!(key, keys.key("budget", &[identity]), "stable");
        assert_ne!(digest(&["ab", "c"]), digest(&["a", "bc"]));
        assert_eq!(keys.channel("writes"), "svp:writes");
    }

    #[tokio::test]
    async fn an_unusable_url_is_refused_without_quoting_it() {
        let config = ClusterConfig::new(RedisUrl::new("http://:hunter2@h"));
        let refused = Cluster::start(&config, Arc::new(Metrics::new())).unwrap_err();
        assert!(!refused.to_string().contains("hunter2"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_redis_that_is_not_there_is_down_and_calls_do_not_wait_for_it() {
        // A port nothing listens on: the first probe fails, the handle is still made.
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let config = ClusterConfig::new(RedisUrl::new(format!("redis://127.0.0.1:{port}")));
        let cluster = Cluster::start(&config, Arc::new(Metrics::new())).unwrap();
        assert!(!cluster.up_within(Duration::from_secs(5)).await);
        assert!(!cluster.is_up());
        let started = tokio::time::Instant::now();
        let called = cluster
            .call(|mut c| async move { redis::cmd("PING").query_async::<()>(&mut c).await })
            .await;
        assert_eq!(called, Err(Down::Unreachable));
        assert_eq!(started.elapsed(), Duration::ZERO);
        assert!(format!("{cluster:?}").contains("up: false"));
    }
}
