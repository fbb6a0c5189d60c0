//! The inbound side: hyper connections, the tower stack and the life of one SPI request.
//!
//! Layers, outside in: `Authorization` marked sensitive, panics caught as a bare 500 envelope, then
//! [`App::handle`]: request id → tracing span (route template, tenant, market, store, register —
//! never the URI or personal data) → route table → Basic auth per market in constant time → body
//! (64 KiB) → the operation under the request deadline → the one error→envelope path.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use serde_json::Value;
use subtle::{Choice, ConstantTimeEq};
use tokio::net::TcpListener;
use tokio::time::Instant;
use tower::ServiceBuilder;
use tower_http::catch_panic::{CatchPanicLayer, ResponseForPanic};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tracing::Instrument;
use tracing::field::Empty;

use crate::config::{Config, CrmKeyDigest, Market};
use crate::metrics;
use crate::ops::{self, OpRequest};
use crate::spi::error::{BODY_TOO_LARGE, INTERNAL, METHOD_NOT_ALLOWED, NOT_FOUND, UNAUTHORIZED};
use crate::spi::routes::{Matched, RouteError};
use crate::spi::{ErrorTable, ProxyError};

/// The largest request body the SPI accepts.
pub const BODY_LIMIT: usize = 64 * 1024;
const REQUEST_ID: &str = "request-id";

pub struct App {
    config: Config,
    /// Compared against when the tenant or market is unknown, so timing reveals nothing.
    decoy_key: CrmKeyDigest,
}

impl App {
    pub fn new(config: Config) -> Arc<App> {
        // The first phone parse loads the metadata (about a second in a debug build): not on a
        // cashier's request.
        crate::spi::input::warm_up_phone_metadata();
        Arc::new(App {
            config,
            decoy_key: CrmKeyDigest::of(&uuid::Uuid::new_v4().to_string()),
        })
    }

    /// One SPI request, start to end. Never fails: every error becomes an envelope.
    pub async fn handle(self: Arc<Self>, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let started = Instant::now();
        let request_id = request_id(request.headers());
        let path = request.uri().path().to_owned();
        match (request.method(), path.as_str()) {
            (&Method::GET, "/healthz" | "/readyz") => return plain("ok\n".into()),
            (&Method::GET, "/metrics") => return plain(metrics::render()),
            _ => {}
        }
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let (tenant, market_id, rest) = match segments.as_slice() {
            [tenant, market, rest @ ..] if !rest.is_empty() => (*tenant, *market, rest),
            _ => ("", "", &[][..]),
        };
        let route = self.config.routes.find(request.method(), rest);
        let (operation, template) = match &route {
            Ok(m) => (m.operation.name(), m.template),
            Err(_) => ("unknown", ""),
        };
        let store_id = header_text(request.headers(), "store-id");
        let found = self
            .config
            .markets
            .iter()
            .find(|m| m.tenant == tenant && m.market == market_id);
        // Path segments are the caller's text: only a configured tenant and market are logged.
        let (tenant_field, market_field) = match found {
            Some(_) => (tenant, market_id),
            None => ("unknown", "unknown"),
        };
        let span = tracing::info_span!(
            "request",
            request_id = %request_id,
            tenant = tenant_field,
            market = market_field,
            operation,
            route = template,
            store_id = store_id.as_deref(),
            register_id = header_text(request.headers(), "register-id").as_deref(),
            status = Empty,
            latency_ms = Empty,
        );
        let (result, market) = self
            .dispatch(route, found, store_id, request)
            .instrument(span.clone())
            .await;
        let table = market.as_ref().map_or(&self.config.errors, |m| &m.errors);
        let _entered = span.enter();
        let response = respond(result, table, &request_id);
        let status = response.status().as_u16();
        let latency_ms = started.elapsed().as_millis() as u64;
        span.record("status", status);
        span.record("latency_ms", latency_ms);
        metrics::request(operation, status);
        tracing::info!(status, latency_ms, "request done");
        response
    }

