//! The workbench's JSON endpoints: what a market's mapping makes of a contact (pasted or read by
//! id), of an SPI edit or create, of a Sitoo order, and of a draft of the profile — each with its
//! provenance. Mapping goes through `dryrun::map` (what the `map` command runs) and reading through
//! `ops::read_card_source` (what the card reads); nothing here writes to Voyado, to disk or to
//! the set in service. Every request and answer is documented in `docs/WORKBENCH.md`.

use http::{Method, StatusCode};
use serde_json::{Map, Value, json};

use crate::app::App;
use crate::dryrun::{self, Input, Mapped};
use crate::mapping::Plan;
use crate::market::Market;
use crate::spi::ProxyError;
use crate::{keys, ops, voyado};

/// A refusal: its status, what is wrong, and the body field it is about.
#[derive(Debug)]
pub(super) struct Refused {
    pub(super) status: StatusCode,
    pub(super) message: String,
    pub(super) field: Option<&'static str>,
}

impl Refused {
    fn bad(field: &'static str, message: impl Into<String>) -> Refused {
        Refused {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            field: Some(field),
        }
    }
}

/// The endpoints, by the name after `/workbench/api/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Endpoint {
    /// `GET markets`: the markets served and their profiles.
    Markets,
    /// `POST profile`: a market's profile text, as in service.
    Profile,
    /// `POST card`: a contact (pasted, or read by id) → the card, with provenance.
    Card,
    /// `POST write`: an SPI edit or create → the Voyado write, with provenance.
    Write,
    /// `POST receipt`: a Sitoo order → the Voyado receipt, with provenance.
    Receipt,
    /// `POST draft`: a draft profile's diagnostics, examples, and card beside the one in service.
    Draft,
}

impl Endpoint {
    pub(super) fn named(name: &str) -> Option<Endpoint> {
        Some(match name {
            "markets" => Endpoint::Markets,
            "profile" => Endpoint::Profile,
            "card" => Endpoint::Card,
            "write" => Endpoint::Write,
            "receipt" => Endpoint::Receipt,
            "draft" => Endpoint::Draft,
            _ => return None,
        })
    }

    pub(super) fn method(self) -> Method {
        match self {
            Endpoint::Markets => Method::GET,
            _ => Method::POST,
        }
    }

    /// Runs the endpoint on its body (a GET's is `null`).
    pub(super) async fn run(self, app: &App, input: Value) -> Result<Value, Refused> {
        let input = match input {
            Value::Object(input) => input,
            Value::Null => Map::new(),
            _ => return Err(Refused::bad("body", "the body must be a JSON object")),
        };
        // The set in service when the request came; a reload meanwhile changes nothing here.
        let served = app.served();
        let asked = || market(&served.markets, &input);
        match self {
            Endpoint::Markets => Ok(markets(&served.markets)),
            Endpoint::Profile => profile(app, asked()?),
            Endpoint::Card => card(asked()?, &input).await,
            Endpoint::Write => write(asked()?, &input).await,
            Endpoint::Receipt => receipt(asked()?, &input),
            Endpoint::Draft => draft(app, asked()?, &input).await,
        }
    }
}

fn markets(markets: &[std::sync::Arc<Market>]) -> Value {
    let list: Vec<Value> = markets
        .iter()
        .map(|m| {
            json!({
                "market": &*m.key,
                "profile": m.settings.mapping,
                "takes_orders": m.settings.sitoo.is_some(),
            })
        })
        .collect();
    json!({ "markets": list })
}

/// The market the body names (`"market": "TENANT/MARKET"`).
fn market<'m>(
    markets: &'m [std::sync::Arc<Market>],
    input: &Map<String, Value>,
) -> Result<&'m Market, Refused> {
    let Some(key) = input.get("market").and_then(Value::as_str) else {
        return Err(Refused::bad("market", "market must be \"TENANT/MARKET\""));
    };
    markets
        .iter()
        .find(|m| &*m.key == key)
        .map(|m| &**m)
        .ok_or_else(|| Refused {
            status: StatusCode::NOT_FOUND,
            message: "no such market is served (see GET /workbench/api/markets)".into(),
            field: Some("market"),
        })
}

