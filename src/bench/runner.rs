//! The open-loop driver: every session starts at its planned time in a task of its own, whatever
//! the earlier answers did, and every request's latency is taken from its planned send time, so
//! a stall shows in each request it delayed (coordinated omission corrected). Within a session a
//! step that needs an earlier answer (the customer's id, an item to redeem) waits for it, as a
//! till would; the wait counts in its latency.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::results::{Outcome, Recorder};
use super::schedule::{Action, Operation, Session};

/// Beyond the proxy's own request deadline (8 s), so its `504` is seen rather than our timeout.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// Which operation each request was, by the sequence number in its trace id, and whether it was
/// in the measured window: the in-process run attributes Voyado calls with it.
pub type Traces = HashMap<u64, (Operation, bool)>;

/// The SPI of one market, as the tills call it.
pub struct Till {
    http: reqwest::Client,
    /// `{root}/{tenant}/{market}` of each replica; requests go to them in turn, as behind a load
    /// balancer that balances each request (the worst case for the replicas' caches).
    spis: Vec<String>,
    key: String,
    /// The first half of every trace id: tells this run's requests from others'.
    pub run: u64,
    seq: AtomicU64,
    /// Items a session of this run has set out to redeem: a till never offers one voucher twice,
    /// so no session picks an item another may have redeemed since its card was read.
    claimed: Mutex<HashSet<String>>,
}

impl Till {
    pub fn new(spis: Vec<String>, key: String, run: u64) -> Till {
        Till {
            // The proxy's own client: rustls with its provider installed, HTTP/2 where offered.
            http: crate::voyado::build_http_client(),
            spis,
            key,
            run: run | 1,
            seq: AtomicU64::new(1),
            claimed: Mutex::default(),
        }
    }

    /// The request for `action`, or none when the session lacks what it needs.
    fn request(
        &self,
        action: &Action,
        customer: Option<&Value>,
        seq: u64,
    ) -> Option<reqwest::RequestBuilder> {
        let id = || customer?.get("customer_id")?.as_str();
        let spi = self.spis.get(seq as usize % self.spis.len().max(1))?;
        let builder = match action {
            Action::Find { key_type, key } => {
                let query = url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("key_type", key_type)
                    .append_pair("key", key)
                    .finish();
                self.http.get(format!("{spi}/customers?{query}"))
            }
            Action::Card => self.http.get(format!("{spi}/customers/{}", id()?)),
            Action::History => self
                .http
                .get(format!("{spi}/customers/{}/transactions?limit=20", id()?)),
            Action::Redeem { promotion, pick } => {
                let body = redeemable(customer?, *promotion, *pick, &mut self.claimed.lock())?;
                self.http
                    .post(format!("{spi}/customers/{}/redeem", id()?))
                    .json_body(&body)
            }
            Action::Edit { name_last } => self
                .http
                .put(format!("{spi}/customers/{}", id()?))
                .json_body(&json!({ "name_last": name_last })),
            Action::Consents => self.http.get(format!("{spi}/consents")),
            Action::Create { email } => self
                .http
                .post(format!("{spi}/customers"))
                .json_body(&json!({ "email": email, "name_first": "Bench", "name_last": "Till" })),
        };
        Some(
            builder
                .basic_auth("bench", Some(&self.key))
                .header("request-id", format!("bench-{:016x}-{seq}", self.run))
                // Not sampled: a staging tracer records nothing; the proxy passes it on unchanged.
                .header(
                    "traceparent",
                    format!("00-{:016x}{seq:016x}-{seq:016x}-00", self.run),
                )
                .timeout(CLIENT_TIMEOUT),
        )
    }
}

trait JsonBody {
    fn json_body(self, body: &Value) -> Self;
}

impl JsonBody for reqwest::RequestBuilder {
    fn json_body(self, body: &Value) -> Self {
        self.header("content-type", "application/json")
            .body(body.to_string())
    }
}

/// A redeem body naming one item the customer can still redeem and no session has claimed: a
/// promotion or a bonus check as asked, the other kind if there is none of it. Claims it.
fn redeemable(
    customer: &Value,
    promotion: bool,
    pick: u32,
    claimed: &mut HashSet<String>,
) -> Option<Value> {
    let items = |list: &str, id: &str| -> Vec<String> {
        customer
            .get(list)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|item| item.get("redeemed") == Some(&Value::Bool(false)))
            .filter_map(|item| item.get(id)?.as_str().map(str::to_owned))
            .filter(|id| !claimed.contains(id))
            .collect()
    };
    let promotions = items("promotions", "promotion_id");
    let checks = items("bonus_checks", "bonus_check_id");
    let (list, items) = match (promotion, promotions.is_empty(), checks.is_empty()) {
        (true, false, _) | (false, false, true) => ("promotions", promotions),
        (_, _, false) => ("bonus_checks", checks),
        (_, true, true) => return None,
    };
    let chosen = items[pick as usize % items.len()].clone();
    claimed.insert(chosen.clone());
    Some(json!({ list: [chosen] }))
}

/// What the sessions share while they run.
struct Shared {
    recorder: Mutex<Recorder>,
    traces: Mutex<Traces>,
    answered: AtomicU64,
    errors: AtomicU64,
}

