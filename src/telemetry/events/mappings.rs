//! The mapping set's events: loaded at start, reloaded live, or a reload refused.

use std::error::Error;

use super::InternalEvent;
use crate::telemetry::Metrics;
use crate::telemetry::metrics::{DigestLabels, ResultLabels};

/// Gauges `svp_mappings_generation` and `svp_mappings_in_service{digest}` name the set now
/// serving; the previous set's series goes.
fn in_service(metrics: &Metrics, generation: u64, digest: &str) {
    metrics
        .mappings_generation
        .set(i64::try_from(generation).unwrap_or(i64::MAX));
    metrics.mappings_in_service.clear();
    metrics
        .mappings_in_service
        .get_or_create(&DigestLabels {
            digest: digest.to_owned(),
        })
        .set(1);
}

fn count_reload(metrics: &Metrics, result: &'static str) {
    metrics
        .mappings_reloads
        .get_or_create(&ResultLabels { result })
        .inc();
}

/// The mappings compiled at start are in service (generation 0). Writes `INFO mappings loaded`
/// with `generation` and `mappings` (the digest of the files); sets `svp_mappings_generation`
/// to 0 and `svp_mappings_in_service{digest}` to 1.
#[derive(Debug)]
pub struct MappingsLoaded<'a> {
    /// The SHA-256 of the mapping files, as `svp_mappings_in_service` labels it.
    pub digest: &'a str,
}

impl InternalEvent for MappingsLoaded<'_> {
    fn emit(self, metrics: &Metrics) {
        in_service(metrics, 0, self.digest);
        tracing::info!(generation = 0, mappings = %self.digest, "mappings loaded");
    }
}

/// A live reload was applied: a changed set of mapping files compiled and now serves. Writes
/// `INFO mappings reloaded` with `generation` and `mappings`; counts
/// `svp_mappings_reloads_total{result="applied"}` and sets the two in-service gauges.
#[derive(Debug)]
pub struct MappingsReloaded<'a> {
    pub generation: u64,
    pub digest: &'a str,
}

impl InternalEvent for MappingsReloaded<'_> {
    fn emit(self, metrics: &Metrics) {
        count_reload(metrics, "applied");
        in_service(metrics, self.generation, self.digest);
        tracing::info!(
            generation = self.generation,
            mappings = %self.digest,
            "mappings reloaded"
        );
    }
}

/// A live reload found changed mapping files that do not compile: the set in service stays.
/// Writes `ERROR mapping reload refused; the mappings in service stay` with `mappings` (the
/// refused files' digest) and `problems` (every problem, as `check` prints them); counts
/// `svp_mappings_reloads_total{result="refused"}`.
#[derive(Debug)]
pub struct MappingReloadRefused<'a> {
    pub digest: &'a str,
    pub problems: &'a dyn Error,
}

impl InternalEvent for MappingReloadRefused<'_> {
    fn emit(self, metrics: &Metrics) {
        count_reload(metrics, "refused");
        tracing::error!(
            mappings = %self.digest,
            problems = %self.problems,
            "mapping reload refused; the mappings in service stay"
        );
    }
}
