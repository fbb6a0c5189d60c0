//! An order's customer in Voyado — the role of Omnium's `GetOrCreateCustomerFromOrder`: by the
//! Voyado contact id the POS wrote on the order (`crm-customerid`), the member number
//! (`crm-membernumber`), the email, then the mobile, each among every contact type the market
//! knows (`order_contact_types`: an e-commerce `Contact` is found, never duplicated); a contact is
//! created only when nothing matches and the market allows it (`order_customer_create`, source
//! `order-import`). The answer says the contact's type: a receipt for any type but `Member` must
//! name it (Voyado matches a receipt as `Member` otherwise). Order events use it, and so does
//! `POST /orders/customer` for an order-import system.
//!
//! Concurrent resolutions of one new identity create one contact: the create happens under the
//! identity's lock, after a fresh look-up made under the same lock (across replicas, Voyado's own
//! refusal of a second contact with the key is the guard). When the email and the mobile name
//! different contacts, the market's contact key decides, and the answer says it was ambiguous.

use serde_json::{Map, Value, json};

use super::add::create;
use super::search::find_typed;
use super::{CUSTOMER, OpRequest, upstream};
use crate::keys;
use crate::mapping::WritePolicy;
use crate::market::Market;
use crate::spi::{ProxyError, Reason};
use crate::voyado::{Endpoint, Read};

/// The `source` of a contact an order created.
const SOURCE: &str = "order-import";

/// What an order says about its customer (each value as sent; empty counts as absent).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Identity {
    pub customer_id: Option<String>,
    pub member_number: Option<String>,
    pub email: Option<String>,
    pub mobile: Option<String>,
    pub name_first: Option<String>,
    pub name_last: Option<String>,
}

/// How the customer was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The Voyado contact id; none: no contact matched and none was created.
    pub customer_id: Option<String>,
    /// The contact's type as Voyado names it (`Member`, `Contact`, …), when known.
    pub contact_type: Option<String>,
    pub created: bool,
    /// `customer_id`, `member_number`, `email`, `mobile`, or none.
    pub matched_by: Option<&'static str>,
    /// The email and the mobile named different contacts; the contact key decided.
    pub ambiguous: bool,
}

impl Resolved {
    /// No contact: none matched, and none was created.
    fn none() -> Resolved {
        Resolved {
            customer_id: None,
            contact_type: None,
            created: false,
            matched_by: None,
            ambiguous: false,
        }
    }

    fn found((id, contact_type): Found, matched_by: &'static str) -> Resolved {
        Resolved {
            customer_id: Some(id),
            contact_type,
            created: false,
            matched_by: Some(matched_by),
            ambiguous: false,
        }
    }

    pub fn answer(&self) -> Value {
        json!({
            "customer_id": self.customer_id,
            "contact_type": self.contact_type,
            "created": self.created,
            "matched_by": self.matched_by,
            "ambiguous": self.ambiguous,
        })
    }
}

impl Identity {
    /// Reads `{"customer_id"?, "member_number"?, "email"?, "mobile"?, "name_first"?,
    /// "name_last"?}`; at least one of the first four.
    fn from_body(body: &Value) -> Result<Identity, ProxyError> {
        let Some(object) = body.as_object() else {
            return Err(ProxyError::field("body", "must be a JSON object"));
        };
        let text = |name: &str| -> Result<Option<String>, ProxyError> {
            match object.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.trim().to_owned())),
                Some(_) => Err(ProxyError::field(name, "must be a string")),
            }
        };
        let identity = Identity {
            customer_id: text("customer_id")?,
            member_number: text("member_number")?,
            email: text("email")?,
            mobile: text("mobile")?,
            name_first: text("name_first")?,
            name_last: text("name_last")?,
        };
        if identity.is_empty() {
            return Err(ProxyError::field(
                "body",
                "must name customer_id, member_number, email or mobile",
            ));
        }
        Ok(identity)
    }

    pub fn is_empty(&self) -> bool {
        self.customer_id.is_none()
            && self.member_number.is_none()
            && self.email.is_none()
            && self.mobile.is_none()
    }
}

/// `POST /orders/customer`.
pub(super) async fn run(market: &Market, request: &OpRequest) -> Result<Value, ProxyError> {
    let identity = Identity::from_body(request.body()?)?;
    let store = request.store_id.as_deref();
    let resolved = resolve(market, &identity, store, true, request.now).await?;
    Ok(resolved.answer())
}

