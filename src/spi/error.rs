//! The one place where an error becomes an SPI answer.
//!
//! Every refusal carries a reason (`customer_exists`, `not_found`, ...). The error table
//! (`mappings/errors.toml`, with per-market overrides) turns the reason into the HTTP status and
//! `error_code`; [`ErrorTable::respond`] builds the envelope. Messages never carry personal data.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::voyado::VoyadoError;

pub const INVALID_INPUT: &str = "invalid_input";
pub const BODY_TOO_LARGE: &str = "body_too_large";
pub const CUSTOMER_EXISTS: &str = "customer_exists";
pub const ALREADY_REDEEMED: &str = "already_redeemed";
pub const EXPIRED: &str = "expired";
pub const NOT_POS_CHANNEL: &str = "not_pos_channel";
pub const AMBIGUOUS_CUSTOMER: &str = "ambiguous_customer";
pub const CANNOT_UNDO_PROMOTION: &str = "cannot_undo_promotion";
pub const UNAUTHORIZED: &str = "unauthorized";
pub const FORBIDDEN: &str = "forbidden";
pub const NOT_FOUND: &str = "not_found";
pub const METHOD_NOT_ALLOWED: &str = "method_not_allowed";
pub const TOO_MANY_REQUESTS: &str = "too_many_requests";
pub const INTERNAL: &str = "internal";
pub const BAD_GATEWAY: &str = "bad_gateway";
pub const UPSTREAM_UNAVAILABLE: &str = "upstream_unavailable";
pub const UPSTREAM_TIMEOUT: &str = "upstream_timeout";

/// Every reason the code can raise; the table must have a row for each.
const REASONS: &[&str] = &[
    INVALID_INPUT,
    BODY_TOO_LARGE,
    CUSTOMER_EXISTS,
    ALREADY_REDEEMED,
    EXPIRED,
    NOT_POS_CHANNEL,
    "reactivation_limit",
    AMBIGUOUS_CUSTOMER,
    CANNOT_UNDO_PROMOTION,
    UNAUTHORIZED,
    FORBIDDEN,
    NOT_FOUND,
    METHOD_NOT_ALLOWED,
    TOO_MANY_REQUESTS,
    INTERNAL,
    BAD_GATEWAY,
    UPSTREAM_UNAVAILABLE,
    UPSTREAM_TIMEOUT,
];

/// A refusal on its way to the POS.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {message}")]
pub struct ProxyError {
    pub reason: String,
    pub message: String,
    /// The Voyado error code behind it, if any (never Voyado's body).
    pub upstream_code: Option<String>,
    pub retry_after: Option<u64>,
    /// For 405: the methods the path takes.
    pub allow: Option<String>,
}

impl ProxyError {
    pub fn new(reason: &str, message: impl Into<String>) -> ProxyError {
        ProxyError {
            reason: reason.to_owned(),
            message: message.into(),
            upstream_code: None,
            retry_after: None,
            allow: None,
        }
    }

    /// Invalid input; the message starts with the field name.
    pub fn field(field: &str, problem: &str) -> ProxyError {
        ProxyError::new(INVALID_INPUT, format!("{field} {problem}"))
    }

    pub fn not_found(what: &str) -> ProxyError {
        ProxyError::new(NOT_FOUND, format!("{what} not found"))
    }

    pub fn internal() -> ProxyError {
        ProxyError::new(INTERNAL, "internal error")
    }

    pub fn timeout() -> ProxyError {
        ProxyError::new(UPSTREAM_TIMEOUT, "Voyado did not answer in time")
    }
}

