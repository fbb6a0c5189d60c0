//! The SPI operations (and Sitoo's order events with the customer resolution behind them), one
//! file each: what each asks Voyado, in what order, and how the
//! answers become the SPI document through the market's mapping plan.

mod add;
mod card;
mod cards;
mod consents;
mod events;
mod lookup;
pub mod receipt;
mod redeem;
mod resolve;
mod search;
mod transactions;
mod update;

pub use add::create_body;
pub use card::{card_source, read_card_source};
#[cfg(test)]
pub(crate) use cards::CardKey;
pub use cards::Cards;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value;

use crate::keys;
use crate::market::Market;
use crate::spi::{Operation, ProxyError};
use crate::voyado::VoyadoError;

/// What an operation gets from the HTTP request, already decoded. `Default` only in tests: a
/// request made up in production would carry the epoch as its clock reading.
#[derive(Debug)]
#[cfg_attr(test, derive(Default))]
pub struct OpRequest {
    pub query: Vec<(String, String)>,
    pub body: Option<Value>,
    /// The path parameter's name and value, percent-decoded but not yet validated.
    pub customer_id: Option<(Arc<str>, String)>,
    /// The decoded `Store-ID` header: Voyado's `storeExternalId` on a create.
    pub store_id: Option<String>,
    /// The request's one reading of the clock: every date the operation compares or writes.
    pub now: jiff::Timestamp,
}

impl OpRequest {
    fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn required_param(&self, name: &str) -> Result<&str, ProxyError> {
        match self.param(name) {
            Some(v) if !v.is_empty() => Ok(v),
            _ => Err(ProxyError::field(name, "is required")),
        }
    }

    /// A required value from the JSON body when there is one (a `POST` lookup), else from the
    /// query (a `GET`).
    fn body_or_param(&self, name: &str) -> Result<&str, ProxyError> {
        let Some(body) = &self.body else {
            return self.required_param(name);
        };
        if !body.is_object() {
            return Err(ProxyError::field("body", "must be a JSON object"));
        }
        match body.get(name) {
            Some(Value::String(v)) if !v.is_empty() => Ok(v),
            None | Some(Value::Null) => Err(ProxyError::field(name, "is required")),
            Some(Value::String(_)) => Err(ProxyError::field(name, "is required")),
            Some(_) => Err(ProxyError::field(name, "must be a string")),
        }
    }

    /// The customer id from the path. One that is no GUID cannot name a Voyado contact (historic orders may carry
    /// another CRM's ids): the POS reads `404` as "no such customer" (contract §4.2). Nothing
    /// that is not a GUID ever reaches a Voyado URL.
    fn customer_id(&self) -> Result<String, ProxyError> {
        let (_, value) = self.customer_id.as_ref().ok_or_else(ProxyError::internal)?;
        keys::guid(value).map_err(|_| ProxyError::not_found(CUSTOMER))
    }

    fn body(&self) -> Result<&Value, ProxyError> {
        self.body
            .as_ref()
            .ok_or_else(|| ProxyError::field("body", "is required"))
    }
}

/// Runs one operation; the answer is the `200` body, already serialised. A card is rendered here
/// only after [`warm`] found none current: the card operation does not look in the cache again.
///
/// Each operation's future goes on the heap by itself: one `async fn` over all of them would be
/// as large as the largest (a redeem's, about 15 KB), copied whole on every request as the
/// layers above wrap and move it.
pub fn run(
    operation: Operation,
    market: Arc<Market>,
    cards: Cards,
    request: OpRequest,
) -> Pin<Box<dyn Future<Output = Result<Bytes, ProxyError>> + Send>> {
    fn json(value: Value) -> Bytes {
        Bytes::from(serde_json::to_vec(&value).unwrap_or_default())
    }
    let (m, r) = (market, request);
    match operation {
        Operation::Search => Box::pin(async move { search::run(&m, &cards, &r).await }),
        Operation::AddCustomer => Box::pin(async move { add::run(&m, &cards, &r).await }),
        Operation::GetCustomer => Box::pin(async move { card::run(&m, &cards, &r).await }),
        Operation::UpdateCustomer => Box::pin(async move { update::run(&m, &cards, &r).await }),
        Operation::Transactions => {
            Box::pin(async move { transactions::run(&m, &r).await.map(json) })
        }
        Operation::Redeem => Box::pin(async move { redeem::redeem(&m, &r).await.map(json) }),
        Operation::UndoRedeem => Box::pin(async move { redeem::undo(&m, &r).await.map(json) }),
        Operation::Consents => Box::pin(async move { consents::run(&m, &r).await.map(json) }),
        Operation::Lookup => Box::pin(async move { lookup::run(&m, &r).await.map(json) }),
        Operation::Events => Box::pin(async move { events::run(&m, &r).await.map(json) }),
        Operation::ResolveCustomer => Box::pin(async move { resolve::run(&m, &r).await.map(json) }),
    }
}

/// A card still current in memory, answered before anything else of the request is made (its
/// span, its Voyado work): `None` for every other operation, and for a card that must be rendered
/// — [`run`] then renders it without looking again, and counts the miss. `raw_id` is the path's
/// customer id as sent.
pub fn warm(
    operation: Operation,
    market: &Market,
    cards: &Cards,
    raw_id: Option<&str>,
) -> Option<Bytes> {
    match (operation, raw_id) {
        (Operation::GetCustomer, Some(raw_id)) => card::warm(market, cards, raw_id),
        _ => None,
    }
}

