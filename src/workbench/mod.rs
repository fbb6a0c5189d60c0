//! The mapping workbench: a page and its JSON endpoints on the admin side, where an integration
//! team looks at what a market's mapping makes of a contact, an edit or an order — and why —
//! before a change reaches a till (`docs/WORKBENCH.md`).
//!
//! One HTML, one CSS and one JS file, embedded, at `/workbench/`; the endpoints under
//! `/workbench/api/` (`api.rs`) take and give JSON. They are served on `admin_listen`, or on
//! the main listener when there is none ([`Mount`], in front of the SPI stack, so no SPI layer
//! and no access-log line sees them). The endpoints need `Authorization: Bearer <[admin] token>`
//! (compared in constant time, as digests); without a token configured the workbench is off
//! (`404`), except in the demo on loopback, which opens it without one. Everything a caller
//! sends travels in POST bodies — a contact id never sits in a URL — and nothing it sends or
//! gets is logged. Contacts are only read, through the market's own client and budget, as the
//! card reads them: never a write, never a person lookup; a draft profile is compiled in memory
//! and neither written nor served.

mod api;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::future::Either;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tower::Service;

use crate::app::App;
use crate::config::AdminConfig;

/// Where the workbench lives; every path under it is the workbench's.
pub const PREFIX: &str = "/workbench";

/// The largest body an endpoint reads: a whole profile with its examples fits many times over.
const BODY_MAX_BYTES: usize = 4 << 20;

const PAGE: &str = include_str!("page/index.html");
const STYLE: &str = include_str!("page/workbench.css");
const SCRIPT: &str = include_str!("page/workbench.js");

/// Whether `path` is the workbench's.
pub fn is_path(path: &str) -> bool {
    path.strip_prefix(PREFIX)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Who may call the endpoints.
enum Access {
    /// Whoever sends the token whose SHA-256 digest this is.
    Token([u8; 32]),
    /// Anyone (the demo on loopback).
    Open,
}

impl Access {
    /// `None`: the workbench is off.
    fn of(admin: &AdminConfig) -> Option<Access> {
        match &admin.token {
            Some(token) => Some(Access::Token(Sha256::digest(token.expose()).into())),
            None if admin.open_without_token => Some(Access::Open),
            None => None,
        }
    }

    /// Whether the request carries the token. Digests are compared, in constant time, so
    /// neither the token's content nor its length shows in the time taken.
    fn admits(&self, headers: &http::HeaderMap) -> bool {
        let Access::Token(digest) = self else {
            return true;
        };
        let Some(sent) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
        else {
            return false;
        };
        let sent: [u8; 32] = Sha256::digest(sent.trim()).into();
        sent.ct_eq(digest).into()
    }
}

/// Whether the workbench is on at all (it has a token, or it is the demo's).
pub fn is_on(app: &App) -> bool {
    Access::of(app.admin()).is_some()
}

/// An answer of the workbench.
type Answer = Response<Full<Bytes>>;

fn answer(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Answer {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // What the page shows is personal data: no cache keeps it, and no other site frames it.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    response
}

/// A JSON answer.
fn json_answer(status: StatusCode, body: &Value) -> Answer {
    answer(
        status,
        "application/json",
        serde_json::to_vec(body).unwrap_or_default(),
    )
}

/// A refusal: `{"error": message}`, with the field it is about when there is one.
fn refusal(status: StatusCode, error: &str, field: Option<&str>) -> Answer {
    let mut body = json!({ "error": error });
    if let Some(field) = field {
        body["field"] = json!(field);
    }
    json_answer(status, &body)
}

/// Answers one request under [`PREFIX`].
pub async fn serve<B>(app: Arc<App>, request: Request<B>) -> Answer
where
    B: hyper::body::Body,
    B::Error: Into<tower::BoxError>,
{
    let Some(access) = Access::of(app.admin()) else {
        return refusal(
            StatusCode::NOT_FOUND,
            "the workbench is off: no [admin] token",
            None,
        );
    };
    let (head, body) = request.into_parts();
    let rest = head.uri.path().strip_prefix(PREFIX).unwrap_or("");
    let method = &head.method;
    if let Some(name) = rest.strip_prefix("/api/") {
        if !access.admits(&head.headers) {
            let mut refused = refusal(
                StatusCode::UNAUTHORIZED,
                "the workbench needs Authorization: Bearer <the [admin] token>",
                None,
            );
            refused.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"workbench\""),
            );
            return refused;
        }
        let Some(endpoint) = api::Endpoint::named(name) else {
            return refusal(StatusCode::NOT_FOUND, "no such endpoint", None);
        };
        if method != endpoint.method() {
            let mut refused = refusal(
                StatusCode::METHOD_NOT_ALLOWED,
                &format!("use {}", endpoint.method()),
                None,
            );
            if let Ok(allow) = HeaderValue::from_str(endpoint.method().as_str()) {
                refused.headers_mut().insert(header::ALLOW, allow);
            }
            return refused;
        }
        let input = match read_json(body, method).await {
            Ok(input) => input,
            Err(refused) => return refused,
        };
        return match endpoint.run(&app, input).await {
            Ok(output) => json_answer(StatusCode::OK, &output),
            Err(e) => refusal(e.status, &e.message, e.field),
        };
    }
    let (content_type, text) = match rest {
        "" => {
            let mut moved = answer(StatusCode::PERMANENT_REDIRECT, "text/plain", "");
            moved
                .headers_mut()
                .insert(header::LOCATION, HeaderValue::from_static("/workbench/"));
            return moved;
        }
        "/" | "/index.html" => ("text/html; charset=utf-8", PAGE),
        "/workbench.css" => ("text/css; charset=utf-8", STYLE),
        "/workbench.js" => ("text/javascript; charset=utf-8", SCRIPT),
        _ => return refusal(StatusCode::NOT_FOUND, "no such page", None),
    };
    match *method {
        Method::GET => answer(StatusCode::OK, content_type, text),
        Method::HEAD => answer(StatusCode::OK, content_type, Bytes::new()),
        _ => {
            let mut refused = refusal(StatusCode::METHOD_NOT_ALLOWED, "use GET", None);
            refused
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            refused
        }
    }
}

