//! Paths into JSON documents, parsed once when a mapping loads.
//!
//! Grammar: dot-separated keys, `[N]` for an array index, `[field=value]` for the first array element
//! whose `field` equals `value`, `$locale` for the market's locale, and a leading `^` to read from the
//! whole source document when a rule runs inside `each`. The empty path is the current item itself.

use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Segment {
    Key(String),
    Index(usize),
    Find { field: String, value: String },
    Locale,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Path {
    pub(crate) from_root: bool,
    pub(crate) segments: Vec<Segment>,
}

/// What a path evaluation needs besides the document: the market's locale for `$locale`.
#[derive(Clone, Copy)]
pub(crate) struct Scope<'a> {
    pub(crate) root: &'a Value,
    pub(crate) item: &'a Value,
    pub(crate) locale: &'a str,
}

impl Path {
    pub(crate) fn parse(text: &str) -> Result<Path, String> {
        let (from_root, rest) = match text.strip_prefix('^') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let mut segments = Vec::new();
        if rest.is_empty() {
            return Ok(Path {
                from_root,
                segments,
            });
        }
        for part in rest.split('.') {
            let (key, mut brackets) = match part.find('[') {
                Some(i) => (&part[..i], &part[i..]),
                None => (part, ""),
            };
            if key == "$locale" {
                segments.push(Segment::Locale);
            } else if key.is_empty() && brackets.is_empty() {
                return Err(format!("empty segment in path '{text}'"));
            } else if !key.is_empty() {
                if !key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                {
                    return Err(format!("invalid key '{key}' in path '{text}'"));
                }
                segments.push(Segment::Key(key.to_owned()));
            }
            while !brackets.is_empty() {
                let close = brackets
                    .find(']')
                    .ok_or_else(|| format!("unclosed '[' in path '{text}'"))?;
                let inner = &brackets[1..close];
                if let Some((field, value)) = inner.split_once('=') {
                    segments.push(Segment::Find {
                        field: field.to_owned(),
                        value: value.to_owned(),
                    });
                } else {
                    let index = inner
                        .parse()
                        .map_err(|_| format!("bad index '[{inner}]' in path '{text}'"))?;
                    segments.push(Segment::Index(index));
                }
                brackets = &brackets[close + 1..];
                if !brackets.is_empty() && !brackets.starts_with('[') {
                    return Err(format!("unexpected '{brackets}' in path '{text}'"));
                }
            }
        }
        Ok(Path {
            from_root,
            segments,
        })
    }

    /// The first key: which source root a rule reads from.
    pub(crate) fn root_key(&self) -> Option<&str> {
        match self.segments.first() {
            Some(Segment::Key(key)) => Some(key),
            _ => None,
        }
    }

    /// A path made of plain keys only, as output and write targets must be.
    pub(crate) fn keys(&self) -> Option<Vec<&str>> {
        self.segments
            .iter()
            .map(|s| match s {
                Segment::Key(k) => Some(k.as_str()),
                _ => None,
            })
            .collect()
    }

    pub(crate) fn get<'a>(&self, scope: Scope<'a>) -> Option<&'a Value> {
        let mut current = if self.from_root {
            scope.root
        } else {
            scope.item
        };
        for segment in &self.segments {
            current = match segment {
                Segment::Key(key) => current.get(key.as_str())?,
                Segment::Locale => current.get(scope.locale)?,
                Segment::Index(i) => current.get(*i)?,
                Segment::Find { field, value } => current.as_array()?.iter().find(|v| {
                    v.get(field.as_str()).and_then(Value::as_str) == Some(value.as_str())
                })?,
            };
        }
        (!current.is_null()).then_some(current)
    }
}

/// Writes `value` at a plain-key path, creating objects on the way.
pub(crate) fn set(target: &mut Map<String, Value>, keys: &[String], value: Value) {
    let Some((last, parents)) = keys.split_last() else {
        return;
    };
    let mut map = target;
    for key in parents {
        let slot = map
            .entry(key.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        if !slot.is_object() {
            *slot = Value::Object(Map::new());
        }
        map = match slot {
            Value::Object(inner) => inner,
            _ => return,
        };
    }
    map.insert(last.clone(), value);
}

/// Reads a plain-key path.
pub(crate) fn get_keys<'a>(value: &'a Value, keys: &[String]) -> Option<&'a Value> {
    keys.iter()
        .try_fold(value, |v, k| v.get(k.as_str()))
        .filter(|v| !v.is_null())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(path: &str, doc: &Value) -> Option<Value> {
        let path = Path::parse(path).unwrap();
        path.get(Scope {
            root: doc,
            item: doc,
            locale: "sv-SE",
        })
        .cloned()
    }

    #[test]
    fn reads_keys_indexes_finds_and_locale() {
        let doc = json!({"a": {"list": [{"t": "X", "v": 1}, {"t": "POS", "v": 2}]},
                         "m": {"sv-SE": "hej"}});
        assert_eq!(read("a.list[1].v", &doc), Some(json!(2)));
        assert_eq!(read("a.list[t=POS].v", &doc), Some(json!(2)));
        assert_eq!(read("m.$locale", &doc), Some(json!("hej")));
        assert_eq!(read("a.missing", &doc), None);
        assert_eq!(read("", &doc), Some(doc.clone()));
    }

    #[test]
    fn rejects_malformed_paths() {
        for bad in ["a..b", "a[1", "a[x]", "a b", "a[0]x"] {
            assert!(Path::parse(bad).is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn set_creates_objects() {
        let mut map = Map::new();
        set(&mut map, &["a".into(), "b".into()], json!(1));
        assert_eq!(Value::Object(map), json!({"a": {"b": 1}}));
    }
}