/// What one run measured.
pub struct Driven {
    pub recorder: Recorder,
    pub traces: Traces,
}

/// Runs `sessions` against `till`, each from `start` plus its planned time; returns when every
/// answer is in (or timed out).
pub async fn drive(
    till: Arc<Till>,
    sessions: impl Iterator<Item = Session>,
    start: Instant,
    recorder: Recorder,
    progress: &ProgressBar,
) -> Driven {
    let shared = Arc::new(Shared {
        recorder: Mutex::new(recorder),
        traces: Mutex::new(Traces::new()),
        answered: AtomicU64::new(0),
        errors: AtomicU64::new(0),
    });
    let ticker = tokio::spawn(tick(progress.clone(), shared.clone(), start));
    let mut running = JoinSet::new();
    for session in sessions {
        tokio::time::sleep_until(start + session.start()).await;
        running.spawn(run_session(till.clone(), session, start, shared.clone()));
        // Finished sessions are reaped as we go, so the set holds only those in flight.
        while running.try_join_next().is_some() {}
    }
    while running.join_next().await.is_some() {}
    ticker.abort();
    // An aborted task lets go of what it holds only once it is awaited.
    let _ = ticker.await;
    let shared = Arc::try_unwrap(shared).unwrap_or_else(|_| unreachable!("sessions are done"));
    Driven {
        recorder: shared.recorder.into_inner(),
        traces: shared.traces.into_inner(),
    }
}

async fn tick(progress: ProgressBar, shared: Arc<Shared>, start: Instant) {
    let mut every = tokio::time::interval(Duration::from_millis(250));
    loop {
        every.tick().await;
        progress.set_position(start.elapsed().as_secs());
        progress.set_message(format!(
            "{} answered, {} errors",
            shared.answered.load(Ordering::Relaxed),
            shared.errors.load(Ordering::Relaxed)
        ));
    }
}

async fn run_session(till: Arc<Till>, session: Session, start: Instant, shared: Arc<Shared>) {
    // The customer as the last answer showed it: the search's, then the card's.
    let mut customer: Option<Value> = None;
    for step in session.steps {
        let operation = step.action.operation();
        let planned = start + step.at;
        tokio::time::sleep_until(planned).await;
        let seq = till.seq.fetch_add(1, Ordering::Relaxed);
        let Some(request) = till.request(&step.action, customer.as_ref(), seq) else {
            shared.recorder.lock().skip(operation, step.at);
            continue;
        };
        let measured = shared.recorder.lock().measured(step.at);
        shared.traces.lock().insert(seq, (operation, measured));
        let sent = Instant::now();
        let (outcome, body) = match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                match response.bytes().await {
                    Ok(body) => (Outcome::Status(status), body),
                    Err(e) if e.is_timeout() => (Outcome::Timeout, Default::default()),
                    Err(_) => (Outcome::Failed, Default::default()),
                }
            }
            Err(e) if e.is_timeout() => (Outcome::Timeout, Default::default()),
            Err(_) => (Outcome::Failed, Default::default()),
        };
        let done = Instant::now();
        shared.answered.fetch_add(1, Ordering::Relaxed);
        if outcome.is_error() {
            shared.errors.fetch_add(1, Ordering::Relaxed);
        }
        shared
            .recorder
            .lock()
            .record(operation, step.at, sent - planned, done - planned, outcome);
        if outcome.is_error() {
            continue;
        }
        match step.action {
            Action::Find { .. } => {
                customer = serde_json::from_slice::<Value>(&body)
                    .ok()
                    .and_then(|list| list.get(0).cloned());
            }
            Action::Card | Action::Edit { .. } => {
                customer = serde_json::from_slice(&body).ok().or(customer);
            }
            _ => {}
        }
    }
}

/// A progress bar over the run's seconds; it draws only on a terminal.
pub fn progress_bar(label: &str, seconds: u64) -> ProgressBar {
    let bar = ProgressBar::new(seconds);
    if let Ok(style) = ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} s  {msg}") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(label.to_owned());
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_redeem_names_an_item_still_open_and_unclaimed_and_falls_back_to_the_other_kind() {
        let customer = json!({
            "customer_id": "c",
            "promotions": [{"promotion_id": "p1", "redeemed": true}],
            "bonus_checks": [{"bonus_check_id": "b1", "redeemed": false},
                             {"bonus_check_id": "b2", "redeemed": false}],
        });
        let mut claimed = HashSet::new();
        assert_eq!(
            redeemable(&customer, true, 0, &mut claimed),
            Some(json!({"bonus_checks": ["b1"]}))
        );
        // b1 is taken by the first session: the second gets b2 whatever it picks, the third none.
        assert_eq!(
            redeemable(&customer, false, 0, &mut claimed),
            Some(json!({"bonus_checks": ["b2"]}))
        );
        assert_eq!(redeemable(&customer, false, 0, &mut claimed), None);
        let spent = json!({"customer_id": "c", "promotions": [], "bonus_checks": []});
        assert_eq!(redeemable(&spent, false, 0, &mut HashSet::new()), None);
    }
}