/// The market's profile file as it is now (what a reload would serve), and the name its
/// diagnostics are placed by.
fn profile_text(app: &App, market: &Market) -> Result<(String, String), Refused> {
    app.mapping_source()
        .read(&market.settings.mapping)
        .map_err(|e| Refused {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: e,
            field: None,
        })
}

fn profile(app: &App, market: &Market) -> Result<Value, Refused> {
    let (text, file) = profile_text(app, market)?;
    Ok(json!({ "file": file, "text": text }))
}

/// The Voyado document to map: `voyado` as pasted (a contact, or a card source with its
/// roots), or the card's reads of the contact `contact_id`.
async fn voyado_of(market: &Market, input: &Map<String, Value>) -> Result<Value, Refused> {
    match (input.get("voyado"), input.get("contact_id")) {
        (Some(voyado), None) if voyado.is_object() => Ok(voyado.clone()),
        (Some(_), None) => Err(Refused::bad(
            "voyado",
            "voyado must be a Voyado contact, or an object with the roots contact, \
             promotions, bonus_checks, points and status",
        )),
        (None, Some(id)) => fetch(market, id).await,
        (Some(_), Some(_)) => Err(Refused::bad(
            "contact_id",
            "give either voyado or contact_id, not both",
        )),
        (None, None) => Err(Refused::bad("voyado", "give voyado or contact_id")),
    }
}

/// The card's reads of one contact, through the market's client and budget; never a write.
async fn fetch(market: &Market, id: &Value) -> Result<Value, Refused> {
    let id = id
        .as_str()
        .and_then(|id| keys::guid(id).ok())
        .ok_or_else(|| {
            Refused::bad(
                "contact_id",
                "contact_id must be a Voyado contact id (a GUID)",
            )
        })?;
    // New work in Voyado's budget (refused with the tills' own 429 when the budget is short,
    // never ahead of a till's call under way), and no longer than a till would wait.
    let read = voyado::within_request(false, None, ops::read_card_source(market, &id));
    let (source, _) = tokio::time::timeout(market.settings.request_timeout, read)
        .await
        .map_err(|_| Refused {
            status: StatusCode::GATEWAY_TIMEOUT,
            message: "Voyado did not answer within the market's request_timeout_ms".into(),
            field: None,
        })?
        .map_err(|e| match e {
            ProxyError::Voyado { error, .. } if error.is_not_found() => Refused {
                status: StatusCode::NOT_FOUND,
                message: "Voyado has no contact with this id".into(),
                field: Some("contact_id"),
            },
            other => Refused {
                status: StatusCode::BAD_GATEWAY,
                message: format!("Voyado's answer could not be read: {other}"),
                field: None,
            },
        })?;
    Ok(source)
}

fn mapped(mapped: Mapped) -> Value {
    json!({
        "document": mapped.document,
        "provenance": mapped.provenance,
        "notes": mapped.notes,
    })
}

/// Maps `input` with `plan` for `market`; what the mapping refuses is a `400`.
fn map_with(market: &Market, plan: &Plan, input: Input) -> Result<Mapped, Refused> {
    dryrun::map(&market.settings, plan, input, jiff::Timestamp::now()).map_err(|message| Refused {
        status: StatusCode::BAD_REQUEST,
        message,
        field: None,
    })
}

async fn card(market: &Market, input: &Map<String, Value>) -> Result<Value, Refused> {
    let voyado = voyado_of(market, input).await?;
    let card = map_with(market, &market.plan, Input::Voyado(voyado.clone()))?;
    Ok(json!({ "voyado": voyado, "card": mapped(card) }))
}

