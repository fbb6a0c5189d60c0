//! The simulator's Voyado endpoints (v2, and v3 where the proxy uses it), with Voyado's documented status and error codes:
//! 400 `Invalid*`, 404 `*NotFound`, 409 `MultipleMatches` / `*AlreadyRedeemed`, 406 on reactivate,
//! 422 `ValidationError`, 500 without `Content-Type: application/json`.

use std::collections::HashMap;

use bytes::Bytes;
use http::{HeaderMap, Method, Response, header};
use http_body_util::Full;
use serde_json::{Map, Value, json};

use super::{State, Tenant};

pub(super) struct Outcome {
    pub(super) response: Response<Full<Bytes>>,
    pub(super) wrote: bool,
}

pub(super) fn reply(status: u16, body: &Value) -> Response<Full<Bytes>> {
    let bytes = if body.is_null() {
        Bytes::new()
    } else {
        Bytes::from(serde_json::to_vec(body).unwrap_or_default())
    };
    let mut response = Response::new(Full::new(bytes));
    *response.status_mut() = http::StatusCode::from_u16(status).unwrap_or_default();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

pub(super) fn error_body(code: &str) -> Value {
    json!({"errorCode": code, "message": code})
}

fn ok(body: Value) -> Outcome {
    Outcome {
        response: reply(200, &body),
        wrote: false,
    }
}

fn wrote(status: u16, body: Value) -> Outcome {
    Outcome {
        response: reply(status, &body),
        wrote: true,
    }
}

fn fail(status: u16, code: &str) -> Outcome {
    Outcome {
        response: reply(status, &error_body(code)),
        wrote: false,
    }
}

fn is_guid(s: &str) -> bool {
    s.len() == 36 && uuid::Uuid::try_parse(s).is_ok()
}

fn valid_email(s: &str) -> bool {
    matches!(s.split_once('@'), Some((l, d)) if !l.is_empty() && d.contains('.') && !s.contains(' '))
}

fn valid_e164(s: &str) -> bool {
    s.strip_prefix('+')
        .is_some_and(|d| (8..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()))
}

/// Voyado takes Swedish (12 digits) and Finnish (`DDMMYYCZZZQ`) personal ids.
fn valid_ssn(s: &str) -> bool {
    let b = s.as_bytes();
    let swedish = b.len() == 12 && b.iter().all(u8::is_ascii_digit);
    let finnish = b.len() == 11
        && b[..6].iter().all(u8::is_ascii_digit)
        && b"+-ABCDEFYXWVU".contains(&b[6])
        && b[7..10].iter().all(u8::is_ascii_digit)
        && b[10].is_ascii_alphanumeric();
    swedish || finnish
}

fn now() -> String {
    jiff::Timestamp::now().to_string()
}

fn expired(item: &Value) -> bool {
    item["expiresOn"]
        .as_str()
        .and_then(|s| s.parse::<jiff::Timestamp>().ok())
        .is_some_and(|t| t < jiff::Timestamp::now())
}

fn paged(items: Vec<Value>, query: &HashMap<String, String>) -> Value {
    let offset: usize = query
        .get("offset")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    // Voyado's default page; a larger count is not documented to be honoured, so it is not.
    let count: usize = query
        .get("count")
        .and_then(|v| v.parse().ok())
        .unwrap_or(100)
        .min(100);
    let total = items.len();
    let page: Vec<Value> = items.into_iter().skip(offset).take(count).collect();
    json!({"items": page, "totalCount": total, "offset": offset, "count": count})
}

pub(super) fn handle(
    state: &mut State,
    method: &Method,
    path: &str,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
    body: &[u8],
) -> Outcome {
    // Voyado answers 500 "An error has occurred" without a JSON content type.
    if headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        != Some("application/json")
    {
        return Outcome {
            response: reply(500, &json!({"message": "An error has occurred."})),
            wrote: false,
        };
    }
    if headers.get(header::USER_AGENT).is_none() {
        return fail(400, "MissingUserAgent");
    }
    let key = headers
        .get("apikey")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(tenant) = state.tenant(key) else {
        return Outcome {
            response: reply(
                401,
                &json!({"message": "Authorization has been denied for this request."}),
            ),
            wrote: false,
        };
    };
    let body: Value = if body.is_empty() {
        Value::Null
    } else {
        match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(_) => return fail(400, "NoData"),
        }
    };
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method, segments.as_slice()) {
        (&Method::GET, ["api", "v2", "contacts", "id"]) => contact_id(tenant, query),
        (&Method::GET, ["api", "v2", "contacts", kind, "bykey"]) => by_key(tenant, kind, query),
        (&Method::GET, ["api", "v2", "contacts", id]) => match tenant.find(id) {
            Ok(i) => ok(tenant.contacts[i].clone()),
            Err((status, code)) => fail(status, code),
        },
        (&Method::POST, ["api", "v2", "contacts"]) => create(tenant, headers, body),
        (&Method::POST, ["api", "v2", "contacts", id]) => update(tenant, id, body),
        (
            &Method::POST,
            [
                "api",
                version @ ("v2" | "v3"),
                "contacts",
                id,
                "updateContactType",
            ],
        ) => change_type(tenant, id, query, version),
        (&Method::POST, ["api", "v2", "contacts", id, "preferences", name]) => {
            set_preference(tenant, id, name, &body)
        }
        (&Method::GET, ["api", "v2", "contacts", id, "promotions"]) => match tenant.find(id) {
            Ok(_) => {
                // "All available promotions": whether redeemed ones stay listed is not
                // documented, so they do not here (a redeem must not depend on finding them).
                let list: Vec<Value> = tenant
                    .promotions
                    .get(*id)
                    .into_iter()
                    .flatten()
                    .filter(|p| p["redeemed"] != true)
                    .cloned()
                    .collect();
                let list = match query.get("redemptionChannelType") {
                    Some(channel) => list
                        .into_iter()
                        .filter(|p| has_channel(p, channel))
                        .collect(),
                    None => list,
                };
                ok(Value::Array(list))
            }
            Err((status, code)) => fail(status, code),
        },
        (&Method::POST, ["api", "v2", "contacts", id, "promotions", pid, "redeem"]) => {
            redeem_promotion(tenant, id, pid, &body)
        }
        (&Method::GET, ["api", "v2", "contacts", id, "bonuschecks", rest @ ..]) => {
            match tenant.find(id) {
                Ok(_) => {
                    let all = tenant.bonus_checks.get(*id).cloned().unwrap_or_default();
                    let list: Vec<Value> = match rest {
                        [] => all,
                        ["available"] => all
                            .into_iter()
                            .filter(|c| c["redeemed"] != true && !expired(c))
                            .map(|mut c| {
                                if let Some(o) = c.as_object_mut() {
                                    o.remove("redeemed");
                                    o.remove("redeemedOn");
                                }
                                c
                            })
                            .collect(),
                        ["redeemed"] => all.into_iter().filter(|c| c["redeemed"] == true).collect(),
                        _ => return fail(404, "NotFound"),
                    };
                    ok(paged(list, query))
                }
                Err((status, code)) => fail(status, code),
            }
        }
        (&Method::POST, ["api", "v2", "contacts", id, "bonuschecks", bid, "redeem"]) => {
            redeem_check(tenant, id, bid)
        }
        (
            &Method::POST,
            [
                "api",
                "v2",
                "promotions",
                "reward-vouchers",
                bid,
                "reactivate",
            ],
        ) => reactivate(tenant, bid),
        (&Method::GET, ["api", "v2", "point-accounts"]) => {
            let id = query.get("contactId").map_or("", String::as_str);
            match tenant.find(id) {
                Ok(_) => ok(tenant.points.get(id).cloned().unwrap_or_else(
                    || json!({"items": [], "totalCount": 0, "offset": 0, "count": 100}),
                )),
                Err((status, code)) => fail(status, code),
            }
        }
        (&Method::GET, ["api", "v2", "memberstatus"]) => {
            let query = query.get("query").map_or("", String::as_str);
            match query.split_once(':') {
                Some(("memberNumber", n)) => match tenant.statuses.get(n) {
                    Some(status) => ok(status.clone()),
                    None => fail(404, "ContactNotFound"),
                },
                _ => fail(400, "InvalidSearchQuery"),
            }
        }
        (&Method::GET, ["api", "v2", "contacts", id, "transactions"]) => match tenant.find(id) {
            Ok(_) => ok(paged(
                tenant.transactions.get(*id).cloned().unwrap_or_default(),
                query,
            )),
            Err((status, code)) => fail(status, code),
        },
        (&Method::POST, ["api", "v2", "receipts"]) => receipt(tenant, body),
        (&Method::GET, ["api", "v2", "consents"]) => ok(Value::Array(tenant.consents.clone())),
        (&Method::GET, ["api", "v2", "personlookup", "getpersonlookup"]) => person(tenant, query),
        _ => Outcome {
            response: reply(404, &Value::Null),
            wrote: false,
        },
    }
}