    /// Route, authenticate, read the body and run the operation under the request deadline.
    /// Returns the market too once known: its error table shapes the answer.
    async fn dispatch(
        &self,
        route: Result<Matched<'_>, RouteError>,
        found: Option<&Arc<Market>>,
        store_id: Option<String>,
        request: Request<Incoming>,
    ) -> (Result<Value, ProxyError>, Option<Arc<Market>>) {
        let matched = match route {
            Ok(m) => m,
            Err(RouteError::NotFound) => {
                return (Err(ProxyError::new(NOT_FOUND, "no such path")), None);
            }
            Err(RouteError::MethodNotAllowed(allow)) => {
                let mut e = ProxyError::new(
                    METHOD_NOT_ALLOWED,
                    format!("method not allowed; use {allow}"),
                );
                e.allow = Some(allow);
                return (Err(e), None);
            }
        };
        let market = match self.authenticate(found, request.headers()) {
            Ok(m) => m,
            Err(e) => return (Err(e), None),
        };
        let result = run_operation(matched, market.clone(), store_id, request).await;
        (result, Some(market))
    }

    /// Basic auth: the password is the market's CRM API key (any user name). An unknown tenant or
    /// market answers exactly like a wrong key; only the log says which it was.
    fn authenticate(
        &self,
        found: Option<&Arc<Market>>,
        headers: &HeaderMap,
    ) -> Result<Arc<Market>, ProxyError> {
        let password = basic_password(headers);
        let offered = CrmKeyDigest::of(password.as_deref().unwrap_or(""));
        let keys = found.map_or(std::slice::from_ref(&self.decoy_key), |m| &m.crm_keys[..]);
        let mut matched = Choice::from(0);
        for key in keys {
            matched |= key.bytes().ct_eq(offered.bytes());
        }
        let refuse = |why: &str| {
            tracing::info!(why, "authentication refused");
            Err(ProxyError::new(UNAUTHORIZED, "authentication failed"))
        };
        match (found, password.is_some(), bool::from(matched)) {
            (None, _, _) => refuse("unknown tenant or market"),
            (Some(_), false, _) => refuse("no Basic credentials"),
            (Some(_), true, false) => refuse("wrong key"),
            (Some(m), true, true) => Ok(m.clone()),
        }
    }
}

async fn run_operation(
    matched: Matched<'_>,
    market: Arc<Market>,
    store_id: Option<String>,
    request: Request<Incoming>,
) -> Result<Value, ProxyError> {
    let operation = matched.operation;
    let query = request
        .uri()
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let body = if operation.takes_body() {
        read_body(request, operation.body_optional()).await?
    } else {
        None
    };
    let op_request = OpRequest {
        query,
        body,
        customer_id: matched.param.map(|(name, value)| (name.to_owned(), value)),
        store_id,
    };
    let deadline = market.request_timeout;
    let work = ops::run(operation, market, op_request).in_current_span();
    if operation.is_write() {
        // The write sequence owns its task: the deadline stops the waiting only.
        match tokio::time::timeout(deadline, tokio::spawn(work)).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(ProxyError::internal()),
            Err(_) => Err(ProxyError::timeout()),
        }
    } else {
        tokio::time::timeout(deadline, work)
            .await
            .unwrap_or_else(|_| Err(ProxyError::timeout()))
    }
}

/// `Request-ID` if it is sane (`[A-Za-z0-9._-]{1,128}`), otherwise a new one.
fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            (1..=128).contains(&v.len())
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        })
        .map_or_else(|| uuid::Uuid::new_v4().simple().to_string(), str::to_owned)
}

/// Sitoo URL-encodes the optional headers' values (UTF-8).
fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    let raw = headers.get(name)?.to_str().ok()?;
    let text = percent_encoding::percent_decode_str(raw)
        .decode_utf8_lossy()
        .trim()
        .to_owned();
    (!text.is_empty()).then_some(text)
}

fn basic_password(headers: &HeaderMap) -> Option<String> {
    use base64::Engine;
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (_, password) = decoded.split_once(':')?;
    (!password.is_empty()).then(|| password.to_owned())
}

async fn read_body(
    request: Request<Incoming>,
    optional: bool,
) -> Result<Option<Value>, ProxyError> {
    let too_large = || ProxyError::new(BODY_TOO_LARGE, "body is larger than 64 KiB");
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > BODY_LIMIT as u64) {
        return Err(too_large());
    }
    let bytes = Limited::new(request.into_body(), BODY_LIMIT)
        .collect()
        .await
        .map_err(|e| {
            if e.downcast_ref::<LengthLimitError>().is_some() {
                too_large()
            } else {
                ProxyError::field("body", "could not be read")
            }
        })?
        .to_bytes();
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return if optional {
            Ok(None)
        } else {
            Err(ProxyError::field("body", "is required"))
        };
    }
    // serde_json's message gives line and column only, never the input.
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| ProxyError::field("body", &format!("is not valid JSON ({e})")))
}

