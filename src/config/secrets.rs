//! Secrets in the config: a [`Secret`] never prints, a CRM API key is kept only as its digest
//! ([`CrmKeyDigest`]), and `${NAME}` in any string is replaced by that environment variable before
//! the file is read into types, so a secret need not be written in the file.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use sha2::{Digest, Sha256};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::problem::Problems;

/// A secret from the config: never printed.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A CRM API key kept only as its SHA-256 digest, compared in constant time.
#[derive(Clone, PartialEq, Eq)]
pub struct CrmKeyDigest([u8; 32]);

impl CrmKeyDigest {
    pub fn of(secret: &str) -> CrmKeyDigest {
        CrmKeyDigest(Sha256::digest(secret.as_bytes()).into())
    }

    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for CrmKeyDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CrmKeyDigest(***)")
    }
}

/// Replaces `${NAME}` in every string of the parsed file with the environment variable; a missing
/// one is a problem at that string, naming the variable (never a value).
pub(super) fn interpolate(
    table: &mut DeTable<'_>,
    path: &str,
    env: &impl Fn(&str) -> Option<String>,
    problems: &mut Problems<'_>,
) {
    for (key, value) in table.iter_mut() {
        let key = key.get_ref();
        let path = if path.is_empty() {
            key.to_string()
        } else {
            format!("{path}.{key}")
        };
        interpolate_value(value, path, env, problems);
    }
}

fn interpolate_value(
    value: &mut Spanned<DeValue<'_>>,
    path: String,
    env: &impl Fn(&str) -> Option<String>,
    problems: &mut Problems<'_>,
) {
    let span = value.span();
    match value.get_mut() {
        DeValue::String(text) if text.contains("${") => {
            let mut missing = Vec::new();
            let replaced = substitute(text, env, &mut missing);
            for problem in missing {
                problems.push(path.as_str(), span.clone(), problem);
            }
            *text = Cow::Owned(replaced);
        }
        DeValue::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                interpolate_value(item, format!("{path}[{i}]"), env, problems);
            }
        }
        DeValue::Table(table) => interpolate(table, &path, env, problems),
        _ => {}
    }
}

/// `text` with each `${NAME}` replaced; what could not be replaced goes in `problems`.
fn substitute(
    text: &str,
    env: &impl Fn(&str) -> Option<String>,
    problems: &mut Vec<String>,
) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find('}') else {
            problems.push("unclosed '${'".into());
            return out;
        };
        let name = &rest[start + 2..start + end];
        match env(name) {
            Some(value) => out.push_str(&value),
            None => problems.push(format!("environment variable {name} is not set")),
        }
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let s = Secret("hunter2".into());
        assert_eq!(format!("{s} {s:?}"), "*** ***");
    }

    #[test]
    fn every_variable_is_replaced_and_each_missing_one_named() {
        let env = |name: &str| (name == "A").then(|| "1".to_owned());
        let mut missing = Vec::new();
        assert_eq!(substitute("${A}-${B}-${A}", &env, &mut missing), "1--1");
        assert_eq!(missing, ["environment variable B is not set"]);
        missing.clear();
        substitute("x${A", &env, &mut missing);
        assert_eq!(missing, ["unclosed '${'"]);
    }
}
