//! The Sitoo REST simulator: the one call the proxy makes to Sitoo — an order with its items,
//! payments and additional data, `GET /v2/accounts/{account}/sites/{eshop}/orders/{order}.json`
//! with Basic auth — seeded from `fixtures/sitoo.json`. Orders carry Sitoo's own state codes
//! (`orderstateid` 0 open, 10 closed, 20 cancelled, -1 abandoned); a fixture with any other is
//! refused. Tests can add orders, make the next answers fail, and count the calls.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use base64::Engine;
use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use parking_lot::Mutex;
use serde::Deserialize;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// The fixture shipped with the crate.
pub const SITOO_FIXTURE: &str = include_str!("../../fixtures/sitoo.json");

#[derive(Debug, Deserialize)]
struct Fixture {
    account_id: u64,
    api_user: String,
    api_password: String,
    orders: Vec<Value>,
}

#[derive(Default)]
struct State {
    account: u64,
    /// `Basic base64(user:password)`.
    authorization: String,
    /// By (eshop id, order id).
    orders: HashMap<(u64, u64), Value>,
    /// Answer this status to the next this many calls.
    failing: Option<(u16, usize)>,
    calls: usize,
}

/// A running Sitoo simulator; it stops when dropped.
pub struct SitooSimulator {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    _stop: oneshot::Sender<()>,
}

impl SitooSimulator {
    pub async fn start(addr: SocketAddr, fixture: &str) -> std::io::Result<SitooSimulator> {
        let fixture: Fixture = serde_json::from_str(fixture)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        let credentials = format!("{}:{}", fixture.api_user, fixture.api_password);
        let mut state = State {
            account: fixture.account_id,
            authorization: format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(credentials)
            ),
            ..State::default()
        };
        for order in fixture.orders {
            if !matches!(order["orderstateid"].as_i64(), Some(-1 | 0 | 10 | 20)) {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "order {}: orderstateid is not one of Sitoo's codes",
                        order["orderid"]
                    ),
                ));
            }
            state.orders.insert(key_of(&order), order);
        }
        let state = Arc::new(Mutex::new(state));
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = state.clone();
        let stop = super::serve_until_dropped(listener, move |request| {
            std::future::ready(serve(&shared, &request))
        });
        Ok(SitooSimulator {
            addr,
            state,
            _stop: stop,
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Adds (or replaces) an order.
    pub fn add_order(&self, order: Value) {
        self.state.lock().orders.insert(key_of(&order), order);
    }

    /// The next `times` calls answer `status`.
    pub fn fail_next(&self, status: u16, times: usize) {
        self.state.lock().failing = Some((status, times));
    }

    /// Calls answered so far.
    pub fn calls(&self) -> usize {
        self.state.lock().calls
    }
}

fn key_of(order: &Value) -> (u64, u64) {
    let number = |k: &str| order[k].as_u64().unwrap_or_default();
    (number("eshopid"), number("orderid"))
}

fn reply(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

fn serve(state: &Mutex<State>, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    let mut state = state.lock();
    state.calls += 1;
    if let Some((status, times)) = state.failing.as_mut() {
        let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        *times -= 1;
        if *times == 0 {
            state.failing = None;
        }
        return reply(status, &serde_json::json!({"statusmessage": "unavailable"}));
    }
    let authorized = request
        .headers()
        .get(header::AUTHORIZATION)
        .is_some_and(|v| v.as_bytes() == state.authorization.as_bytes());
    if !authorized {
        return reply(
            StatusCode::UNAUTHORIZED,
            &serde_json::json!({"statusmessage": "Unauthorized"}),
        );
    }
    let segments: Vec<&str> = request.uri().path().trim_matches('/').split('/').collect();
    let found = match segments.as_slice() {
        ["v2", "accounts", account, "sites", eshop, "orders", order]
            if account.parse() == Ok(state.account) =>
        {
            let order = order.strip_suffix(".json").and_then(|o| o.parse().ok());
            match (eshop.parse().ok(), order) {
                (Some(eshop), Some(order)) => state.orders.get(&(eshop, order)).cloned(),
                _ => None,
            }
        }
        _ => None,
    };
    match found {
        Some(order) => reply(StatusCode::OK, &order),
        None => reply(
            StatusCode::NOT_FOUND,
            &serde_json::json!({"statusmessage": "Not found"}),
        ),
    }
}