async fn write(market: &Market, input: &Map<String, Value>) -> Result<Value, Refused> {
    let body = object(
        input,
        "spi",
        "spi must be the SPI customer body (an object)",
    )?;
    let current = optional(
        input,
        "current",
        |v| v.is_object().then(|| v.clone()),
        "current must be the Voyado contact edited (an object), or null for a create",
    )?;
    let path = match &current {
        Some(contact) => format!(
            "/api/v2/contacts/{}",
            market.plan.item_id(contact).unwrap_or("{id}")
        ),
        None => "/api/v2/contacts".to_owned(),
    };
    let write = map_with(
        market,
        &market.plan,
        Input::Spi {
            body: body.clone(),
            current,
        },
    )?;
    Ok(json!({ "method": "POST", "path": path, "write": mapped(write) }))
}

/// A member of the input that must be a JSON object; else `problem`, naming the member.
fn object<'a>(
    input: &'a Map<String, Value>,
    name: &'static str,
    problem: &str,
) -> Result<&'a Value, Refused> {
    input
        .get(name)
        .filter(|v| v.is_object())
        .ok_or_else(|| Refused::bad(name, problem))
}

/// An optional member of the input: absent or null is `None`; a value `take` refuses is
/// `problem`, naming the member.
fn optional<T>(
    input: &Map<String, Value>,
    name: &'static str,
    take: impl Fn(&Value) -> Option<T>,
    problem: &str,
) -> Result<Option<T>, Refused> {
    match input.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => take(value)
            .map(Some)
            .ok_or_else(|| Refused::bad(name, problem)),
    }
}

fn receipt(market: &Market, input: &Map<String, Value>) -> Result<Value, Refused> {
    let order = object(
        input,
        "order",
        "order must be a Sitoo order as its REST API answers it (an object)",
    )?;
    let contact_type = optional(
        input,
        "contact_type",
        |v| v.as_str().map(str::to_owned),
        "contact_type must be a string",
    )?;
    let receipt = map_with(
        market,
        &market.plan,
        Input::Order {
            order: order.clone(),
            contact_type,
        },
    )?;
    Ok(json!({ "method": "POST", "path": "/api/v2/receipts", "receipt": mapped(receipt) }))
}

/// Compiles the draft as the loader would (its `extends` read from the mappings in service),
/// in memory only; with a contact, its card under the draft beside the card in service — also
/// when the draft's only problems are failing examples, which are among its diagnostics.
async fn draft(app: &App, market: &Market, input: &Map<String, Value>) -> Result<Value, Refused> {
    let Some(text) = input.get("profile").and_then(Value::as_str) else {
        return Err(Refused::bad(
            "profile",
            "profile must be the profile's TOML text",
        ));
    };
    let (_, file) = profile_text(app, market)?;
    let source = app.mapping_source();
    let (plan, found) = Plan::compile_draft(text, &file, &|name| source.read(name));
    let voyado = match (input.get("voyado"), input.get("contact_id")) {
        (None, None) => None,
        _ => Some(voyado_of(market, input).await?),
    };
    let card = |plan: &Plan| -> Result<Value, Refused> {
        match &voyado {
            Some(voyado) => Ok(mapped(map_with(
                market,
                plan,
                Input::Voyado(voyado.clone()),
            )?)),
            None => Ok(Value::Null),
        }
    };
    let in_service = card(&market.plan)?;
    let diagnostics: Vec<Value> = found
        .diagnostics
        .iter()
        .map(|d| {
            json!({
                "file": d.file,
                "line": d.line,
                "column": d.column,
                "message": d.message,
            })
        })
        .collect();
    let (examples, draft) = match &plan {
        Some(plan) => (json!(plan.examples()), card(plan)?),
        None => (json!([]), Value::Null),
    };
    Ok(json!({
        "file": file,
        "compiles": diagnostics.is_empty(),
        "diagnostics": diagnostics,
        "examples": examples,
        "draft": draft,
        "in_service": in_service,
    }))
}