/// Finds the customer, or creates one where the market allows it and the caller may (an order
/// that only returns goods never makes a new member).
pub(super) async fn resolve(
    market: &Market,
    identity: &Identity,
    store: Option<&str>,
    may_create: bool,
    now: jiff::Timestamp,
) -> Result<Resolved, ProxyError> {
    if let Some(found) = by_contact_id(market, identity).await? {
        return Ok(Resolved::found(found, "customer_id"));
    }
    if let Some(number) = &identity.member_number
        && let Some(found) = by_key(market, "member_number", number, now).await?
    {
        return Ok(Resolved::found(found, "member_number"));
    }
    if let Some(found) = by_email_or_mobile(market, identity, now).await? {
        return Ok(found);
    }
    if !(market.settings.order_customer_create && may_create) {
        return Ok(Resolved::none());
    }
    create_customer(market, identity, store, now).await
}

/// A contact Voyado has: its id, and its type when known.
type Found = (String, Option<String>);

/// The contact whose id the POS wrote on the order, if Voyado has it. Another CRM's id (not a
/// GUID) names no Voyado contact.
async fn by_contact_id(market: &Market, identity: &Identity) -> Result<Option<Found>, ProxyError> {
    let Some(id) = identity
        .customer_id
        .as_deref()
        .and_then(|raw| keys::guid(raw).ok())
    else {
        return Ok(None);
    };
    match market
        .voyado
        .get_fresh(Endpoint::Contact, &[&id], &[])
        .await
    {
        Ok(contact) => {
            let contact_type = market.plan.contact_type(&contact);
            if contact_type.is_none() {
                // A receipt that names no type is matched as a Member by Voyado.
                tracing::warn!("an order's contact has no contact type in Voyado's answer");
            }
            Ok(market
                .plan
                .item_id(&contact)
                .map(|id| (id.to_owned(), contact_type)))
        }
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(upstream(market, CUSTOMER)(e)),
    }
}