fn has_channel(promotion: &Value, channel: &str) -> bool {
    promotion["redemptionChannels"]
        .as_array()
        .is_some_and(|list| list.iter().any(|c| c["type"] == channel))
}

impl Tenant {
    /// The contact's index, or Voyado's status and code.
    fn find(&self, id: &str) -> Result<usize, (u16, &'static str)> {
        if !is_guid(id) {
            return Err((400, "InvalidContactId"));
        }
        self.contacts
            .iter()
            .position(|c| c["id"] == id)
            .ok_or((404, "ContactNotFound"))
    }

    fn key_of(&self, contact: &Value) -> Option<String> {
        contact
            .pointer("/attributes/email")
            .and_then(Value::as_str)
            .map(str::to_ascii_lowercase)
    }
}

fn contact_id(tenant: &Tenant, query: &HashMap<String, String>) -> Outcome {
    if let Some(kind) = query.get("contactType")
        && !tenant.contact_types.contains(kind)
    {
        return fail(400, "InvalidContactType");
    }
    let (attribute, value) = if let Some(v) = query.get("email") {
        if !valid_email(v) {
            return fail(400, "InvalidEmailAddress");
        }
        ("email", v.to_ascii_lowercase())
    } else if let Some(v) = query.get("mobilePhone") {
        if !valid_e164(v) {
            return fail(400, "InvalidPhoneNumber");
        }
        ("mobilePhone", v.clone())
    } else if let Some(v) = query.get("socialSecurityNumber") {
        if !valid_ssn(v) {
            return fail(400, "InvalidSocialSecurityNumber");
        }
        ("socialSecurityNumber", v.clone())
    } else if let Some(v) = query.get("customKey") {
        ("memberNumber", v.clone())
    } else {
        return fail(400, "InvalidSearchQuery");
    };
    let matches: Vec<&Value> = tenant
        .contacts
        .iter()
        .filter(|c| {
            query
                .get("contactType")
                .is_none_or(|t| c["meta"]["contactType"] == t.as_str())
        })
        .filter(|c| {
            c["attributes"][attribute]
                .as_str()
                .is_some_and(|a| a.eq_ignore_ascii_case(&value))
        })
        .collect();
    match matches.as_slice() {
        [] => fail(404, "ContactNotFound"),
        [one] => ok(one["id"].clone()),
        many => Outcome {
            response: reply(
                409,
                &json!({"errorCode": "MultipleMatches", "message": "Multiple matches",
                        "messageDetails": {"multipleMatchesFound": many.iter().map(|c| c["id"].clone()).collect::<Vec<_>>()}}),
            ),
            wrote: false,
        },
    }
}