impl From<crate::mapping::FieldError> for ProxyError {
    fn from(e: crate::mapping::FieldError) -> ProxyError {
        ProxyError::field(&e.field, &e.message)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorRow {
    pub status: u16,
    pub error_code: Cow<'static, str>,
}

/// Used only if a table lost its `internal` row, which loading prevents.
static FALLBACK: ErrorRow = ErrorRow {
    status: 500,
    error_code: Cow::Borrowed("other"),
};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct VoyadoRow {
    code: String,
    reason: String,
    field: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct TableFile {
    reasons: BTreeMap<String, ErrorRow>,
    voyado: Vec<VoyadoRow>,
    voyado_status: BTreeMap<String, String>,
}

/// Reason → (status, error_code), and Voyado code → reason.
#[derive(Debug, Clone)]
pub struct ErrorTable {
    reasons: BTreeMap<String, ErrorRow>,
    voyado: Vec<VoyadoRow>,
    voyado_status: BTreeMap<u16, String>,
}

/// The SPI error body.
#[derive(Debug, Serialize)]
struct Envelope<'a> {
    error_code: &'a str,
    error_data: serde_json::Value,
    request_id: &'a str,
    statuscode: u16,
    errortext: &'a str,
}

impl ErrorTable {
    pub fn parse(text: &str) -> Result<ErrorTable, Vec<String>> {
        let file: TableFile = toml::from_str(text).map_err(|e| vec![e.to_string()])?;
        let mut errors = Vec::new();
        for reason in REASONS {
            if !file.reasons.contains_key(*reason) {
                errors.push(format!("reasons: no row for '{reason}'"));
            }
        }
        for (reason, row) in &file.reasons {
            check_row(&format!("reasons.{reason}"), row, &mut errors);
        }
        for (i, row) in file.voyado.iter().enumerate() {
            if !file.reasons.contains_key(&row.reason) {
                errors.push(format!("voyado[{i}]: unknown reason '{}'", row.reason));
            }
        }
        let mut voyado_status = BTreeMap::new();
        for (status, reason) in &file.voyado_status {
            match status.parse::<u16>() {
                Ok(s) => {
                    voyado_status.insert(s, reason.clone());
                }
                Err(_) => errors.push(format!("voyado_status: '{status}' is not a status")),
            }
            if !file.reasons.contains_key(reason) {
                errors.push(format!("voyado_status.{status}: unknown reason '{reason}'"));
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(ErrorTable {
            reasons: file.reasons,
            voyado: file.voyado,
            voyado_status,
        })
    }

    /// The table with a market's overrides; problems are reported under `at`.
    pub fn with_overrides(
        &self,
        overrides: &BTreeMap<String, ErrorRow>,
        at: &str,
        errors: &mut Vec<String>,
    ) -> ErrorTable {
        let mut table = self.clone();
        for (reason, row) in overrides {
            if !table.reasons.contains_key(reason) {
                errors.push(format!("{at}.{reason}: unknown reason"));
            }
            check_row(&format!("{at}.{reason}"), row, errors);
            table.reasons.insert(reason.clone(), row.clone());
        }
        table
    }

    pub fn row(&self, reason: &str) -> &ErrorRow {
        self.reasons
            .get(reason)
            .or_else(|| self.reasons.get(INTERNAL))
            .unwrap_or(&FALLBACK)
    }

    /// The reason (and SPI field) for a Voyado refusal.
    pub fn voyado_reason(&self, status: u16, code: Option<&str>) -> (&str, Option<&str>) {
        if let Some(code) = code
            && let Some(row) = self.voyado.iter().find(|r| glob(&r.code, code))
        {
            return (&row.reason, row.field.as_deref());
        }
        let reason = self.voyado_status.get(&status).map_or(
            if status == 504 {
                UPSTREAM_TIMEOUT
            } else {
                BAD_GATEWAY
            },
            String::as_str,
        );
        (reason, None)
    }

    /// Turns a Voyado failure into a refusal; `what` names the thing a 404 is about.
    pub fn from_voyado(&self, error: &VoyadoError, what: &str) -> ProxyError {
        match error {
            VoyadoError::Status {
                status,
                code,
                retry_after,
                fields,
                ..
            } => {
                let (reason, field) = self.voyado_reason(*status, code.as_deref());
                let message = match reason {
                    NOT_FOUND => format!("{what} not found"),
                    INVALID_INPUT => match (field, fields.is_empty()) {
                        (Some(f), _) => format!("{f} was rejected by Voyado"),
                        (None, false) => format!("{} rejected by Voyado", fields.join(", ")),
                        (None, true) => "Voyado rejected the request".to_owned(),
                    },
                    CUSTOMER_EXISTS => "a customer with this key already exists".to_owned(),
                    AMBIGUOUS_CUSTOMER => {
                        "several customers match — search by member number".to_owned()
                    }
                    TOO_MANY_REQUESTS => "Voyado is rate limiting; try again shortly".to_owned(),
                    UPSTREAM_UNAVAILABLE => "Voyado is unavailable".to_owned(),
                    UPSTREAM_TIMEOUT => "Voyado did not answer in time".to_owned(),
                    BAD_GATEWAY => format!("Voyado answered {status}"),
                    other => format!("Voyado refused: {other}"),
                };
                let mut e = ProxyError::new(reason, message);
                e.upstream_code = code.clone();
                e.retry_after = match reason {
                    TOO_MANY_REQUESTS => Some(retry_after.unwrap_or(1)),
                    UPSTREAM_UNAVAILABLE => *retry_after,
                    _ => None,
                };
                e
            }
            VoyadoError::Timeout => ProxyError::timeout(),
            VoyadoError::Connect => ProxyError::new(BAD_GATEWAY, "Voyado could not be reached"),
            VoyadoError::Malformed => {
                ProxyError::new(BAD_GATEWAY, "Voyado sent an answer that could not be read")
            }
        }
    }

    /// The status, the envelope body and the extra headers for an error.
    pub fn respond(&self, error: &ProxyError, request_id: &str) -> (u16, Vec<u8>) {
        let row = self.row(&error.reason);
        let mut data = json!({"message": error.message, "reason": error.reason});
        if let Some(code) = &error.upstream_code {
            data["upstream_code"] = json!(code);
        }
        let body = Envelope {
            error_code: &row.error_code,
            error_data: data,
            request_id,
            statuscode: row.status,
            errortext: &error.message,
        };
        (row.status, serde_json::to_vec(&body).unwrap_or_default())
    }
}

fn check_row(at: &str, row: &ErrorRow, errors: &mut Vec<String>) {
    if !(400..=599).contains(&row.status) {
        errors.push(format!(
            "{at}.status: {} is not an error status",
            row.status
        ));
    }
}

/// `*` matches any run of characters; everything else literally.
fn glob(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, tail)) => {
            text.len() >= head.len() + tail.len() && text.starts_with(head) && text.ends_with(tail)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> ErrorTable {
        ErrorTable::parse(include_str!("../../mappings/errors.toml")).unwrap()
    }

    #[test]
    fn voyado_codes_map_to_reasons_first_match_wins() {
        let t = table();
        assert_eq!(
            t.voyado_reason(500, Some("InvalidSystemConfiguration")).0,
            BAD_GATEWAY
        );
        assert_eq!(
            t.voyado_reason(400, Some("InvalidPhoneNumber")),
            (INVALID_INPUT, Some("mobile"))
        );
        assert_eq!(
            t.voyado_reason(409, Some("BonusCheckAlreadyRedeemed")).0,
            ALREADY_REDEEMED
        );
        assert_eq!(
            t.voyado_reason(406, Some("RewardVoucherExpired")).0,
            EXPIRED
        );
        assert_eq!(
            t.voyado_reason(404, Some("BonusCheckNotFound")).0,
            NOT_FOUND
        );
        assert_eq!(t.voyado_reason(503, None).0, UPSTREAM_UNAVAILABLE);
        assert_eq!(t.voyado_reason(500, None).0, BAD_GATEWAY);
        assert_eq!(t.voyado_reason(401, None).0, BAD_GATEWAY);
    }

    #[test]
    fn envelope_has_every_field() {
        let (status, body) = table().respond(&ProxyError::field("email", "is not valid"), "r-1");
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(status, 400);
        assert_eq!(v["error_code"], "bad-request");
        assert_eq!(v["error_data"]["reason"], "invalid_input");
        assert_eq!(v["error_data"]["message"], "email is not valid");
        assert_eq!(v["errortext"], "email is not valid");
        assert_eq!(v["request_id"], "r-1");
        assert_eq!(v["statuscode"], 400);
    }

    #[test]
    fn a_table_missing_a_reason_is_rejected() {
        let text = include_str!("../../mappings/errors.toml").replace("[reasons.expired]", "[x]");
        assert!(ErrorTable::parse(&text).is_err());
    }
}
