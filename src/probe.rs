//! `probe`: a read-only tour of the Voyado calls the proxy makes, against one market's tenant. An
//! integration team with a staging tenant sees, before go-live, whether each answer has the shape
//! the mapping expects, how long the paged lists are, and how the tenant behaves where Voyado's
//! documents leave it open. It only ever reads: a write endpoint is refused before any call.
//!
//! It prints names of fields, counts and statuses — never a value from Voyado (personal data).

use std::fmt::Write as _;

use serde_json::Value;

use crate::config::MemberNumberLookup;
use crate::keys;
use crate::market::Market;
use crate::voyado::{Endpoint, PAGE, VoyadoError};

/// What one call showed.
#[derive(Debug)]
pub struct Finding {
    endpoint: Endpoint,
    /// The status, or how the call failed (`timeout`, `connect`, ...).
    answer: String,
    /// Where the answer lacks what the proxy reads: each makes the probe fail.
    missing: Vec<String>,
    /// Anything else worth knowing: counts, paging, mapped fields this contact has no value for.
    notes: Vec<String>,
    /// The call failed where it should have answered.
    failed: bool,
}

impl Finding {
    fn new(endpoint: Endpoint, answer: String) -> Finding {
        Finding {
            endpoint,
            answer,
            missing: Vec::new(),
            notes: Vec::new(),
            failed: false,
        }
    }

    fn is_mismatch(&self) -> bool {
        self.failed || !self.missing.is_empty()
    }
}

