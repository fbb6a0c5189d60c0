//! The write direction: an SPI customer body becomes the Voyado changes to a contact.
//!
//! Changes are computed against the current contact (an empty one for a create): absent fields and
//! empty strings never change anything, `null` clears only clearable fields, unchanged values are not
//! sent, and consents and channel flags are written as changes only — a consent never returns to
//! "not set". Additional options follow the same rules (see `options`).

use serde_json::{Map, Value};

use super::codec::Codec;
use super::path::{get_keys, set};
use super::{FieldRule, MarketView, Plan, options};
use crate::keys::{Normalizer, parse_date};

/// A field the POS sent that cannot be written; the message never carries the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub(super) fn new(field: &str, message: impl Into<String>) -> FieldError {
        FieldError {
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

/// What a market allows a write to do.
pub struct WritePolicy<'a> {
    /// SPI fields a `null` may clear.
    pub clearable: &'a [String],
    /// SPI fields ignored in this write (read-only for edits).
    pub ignored: &'a [String],
    /// The `source` stamped on consent changes.
    pub source: &'a str,
    /// Now, UTC, RFC 3339: the date of consent changes.
    pub now: &'a str,
}

/// What one field of the body asks for.
enum Wish<'a> {
    Nothing,
    Clear,
    Set(&'a Value),
}

impl Plan {
    /// Validates the body's writable fields and returns the Voyado changes as a contact-shaped
    /// document (only what differs from `current`).
    pub fn contact_changes(
        &self,
        body: &Value,
        current: &Value,
        policy: &WritePolicy<'_>,
        market: &MarketView<'_>,
    ) -> Result<Map<String, Value>, FieldError> {
        let Some(object) = body.as_object() else {
            return Err(FieldError::new("body", "must be a JSON object"));
        };
        let mut changes = Map::new();
        for field in self.fields.iter().filter(|f| f.write) {
            if policy.ignored.contains(&field.spi) {
                continue;
            }
            let raw = match wish(field, body)? {
                Wish::Nothing => continue,
                Wish::Clear if policy.clearable.contains(&field.spi) => {
                    if get_keys(current, &field.voyado_keys).is_some() {
                        set(&mut changes, &field.voyado_keys, Value::Null);
                    }
                    continue;
                }
                Wish::Clear => continue,
                Wish::Set(raw) => raw,
            };
            let now = get_keys(current, &field.voyado_keys);
            match &field.codec {
                Codec::Flags(table) => self.flag_changes(field, table, raw, now, &mut changes)?,
                Codec::Consents => {
                    self.consent_changes(field, raw, now, policy, market, &mut changes)?
                }
                codec => {
                    let new = self.scalar(field, codec, raw, market)?;
                    let same = match (codec, now.and_then(Value::as_str)) {
                        (Codec::Date, Some(old)) => {
                            parse_date(old).map(|d| d.to_string()).as_deref() == Some(&new)
                        }
                        (_, Some(old)) => old == new,
                        (_, None) => false,
                    };
                    if !same {
                        set(&mut changes, &field.voyado_keys, Value::String(new));
                    }
                }
            }
        }
        options::changes(&self.options, object, current, policy, &mut changes)?;
        Ok(changes)
    }

    /// The normalised value of the contact key field, required for a create.
    pub fn key_value(
        &self,
        key: &str,
        body: &Value,
        market: &MarketView<'_>,
    ) -> Result<String, FieldError> {
        let field = self
            .fields
            .iter()
            .find(|f| f.spi == key)
            .ok_or_else(|| FieldError::new(key, "is not a customer field"))?;
        match wish(field, body)? {
            Wish::Set(raw) => self.scalar(field, &field.codec, raw, market),
            Wish::Nothing | Wish::Clear => Err(FieldError::new(key, "is required")),
        }
    }

    /// Whether the body carries a non-empty value for an SPI field (required-field checks).
    pub fn has_value(&self, name: &str, body: &Value) -> bool {
        let keys: Vec<String> = name.split('.').map(str::to_owned).collect();
        match get_keys(body, &keys) {
            Some(Value::String(s)) => !s.trim().is_empty(),
            Some(Value::Array(a)) => !a.is_empty(),
            Some(_) => true,
            None => false,
        }
    }

    /// The Voyado create/update body: attributes at the top level, as Voyado's v2 API takes them.
    pub fn voyado_body(&self, mut changes: Map<String, Value>) -> Map<String, Value> {
        if let Some(Value::Object(inner)) = changes.remove(&self.write_flatten) {
            changes.extend(inner);
        }
        changes
    }