fn by_key(tenant: &Tenant, kind: &str, query: &HashMap<String, String>) -> Outcome {
    if !tenant.contact_types.iter().any(|t| t == kind) {
        return fail(400, "InvalidContactType");
    }
    let value = query.get("keyValue").map_or("", String::as_str);
    tenant
        .contacts
        .iter()
        .find(|c| c["meta"]["contactType"] == kind && c["attributes"]["memberNumber"] == value)
        .map_or_else(|| fail(404, "ContactNotFound"), |c| ok(c.clone()))
}

/// Checks attribute values the way Voyado does; `None` when all are acceptable.
fn invalid_attributes(attributes: &Map<String, Value>) -> Option<Outcome> {
    let text = |key: &str| attributes.get(key).and_then(Value::as_str);
    if text("email").is_some_and(|e| !valid_email(e)) {
        return Some(fail(400, "InvalidEmailAddress"));
    }
    if text("mobilePhone").is_some_and(|m| !valid_e164(m)) {
        return Some(fail(400, "InvalidPhoneNumber"));
    }
    if text("socialSecurityNumber").is_some_and(|s| !valid_ssn(s)) {
        return Some(fail(400, "InvalidSocialSecurityNumber"));
    }
    None
}

/// Applies a v2 create/update body: attributes at the top level, `preferences` merged,
/// `consents` merged by id.
fn apply(contact: &mut Value, body: &Map<String, Value>) {
    for (key, value) in body {
        match key.as_str() {
            "contactType" => {}
            "preferences" => {
                if let Some(prefs) = value.as_object() {
                    for (k, v) in prefs {
                        contact["preferences"][k] = v.clone();
                    }
                }
            }
            "consents" => {
                let list = contact["consents"].as_array().cloned().unwrap_or_default();
                let mut list: Vec<Value> = list;
                for consent in value.as_array().into_iter().flatten() {
                    match list.iter_mut().find(|c| c["id"] == consent["id"]) {
                        Some(existing) => *existing = consent.clone(),
                        None => list.push(consent.clone()),
                    }
                }
                contact["consents"] = Value::Array(list);
            }
            _ if value.is_null() => {
                if let Some(attributes) = contact["attributes"].as_object_mut() {
                    attributes.remove(key);
                }
            }
            _ => contact["attributes"][key] = value.clone(),
        }
    }
}