/// A POST's JSON body (a GET has none: `null`), at most [`BODY_MAX_BYTES`].
async fn read_json<B>(body: B, method: &Method) -> Result<Value, Answer>
where
    B: hyper::body::Body,
    B::Error: Into<tower::BoxError>,
{
    if method != Method::POST {
        return Ok(Value::Null);
    }
    let bytes = match Limited::new(body, BODY_MAX_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return Err(refusal(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("the body is cut off or over {} MiB", BODY_MAX_BYTES >> 20),
                None,
            ));
        }
    };
    // serde_json's message gives the line and column, never the text around them.
    serde_json::from_slice(&bytes).map_err(|e| {
        refusal(
            StatusCode::BAD_REQUEST,
            &format!("the body is not JSON: {e}"),
            None,
        )
    })
}

/// A listener's service with the workbench in front: its paths go to the workbench, everything
/// else to `S` (the SPI stack, or the admin routes) untouched.
#[derive(Clone)]
pub struct Mount<S> {
    inner: S,
    /// `None` when the workbench is not on this listener.
    app: Option<Arc<App>>,
}

impl<S> Mount<S> {
    /// On the main listener: the workbench is there when the admin routes have no listener of
    /// their own.
    pub fn main(app: Arc<App>, inner: S) -> Mount<S> {
        let here = app.admin_listen().is_none();
        Mount::at(here, app, inner)
    }

    /// On the admin listener (`admin_listen`).
    pub fn admin(app: Arc<App>, inner: S) -> Mount<S> {
        Mount::at(true, app, inner)
    }

    fn at(here: bool, app: Arc<App>, inner: S) -> Mount<S> {
        Mount {
            inner,
            app: (here && is_on(&app)).then_some(app),
        }
    }
}

impl<S, B> Service<Request<B>> for Mount<S>
where
    S: Service<Request<B>, Response = Answer, Error = Infallible>,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<tower::BoxError>,
{
    type Response = Answer;
    type Error = Infallible;
    type Future =
        Either<S::Future, Pin<Box<dyn Future<Output = Result<Answer, Infallible>> + Send>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        match &self.app {
            Some(app) if is_path(request.uri().path()) => {
                let app = app.clone();
                Either::Right(Box::pin(async move { Ok(serve(app, request).await) }))
            }
            _ => Either::Left(self.inner.call(request)),
        }
    }
}

#[cfg(test)]
mod tests;
