//! Logs leave through a background writer (`lines`) so a slow or blocked stderr (a full pipe, a
//! stalled log shipper) never holds up a till's request. JSON is for log pipelines, text for
//! people; colour codes only reach a terminal, never a file or a collector.

mod access;
mod lines;

pub use access::AccessLog;

/// The access line's writer, when this process's subscriber is the one `init` installed and
/// writes text without colour (`access.rs`); `None` in tests with their own subscriber, with
/// JSON, colour or OTLP export: there the line goes through `tracing`.
static ACCESS: OnceLock<AccessLog> = OnceLock::new();

/// Where the `request done` line is written by hand, when it is (see [`ACCESS`]).
pub fn access_log() -> Option<&'static AccessLog> {
    ACCESS.get()
}

use std::io::IsTerminal;
use std::sync::OnceLock;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl LogFormat {
    /// `--log-format` wins, else `LOG_FORMAT` (looked up through `env`, so tests never touch the
    /// process environment), else text. A value that is neither text nor json is an error naming
    /// where it came from, rather than a silent fallback the operator would not notice.
    pub fn choose(
        flag: Option<&str>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<LogFormat, String> {
        if let Some(value) = flag {
            return Self::parse(value)
                .ok_or_else(|| format!("--log-format must be text or json, not {value:?}"));
        }
        match env("LOG_FORMAT") {
            // `LOG_FORMAT=` is how compose and unit files often spell "not set".
            Some(value) if !value.is_empty() => Self::parse(&value)
                .ok_or_else(|| format!("LOG_FORMAT must be text or json, not {value:?}")),
            _ => Ok(LogFormat::Text),
        }
    }

    fn parse(value: &str) -> Option<LogFormat> {
        if value.eq_ignore_ascii_case("text") {
            Some(LogFormat::Text)
        } else if value.eq_ignore_ascii_case("json") {
            Some(LogFormat::Json)
        } else {
            None
        }
    }
}

/// What keeps logging (and span export) going; drop it last, at exit: dropping flushes the log
/// lines still buffered and the spans not yet exported.
pub struct Logging {
    _lines: Option<lines::LinesGuard>,
    #[cfg(feature = "otlp")]
    spans: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

#[cfg(feature = "otlp")]
impl Drop for Logging {
    fn drop(&mut self) {
        if let Some(provider) = self.spans.take()
            && let Err(e) = provider.shutdown()
        {
            eprintln!("could not flush the last spans: {e}");
        }
    }
}

/// Installs the global subscriber: filter from `RUST_LOG` (default `info`), lines to stderr through
/// a non-blocking writer, and — with the `otlp` feature and an endpoint — the spans exported over
/// OTLP/HTTP.
pub fn init(format: LogFormat, otlp_endpoint: Option<&url::Url>) -> Logging {
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;

    // Lossy: when the writer's queue is full, new lines are dropped rather than making the
    // request that logs them wait on stderr (`lines.rs`).
    let (writer, guard) = match lines::start(std::io::stderr()) {
        Ok((lines, guard)) => (lines, Some(guard)),
        // No thread for the writer (the process is out of them): lines are written where they
        // are made rather than not at all.
        Err(e) => {
            eprintln!("the log writer thread did not start ({e}); logging synchronously");
            (lines::Lines::direct(), None)
        }
    };
    // An unset, empty or wholly invalid RUST_LOG means info; a bad directive is reported on stderr
    // and skipped, so a typo in it does not stop the proxy from starting.
    let filter = EnvFilter::builder()
        .with_default_directive(LevelFilter::INFO.into())
        .from_env_lossy();
    let colour = format == LogFormat::Text && colour();
    // The access line by hand, for text off a terminal (what a container's logs are); known
    // before the subscriber takes the writer.
    let access = (format == LogFormat::Text && !colour).then(|| AccessLog::new(writer.clone()));
    let lines = tracing_subscriber::fmt::layer().with_writer(writer);
    let lines = match format {
        LogFormat::Text => lines.with_ansi(colour).boxed(),
        // One object per line with the event's fields at the top level, plus the current span,
        // which carries the request's id and route. The span list is left out: it would repeat
        // the same fields on every line. JSON is for machines, so no colour even on a terminal.
        LogFormat::Json => lines
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_ansi(false)
            .boxed(),
    };
    let registry = tracing_subscriber::registry().with(filter).with(lines);
    #[cfg(feature = "otlp")]
    let (registry, spans) = {
        let (layer, provider) = match otlp_endpoint.map(otlp::layer).transpose() {
            Ok(Some((layer, provider))) => (Some(layer), Some(provider)),
            Ok(None) => (None, None),
            Err(e) => {
                eprintln!("OTLP export not started: {e}");
                (None, None)
            }
        };
        (registry.with(layer), provider)
    };
    // Exported spans need the request's span made for every request, and in it the line goes
    // through `tracing` as it always did.
    #[cfg(feature = "otlp")]
    let access = access.filter(|_| spans.is_none());
    #[cfg(not(feature = "otlp"))]
    // The config refuses an endpoint in a build without the feature.
    let _ = otlp_endpoint;
    match registry.try_init() {
        Ok(()) => {
            if let Some(access) = access {
                let _ = ACCESS.set(access);
            }
        }
        // Only a second install fails (init called twice, or a test harness got there first); the
        // subscriber already in place keeps logging, so this is worth a line but not a crash.
        Err(e) => eprintln!("logging was already set up; keeping the existing subscriber: {e}"),
    }
    Logging {
        _lines: guard,
        #[cfg(feature = "otlp")]
        spans,
    }
}

/// The OpenTelemetry bridge: tracing's spans (the request span with its route, operation, status
/// and trace id, and what is inside it) exported in batches to an OTLP/HTTP collector.
#[cfg(feature = "otlp")]
mod otlp {
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_otlp::{Protocol, WithExportConfig};
    use opentelemetry_sdk::Resource;
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use tracing_opentelemetry::OpenTelemetryLayer;

    /// The layer over subscriber `S` (what the layers below it make), and the provider to shut
    /// down at exit.
    pub(super) fn layer<S>(
        endpoint: &url::Url,
    ) -> Result<
        (
            OpenTelemetryLayer<S, opentelemetry_sdk::trace::SdkTracer>,
            SdkTracerProvider,
        ),
        opentelemetry_otlp::ExporterBuildError,
    >
    where
        S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
    {
        // OTLP/HTTP takes spans at /v1/traces under the collector's base URL.
        let base = endpoint.as_str().trim_end_matches('/');
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(format!("{base}/v1/traces"))
            .build()?;
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(
                Resource::builder()
                    .with_service_name(env!("CARGO_PKG_NAME"))
                    .build(),
            )
            .build();
        let tracer = provider.tracer(env!("CARGO_PKG_NAME"));
        Ok((tracing_opentelemetry::layer().with_tracer(tracer), provider))
    }
}

/// Colour codes are noise in a file or a collector. `NO_COLOR` (no-color.org) turns them off on a
/// terminal too, as tracing-subscriber does by default; setting `with_ansi` would otherwise
/// override it.
fn colour() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Panics are logged through tracing (JSON-formatted, non-blocking like every other line), with
/// their location and only a literal message: a formatted panic message (an `unwrap` on an
/// error, a bad slice) could carry request data, so it is never printed.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()));
        let message = info
            .payload()
            .downcast_ref::<&'static str>()
            .copied()
            .unwrap_or("(formatted message not logged)");
        tracing::error!(location, message, "panic");
    }));
}