fn create(tenant: &mut Tenant, headers: &HeaderMap, body: Value) -> Outcome {
    let Some(body) = body.as_object() else {
        return fail(400, "NoData");
    };
    let kind = body
        .get("contactType")
        .and_then(Value::as_str)
        .unwrap_or("Member")
        .to_owned();
    if !tenant.contact_types.contains(&kind) {
        return fail(400, "InvalidContactType");
    }
    if let Some(bad) = invalid_attributes(body) {
        return bad;
    }
    let Some(key) = body.get("email").and_then(Value::as_str) else {
        return fail(422, "ValidationError");
    };
    let key = key.to_ascii_lowercase();
    if tenant.contacts.iter().any(|c| {
        c["meta"]["contactType"] == kind.as_str() && tenant.key_of(c).as_deref() == Some(&key)
    }) {
        return fail(409, "ApprovedContactWithKeyExists");
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let approved = header("createAsUnapproved") != Some("true");
    let mut contact = json!({
        "id": uuid::Uuid::new_v4().to_string(),
        "attributes": {},
        "meta": {"contactType": kind, "approved": approved, "source": header("source")},
        "preferences": {"acceptsEmail": false, "acceptsSms": false, "acceptsPostal": false},
        "consents": [],
    });
    apply(&mut contact, body);
    if let Some(store) = header("storeExternalId") {
        contact["attributes"]["createdInStore"] = json!(store);
        if contact["attributes"]["store"].is_null() {
            contact["attributes"]["store"] = json!(store);
        }
    }
    if kind == "Member" {
        contact["attributes"]["memberNumber"] = json!(tenant.next_member_number.to_string());
        tenant.next_member_number += 1;
    }
    tenant.contacts.push(contact.clone());
    tenant.created += 1;
    wrote(201, contact)
}

fn update(tenant: &mut Tenant, id: &str, body: Value) -> Outcome {
    let index = match tenant.find(id) {
        Ok(i) => i,
        Err((status, code)) => return fail(status, code),
    };
    let Some(body) = body.as_object() else {
        return fail(400, "NoData");
    };
    if let Some(bad) = invalid_attributes(body) {
        return bad;
    }
    for consent in body
        .get("consents")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if !consent["value"].is_boolean() || !consent["id"].is_string() {
            return fail(422, "ValidationError");
        }
    }
    apply(&mut tenant.contacts[index], body);
    wrote(200, tenant.contacts[index].clone())
}

/// Voyado's v2 page: "if you try to update to Member using this endpoint, it will not work"; the
/// v3 call is "the only way to update a contact's contactType". Neither is documented to approve
/// anyone, so neither does here.
fn change_type(
    tenant: &mut Tenant,
    id: &str,
    query: &HashMap<String, String>,
    version: &str,
) -> Outcome {
    let index = match tenant.find(id) {
        Ok(i) => i,
        Err((status, code)) => return fail(status, code),
    };
    let Some(kind) = query
        .get("contactTypeId")
        .filter(|k| tenant.contact_types.contains(k))
    else {
        return fail(400, "InvalidContactType");
    };
    if version == "v2" && kind == "Member" {
        return fail(400, "InvalidContactType");
    }
    let kind = kind.clone();
    let needs_number =
        kind == "Member" && tenant.contacts[index]["attributes"]["memberNumber"].is_null();
    if needs_number {
        let number = tenant.next_member_number.to_string();
        tenant.next_member_number += 1;
        tenant.contacts[index]["attributes"]["memberNumber"] = json!(number);
    }
    let contact = &mut tenant.contacts[index];
    contact["meta"]["contactType"] = json!(kind);
    wrote(200, contact.clone())
}

