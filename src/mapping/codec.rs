//! Value conversions a mapping rule can name with `codec = "..."`.
//!
//! Reading turns a Voyado value into its SPI form; writing (for the contact fields only) goes back.
//! Money is handled with decimal arithmetic and always has exactly two places.

use std::collections::BTreeMap;
use std::str::FromStr;

use jiff::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use rust_decimal::{Decimal, RoundingStrategy};
use serde::Deserialize;
use serde_json::Value;

use super::MarketView;
use super::diagnostic::did_you_mean;
use crate::keys::parse_date;

/// A two-column table: SPI value on the left, Voyado value on the right, in file order.
#[derive(Debug, Clone, Default)]
pub(crate) struct Table {
    pub(crate) pairs: Vec<(String, String)>,
}

impl Table {
    pub(crate) fn to_voyado(&self, spi: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(s, _)| s == spi)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn to_spi(&self, voyado: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(_, v)| v == voyado)
            .map(|(s, _)| s.as_str())
    }
}

/// The names Voyado uses inside a money value (`value`, `localValues`) and a consent entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MoneyFields {
    pub(crate) value: String,
    pub(crate) local_values: String,
    pub(crate) amount: String,
    pub(crate) currency: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConsentFields {
    pub(crate) id: String,
    pub(crate) value: String,
    pub(crate) source: String,
    pub(crate) date: String,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Codec {
    Text,
    Str,
    Int,
    Bool,
    Date,
    LocalDate,
    UnixSeconds,
    Decimal,
    Money,
    Table(String),
    Flags(String),
    Consents,
    ConsentId,
}

/// The codecs that take no table.
const SIMPLE: &[(&str, Codec)] = &[
    ("text", Codec::Text),
    ("string", Codec::Str),
    ("int", Codec::Int),
    ("bool", Codec::Bool),
    ("date", Codec::Date),
    ("local_date", Codec::LocalDate),
    ("unix_seconds", Codec::UnixSeconds),
    ("decimal", Codec::Decimal),
    ("money", Codec::Money),
    ("consents", Codec::Consents),
    ("consent_id", Codec::ConsentId),
];

impl Codec {
    /// The codec's name as a profile writes it (`money`, `table:gender`): what provenance shows.
    pub(crate) fn name(&self) -> String {
        match self {
            Codec::Table(t) => format!("table:{t}"),
            Codec::Flags(t) => format!("flags:{t}"),
            simple => SIMPLE
                .iter()
                .find(|(_, c)| c == simple)
                .map_or_else(String::new, |(n, _)| (*n).to_owned()),
        }
    }

    /// The codec a rule names; an unknown name is refused with the nearest known one, among the
    /// codecs and `table:NAME` / `flags:NAME` for each table the profile has.
    pub(crate) fn parse(name: &str, tables: &BTreeMap<String, Table>) -> Result<Codec, String> {
        let table = |t: &str| {
            if tables.contains_key(t) {
                Ok(t.to_owned())
            } else {
                let names = tables.keys().map(String::as_str);
                Err(format!("unknown table '{t}'{}", did_you_mean(t, names)))
            }
        };
        if let Some((_, codec)) = SIMPLE.iter().find(|(n, _)| *n == name) {
            return Ok(codec.clone());
        }
        match name.split_once(':') {
            Some(("table", t)) => Ok(Codec::Table(table(t)?)),
            Some(("flags", t)) => Ok(Codec::Flags(table(t)?)),
            _ => {
                let with_tables: Vec<String> = tables
                    .keys()
                    .flat_map(|t| [format!("table:{t}"), format!("flags:{t}")])
                    .collect();
                let known = SIMPLE
                    .iter()
                    .map(|(n, _)| *n)
                    .chain(with_tables.iter().map(String::as_str));
                let hint = did_you_mean(name, known);
                let names: Vec<&str> = SIMPLE.iter().map(|(n, _)| *n).collect();
                Err(format!(
                    "unknown codec '{name}'{hint}; known: {}, table:NAME, flags:NAME",
                    names.join(", ")
                ))
            }
        }
    }
}

/// What reading needs beyond the value: the plan's tables and names, and the market.
pub(crate) struct ReadContext<'a> {
    pub(crate) tables: &'a BTreeMap<String, Table>,
    pub(crate) money: &'a MoneyFields,
    pub(crate) consent: &'a ConsentFields,
    pub(crate) market: &'a MarketView<'a>,
    pub(crate) now: Timestamp,
}