/// Everything the tour showed.
#[derive(Debug, Default)]
pub struct Report {
    findings: Vec<Finding>,
    /// Behaviour Voyado's documents leave open, as this tenant showed it: (question, answer).
    open: Vec<(&'static str, String)>,
    skipped: Vec<&'static str>,
}

impl Report {
    /// Calls whose answer did not have the shape the proxy reads, or that failed.
    pub fn mismatches(&self) -> usize {
        self.findings.iter().filter(|f| f.is_mismatch()).count()
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        for f in &self.findings {
            let (method, path) = f.endpoint.route();
            let mark = if f.is_mismatch() { "MISMATCH" } else { "ok" };
            let _ = write!(
                out,
                "{mark:<9}{:<5}{path:<52}{:<9}",
                method.as_str(),
                f.answer
            );
            let mut parts: Vec<String> = Vec::new();
            if !f.missing.is_empty() {
                parts.push(format!("missing: {}", f.missing.join(", ")));
            }
            parts.extend(f.notes.iter().cloned());
            let _ = writeln!(out, "{}", parts.join("; "));
        }
        if !self.open.is_empty() {
            let _ = writeln!(
                out,
                "\nwhere Voyado's documents leave it open, this tenant:"
            );
            for (question, answer) in &self.open {
                let _ = writeln!(out, "  {question}: {answer}");
            }
        }
        for skipped in &self.skipped {
            let _ = writeln!(out, "not probed: {skipped}");
        }
        let _ = writeln!(out, "\n{} mismatches", self.mismatches());
        out
    }
}

/// Probes `market`'s Voyado; the contact calls need a test contact's id.
pub async fn run(market: &Market, contact: Option<&str>) -> Report {
    let mut report = Report::default();
    consents(market, &mut report).await;
    match contact.map(keys::guid) {
        Some(Ok(id)) => contact_calls(market, &id, &mut report).await,
        Some(Err(_)) => {
            let mut f = Finding::new(Endpoint::Contact, "-".into());
            f.missing
                .push("--contact must be a Voyado contact id (a GUID)".into());
            report.findings.push(f);
        }
        None => report.skipped.push(
            "the contact's calls (card, lists, key lookup): give --contact ID of a test contact",
        ),
    }
    report
        .skipped
        .push("person lookup: Voyado may charge for each lookup, so the probe never makes one");
    report
}

/// One GET, fresh from Voyado; a write endpoint is never called.
async fn get(
    market: &Market,
    endpoint: Endpoint,
    segments: &[&str],
    query: &[(&str, &str)],
) -> (Finding, Result<Value, VoyadoError>) {
    if endpoint.is_write() {
        let mut f = Finding::new(endpoint, "-".into());
        f.failed = true;
        f.notes.push("a write: the probe never makes one".into());
        return (f, Err(VoyadoError::Malformed));
    }
    let result = market.voyado.get_fresh(endpoint, segments, query).await;
    let answer = match &result {
        Ok(_) => "200".to_owned(),
        Err(e) => e
            .status()
            .map_or_else(|| e.outcome().to_owned(), |s| s.to_string()),
    };
    (Finding::new(endpoint, answer), result)
}

/// The dotted `paths` that `value` has no value at.
fn absent(value: &Value, paths: &[&str]) -> Vec<String> {
    paths
        .iter()
        .filter(|p| p.split('.').try_fold(value, |v, k| v.get(k)).is_none())
        .map(|p| (*p).to_owned())
        .collect()
}

/// `[i].field` for the first item of `items` lacking each of `fields`.
fn absent_in_items(items: &[Value], fields: &[&str]) -> Vec<String> {
    fields
        .iter()
        .filter_map(|field| {
            let i = items.iter().position(|item| item.get(field).is_none())?;
            Some(format!("[{i}].{field}"))
        })
        .collect()
}

async fn consents(market: &Market, report: &mut Report) {
    let (mut f, result) = get(market, Endpoint::Consents, &[], &[]).await;
    match result {
        Ok(Value::Array(list)) => {
            f.missing = absent_in_items(&list, &["id", "name"]);
            f.notes.push(format!("{} consent definitions", list.len()));
        }
        Ok(_) => f.missing.push("a list of consent definitions".into()),
        Err(_) => f.failed = true,
    }
    report.findings.push(f);
}

async fn contact_calls(market: &Market, id: &str, report: &mut Report) {
    let (mut f, result) = get(market, Endpoint::Contact, &[id], &[]).await;
    let contact = match result {
        Ok(contact) if contact.is_object() => contact,
        Ok(_) => {
            f.missing.push("a contact object".into());
            report.findings.push(f);
            return;
        }
        Err(_) => {
            f.failed = true;
            report.findings.push(f);
            return;
        }
    };
    let plan = &market.plan;
    if plan.item_id(&contact).is_none() {
        f.missing.push(market.plan.redeem().voyado_id.clone());
    }
    let unset: Vec<String> = plan
        .contact_fields()
        .filter(|(_, keys)| keys.iter().try_fold(&contact, |v, k| v.get(k)).is_none())
        .map(|(_, keys)| keys.join("."))
        .collect();
    if !unset.is_empty() {
        f.notes.push(format!(
            "mapped fields this contact has no value for: {}",
            unset.join(", ")
        ));
    }
    report.findings.push(f);
    report.open.push((
        "meta.approved on a contact",
        match plan.approval(&contact) {
            Some(approved) => format!("present ({approved})"),
            None => "absent: every contact counts as approved".into(),
        },
    ));

    key_lookup(market, id, &contact, report).await;
    promotions(market, id, report).await;
    let by_contact = [("contactId", id)];
    for (endpoint, segments, query) in [
        (Endpoint::BonusChecks, &[id][..], &[][..]),
        (Endpoint::AvailableBonusChecks, &[id][..], &[][..]),
        (Endpoint::RedeemedBonusChecks, &[id][..], &[][..]),
        (Endpoint::PointAccounts, &[][..], &by_contact[..]),
        (Endpoint::Transactions, &[id][..], &[][..]),
    ] {
        paged(market, endpoint, segments, query, report).await;
    }
    member_status(market, &contact, report).await;
}

/// The contact found again by its contact key (and by member number on the `bykey` route).
async fn key_lookup(market: &Market, id: &str, contact: &Value, report: &mut Report) {
    let plan = &market.plan;
    let key = market.contact_key.as_str();
    let value = plan
        .contact_fields()
        .find(|(spi, _)| *spi == key)
        .and_then(|(_, keys)| keys.iter().try_fold(contact, |v, k| v.get(k)))
        .and_then(Value::as_str);
    let (Some(spec), Some(value)) = (plan.search_key(key), value) else {
        report
            .skipped
            .push("the key lookup: the contact has no value for the market's contact key");
        return;
    };
    let mut last = None;
    for contact_type in &market.settings.search_contact_types {
        let query = [(spec.param.as_str(), value), ("contactType", contact_type)];
        let (mut f, result) = get(market, Endpoint::ContactId, &[], &query).await;
        match result {
            Ok(Value::String(found)) if found.eq_ignore_ascii_case(id) => {
                f.notes
                    .push(format!("finds the contact by its {key} as {contact_type}"));
            }
            Ok(Value::String(_)) => f
                .notes
                .push(format!("its {key} finds another {contact_type} contact")),
            Ok(_) => f.missing.push("a contact id (a string)".into()),
            Err(e) if e.is_not_found() => {
                f.notes.push(format!("not found as {contact_type}"));
                last = Some(f);
                continue;
            }
            Err(_) => f.failed = true,
        }
        report.findings.push(f);
        last = None;
        break;
    }
    report.findings.extend(last);
    if market.settings.member_number_lookup == MemberNumberLookup::ByKey
        && let Some(number) = plan.member_number(contact)
    {
        let contact_type = &market.settings.contact_type;
        let query = [("keyValue", number.as_str())];
        let (mut f, result) = get(market, Endpoint::ContactByKey, &[contact_type], &query).await;
        match result {
            Ok(found) if plan.item_id(&found).is_some() => {}
            Ok(_) => f.missing.push(plan.redeem().voyado_id.clone()),
            Err(e) if e.is_not_found() => f.notes.push(format!(
                "not found by member number: bykey finds only a type whose one key is the \
                 member number ({contact_type})"
            )),
            Err(_) => f.failed = true,
        }
        report.findings.push(f);
    }
}

async fn promotions(market: &Market, id: &str, report: &mut Report) {
    let (mut f, result) = get(market, Endpoint::Promotions, &[id], &[]).await;
    match result {
        Ok(Value::Array(list)) => {
            f.missing = absent_in_items(&list, &["id", "redemptionChannels"]);
            let redeemed = list.iter().filter(|p| market.plan.item_redeemed(p)).count();
            f.notes.push(format!("{} listed", list.len()));
            report.open.push((
                "the promotions list keeps redeemed instances",
                if redeemed > 0 {
                    format!("yes ({redeemed} listed)")
                } else {
                    "none listed for this contact (left out, or it has none redeemed)".into()
                },
            ));
        }
        Ok(_) => f
            .missing
            .push("a list (Voyado answers a bare array)".into()),
        Err(_) => f.failed = true,
    }
    report.findings.push(f);
}

/// A paged list's first page (its shape and total) and, when there is one, its second (that
/// `offset` is honoured).
async fn paged(
    market: &Market,
    endpoint: Endpoint,
    segments: &[&str],
    query: &[(&str, &str)],
    report: &mut Report,
) {
    let page = async |offset: usize| {
        let (offset, count) = (offset.to_string(), PAGE.to_string());
        let mut query = query.to_vec();
        query.push(("offset", &offset));
        query.push(("count", &count));
        get(market, endpoint, segments, &query).await
    };
    let (mut f, result) = page(0).await;
    match result {
        Ok(first) => {
            f.missing = absent(&first, &["items", "totalCount"]);
            let items = first.get("items").and_then(Value::as_array);
            let total = first.get("totalCount").and_then(Value::as_u64);
            if let (Some(items), Some(total)) = (items, total) {
                if endpoint != Endpoint::Transactions && endpoint != Endpoint::PointAccounts {
                    f.missing.extend(absent_in_items(items, &["id"]));
                }
                let max = market.limits.voyado_list_max_items as u64;
                let pages = total.min(max).div_ceil(PAGE as u64).max(1);
                f.notes
                    .push(format!("total {total}; the proxy reads {pages} page(s)"));
                if total > max {
                    f.notes.push(format!(
                        "longer than limits.voyado_list_max_items ({max}): the rest is not read"
                    ));
                }
                if total > items.len() as u64 {
                    second_page(&page, &mut f).await;
                }
            }
        }
        Err(_) => f.failed = true,
    }
    report.findings.push(f);
}

async fn second_page<F, Fut>(page: &F, f: &mut Finding)
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = (Finding, Result<Value, VoyadoError>)>,
{
    let (_, second) = page(PAGE).await;
    match second {
        Ok(second) => match second.get("items").and_then(Value::as_array) {
            Some(items) if !items.is_empty() => f.notes.push(format!(
                "second page: {} items (offset honoured)",
                items.len()
            )),
            _ => f.missing.push(format!(
                "items at offset={PAGE} (totalCount says there are more)"
            )),
        },
        Err(_) => f.failed = true,
    }
}

async fn member_status(market: &Market, contact: &Value, report: &mut Report) {
    let plan = &market.plan;
    let Some(number) = plan.member_number(contact) else {
        report
            .skipped
            .push("member status: the contact has no member number");
        return;
    };
    let query = format!("{}:{number}", plan.status_query_field());
    let (mut f, result) = get(market, Endpoint::MemberStatus, &[], &[("query", &query)]).await;
    let shown = match result {
        Ok(status) => {
            f.missing = absent(&status, &["statusColor", "statusText"]);
            "200 with a status".to_owned()
        }
        Err(e) if e.is_not_found() => {
            f.notes
                .push("no status for this member: the card shows the default".into());
            "404 (the mapping's default status applies)".to_owned()
        }
        Err(_) => {
            f.failed = true;
            format!("failed ({})", f.answer)
        }
    };
    report.findings.push(f);
    report.open.push(("memberstatus for this member", shown));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_paths_are_named() {
        let v = serde_json::json!({"items": [], "meta": {"a": 1}});
        assert_eq!(
            absent(&v, &["items", "totalCount", "meta.a", "meta.b"]),
            vec!["totalCount", "meta.b"]
        );
        let items = [serde_json::json!({"id": 1}), serde_json::json!({"x": 1})];
        assert_eq!(
            absent_in_items(&items, &["id", "x"]),
            vec!["[1].id", "[0].x"]
        );
    }
}