/// `POST /api/v2/contacts/{id}/preferences/{acceptsEmail|acceptsSms|acceptsPostal}` with
/// `{"value": bool}`: "This will also approve an unapproved contact".
fn set_preference(tenant: &mut Tenant, id: &str, name: &str, body: &Value) -> Outcome {
    let index = match tenant.find(id) {
        Ok(i) => i,
        Err((status, code)) => return fail(status, code),
    };
    if !["acceptsEmail", "acceptsSms", "acceptsPostal"].contains(&name) {
        return fail(404, "NotFound");
    }
    let Some(value) = body["value"].as_bool() else {
        return fail(400, "NoData");
    };
    let contact = &mut tenant.contacts[index];
    contact["preferences"][name] = json!(value);
    contact["meta"]["approved"] = json!(true);
    wrote(200, contact.clone())
}

fn redeem_promotion(tenant: &mut Tenant, id: &str, pid: &str, body: &Value) -> Outcome {
    if let Err((status, code)) = tenant.find(id) {
        return fail(status, code);
    }
    let channel = body["redemptionChannel"].as_str().unwrap_or("");
    if !["POS", "ECOM", "OTHER"].contains(&channel) {
        return fail(400, "NotAValidRedemptionChannel");
    }
    if !is_guid(pid) {
        return fail(400, "InvalidPromotionIdNoData");
    }
    let Some(promotion) = tenant
        .promotions
        .get_mut(id)
        .and_then(|list| list.iter_mut().find(|p| p["id"] == pid))
    else {
        return fail(404, "PromotionNotAssociatedWithContact");
    };
    if !has_channel(promotion, channel) && promotion["redeemed"] != true && !expired(promotion) {
        return fail(409, "PromotionNotValidForRedemptionChannel");
    }
    redeem_item(promotion, "PromotionAlreadyRedeemed", "PromotionExpired")
}

/// Marks a bonus check or promotion redeemed, with Voyado's refusals for one that cannot be.
fn redeem_item(item: &mut Value, already: &str, expired_code: &str) -> Outcome {
    if item["redeemed"] == true {
        return fail(409, already);
    }
    if expired(item) {
        return fail(409, expired_code);
    }
    item["redeemed"] = json!(true);
    item["redeemedOn"] = json!(now());
    wrote(200, item.clone())
}

fn redeem_check(tenant: &mut Tenant, id: &str, bid: &str) -> Outcome {
    if let Err((status, code)) = tenant.find(id) {
        return fail(status, code);
    }
    let Some(check) = tenant
        .bonus_checks
        .get_mut(id)
        .and_then(|list| list.iter_mut().find(|c| c["id"] == bid))
    else {
        return fail(404, "BonusCheckNotFound");
    };
    redeem_item(check, "BonusCheckAlreadyRedeemed", "BonusCheckExpired")
}

/// Reactivation limit per voucher (Voyado's default).
const REACTIVATION_LIMIT: u32 = 3;

fn reactivate(tenant: &mut Tenant, bid: &str) -> Outcome {
    if !is_guid(bid) {
        return fail(400, "InvalidBonusCheckId");
    }
    let used = tenant.reactivations.get(bid).copied().unwrap_or(0);
    let Some(check) = tenant
        .bonus_checks
        .values_mut()
        .flatten()
        .find(|c| c["id"] == bid)
    else {
        return fail(404, "BonusCheckNotFound");
    };
    if check["redeemed"] != true {
        return fail(406, "RewardVoucherAlreadyActivated");
    }
    if expired(check) {
        return fail(406, "BonusCheckExpired");
    }
    if used >= REACTIVATION_LIMIT {
        return fail(406, "ReactivationLimitExceeded");
    }
    check["redeemed"] = json!(false);
    check["redeemedOn"] = Value::Null;
    tenant.reactivations.insert(bid.to_owned(), used + 1);
    wrote(200, json!("Reactivated"))
}