impl ReadContext<'_> {
    pub(crate) fn read(&self, codec: &Codec, value: &Value) -> Option<Value> {
        match codec {
            Codec::Text => Some(value.clone()),
            Codec::Str => match value {
                Value::String(s) => Some(Value::String(s.clone())),
                Value::Number(n) => Some(Value::String(n.to_string())),
                Value::Bool(b) => Some(Value::String(b.to_string())),
                _ => None,
            },
            Codec::Int => integer(value).map(Value::from),
            Codec::Bool => value.as_bool().map(Value::Bool),
            Codec::Date => value
                .as_str()
                .and_then(parse_date)
                .map(|d| Value::String(d.to_string())),
            Codec::LocalDate => timestamp(value).map(|t| {
                Value::String(t.to_zoned(self.market.timezone.clone()).date().to_string())
            }),
            Codec::UnixSeconds => timestamp(value).map(|t| Value::from(t.as_second())),
            Codec::Decimal => decimal(value).map(money_text),
            Codec::Money => self.money(value).map(money_text),
            Codec::Table(t) => value
                .as_str()
                .and_then(|v| self.tables[t].to_spi(v))
                .map(|s| Value::String(s.to_owned())),
            Codec::Flags(t) => Some(Value::Array(
                self.tables[t]
                    .pairs
                    .iter()
                    .filter(|(_, flag)| value.get(flag.as_str()) == Some(&Value::Bool(true)))
                    .map(|(spi, _)| Value::String(spi.clone()))
                    .collect(),
            )),
            Codec::Consents => Some(Value::Array(
                value
                    .as_array()?
                    .iter()
                    .filter(|c| c.get(&self.consent.value) == Some(&Value::Bool(true)))
                    .filter_map(|c| c.get(&self.consent.id)?.as_str())
                    .filter_map(|id| self.market.consent_to_spi(id))
                    .map(Value::String)
                    .collect(),
            )),
            Codec::ConsentId => value
                .as_str()
                .and_then(|id| self.market.consent_to_spi(id))
                .map(Value::String),
        }
    }

    /// The amount in the market currency: from `localValues`, else from `value` if its currency
    /// matches; otherwise there is none and the caller leaves the item out.
    fn money(&self, item: &Value) -> Option<Decimal> {
        let f = self.money;
        let in_currency = |v: &Value| {
            (v.get(&f.currency)?.as_str()? == self.market.currency)
                .then(|| decimal(v.get(&f.amount)?))
                .flatten()
        };
        item.get(&f.local_values)
            .and_then(Value::as_array)
            .and_then(|list| list.iter().find_map(in_currency))
            .or_else(|| item.get(&f.value).and_then(in_currency))
    }
}

fn integer(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64().or_else(|| {
            let d = Decimal::from_str(&n.to_string()).ok()?;
            d.is_integer().then(|| i64::try_from(d).ok()).flatten()
        }),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A JSON number or numeric string as an exact decimal, from its text (never through f64 maths).
pub(crate) fn decimal(value: &Value) -> Option<Decimal> {
    let text = match value {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.trim().to_owned(),
        _ => return None,
    };
    Decimal::from_str(&text)
        .or_else(|_| Decimal::from_scientific(&text))
        .ok()
}

fn money_text(amount: Decimal) -> Value {
    let mut rounded = amount.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero);
    rounded.rescale(2);
    Value::String(rounded.to_string())
}

/// RFC 3339 with offset, or a local date-time taken as UTC, or Unix seconds, or a bare date.
pub(crate) fn timestamp(value: &Value) -> Option<Timestamp> {
    match value {
        Value::Number(n) => Timestamp::from_second(n.as_i64()?).ok(),
        Value::String(s) => s
            .parse::<Timestamp>()
            .ok()
            .or_else(|| {
                s.parse::<DateTime>()
                    .ok()?
                    .to_zoned(TimeZone::UTC)
                    .ok()
                    .map(|z| z.timestamp())
            })
            .or_else(|| {
                parse_date(s)?
                    .to_zoned(TimeZone::UTC)
                    .ok()
                    .map(|z| z.timestamp())
            }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn money_is_exact_with_two_places() {
        assert_eq!(money_text(decimal(&json!(100)).unwrap()), json!("100.00"));
        assert_eq!(money_text(decimal(&json!(0.1)).unwrap()), json!("0.10"));
        assert_eq!(money_text(decimal(&json!(2.005)).unwrap()), json!("2.01"));
        assert_eq!(money_text(decimal(&json!("49.5")).unwrap()), json!("49.50"));
        assert_eq!(money_text(decimal(&json!(1e3)).unwrap()), json!("1000.00"));
    }

    #[test]
    fn timestamps_accept_voyado_shapes() {
        let t = |v| timestamp(&v).map(|t| t.as_second());
        assert_eq!(t(json!("2024-01-01T00:00:00+01:00")), Some(1_704_063_600));
        assert_eq!(t(json!("2024-01-01T00:00:00")), Some(1_704_067_200));
        assert_eq!(t(json!(1_704_067_200)), Some(1_704_067_200));
        assert_eq!(t(json!("garbage")), None);
    }
}
