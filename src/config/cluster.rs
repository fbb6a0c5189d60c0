//! `[cluster]`: the Redis that several replicas share (contract §6.7, `docs/CLUSTER.md`) — as
//! written ([`ClusterFile`], each value with its place) and as checked (`cluster::ClusterConfig`,
//! whose checks are the cluster room's own; each problem is placed here at its key). The URL may
//! carry a password (`${ENV}`): it is read as a `RedisUrl`, which prints as `***`, and no problem
//! quotes it.

use serde::Deserialize;
use toml::Spanned;

use super::problem::Problems;
use crate::cluster::{ClusterConfig, ClusterKey, RedisUrl};

/// `[cluster]` as written; `redis_url` is required, the rest take their defaults.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ClusterFile {
    redis_url: Spanned<RedisUrl>,
    key_prefix: Option<Spanned<String>>,
    timeout_ms: Option<Spanned<u64>>,
}

impl ClusterFile {
    /// The table, or `None` with each of its problems placed at its key.
    pub(super) fn check(self, problems: &mut Problems<'_>) -> Option<ClusterConfig> {
        let mut config = ClusterConfig::new(self.redis_url.get_ref().clone());
        if let Some(prefix) = &self.key_prefix {
            config.key_prefix.clone_from(prefix.get_ref());
        }
        if let Some(timeout) = &self.timeout_ms {
            config.timeout_ms = *timeout.get_ref();
        }
        let invalid = config.validate();
        for problem in &invalid {
            let span = match problem.key {
                ClusterKey::RedisUrl => Some(self.redis_url.span()),
                ClusterKey::KeyPrefix => self.key_prefix.as_ref().map(Spanned::span),
                ClusterKey::TimeoutMs => self.timeout_ms.as_ref().map(Spanned::span),
            };
            let path = format!("cluster.{}", problem.key.name());
            match span {
                Some(span) => problems.push(path, span, problem.problem.as_str()),
                // A default that fails its own check: no place in the file to point at.
                None => problems.missing(path, problem.problem.as_str()),
            }
        }
        invalid.is_empty().then_some(config)
    }
}
