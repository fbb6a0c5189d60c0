//! The Sitoo side: the one REST call order events need — the order, with its items, payments and
//! additional data — made with the market's own Sitoo API credentials, its own timeout and its
//! own rate budget (a rush of events must not flood Sitoo any more than Voyado).

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use http::{HeaderValue, header};
use serde_json::Value;

use crate::config::SitooSettings;
use crate::limiter::{Budget, KeyLimiter, Priority};

/// Why the order could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SitooError {
    /// Sitoo has no such order (or not in this account): retrying will not help.
    #[error("no such order")]
    NotFound,
    /// Sitoo refused the credentials or the request: an operator must act.
    #[error("Sitoo refused the call ({0})")]
    Refused(u16),
    /// Unreachable, slow, overloaded, or an answer that is not an order: worth a retry.
    #[error("Sitoo is unavailable ({0})")]
    Unavailable(&'static str),
}

/// One market's Sitoo REST client.
#[derive(Debug, Clone)]
pub struct SitooClient {
    http: reqwest::Client,
    base: url::Url,
    account_id: u64,
    authorization: HeaderValue,
    timeout: Duration,
    limiter: Arc<KeyLimiter>,
}

/// Sitoo's REST API has no published rate; a till's order events rarely need more than a few a
/// second, so a modest budget keeps a burst of queued events from hammering it.
const BUDGET: Budget = Budget {
    rate_per_second: 10,
    burst: 10,
    replicas: 1,
    max_wait: Duration::from_secs(5),
    new_work_share: 1.0,
};

impl SitooClient {
    pub fn new(http: reqwest::Client, settings: &SitooSettings) -> SitooClient {
        let credentials = format!("{}:{}", settings.user, settings.password.expose());
        let encoded = base64::engine::general_purpose::STANDARD.encode(credentials);
        let mut authorization = HeaderValue::from_str(&format!("Basic {encoded}"))
            .unwrap_or(HeaderValue::from_static(""));
        authorization.set_sensitive(true);
        SitooClient {
            http,
            base: settings.url.clone(),
            account_id: settings.account_id,
            authorization,
            timeout: settings.timeout,
            limiter: Arc::new(KeyLimiter::new(BUDGET)),
        }
    }

    /// The account whose orders this client reads.
    pub fn account_id(&self) -> u64 {
        self.account_id
    }

    /// `GET {base}/v2/accounts/{account}/sites/{eshop}/orders/{order}.json`.
    pub async fn order(&self, eshop_id: u64, order_id: u64) -> Result<Value, SitooError> {
        let mut url = self.base.clone();
        url.set_path(&format!(
            "{}/v2/accounts/{}/sites/{eshop_id}/orders/{order_id}.json",
            self.base.path().trim_end_matches('/'),
            self.account_id
        ));
        self.limiter
            .acquire(Priority::UnderWay)
            .await
            .map_err(|_| SitooError::Unavailable("rate budget"))?;
        // reqwest's errors carry the URL; only their kind is kept.
        let response = self
            .http
            .get(url)
            .header(header::AUTHORIZATION, self.authorization.clone())
            .header(header::ACCEPT, "application/json")
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| {
                SitooError::Unavailable(if e.is_timeout() { "timeout" } else { "connect" })
            })?;
        let status = response.status().as_u16();
        match status {
            200..=299 => {}
            404 => return Err(SitooError::NotFound),
            408 | 429 | 500..=599 => return Err(SitooError::Unavailable("server error")),
            _ => return Err(SitooError::Refused(status)),
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|_| SitooError::Unavailable("connect"))?;
        match serde_json::from_slice(&bytes) {
            Ok(order @ Value::Object(_)) => Ok(order),
            _ => Err(SitooError::Unavailable("not an order")),
        }
    }
}
