//! `[cache]` and a market's `cache`: how long Voyado answers are kept in memory (contract §6.2) and
//! how much memory they may take — as written ([`CacheFile`]) and as checked ([`CacheConfig`],
//! [`CacheTtlsMs`]). A market's TTLs override the global ones; the memory bound is global.

use serde::Deserialize;
use toml::Spanned;

use super::problem::Problems;

/// The longest a cache TTL may be: the record of a contact's last write outlives every entry.
pub const CACHE_TTL_MAX_MS: u64 = 3_600_000;

/// The global cache settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheConfig {
    /// Rendered cards and answers together stay under this, each weighed by what it takes on the
    /// heap (cards seven eighths, answers one eighth: `voyado::Caches::cards_share`).
    pub max_bytes: u64,
    /// The TTLs of markets that set none of their own.
    pub ttls: CacheTtlsMs,
}

impl Default for CacheConfig {
    fn default() -> CacheConfig {
        CacheConfig {
            max_bytes: 128 * 1024 * 1024,
            ttls: CacheTtlsMs::default(),
        }
    }
}

/// Time to live per kind of answer, in milliseconds; 0 turns that kind's caching off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheTtlsMs {
    /// Search key → contact id.
    pub key_to_id_ms: u64,
    /// A contact, and a member status.
    pub contact_ms: u64,
    /// Consent definitions.
    pub definitions_ms: u64,
    /// Promotions, available bonus checks and point balances.
    pub offers_ms: u64,
    /// "No such contact" (a search before a create leaves one; the create drops it).
    pub not_found_ms: u64,
}

impl Default for CacheTtlsMs {
    fn default() -> CacheTtlsMs {
        CacheTtlsMs {
            key_to_id_ms: 60_000,
            contact_ms: 30_000,
            definitions_ms: 600_000,
            offers_ms: 10_000,
            not_found_ms: 5_000,
        }
    }
}

/// `[cache]`, or a market's `cache`, as written; a key left out takes the value beneath it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CacheFile {
    max_bytes: Option<Spanned<u64>>,
    key_to_id_ms: Option<Spanned<u64>>,
    contact_ms: Option<Spanned<u64>>,
    definitions_ms: Option<Spanned<u64>>,
    offers_ms: Option<Spanned<u64>>,
    not_found_ms: Option<Spanned<u64>>,
}

impl CacheFile {
    /// The global `[cache]`: its TTLs over the defaults.
    pub(super) fn global(self, problems: &mut Problems<'_>) -> CacheConfig {
        let default = CacheConfig::default();
        CacheConfig {
            max_bytes: self
                .max_bytes
                .as_ref()
                .map_or(default.max_bytes, |m| *m.get_ref()),
            ttls: self.ttls("cache", default.ttls, problems),
        }
    }

    /// A market's `cache` (at `path`): its TTLs over the global ones. The memory is shared by all
    /// markets, so a market cannot set its own bound.
    pub(super) fn market(
        self,
        path: &str,
        global: CacheTtlsMs,
        problems: &mut Problems<'_>,
    ) -> CacheTtlsMs {
        if let Some(max_bytes) = &self.max_bytes {
            problems.push(
                format!("{path}.max_bytes"),
                max_bytes.span(),
                "is one bound for all markets: set it in [cache]",
            );
        }
        self.ttls(path, global, problems)
    }

    /// The TTLs written here over `base`; each longer than an hour is a problem.
    fn ttls(&self, path: &str, base: CacheTtlsMs, problems: &mut Problems<'_>) -> CacheTtlsMs {
        let mut ttl = |key: &str, value: &Option<Spanned<u64>>, base: u64| match value {
            Some(ms) if *ms.get_ref() > CACHE_TTL_MAX_MS => {
                problems.push(
                    format!("{path}.{key}"),
                    ms.span(),
                    format!("must be at most {CACHE_TTL_MAX_MS} (an hour)"),
                );
                base
            }
            Some(ms) => *ms.get_ref(),
            None => base,
        };
        CacheTtlsMs {
            key_to_id_ms: ttl("key_to_id_ms", &self.key_to_id_ms, base.key_to_id_ms),
            contact_ms: ttl("contact_ms", &self.contact_ms, base.contact_ms),
            definitions_ms: ttl("definitions_ms", &self.definitions_ms, base.definitions_ms),
            offers_ms: ttl("offers_ms", &self.offers_ms, base.offers_ms),
            not_found_ms: ttl("not_found_ms", &self.not_found_ms, base.not_found_ms),
        }
    }
}
