//! `[telemetry]`: where the proxy's own spans go, if anywhere (an OTLP/HTTP collector, only in a
//! build with the `otlp` feature).

use serde::Deserialize;
use toml::Spanned;
use url::Url;

use super::base_url;
use super::problem::Problems;

/// `[telemetry]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TelemetryFile {
    otlp_endpoint: Option<Spanned<String>>,
}

impl TelemetryFile {
    /// The collector's URL; a build without OTLP export refuses one rather than ignore it.
    pub(super) fn otlp_endpoint(self, problems: &mut Problems<'_>) -> Option<Url> {
        let endpoint = self.otlp_endpoint?;
        let at = |problems: &mut Problems<'_>, problem: &str| {
            problems.push("telemetry.otlp_endpoint", endpoint.span(), problem);
        };
        if !cfg!(feature = "otlp") {
            at(
                problems,
                "this build has no OTLP export (build with --features otlp)",
            );
            return None;
        }
        base_url(endpoint.get_ref())
            .map_err(|problem| at(problems, problem))
            .ok()
    }
}
