//! Process-wide counters for `GET /metrics` (Prometheus text). Labels are operation names and
//! statuses only: never tenant data, keys or personal data.

use std::collections::BTreeMap;
use std::fmt::Write;

use parking_lot::Mutex;

pub const PROMOTION_UNDO_REFUSED: &str = "svp_promotion_undo_refused_total";
pub const PROMOTIONS_REDEEMED_BEFORE_FAILURE: &str = "svp_promotions_redeemed_before_failure_total";
pub const REDEEM_ROLLBACK_FAILED: &str = "svp_redeem_rollback_failed_total";

static COUNTERS: Mutex<BTreeMap<&'static str, u64>> = Mutex::new(BTreeMap::new());
static REQUESTS: Mutex<BTreeMap<(&'static str, u16), u64>> = Mutex::new(BTreeMap::new());

pub fn count(name: &'static str) {
    *COUNTERS.lock().entry(name).or_default() += 1;
}

pub fn request(operation: &'static str, status: u16) {
    *REQUESTS.lock().entry((operation, status)).or_default() += 1;
}

pub fn render() -> String {
    let mut out = String::new();
    out.push_str("# TYPE svp_requests_total counter\n");
    for ((operation, status), n) in REQUESTS.lock().iter() {
        let _ = writeln!(
            out,
            "svp_requests_total{{operation=\"{operation}\",status=\"{status}\"}} {n}"
        );
    }
    let counters = COUNTERS.lock();
    for name in [
        PROMOTION_UNDO_REFUSED,
        PROMOTIONS_REDEEMED_BEFORE_FAILURE,
        REDEEM_ROLLBACK_FAILED,
    ] {
        let _ = writeln!(
            out,
            "# TYPE {name} counter\n{name} {}",
            counters.get(name).copied().unwrap_or(0)
        );
    }
    out
}