#[cfg(test)]
mod tests {
    use super::LogFormat;

    fn env(value: &'static str) -> impl Fn(&str) -> Option<String> {
        move |name| (name == "LOG_FORMAT").then(|| value.to_owned())
    }

    fn unset(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn flag_wins_over_env() {
        assert_eq!(
            LogFormat::choose(Some("json"), env("text")),
            Ok(LogFormat::Json)
        );
        assert_eq!(
            LogFormat::choose(Some("text"), env("json")),
            Ok(LogFormat::Text)
        );
    }

    #[test]
    fn env_is_used_without_a_flag() {
        assert_eq!(LogFormat::choose(None, env("json")), Ok(LogFormat::Json));
        assert_eq!(LogFormat::choose(None, env("JSON")), Ok(LogFormat::Json));
        assert_eq!(LogFormat::choose(None, env("text")), Ok(LogFormat::Text));
    }

    #[test]
    fn default_is_text() {
        assert_eq!(LogFormat::choose(None, unset), Ok(LogFormat::Text));
        assert_eq!(LogFormat::choose(None, env("")), Ok(LogFormat::Text));
    }

    #[test]
    fn unknown_value_is_an_error_naming_its_source() {
        let flag = LogFormat::choose(Some("xml"), env("json"));
        assert!(
            flag.as_ref()
                .is_err_and(|e| e.contains("--log-format") && e.contains("xml")),
            "{flag:?}"
        );
        let var = LogFormat::choose(None, env("yaml"));
        assert!(
            var.as_ref()
                .is_err_and(|e| e.contains("LOG_FORMAT") && e.contains("yaml")),
            "{var:?}"
        );
    }
}
