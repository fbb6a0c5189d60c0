//! What can go wrong on a Voyado call, decoded tolerantly from whatever error body Voyado sent
//! (`errorCode`/`message`, `validationErrors`, `messageDetails.multipleMatchesFound`, or RFC 7807).
//! Voyado's raw body and the request URL never travel further than this module. A 429 pauses the
//! key in `src/limiter.rs`; `spi/error.rs` turns every failure here into the till's answer.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VoyadoError {
    #[error("Voyado answered {status} {code:?}")]
    Status {
        status: u16,
        code: Option<String>,
        /// Names of fields Voyado's validation errors point at (never their values).
        fields: Vec<String>,
        /// How many contacts a `MultipleMatches` named.
        matches: usize,
        retry_after: Option<u64>,
    },
    #[error("Voyado did not answer in time")]
    Timeout,
    #[error("Voyado could not be reached")]
    Connect,
    #[error("Voyado's answer could not be read")]
    Malformed,
    #[error("Voyado's answer was larger than the configured cap")]
    TooLarge,
    /// Not sent: the API key's rate budget had no permit in time, or Voyado asked to pause.
    #[error("Voyado's rate budget is spent; retry in {retry_after} s")]
    Throttled { retry_after: u64 },
    /// Not sent: this tenant's Voyado kept failing and the proxy is cooling off.
    #[error("Voyado is failing; cooling off for {retry_after} s")]
    CoolingOff { retry_after: u64 },
}

impl VoyadoError {
    pub fn status(&self) -> Option<u16> {
        match self {
            VoyadoError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    pub fn code(&self) -> Option<&str> {
        match self {
            VoyadoError::Status { code, .. } => code.as_deref(),
            _ => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// Whether this says the tenant's Voyado is down or overwhelmed (what the breaker counts):
    /// no answer in time, no connection, or a 5xx. A 4xx, even a 429, is Voyado answering.
    pub fn is_outage(&self) -> bool {
        matches!(self, VoyadoError::Timeout | VoyadoError::Connect)
            || self.status().is_some_and(|s| s >= 500)
    }

    /// A GET may be tried again after these.
    pub fn retryable(&self) -> bool {
        matches!(self, VoyadoError::Connect) || matches!(self.status(), Some(502 | 503))
    }

    /// Whether a write may or may not have happened: the caller must read Voyado's state.
    pub fn unclear(&self) -> bool {
        matches!(
            self,
            VoyadoError::Timeout
                | VoyadoError::Connect
                | VoyadoError::Malformed
                | VoyadoError::TooLarge
        )
    }

    /// The outcome label for metrics.
    pub fn outcome(&self) -> &'static str {
        match self {
            VoyadoError::Status { status: 429, .. } => "rate_limited",
            VoyadoError::Status { status, .. } if *status >= 500 => "server_error",
            VoyadoError::Status { .. } => "client_error",
            VoyadoError::Timeout => "timeout",
            VoyadoError::Connect => "connect",
            VoyadoError::Malformed => "malformed",
            VoyadoError::TooLarge => "too_large",
            VoyadoError::Throttled { .. } => "throttled",
            VoyadoError::CoolingOff { .. } => "cooling_off",
        }
    }

    pub fn from_body(status: u16, body: &[u8], retry_after: Option<u64>) -> VoyadoError {
        let value: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let text = |key: &str| value.get(key).and_then(Value::as_str).map(str::to_owned);
        // ProblemDetails puts a human sentence in `title`; only an identifier-like text is a code,
        // and only such a text travels on to the POS (never anything that could carry a value).
        let identifier = |t: &String| {
            (1..=64).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        };
        let code = text("errorCode")
            .or_else(|| text("code"))
            .or_else(|| text("title"))
            .filter(identifier);
        let mut fields: Vec<String> = Vec::new();
        for e in value
            .get("validationErrors")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let named = ["field", "fieldName", "propertyName", "name"]
                .iter()
                .find_map(|k| e.get(*k).and_then(Value::as_str));
            // Voyado documents only `errorDescription`, a sentence; the identifiers in it are
            // candidate field names. Only those the mapping knows are ever shown (ops), so the
            // sentence itself, which could quote a value, goes no further.
            let candidates: Vec<&str> = match named {
                Some(name) => vec![name],
                None => e
                    .get("errorDescription")
                    .and_then(Value::as_str)
                    .map(identifiers)
                    .unwrap_or_default(),
            };
            for candidate in candidates {
                if !fields.iter().any(|f| f == candidate) {
                    fields.push(candidate.to_owned());
                }
            }
        }
        let matches = value
            .pointer("/messageDetails/multipleMatchesFound")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        VoyadoError::Status {
            status,
            code,
            fields,
            matches,
            retry_after,
        }
    }
}

/// The identifier-like words of a validation sentence (`'firstName' must not be empty` →
/// `firstName`, `must`, ...), at most a few dozen.
fn identifiers(text: &str) -> Vec<&str> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '_'))
        .map(|w| w.trim_matches('.'))
        .filter(|w| (2..=64).contains(&w.len()) && w.starts_with(|c: char| c.is_ascii_alphabetic()))
        .take(32)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_every_known_error_shape() {
        let e = VoyadoError::from_body(409, br#"{"errorCode":"MultipleMatches","message":"x","messageDetails":{"multipleMatchesFound":["a","b"]}}"#, None);
        assert_eq!(e.code(), Some("MultipleMatches"));
        assert!(matches!(e, VoyadoError::Status { matches: 2, .. }));
        let e = VoyadoError::from_body(422, br#"{"errorCode":"ValidationError","validationErrors":[{"field":"email","errorDescription":"bad"}]}"#, None);
        assert!(matches!(&e, VoyadoError::Status { fields, .. } if fields == &["email"]));
        // The documented shape: a sentence only. Its words are candidates for the mapping.
        let e = VoyadoError::from_body(
            422,
            br#"{"errorCode":"ValidationError","validationErrors":[{"errorDescription":"'attributes.firstName' must not be empty."}]}"#,
            None,
        );
        assert!(
            matches!(&e, VoyadoError::Status { fields, .. } if fields.contains(&"attributes.firstName".to_owned())),
            "{e:?}"
        );
        let e = VoyadoError::from_body(
            404,
            br#"{"type":"x","title":"Not Found","status":404,"detail":"d"}"#,
            None,
        );
        assert_eq!(e.code(), None);
        let e = VoyadoError::from_body(500, b"<html>oops</html>", None);
        assert_eq!(e.status(), Some(500));
    }
}
