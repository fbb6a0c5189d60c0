//! The built-in Voyado Engage simulator: an in-memory HTTP server with every Voyado endpoint the
//! proxy calls, Voyado's status and error codes, and Voyado-like validation as Voyado's documents
//! describe it (not as the proxy assumes: v2 `updateContactType` to `Member` is refused, only a
//! preferences call approves, lists page at 100, redeemed promotions are not listed). The demo,
//! the tests and the benches run the proxy against it over a real socket.
//!
//! Each tenant's data sits behind its own API key (seeded from `fixtures/voyado.json`). Receipts
//! are accepted, then booked by an import as Voyado's batches do (`import_receipts`). Tests can
//! count writes, read the request log (with each call's arrival time, on tokio's clock), set a
//! latency per endpoint, and inject faults (an error status, a 429 with or without `Retry-After`,
//! a delay, a write whose answer never comes, a redeem Voyado gives up on that lands later).
//! Faults matching the same request are used in the order they were injected, so a failure
//! sequence is a list of faults.

mod handlers;
mod sitoo;

pub use sitoo::{SITOO_FIXTURE, SitooSimulator};

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use serde::Deserialize;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// The fixture shipped with the crate.
pub const FIXTURE: &str = include_str!("../../fixtures/voyado.json");

#[derive(Debug, Deserialize)]
struct FixtureFile {
    tenants: Vec<TenantFixture>,
}

#[derive(Debug, Deserialize)]
struct TenantFixture {
    api_key: String,
    contact_types: Vec<String>,
    next_member_number: u64,
    contacts: Vec<Value>,
    consents: Vec<Value>,
    persons: Vec<Value>,
}

/// One Voyado tenant's data.
#[derive(Debug, Default)]
pub(crate) struct Tenant {
    contact_types: Vec<String>,
    next_member_number: u64,
    contacts: Vec<Value>,
    promotions: HashMap<String, Vec<Value>>,
    bonus_checks: HashMap<String, Vec<Value>>,
    reactivations: HashMap<String, u32>,
    points: HashMap<String, Value>,
    statuses: HashMap<String, Value>,
    transactions: HashMap<String, Vec<Value>>,
    consents: Vec<Value>,
    persons: Vec<Value>,
    /// Receipts accepted (`POST /api/v2/receipts`) and not yet imported.
    pending_receipts: Vec<Value>,
    /// Receipts booked on a contact by an import, in arrival order.
    receipts: Vec<Value>,
    /// Receipts an import found no contact for.
    unmatched_receipts: Vec<Value>,
    created: usize,
}

impl Tenant {
    fn seed(fixture: TenantFixture) -> Tenant {
        let mut tenant = Tenant {
            contact_types: fixture.contact_types,
            next_member_number: fixture.next_member_number,
            consents: fixture.consents,
            persons: fixture.persons,
            ..Tenant::default()
        };
        for mut contact in fixture.contacts {
            let id = contact["id"].as_str().unwrap_or_default().to_owned();
            let Some(object) = contact.as_object_mut() else {
                continue;
            };
            let mut take = |key: &str| object.remove(key);
            if let Some(Value::Array(list)) = take("_promotions") {
                tenant.promotions.insert(id.clone(), list);
            }
            if let Some(Value::Array(list)) = take("_bonus_checks") {
                tenant.bonus_checks.insert(id.clone(), list);
            }
            if let Some(points) = take("_points") {
                tenant.points.insert(id.clone(), points);
            }
            if let Some(Value::Array(list)) = take("_transactions") {
                tenant.transactions.insert(id.clone(), list);
            }
            if let Some(status) = take("_status")
                && let Some(n) = contact
                    .pointer("/attributes/memberNumber")
                    .and_then(Value::as_str)
            {
                tenant.statuses.insert(n.to_owned(), status);
            }
            tenant.contacts.push(contact);
        }
        tenant
    }
}