/// A Voyado failure about `what`, with the fields Voyado named turned into their SPI names.
/// A name the mapping does not know is dropped: it could be any word of Voyado's sentence, and
/// the message then names no field rather than pass Voyado's text on. The error table decides
/// the answer later, in one place.
fn upstream<'a>(market: &'a Market, what: &'static str) -> impl Fn(VoyadoError) -> ProxyError + 'a {
    move |mut e| {
        if let VoyadoError::Status { fields, .. } = &mut e {
            let mut known: Vec<String> = Vec::new();
            for spi in fields.iter().filter_map(|f| market.plan.spi_field_for(f)) {
                if !known.iter().any(|k| k == spi) {
                    known.push(spi.to_owned());
                }
            }
            *fields = known;
        }
        ProxyError::voyado(e, what)
    }
}

const CUSTOMER: &str = "customer";

#[cfg(test)]
pub(crate) mod tests {
    use proptest::prelude::*;
    use proptest::sample::select;

    use super::*;
    use crate::spi::Reason;

    /// Any JSON, with keys an operation reads among the random ones, nested a few levels deep.
    pub(crate) fn json_values() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u32>().prop_map(Value::from),
            "\\PC{0,12}".prop_map(Value::String),
            Just(Value::String("order".into())),
        ];
        let keys = prop_oneof![
            select(
                &[
                    "event_id",
                    "event_type",
                    "account_id",
                    "data",
                    "eshop_id",
                    "order_id",
                    "order_state_changed",
                    "customer_id",
                    "member_number",
                    "email",
                    "mobile",
                    "name_first",
                    "name_last",
                ][..]
            )
            .prop_map(str::to_owned),
            "[a-z_]{0,8}",
        ];
        leaf.prop_recursive(3, 32, 8, move |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..12).prop_map(Value::Array),
                proptest::collection::btree_map(keys.clone(), inner, 0..8)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// Stands for personal data in caller text: no refusal message may repeat it.
    const MARKER: &str = "Q7X2Z9K4";

    /// A lowercase or uppercase hex GUID with hyphens at 8, 13, 18 and 23, written out.
    fn is_guid(s: &str) -> bool {
        s.len() == 36
            && s.bytes().enumerate().all(|(i, b)| match i {
                8 | 13 | 18 | 23 => b == b'-',
                _ => b.is_ascii_hexdigit(),
            })
    }

    /// Path parameters: GUIDs in any case and form, near misses, traversal, the marker, any text.
    fn raw_ids() -> impl Strategy<Value = String> {
        let forms = (any::<u128>(), 0..8u8).prop_map(|(n, form)| {
            let id = uuid::Uuid::from_u128(n);
            let hyphenated = id.hyphenated().to_string();
            match form {
                0 => hyphenated,
                1 => hyphenated.to_ascii_uppercase(),
                2 => id.simple().to_string(),
                3 => id.braced().to_string(),
                4 => id.urn().to_string(),
                5 => format!("{}é", &hyphenated[..34]),
                6 => format!("{}{MARKER}", &hyphenated[..28]),
                _ => format!("{hyphenated} "),
            }
        });
        let odd = select(&["", "..", "../", "..%2F", "%2e%2e", "/", "?", "#", MARKER][..]);
        prop_oneof![
            4 => forms,
            1 => odd.prop_map(str::to_owned),
            2 => "\\PC{0,40}",
            1 => "[-0-9a-fA-FgG]{36}",
        ]
    }

    #[test]
    fn a_missing_path_parameter_is_an_internal_error() {
        let Err(ProxyError::Refused(r)) = OpRequest::default().customer_id() else {
            panic!("no customer id should be refused");
        };
        assert_eq!(r.reason, Reason::Internal);
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 512,
            rng_algorithm: proptest::test_runner::RngAlgorithm::XorShift,
            ..ProptestConfig::default()
        })]

        #[test]
        fn a_customer_id_is_a_lowercase_guid_or_not_found(raw in raw_ids()) {
            let request = OpRequest {
                customer_id: Some((Arc::from("customer_id"), raw.clone())),
                ..OpRequest::default()
            };
            match request.customer_id() {
                Ok(id) => {
                    prop_assert!(is_guid(&raw), "{raw:?} taken");
                    prop_assert_eq!(id, raw.to_ascii_lowercase());
                }
                Err(ProxyError::Refused(r)) => {
                    prop_assert!(!is_guid(&raw), "{raw:?} refused");
                    prop_assert_eq!(r.reason, Reason::NotFound);
                    prop_assert_eq!(r.message, "customer not found");
                }
                Err(other) => prop_assert!(false, "{other:?}"),
            }
        }

        #[test]
        fn a_required_parameter_is_the_first_non_empty_value_or_invalid_input(
            query in proptest::collection::vec(
                (select(&["key_type", "key", "page", "Key", ""][..]), "\\PC{0,6}|Q7X2Z9K4"),
                0..5,
            ),
            name in select(&["key_type", "key", "page"][..]),
        ) {
            let request = OpRequest {
                query: query.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect(),
                ..OpRequest::default()
            };
            let first = query.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str());
            match request.required_param(name) {
                Ok(value) => {
                    prop_assert_eq!(Some(value), first);
                    prop_assert!(!value.is_empty());
                }
                Err(ProxyError::Refused(r)) => {
                    prop_assert!(first.is_none_or(str::is_empty), "{first:?} refused");
                    prop_assert_eq!(r.reason, Reason::InvalidInput);
                    prop_assert!(r.message.starts_with(&format!("{name} ")), "{}", r.message);
                    prop_assert!(!r.message.contains(MARKER), "{}", r.message);
                }
                Err(other) => prop_assert!(false, "{other:?}"),
            }
        }
    }
}