    fn scalar(
        &self,
        field: &FieldRule,
        codec: &Codec,
        raw: &Value,
        market: &MarketView<'_>,
    ) -> Result<String, FieldError> {
        let text = raw
            .as_str()
            .ok_or_else(|| FieldError::new(&field.spi, "must be a string"))?;
        let check = field
            .check
            .or((codec == &Codec::Date).then_some(Normalizer::Date));
        let text = match check {
            Some(n) => market
                .normalize(n, text)
                .map_err(|m| FieldError::new(&field.spi, m))?,
            None => text.trim().to_owned(),
        };
        match codec {
            Codec::Table(table) => self.tables[table]
                .to_voyado(&text)
                .map(str::to_owned)
                .ok_or_else(|| {
                    let allowed: Vec<&str> = self.tables[table]
                        .pairs
                        .iter()
                        .map(|(s, _)| s.as_str())
                        .collect();
                    FieldError::new(&field.spi, format!("must be one of {}", allowed.join(", ")))
                }),
            _ => Ok(text),
        }
    }

    fn flag_changes(
        &self,
        field: &FieldRule,
        table: &str,
        raw: &Value,
        now: Option<&Value>,
        changes: &mut Map<String, Value>,
    ) -> Result<(), FieldError> {
        let wanted = strings(field, raw)?;
        let table = &self.tables[table];
        if wanted.iter().any(|w| table.to_voyado(w).is_none()) {
            let allowed: Vec<&str> = table.pairs.iter().map(|(s, _)| s.as_str()).collect();
            return Err(FieldError::new(
                &field.spi,
                format!("may only hold {}", allowed.join(", ")),
            ));
        }
        for (spi, flag) in &table.pairs {
            let is_set = now.and_then(|n| n.get(flag)) == Some(&Value::Bool(true));
            let want = wanted.contains(&spi.as_str());
            if want != is_set {
                let mut keys = field.voyado_keys.clone();
                keys.push(flag.clone());
                set(changes, &keys, Value::Bool(want));
            }
        }
        Ok(())
    }

    fn consent_changes(
        &self,
        field: &FieldRule,
        raw: &Value,
        now: Option<&Value>,
        policy: &WritePolicy<'_>,
        market: &MarketView<'_>,
        changes: &mut Map<String, Value>,
    ) -> Result<(), FieldError> {
        let names = &self.consent;
        let mut wanted = Vec::new();
        for spi in strings(field, raw)? {
            let id = market
                .consent_to_voyado(spi)
                .ok_or_else(|| FieldError::new(&field.spi, "holds an unknown consent id"))?;
            wanted.push(id);
        }
        let current: Vec<(&str, bool)> = now
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|c| {
                let id = c.get(&names.id)?.as_str()?;
                Some((id, c.get(&names.value) == Some(&Value::Bool(true))))
            })
            .collect();
        let is_true = |id: &str| current.iter().any(|(c, v)| *c == id && *v);
        let entry = |id: &str, value: bool| {
            let mut m = Map::new();
            m.insert(names.id.clone(), Value::String(id.to_owned()));
            m.insert(names.value.clone(), Value::Bool(value));
            m.insert(
                names.source.clone(),
                Value::String(policy.source.to_owned()),
            );
            m.insert(names.date.clone(), Value::String(policy.now.to_owned()));
            Value::Object(m)
        };
        let mut list: Vec<Value> = wanted
            .iter()
            .filter(|id| !is_true(id))
            .map(|id| entry(id, true))
            .collect();
        list.extend(
            current
                .iter()
                .filter(|(id, v)| *v && !wanted.iter().any(|w| w == id))
                .map(|(id, _)| entry(id, false)),
        );
        if !list.is_empty() {
            set(changes, &field.voyado_keys, Value::Array(list));
        }
        Ok(())
    }
}

/// Reads the field from the body; a non-object on the way is a wrong type naming the parent.
fn wish<'a>(field: &FieldRule, body: &'a Value) -> Result<Wish<'a>, FieldError> {
    let mut current = body;
    for (depth, key) in field.spi_keys.iter().enumerate() {
        let Some(map) = current.as_object() else {
            let parent = match depth {
                0 => "body".to_owned(),
                _ => field.spi_keys[..depth].join("."),
            };
            return Err(FieldError::new(&parent, "must be an object"));
        };
        match map.get(key) {
            None => return Ok(Wish::Nothing),
            Some(Value::Null) if depth + 1 == field.spi_keys.len() => return Ok(Wish::Clear),
            Some(Value::Null) => return Ok(Wish::Nothing),
            Some(next) => current = next,
        }
    }
    Ok(match current {
        Value::String(s) if s.trim().is_empty() => Wish::Nothing,
        other => Wish::Set(other),
    })
}

fn strings<'a>(field: &FieldRule, raw: &'a Value) -> Result<Vec<&'a str>, FieldError> {
    raw.as_array()
        .and_then(|a| a.iter().map(Value::as_str).collect::<Option<Vec<_>>>())
        .ok_or_else(|| FieldError::new(&field.spi, "must be a list of strings"))
}