/// What a fault does to the next matching request(s).
#[derive(Debug, Clone)]
pub enum FaultAction {
    /// Answer this status with this Voyado error code (or none); 429 and 503 carry
    /// `Retry-After: 2`.
    Status(u16, Option<&'static str>),
    /// Wait, then handle the request normally.
    Delay(Duration),
    /// Handle the request (a write takes effect), then never answer in time.
    ApplyThenHang(Duration),
    /// Answer 200 with a body that is not JSON.
    Garbage,
    /// Answer this status with this raw JSON body.
    Answer(u16, &'static str),
    /// Answer `429 TooManyRequests`, with `Retry-After` in seconds when given.
    RateLimited(Option<u64>),
    /// Answer `504 GatewayTimeout` at once, as Voyado does when it stops waiting for a redeem,
    /// and let the write land this much later all the same.
    GiveUpThenLand(Duration),
}

#[derive(Debug, Clone)]
pub struct Fault {
    pub method: Method,
    /// The fault applies to paths that contain this text.
    pub path_contains: &'static str,
    pub action: FaultAction,
    /// How many requests it applies to.
    pub times: usize,
}

/// One request as the simulator saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    pub path: String,
    pub query: String,
    pub headers: http::HeaderMap,
    pub body: Value,
    /// When the request arrived (tokio's clock: paused time in a test moves it).
    pub at: tokio::time::Instant,
}

#[derive(Default)]
pub(crate) struct State {
    tenants: HashMap<String, Tenant>,
    faults: Vec<Fault>,
    /// Every request whose path contains the text waits this long first (all: "").
    latency: Vec<(&'static str, Duration)>,
    log: Vec<Seen>,
    writes: usize,
}

impl State {
    fn import_receipts(&mut self) {
        for tenant in self.tenants.values_mut() {
            tenant.import_receipts();
        }
    }
}

/// A running simulator; it stops when dropped.
pub struct Simulator {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    _stop: oneshot::Sender<()>,
}

impl Simulator {
    /// Starts on `addr` (port 0 for any) with the tenants of a fixture file.
    pub async fn start(addr: SocketAddr, fixture: &str) -> std::io::Result<Simulator> {
        let file: FixtureFile = serde_json::from_str(fixture)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        let mut state = State::default();
        for tenant in file.tenants {
            let key = tenant.api_key.clone();
            state.tenants.insert(key, Tenant::seed(tenant));
        }
        let state = Arc::new(Mutex::new(state));
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = state.clone();
        let stop = serve_until_dropped(listener, move |request| serve(shared.clone(), request));
        Ok(Simulator {
            addr,
            state,
            _stop: stop,
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Successful writes (POSTs that changed data) so far.
    pub fn writes(&self) -> usize {
        self.state.lock().writes
    }

    /// Every request so far, oldest first.
    pub fn requests(&self) -> Vec<Seen> {
        self.state.lock().log.clone()
    }

    pub fn inject(&self, fault: Fault) {
        self.state.lock().faults.push(fault);
    }

    /// From now on every request whose path contains `path_contains` ("" for all) takes at least
    /// `latency` (the longest matching setting applies).
    pub fn set_latency(&self, path_contains: &'static str, latency: Duration) {
        let mut state = self.state.lock();
        state.latency.retain(|(p, _)| *p != path_contains);
        state.latency.push((path_contains, latency));
    }

    /// A contact as the simulator holds it now (for assertions on what was written).
    pub fn contact(&self, api_key: &str, id: &str) -> Option<Value> {
        let state = self.state.lock();
        let tenant = state.tenants.get(api_key)?;
        tenant.contacts.iter().find(|c| c["id"] == id).cloned()
    }

    /// A bonus check as the simulator holds it now.
    pub fn bonus_check(&self, api_key: &str, contact: &str, id: &str) -> Option<Value> {
        let state = self.state.lock();
        let checks = state.tenants.get(api_key)?.bonus_checks.get(contact)?;
        checks.iter().find(|c| c["id"] == id).cloned()
    }

    /// Gives a contact more bonus checks (a long-time member's history).
    pub fn add_bonus_checks(&self, api_key: &str, contact: &str, checks: Vec<Value>) {
        let mut state = self.state.lock();
        if let Some(tenant) = state.tenants.get_mut(api_key) {
            tenant
                .bonus_checks
                .entry(contact.to_owned())
                .or_default()
                .extend(checks);
        }
    }

    /// The receipts booked on a contact so far, oldest first (accepted ones wait for an import).
    pub fn receipts(&self, api_key: &str) -> Vec<Value> {
        self.tenant_list(api_key, |t| &t.receipts)
    }

    /// The receipts an import could not book: no contact of the type they name has their key.
    pub fn unmatched_receipts(&self, api_key: &str) -> Vec<Value> {
        self.tenant_list(api_key, |t| &t.unmatched_receipts)
    }

    /// A copy of one of a tenant's lists (none for an unknown key).
    fn tenant_list(&self, api_key: &str, list: impl Fn(&Tenant) -> &Vec<Value>) -> Vec<Value> {
        let state = self.state.lock();
        state
            .tenants
            .get(api_key)
            .map(list)
            .cloned()
            .unwrap_or_default()
    }

    /// Runs Voyado's receipt import now, for every tenant: accepted receipts are booked on their
    /// contacts (and show in their transactions), duplicates ignored.
    pub fn import_receipts(&self) {
        self.state.lock().import_receipts();
    }

    /// Runs the receipt import every `period` for as long as the simulator runs (the demo's
    /// stand-in for Voyado's batches).
    pub fn import_receipts_every(&self, period: Duration) {
        let state = Arc::downgrade(&self.state);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(period);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                let Some(state) = state.upgrade() else { break };
                state.lock().import_receipts();
            }
        });
    }

    /// How many contacts were created (`POST /api/v2/contacts` that made one).
    pub fn contacts_created(&self, api_key: &str) -> usize {
        let state = self.state.lock();
        state.tenants.get(api_key).map_or(0, |t| t.created)
    }