fn respond(
    result: Result<Value, ProxyError>,
    table: &ErrorTable,
    request_id: &str,
) -> Response<Full<Bytes>> {
    let (status, body, error) = match result {
        Ok(value) => (200, serde_json::to_vec(&value).unwrap_or_default(), None),
        Err(error) => {
            if error.reason == INTERNAL {
                tracing::error!(%error, "internal error");
            }
            let (status, body) = table.respond(&error, request_id);
            (status, body, Some(error))
        }
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(v) = HeaderValue::from_str(request_id) {
        headers.insert(REQUEST_ID, v);
    }
    if let Some(error) = error {
        if status == 401 {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"sitoo-voyado-proxy\""),
            );
        }
        if let Some(allow) = error.allow.and_then(|a| HeaderValue::from_str(&a).ok()) {
            headers.insert(header::ALLOW, allow);
        }
        if let Some(seconds) = error.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
    }
    response
}

fn plain(text: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(text)));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    response
}

/// A panic is a bug: the `internal` envelope, never the panic message or a stack.
#[derive(Clone)]
struct PanicAnswer(Arc<App>);

impl ResponseForPanic for PanicAnswer {
    type ResponseBody = Full<Bytes>;

    fn response_for_panic(
        &mut self,
        _: Box<dyn std::any::Any + Send + 'static>,
    ) -> Response<Full<Bytes>> {
        tracing::error!("a request panicked");
        respond(Err(ProxyError::internal()), &self.0.config.errors, "")
    }
}

/// Accepts connections until `shutdown` resolves, then drains in-flight requests (at most 20 s).
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10));
    let service = ServiceBuilder::new()
        .layer(SetSensitiveRequestHeadersLayer::new([
            header::AUTHORIZATION,
        ]))
        .layer(CatchPanicLayer::custom(PanicAnswer(app.clone())))
        .service_fn(move |request: Request<Incoming>| {
            let app = app.clone();
            async move { Ok::<_, Infallible>(app.handle(request).await) }
        });
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(%e, "accept failed");
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let connection = builder.serve_connection(
                    TokioIo::new(stream),
                    TowerToHyperService::new(service.clone()),
                );
                let watched = graceful.watch(connection);
                tokio::spawn(async move {
                    let _ = watched.await;
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(Duration::from_secs(20), graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after 20 s; closing");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_is_a_bare_internal_envelope() {
        use tower::ServiceExt;
        let config = crate::config::Config::parse(
            "[[market]]\ntenant = \"t\"\nmarket = \"m\"\ncrm_api_keys = [\"k\"]\n\
             voyado_url = \"http://127.0.0.1:9\"\nvoyado_api_key = \"k\"\ndefault_country = \"SE\"\n",
            "test",
            |_| crate::config::MappingSource::BuiltIn,
            crate::voyado::build_http_client(),
        )
        .unwrap();
        let service = ServiceBuilder::new()
            .layer(CatchPanicLayer::custom(PanicAnswer(App::new(config))))
            .service_fn(|_: Request<()>| async {
                panic!("secret panic text");
                #[allow(unreachable_code)]
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
            });
        let response = service.oneshot(Request::new(())).await.unwrap();
        assert_eq!(response.status(), 500);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error_data"]["reason"], "internal");
        assert_eq!(body["error_code"], "other");
        assert!(!body.to_string().contains("secret panic text"));
    }

    #[test]
    fn request_ids_are_echoed_only_when_sane() {
        let mut h = HeaderMap::new();
        h.insert(REQUEST_ID, HeaderValue::from_static("abc-1.2_3"));
        assert_eq!(request_id(&h), "abc-1.2_3");
        h.insert(REQUEST_ID, HeaderValue::from_static("a b"));
        assert_ne!(request_id(&h), "a b");
    }

    #[test]
    fn basic_credentials_are_decoded() {
        let mut h = HeaderMap::new();
        // "pos:demo-key"
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic cG9zOmRlbW8ta2V5"),
        );
        assert_eq!(basic_password(&h).as_deref(), Some("demo-key"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic !!!!"),
        );
        assert_eq!(basic_password(&h), None);
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer cG9zOmRlbW8ta2V5"),
        );
        assert_eq!(basic_password(&h), None);
    }

    #[test]
    fn optional_headers_are_url_decoded() {
        let mut h = HeaderMap::new();
        h.insert("store-id", HeaderValue::from_static("store%20200"));
        assert_eq!(header_text(&h, "store-id").as_deref(), Some("store 200"));
    }
}