/// `POST /api/v2/receipts`, as Voyado's receipt pages describe it: the required fields, each
/// item's with `quantity` an integer (the schema's type), a RETURN row with a negative quantity
/// and a positive price, a PURCHASE row with positive ones ("Register a return"). An accepted
/// receipt waits for the next import (`Simulator::import_receipts`; Voyado imports in batches,
/// about every 15 minutes), where it is matched to its contact and a `uniqueReceiptId` already
/// booked is ignored as a duplicate. The answer to a duplicate is the answer to any receipt:
/// Voyado documents no other.
fn receipt(tenant: &mut Tenant, body: Value) -> Outcome {
    let required = [
        "/contact/matchKey",
        "/contact/matchKeyType",
        "/uniqueReceiptId",
        "/createdDate",
        "/storeExternalId",
        "/currency",
        "/totalGrossPrice",
        "/items",
        "/paymentMethods",
    ];
    if required
        .iter()
        .any(|p| body.pointer(p).is_none_or(Value::is_null))
    {
        return fail(422, "ValidationError");
    }
    if body["contact"]["matchKeyType"] != "contactId" {
        return fail(400, "InvalidMatchKeyType");
    }
    let Some(items) = body["items"].as_array() else {
        return fail(422, "ValidationError");
    };
    if !items.iter().all(bookable_row) || !body["totalGrossPrice"].is_number() {
        return fail(400, "InvalidReceipt");
    }
    tenant.pending_receipts.push(body);
    wrote(200, Value::Null)
}

/// A receipt row Voyado's schema and its return rules allow.
fn bookable_row(item: &Value) -> bool {
    let required = [
        "sku",
        "articleNumber",
        "articleName",
        "grossPaidPrice",
        "taxAmount",
        "taxPercent",
    ];
    let (Some(quantity), Some(price), Some(tax)) = (
        item["quantity"].as_i64(),
        item["grossPaidPrice"].as_f64(),
        item["taxAmount"].as_f64(),
    ) else {
        return false;
    };
    let signs = match item["type"].as_str() {
        Some("PURCHASE") => quantity >= 0 && price >= 0.0 && tax >= 0.0,
        Some("RETURN") => quantity < 0 && price >= 0.0 && tax >= 0.0,
        Some("ADJUSTMENT") => true,
        _ => false,
    };
    signs
        && required
            .iter()
            .all(|f| item.get(*f).is_some_and(|v| !v.is_null()))
}

impl Tenant {
    /// Voyado's import batch: each pending receipt is booked on the contact it matches — by id,
    /// and only as the contact type it names (`Member` when it names none, as the field
    /// definitions say) — unless its `uniqueReceiptId` is booked already (a duplicate, ignored).
    /// One that matches no contact is kept apart, as Voyado's import leaves it unbooked.
    pub(super) fn import_receipts(&mut self) {
        for receipt in std::mem::take(&mut self.pending_receipts) {
            let unique = &receipt["uniqueReceiptId"];
            if self
                .receipts
                .iter()
                .any(|r| &r["uniqueReceiptId"] == unique)
            {
                continue;
            }
            let id = receipt["contact"]["matchKey"].as_str().unwrap_or_default();
            let kind = receipt["contact"]["contactType"]
                .as_str()
                .unwrap_or("Member");
            let matched = self.contacts.iter().any(|c| {
                c["id"] == id
                    && c["meta"]["contactType"]
                        .as_str()
                        .is_some_and(|t| t.eq_ignore_ascii_case(kind))
            });
            if !matched {
                self.unmatched_receipts.push(receipt);
                continue;
            }
            let transaction = json!({
                "id": uuid::Uuid::new_v4().to_string(),
                "transactionNumber": receipt["receiptNumber"],
                "externalId": unique,
                "createdDate": receipt["createdDate"],
                "storeName": receipt["storeExternalId"],
                "numberOfItems": receipt["items"].as_array().map_or(0, Vec::len),
                "localNetPriceSum": receipt["totalGrossPrice"],
                "localCurrency": receipt["currency"],
            });
            self.transactions
                .entry(id.to_owned())
                .or_default()
                .push(transaction);
            self.receipts.push(receipt);
        }
    }
}

fn person(tenant: &Tenant, query: &HashMap<String, String>) -> Outcome {
    let found = if let Some(ssn) = query.get("socialSecurityNumber") {
        tenant
            .persons
            .iter()
            .find(|p| p["socialSecurityNumber"] == ssn.as_str())
    } else if let Some(phone) = query.get("phoneNumber") {
        tenant
            .persons
            .iter()
            .find(|p| p["mobilePhoneNumber"] == phone.as_str())
    } else {
        return fail(400, "InvalidSearchQuery");
    };
    match found {
        Some(p) => {
            let mut p = p.clone();
            if let Some(o) = p.as_object_mut() {
                o.remove("socialSecurityNumber");
            }
            ok(p)
        }
        None => fail(404, "PersonNotFound"),
    }
}
