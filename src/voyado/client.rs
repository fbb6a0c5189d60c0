//! The innermost Voyado layer: one HTTP exchange with one tenant, nothing else (the cache, the
//! breaker and the limiter wrap it in `voyado/mod.rs`).
//!
//! Every call carries `apikey`, `User-Agent: sitoo-voyado-proxy/<version>` and
//! `Content-Type: application/json` (Voyado answers 500 without it), has its own timeout, and is
//! logged and measured by endpoint template only. Answers larger than the configured cap are
//! refused unread.

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderValue, Method, header};
use serde_json::Value;
use tokio::time::Instant;
use url::Url;

use super::{Endpoint, TraceContext, VoyadoError};
use crate::telemetry::Metrics;
use crate::telemetry::events::voyado::{VoyadoAnswer, VoyadoCall};

/// A successful answer: the status (Voyado answers 200 or 201 on a create) and the JSON body
/// (`Null` when empty).
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

/// One Voyado call: the endpoint, its path segments and query, extra headers (e.g. `source` on
/// a create), the JSON body, and a timeout of its own where the market's usual one is too short
/// (a redeem).
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    pub endpoint: Endpoint,
    pub segments: &'a [&'a str],
    pub query: &'a [(&'a str, &'a str)],
    pub headers: &'a [(&'static str, &'a str)],
    pub body: Option<&'a Value>,
    pub timeout: Option<Duration>,
}

impl<'a> Call<'a> {
    /// A call with no extra headers and no body.
    pub fn new(
        endpoint: Endpoint,
        segments: &'a [&'a str],
        query: &'a [(&'a str, &'a str)],
    ) -> Call<'a> {
        Call {
            endpoint,
            segments,
            query,
            headers: &[],
            body: None,
            timeout: None,
        }
    }

    /// The same call with this body.
    pub fn with_body(self, body: Option<&'a Value>) -> Call<'a> {
        Call { body, ..self }
    }

    /// The same call with its own timeout.
    pub fn with_timeout(self, timeout: Duration) -> Call<'a> {
        Call {
            timeout: Some(timeout),
            ..self
        }
    }
}

#[derive(Clone)]
pub struct Transport {
    http: reqwest::Client,
    base: Url,
    headers: HeaderMap,
    timeout: Duration,
    reply_max_bytes: usize,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport").finish_non_exhaustive()
    }
}

/// One connection pool for all markets; rustls with the ring provider, no OpenSSL.
pub fn build_http_client() -> reqwest::Client {
    // Installing twice is harmless; the first provider stays.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .pool_idle_timeout(Duration::from_secs(60))
        .connect_timeout(Duration::from_secs(2))
        .build()
        .unwrap_or_default()
}

impl Transport {
    /// A client for the tenant at `base` (checked by the config: http(s) with a host). An API key
    /// that is no header value (also refused by the config) is sent as an empty one.
    pub fn new(
        http: reqwest::Client,
        base: Url,
        api_key: &str,
        timeout: Duration,
        reply_max_bytes: usize,
        metrics: Arc<Metrics>,
    ) -> Transport {
        let mut key = HeaderValue::from_str(api_key).unwrap_or(HeaderValue::from_static(""));
        key.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert("apikey", key);
        headers.insert(
            header::USER_AGENT,
            HeaderValue::from_static(concat!("sitoo-voyado-proxy/", env!("CARGO_PKG_VERSION"))),
        );
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        Transport {
            http,
            base,
            headers,
            timeout,
            reply_max_bytes,
            metrics,
        }
    }

    /// One exchange, carrying the caller's trace context when there is one.
    pub async fn send(
        &self,
        call: Call<'_>,
        trace: Option<&TraceContext>,
    ) -> Result<Reply, VoyadoError> {
        let Call {
            endpoint,
            segments,
            query,
            headers,
            body,
            timeout,
        } = call;
        let (method, _) = endpoint.route();
        let mut url = self.base.clone();
        url.set_path(&format!(
            "{}{}",
            self.base.path().trim_end_matches('/'),
            endpoint.path(segments)
        ));
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let mut request = self
            .http
            .request(method.clone(), url)
            .headers(self.headers.clone())
            .timeout(timeout.unwrap_or(self.timeout));
        for (name, value) in headers {
            if let Ok(v) = HeaderValue::from_str(value) {
                request = request.header(*name, v);
            }
        }
        for (name, value) in trace.into_iter().flat_map(TraceContext::headers) {
            request = request.header(name, value.clone());
        }
        if let Some(body) = body {
            request = request.body(serde_json::to_vec(body).unwrap_or_default());
        } else if method == Method::POST {
            request = request.body(Vec::new());
        }
        let started = Instant::now();
        let result = self.exchange(request).await;
        let answer = match &result {
            Ok(reply) => VoyadoAnswer::Answered {
                status: reply.status,
            },
            Err(error) => VoyadoAnswer::Failed {
                outcome: error.outcome(),
                error,
            },
        };
        self.metrics.emit(VoyadoCall {
            endpoint: endpoint.route().1,
            elapsed: started.elapsed(),
            answer,
        });
        result
    }

    async fn exchange(&self, request: reqwest::RequestBuilder) -> Result<Reply, VoyadoError> {
        // reqwest errors carry the URL (with its query: personal data); only their kind is kept.
        let kind = |e: reqwest::Error| {
            if e.is_timeout() {
                VoyadoError::Timeout
            } else {
                VoyadoError::Connect
            }
        };
        let mut response = request.send().await.map_err(kind)?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            // Passed on to the till and used to pause the key: at least 1 s, at most a minute.
            .map(|seconds| seconds.clamp(1, 60));
        // Read up to the cap and no further: a runaway answer never fills memory.
        if response
            .content_length()
            .is_some_and(|n| n > self.reply_max_bytes as u64)
        {
            return Err(VoyadoError::TooLarge);
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(kind)? {
            if bytes.len() + chunk.len() > self.reply_max_bytes {
                return Err(VoyadoError::TooLarge);
            }
            bytes.extend_from_slice(&chunk);
        }
        if !(200..300).contains(&status) {
            return Err(VoyadoError::from_body(status, &bytes, retry_after));
        }
        let body = if bytes.iter().all(u8::is_ascii_whitespace) {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).map_err(|_| VoyadoError::Malformed)?
        };
        Ok(Reply { status, body })
    }
}