    /// A promotion as the simulator holds it now.
    pub fn promotion(&self, api_key: &str, contact: &str, id: &str) -> Option<Value> {
        let state = self.state.lock();
        let list = state.tenants.get(api_key)?.promotions.get(contact)?;
        list.iter().find(|c| c["id"] == id).cloned()
    }
}

/// Answers every connection on `listener` with `answer`, one task a connection, until the
/// returned sender is dropped.
pub(crate) fn serve_until_dropped<F, Fut>(listener: TcpListener, answer: F) -> oneshot::Sender<()>
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let (stop, mut stopped) = oneshot::channel();
    tokio::spawn(async move {
        loop {
            let stream = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(_) => continue,
                },
                _ = &mut stopped => break,
            };
            let answer = answer.clone();
            let service = hyper::service::service_fn(move |request| {
                let answer = answer.clone();
                async move { Ok::<_, Infallible>(answer(request).await) }
            });
            tokio::spawn(async move {
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    stop
}

fn take_fault(state: &Mutex<State>, method: &Method, path: &str) -> Option<FaultAction> {
    let mut state = state.lock();
    let index = state
        .faults
        .iter()
        .position(|f| f.method == *method && path.contains(f.path_contains) && f.times > 0)?;
    let fault = &mut state.faults[index];
    fault.times -= 1;
    let action = fault.action.clone();
    if fault.times == 0 {
        state.faults.remove(index);
    }
    Some(action)
}

async fn serve(state: Arc<Mutex<State>>, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let path = parts.uri.path().to_owned();
    let query = parts.uri.query().unwrap_or("").to_owned();
    let parsed: Value = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body).unwrap_or(Value::String("<not json>".into()))
    };
    let latency = {
        let mut state = state.lock();
        state.log.push(Seen {
            method: parts.method.clone(),
            path: path.clone(),
            query: query.clone(),
            headers: parts.headers.clone(),
            body: parsed.clone(),
            at: tokio::time::Instant::now(),
        });
        state
            .latency
            .iter()
            .filter(|(p, _)| path.contains(p))
            .map(|(_, d)| *d)
            .max()
    };
    if let Some(latency) = latency {
        tokio::time::sleep(latency).await;
    }
    let mut hang_after = None;
    let mut late = None;
    match take_fault(&state, &parts.method, &path) {
        Some(FaultAction::Status(status, code)) => {
            let body = match code {
                Some(code) => handlers::error_body(code),
                None => Value::Null,
            };
            let mut response = handlers::reply(status, &body);
            if matches!(status, 429 | 503) {
                response.headers_mut().insert(
                    http::header::RETRY_AFTER,
                    http::HeaderValue::from_static("2"),
                );
            }
            return response;
        }
        Some(FaultAction::Delay(d)) => tokio::time::sleep(d).await,
        Some(FaultAction::ApplyThenHang(d)) => hang_after = Some(d),
        Some(FaultAction::GiveUpThenLand(d)) => late = Some(d),
        Some(FaultAction::Answer(status, body)) => {
            let body = serde_json::from_str(body).unwrap_or(Value::Null);
            return handlers::reply(status, &body);
        }
        Some(FaultAction::RateLimited(retry_after)) => {
            let mut response = handlers::reply(429, &handlers::error_body("TooManyRequests"));
            if let Some(seconds) = retry_after {
                response
                    .headers_mut()
                    .insert(http::header::RETRY_AFTER, http::HeaderValue::from(seconds));
            }
            return response;
        }
        Some(FaultAction::Garbage) => {
            return Response::new(Full::new(Bytes::from_static(b"<html>not json</html>")));
        }
        None => {}
    }
    let query: HashMap<String, String> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let request = Handled {
        method: parts.method,
        path,
        query,
        headers: parts.headers,
        body,
    };
    if let Some(land) = late {
        let state = state.clone();
        tokio::spawn(async move {
            tokio::time::sleep(land).await;
            request.handle(&state);
        });
        return handlers::reply(504, &handlers::error_body("GatewayTimeout"));
    }
    let response = request.handle(&state);
    if let Some(d) = hang_after {
        tokio::time::sleep(d).await;
    }
    response
}

/// A request as the handlers take it.
struct Handled {
    method: Method,
    path: String,
    query: HashMap<String, String>,
    headers: http::HeaderMap,
    body: Bytes,
}

impl Handled {
    /// Handles it against the state, counting a write that took effect.
    fn handle(&self, state: &Mutex<State>) -> Response<Full<Bytes>> {
        let mut state = state.lock();
        let outcome = handlers::handle(
            &mut state,
            &self.method,
            &self.path,
            &self.query,
            &self.headers,
            &self.body,
        );
        if outcome.wrote {
            state.writes += 1;
        }
        outcome.response
    }
}

impl State {
    pub(crate) fn tenant(&mut self, key: &str) -> Option<&mut Tenant> {
        self.tenants.get_mut(key)
    }
}
