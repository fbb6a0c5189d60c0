//! `map`: what a market's mapping does, without a proxy or a network. For whoever edits a mapping:
//! the SPI customer the till would see for a Voyado contact (or a whole card source), the
//! Voyado write an SPI body would send — an edit's against a current contact, else a create's —
//! and the Voyado receipt a Sitoo order would become (refunds and exchanges included).
//! Each with its provenance: the rule behind every field, and why an empty one is empty. The
//! workbench (`src/workbench/`) maps what it is sent through [`map`] too.

use serde_json::{Map, Value};

use crate::app::Compiled;
use crate::config::MarketConfig;
use crate::mapping::{self, Plan, Provenance, WritePolicy};
use crate::ops;
use crate::ops::receipt::{self, OrderState};

/// What to map.
#[derive(Debug)]
pub enum Input {
    /// A Voyado contact, or a card source with the roots `contact`, `promotions`,
    /// `bonus_checks`, `points` and `status` (a missing root is empty).
    Voyado(Value),
    /// An SPI customer body, and the Voyado contact it edits (none: a create).
    Spi { body: Value, current: Option<Value> },
    /// A Sitoo order as its REST API answers it, and the type of the contact it would be booked
    /// on (none: `Member`).
    Order {
        order: Value,
        contact_type: Option<String>,
    },
}

/// Stands for the contact id the order's customer resolves to, which only Voyado knows.
const CONTACT_PLACEHOLDER: &str = "<the customer's contact id>";

/// What the mapping made of it.
#[derive(Debug, PartialEq)]
pub struct Mapped {
    pub document: Value,
    /// What the reader should know besides (items left out of a card).
    pub notes: Vec<String>,
    /// The rule behind each field of the document.
    pub provenance: Vec<Provenance>,
}

/// Maps `input` for `market` (`TENANT/MARKET`) with the clock at `now`. `Err` names what is
/// wrong: an unknown market, or the field the proxy would refuse with `400`.
pub fn run(
    compiled: &Compiled,
    market: &str,
    input: Input,
    now: jiff::Timestamp,
) -> Result<Mapped, String> {
    let (settings, plan) = compiled
        .market(market)
        .ok_or_else(|| format!("no market {market} (TENANT/MARKET)"))?;
    map(settings, plan, input, now)
}

/// Maps `input` with one market's settings and plan (the workbench passes a draft's plan).
pub fn map(
    settings: &MarketConfig,
    plan: &Plan,
    input: Input,
    now: jiff::Timestamp,
) -> Result<Mapped, String> {
    let market = format!("{}/{}", settings.tenant, settings.market);
    let view = crate::market::view(settings, now);
    match input {
        Input::Voyado(voyado) => {
            let roots = [
                mapping::CONTACT,
                mapping::PROMOTIONS,
                mapping::BONUS_CHECKS,
                mapping::POINTS,
                mapping::STATUS,
            ];
            let parts = match voyado {
                Value::Object(mut source) if source.contains_key(mapping::CONTACT) => {
                    roots.map(|root| source.remove(root).unwrap_or(Value::Null))
                }
                contact => [contact, Value::Null, Value::Null, Value::Null, Value::Null],
            };
            let source = ops::card_source(settings, parts);
            let (document, omitted, provenance) = plan.explain_customer(&source, &view);
            let notes = (omitted > 0)
                .then(|| {
                    format!(
                        "{omitted} item(s) left out: no value in the market currency, or an unmapped type"
                    )
                })
                .into_iter()
                .collect();
            Ok(Mapped {
                document,
                notes,
                provenance,
            })
        }
        Input::Spi { body, current } => {
            let now = now.to_string();
            let editing = current.is_some();
            let policy = WritePolicy {
                clearable: if editing {
                    &settings.clearable_fields
                } else {
                    &[]
                },
                ignored: if editing {
                    &settings.read_only_fields
                } else {
                    &[]
                },
                source: &settings.source,
                now: &now,
            };
            let changes = plan
                .contact_changes(
                    &body,
                    current.as_ref().unwrap_or(&Value::Null),
                    &policy,
                    &view,
                )
                .map_err(|e| format!("400 invalid_input: {} {}", e.field, e.message))?;
            let provenance = plan.explain_write(&body, &changes, &policy);
            let document = match current {
                Some(_) if changes.is_empty() => Value::Object(Map::new()),
                Some(_) => Value::Object(plan.voyado_body(changes)),
                None => Value::Object(ops::create_body(plan, settings, changes)),
            };
            let notes = if editing {
                vec![
                    "the edit's update body (POST /api/v2/contacts/{id}); empty: nothing is sent"
                        .into(),
                ]
            } else {
                vec!["the create body (POST /api/v2/contacts)".into()]
            };
            Ok(Mapped {
                document,
                notes,
                provenance,
            })
        }
        Input::Order {
            order,
            contact_type,
        } => {
            let sitoo = settings.sitoo.as_ref().ok_or_else(|| {
                format!("market {market} takes no order events: it has no sitoo_account_id")
            })?;
            let order_id = order["orderid"]
                .as_u64()
                .ok_or("the order has no orderid (a whole number)")?;
            // The state first, as the proxy looks at it: an order it would not book is said so
            // before anything else.
            let state = match OrderState::of(&order) {
                OrderState::Unknown => {
                    return Err(
                        "the order has no state Sitoo documents (orderstateid): the proxy would count it failed, never booked"
                            .into(),
                    );
                }
                state => state,
            };
            let derived = receipt::derive(
                &order,
                &receipt::Context {
                    account_id: sitoo.account_id,
                    order_id,
                    timezone: &settings.timezone,
                    currency: &settings.currency,
                },
            )
            .map_err(|e| match state {
                OrderState::Closed => format!("refused for good, never sent to Voyado: {e}"),
                _ => format!(
                    "the order is {state:?} in Sitoo (not booked), and as it stands could not be: {e}"
                ),
            })?;
            let mut notes = vec![format!(
                "the receipt (POST /api/v2/receipts); contact.matchKey is {CONTACT_PLACEHOLDER}"
            )];
            if state != OrderState::Closed {
                notes.push(format!(
                    "the order is {state:?} in Sitoo (orderstateid): the proxy books only closed orders"
                ));
            }
            if !derived.bonus_check_ids.is_empty() {
                notes.push(format!(
                    "bonus checks {} are left out: their check numbers are read from Voyado when the order is booked",
                    derived.bonus_check_ids.join(", ")
                ));
            }
            let contact_type = contact_type.unwrap_or_else(|| "Member".into());
            let source = receipt::source(
                &order,
                derived,
                Vec::new(),
                CONTACT_PLACEHOLDER,
                Some(&contact_type),
            );
            let (document, provenance) = plan.explain_receipt(&source, &view);
            Ok(Mapped {
                document,
                notes,
                provenance,
            })
        }
    }
}