/// The contact with this value of an SPI key (`email`, `mobile`, `member_number`), normalised
/// as a search would be, among every type an order's customer may be. A value that cannot be
/// one, or that several contacts of a type share, finds none.
async fn by_key(
    market: &Market,
    key_type: &str,
    raw: &str,
    now: jiff::Timestamp,
) -> Result<Option<Found>, ProxyError> {
    let Some(spec) = market.plan.search_key(key_type) else {
        return Ok(None);
    };
    let Ok(value) = market.view(now).normalize(spec.normalize, raw) else {
        tracing::info!(key_type, "an order's customer key is unusable; skipped");
        return Ok(None);
    };
    let types = &market.settings.order_contact_types;
    match find_typed(market, spec, &value, types, Read::Fresh).await {
        Ok(found) => Ok(found.map(|(id, kind)| (id, Some(kind.to_owned())))),
        Err(ProxyError::Voyado { error, .. }) if error.status() == Some(409) => {
            tracing::info!(
                key_type,
                "several contacts share an order's customer key; skipped"
            );
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

async fn by_email_or_mobile(
    market: &Market,
    identity: &Identity,
    now: jiff::Timestamp,
) -> Result<Option<Resolved>, ProxyError> {
    let email = match &identity.email {
        Some(email) => by_key(market, "email", email, now).await?,
        None => None,
    };
    let mobile = match &identity.mobile {
        Some(mobile) => by_key(market, "mobile", mobile, now).await?,
        None => None,
    };
    Ok(match (email, mobile) {
        (Some(e), Some(m)) if e.0 != m.0 => {
            let (id, by) = if market.contact_key == "mobile" {
                (m, "mobile")
            } else {
                (e, "email")
            };
            tracing::info!(matched_by = by, "email and mobile name different contacts");
            Some(Resolved {
                ambiguous: true,
                ..Resolved::found(id, by)
            })
        }
        (Some(e), _) => Some(Resolved::found(e, "email")),
        (None, Some(m)) => Some(Resolved::found(m, "mobile")),
        (None, None) => None,
    })
}

/// Creates the customer under the lock of its contact key, after looking once more under the same
/// lock: of concurrent resolutions of one new customer, one creates and the others find it.
async fn create_customer(
    market: &Market,
    identity: &Identity,
    store: Option<&str>,
    now: jiff::Timestamp,
) -> Result<Resolved, ProxyError> {
    let key_type = market.contact_key.as_str();
    let key = match key_type {
        "email" => identity.email.as_deref(),
        "mobile" => identity.mobile.as_deref(),
        _ => None,
    };
    let (Some(key), Some(spec)) = (key, market.plan.search_key(key_type)) else {
        tracing::info!(
            key_type,
            "an order's customer has no value for the contact key: not created"
        );
        return Ok(Resolved::none());
    };
    let view = market.view(now);
    let Ok(normalised) = view.normalize(spec.normalize, key) else {
        return Ok(Resolved::none());
    };
    let _one_at_a_time = market.identities.lock(&normalised).await;
    if let Some(found) = by_email_or_mobile(market, identity, now).await? {
        return Ok(found);
    }
    let mut body = Map::new();
    for (field, value) in [
        ("email", &identity.email),
        ("mobile", &identity.mobile),
        ("name_first", &identity.name_first),
        ("name_last", &identity.name_last),
    ] {
        if let Some(value) = value {
            body.insert(field.to_owned(), Value::String(value.clone()));
        }
    }
    let written_at = now.to_string();
    let policy = WritePolicy {
        clearable: &[],
        ignored: &[],
        source: SOURCE,
        now: &written_at,
    };
    // An order's fields are not the cashier's form: one Voyado would refuse is left out.
    let body = Value::Object(body);
    let new_contact = match market
        .plan
        .contact_changes(&body, &Value::Null, &policy, &view)
    {
        Ok(changes) => changes,
        Err(e) => {
            tracing::info!(field = %e.field, "an order's customer field is unusable; left out");
            let mut only_key = Map::new();
            only_key.insert(key_type.to_owned(), Value::String(key.to_owned()));
            market
                .plan
                .contact_changes(&Value::Object(only_key), &Value::Null, &policy, &view)?
        }
    };
    let id = match create(market, store, SOURCE, spec, &normalised, new_contact).await {
        Ok(id) => id,
        // Another replica created it meanwhile: Voyado refused a second contact with the key.
        Err(e) if already_there(&e) => {
            return match by_email_or_mobile(market, identity, now).await? {
                Some(found) => Ok(found),
                None => Err(e),
            };
        }
        Err(e) => return Err(e),
    };
    tracing::info!(customer_id = %id, "contact created from an order");
    Ok(Resolved {
        customer_id: Some(id),
        contact_type: Some(market.settings.contact_type.clone()),
        created: true,
        matched_by: None,
        ambiguous: false,
    })
}

/// A create Voyado refused because a contact with the key exists (or is being created).
fn already_there(e: &ProxyError) -> bool {
    match e {
        ProxyError::Refused(r) => r.reason == Reason::CustomerExists,
        ProxyError::Voyado { error, .. } => error.status() == Some(409),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn a_body_needs_one_identity_and_strings() {
        let refused = |body: Value| match Identity::from_body(&body) {
            Err(ProxyError::Refused(r)) => (r.reason, r.message),
            other => panic!("{other:?}"),
        };
        assert_eq!(refused(json!([])).1, "body must be a JSON object");
        assert_eq!(
            refused(json!({"name_first": "A", "email": " "})).1,
            "body must name customer_id, member_number, email or mobile"
        );
        assert_eq!(refused(json!({"email": 7})).1, "email must be a string");
        let identity = Identity::from_body(&json!({"mobile": " 0701 ", "email": null})).unwrap();
        assert_eq!(identity.mobile.as_deref(), Some("0701"));
        assert_eq!(identity.email, None);
    }

    proptest! {
        #[test]
        fn any_json_body_is_an_identity_or_a_refusal_naming_a_field(body in crate::ops::tests::json_values()) {
            match Identity::from_body(&body) {
                Ok(identity) => prop_assert!(!identity.is_empty()),
                Err(ProxyError::Refused(r)) => {
                    prop_assert_eq!(r.reason, Reason::InvalidInput);
                    let field = r.message.split(' ').next().unwrap_or_default();
                    prop_assert!(
                        ["body", "customer_id", "member_number", "email", "mobile", "name_first", "name_last"]
                            .contains(&field),
                        "{}", r.message
                    );
                }
                Err(other) => prop_assert!(false, "{other:?}"),
            }
        }
    }
}
