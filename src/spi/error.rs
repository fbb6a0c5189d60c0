//! The one place where an error becomes an SPI answer.
//!
//! Every refusal carries a typed [`Reason`]; a Voyado failure travels as itself and gets its reason
//! here, from the Voyado code table. The error table (`mappings/errors.toml`, with per-market
//! overrides) turns the reason into the HTTP status and `error_code`, and [`envelope`] writes the
//! envelope, always with the request id. Messages never carry personal data. Where errors start:
//! Voyado's in `voyado/error.rs` (a 429 also pauses the key, `limiter.rs`), the proxy's
//! refusals in the layers of `server/` and in `ops/`.

use std::collections::BTreeMap;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::voyado::VoyadoError;

/// Why a request was refused. The error table has one row for each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    InvalidInput,
    BodyTooLarge,
    BodyTimeout,
    CustomerExists,
    AlreadyRedeemed,
    Expired,
    NotPosChannel,
    ReactivationLimit,
    AmbiguousCustomer,
    CannotUndoPromotion,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    TooManyRequests,
    Overloaded,
    Internal,
    BadGateway,
    UpstreamUnavailable,
    UpstreamTimeout,
}

impl Reason {
    pub const ALL: [Reason; 20] = [
        Reason::InvalidInput,
        Reason::BodyTooLarge,
        Reason::BodyTimeout,
        Reason::CustomerExists,
        Reason::AlreadyRedeemed,
        Reason::Expired,
        Reason::NotPosChannel,
        Reason::ReactivationLimit,
        Reason::AmbiguousCustomer,
        Reason::CannotUndoPromotion,
        Reason::Unauthorized,
        Reason::Forbidden,
        Reason::NotFound,
        Reason::MethodNotAllowed,
        Reason::TooManyRequests,
        Reason::Overloaded,
        Reason::Internal,
        Reason::BadGateway,
        Reason::UpstreamUnavailable,
        Reason::UpstreamTimeout,
    ];

    /// The name in the error table and in `error_data.reason`.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::InvalidInput => "invalid_input",
            Reason::BodyTooLarge => "body_too_large",
            Reason::BodyTimeout => "body_timeout",
            Reason::CustomerExists => "customer_exists",
            Reason::AlreadyRedeemed => "already_redeemed",
            Reason::Expired => "expired",
            Reason::NotPosChannel => "not_pos_channel",
            Reason::ReactivationLimit => "reactivation_limit",
            Reason::AmbiguousCustomer => "ambiguous_customer",
            Reason::CannotUndoPromotion => "cannot_undo_promotion",
            Reason::Unauthorized => "unauthorized",
            Reason::Forbidden => "forbidden",
            Reason::NotFound => "not_found",
            Reason::MethodNotAllowed => "method_not_allowed",
            Reason::TooManyRequests => "too_many_requests",
            Reason::Overloaded => "overloaded",
            Reason::Internal => "internal",
            Reason::BadGateway => "bad_gateway",
            Reason::UpstreamUnavailable => "upstream_unavailable",
            Reason::UpstreamTimeout => "upstream_timeout",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refusal with everything the envelope and its headers need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: Reason,
    pub message: String,
    /// The Voyado error code behind it, if any (never Voyado's body).
    pub upstream_code: Option<String>,
    pub retry_after: Option<u64>,
    /// For 405: the methods the path takes.
    pub allow: Option<String>,
}

impl Refusal {
    pub fn new(reason: Reason, message: impl Into<String>) -> Refusal {
        Refusal {
            reason,
            message: message.into(),
            upstream_code: None,
            retry_after: None,
            allow: None,
        }
    }
}

/// Any error on its way to the POS: a refusal decided here, or a Voyado failure whose reason the
/// error table decides.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    #[error("{}: {}", .0.reason, .0.message)]
    Refused(Refusal),
    #[error("{error} (about the {about})")]
    Voyado {
        error: VoyadoError,
        /// What a 404 is about ("customer", "bonus check", ...).
        about: &'static str,
    },
}

impl ProxyError {
    pub fn new(reason: Reason, message: impl Into<String>) -> ProxyError {
        ProxyError::Refused(Refusal::new(reason, message))
    }

    /// Invalid input; the message starts with the field name.
    pub fn field(field: &str, problem: &str) -> ProxyError {
        ProxyError::new(Reason::InvalidInput, format!("{field} {problem}"))
    }

    pub fn not_found(what: &str) -> ProxyError {
        ProxyError::new(Reason::NotFound, format!("{what} not found"))
    }

    pub fn internal() -> ProxyError {
        ProxyError::new(Reason::Internal, "internal error")
    }

    pub fn timeout() -> ProxyError {
        ProxyError::new(Reason::UpstreamTimeout, "Voyado did not answer in time")
    }

    /// The proxy is full: try again in a second.
    pub fn overloaded() -> ProxyError {
        ProxyError::Refused(Refusal {
            retry_after: Some(1),
            ..Refusal::new(Reason::Overloaded, "the proxy is busy; try again shortly")
        })
    }

    pub fn voyado(error: VoyadoError, about: &'static str) -> ProxyError {
        ProxyError::Voyado { error, about }
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
    pub error_code: String,
}

impl ErrorRow {
    /// What is wrong with a row's status, if anything: a refusal answers 4xx or 5xx.
    pub fn status_problem(status: u16) -> Option<String> {
        (!(400..=599).contains(&status)).then(|| format!("{status} is not an error status"))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct VoyadoRow {
    code: String,
    reason: Reason,
    field: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct TableFile {
    reasons: BTreeMap<Reason, ErrorRow>,
    voyado: Vec<VoyadoRow>,
    voyado_status: BTreeMap<String, Reason>,
}

/// Reason → (status, error_code), and Voyado code → reason.
#[derive(Debug, Clone)]
pub struct ErrorTable {
    reasons: BTreeMap<Reason, ErrorRow>,
    voyado: Vec<VoyadoRow>,
    voyado_status: BTreeMap<u16, Reason>,
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

/// Used only if a row is missing, which loading prevents.
const FALLBACK: (u16, &str) = (500, "other");

impl ErrorTable {
    /// Parses the table; a reason the code does not know, or one the table lacks, is an error.
    pub fn parse(text: &str) -> Result<ErrorTable, Vec<String>> {
        let file: TableFile = toml::from_str(text).map_err(|e| vec![e.to_string()])?;
        let mut errors = Vec::new();
        for reason in Reason::ALL {
            if !file.reasons.contains_key(&reason) {
                errors.push(format!("reasons: no row for '{reason}'"));
            }
        }
        for (reason, row) in &file.reasons {
            check_row(&format!("reasons.{reason}"), row, &mut errors);
        }
        for (i, row) in file.voyado.iter().enumerate() {
            if row.code.matches('*').count() > 1 {
                errors.push(format!(
                    "voyado[{i}].code: '{}' has more than one '*' (one is supported)",
                    row.code
                ));
            }
        }
        let mut voyado_status = BTreeMap::new();
        for (status, reason) in &file.voyado_status {
            match status.parse::<u16>() {
                Ok(s) => {
                    voyado_status.insert(s, *reason);
                }
                Err(_) => errors.push(format!("voyado_status: '{status}' is not a status")),
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

    /// The table with a market's overrides (the config checked their statuses with
    /// [`ErrorRow::status_problem`] when it was read).
    pub fn with_overrides(&self, overrides: &BTreeMap<Reason, ErrorRow>) -> ErrorTable {
        let mut table = self.clone();
        for (reason, row) in overrides {
            table.reasons.insert(*reason, row.clone());
        }
        table
    }

    fn row(&self, reason: Reason) -> (u16, &str) {
        self.reasons
            .get(&reason)
            .map_or(FALLBACK, |r| (r.status, r.error_code.as_str()))
    }

    /// The reason (and SPI field) for a Voyado refusal.
    pub fn voyado_reason(&self, status: u16, code: Option<&str>) -> (Reason, Option<&str>) {
        if let Some(code) = code
            && let Some(row) = self.voyado.iter().find(|r| glob(&r.code, code))
        {
            return (row.reason, row.field.as_deref());
        }
        let reason = self
            .voyado_status
            .get(&status)
            .copied()
            .unwrap_or(if status == 504 {
                Reason::UpstreamTimeout
            } else {
                Reason::BadGateway
            });
        (reason, None)
    }

    /// Any error as a refusal: a Voyado failure gets its reason and message here.
    pub fn refusal(&self, error: ProxyError) -> Refusal {
        let (error, what) = match error {
            ProxyError::Refused(refusal) => return refusal,
            ProxyError::Voyado { error, about } => (error, about),
        };
        let VoyadoError::Status {
            status,
            code,
            retry_after,
            fields,
            ..
        } = error
        else {
            let retry_after = match error {
                VoyadoError::Throttled { retry_after }
                | VoyadoError::CoolingOff { retry_after } => Some(retry_after.max(1)),
                _ => None,
            };
            let (reason, message) = match error {
                VoyadoError::Throttled { .. } => (
                    Reason::TooManyRequests,
                    "Voyado's rate budget is spent; try again shortly",
                ),
                VoyadoError::CoolingOff { .. } => (
                    Reason::UpstreamUnavailable,
                    "Voyado is not answering; try again shortly",
                ),
                VoyadoError::Timeout => (Reason::UpstreamTimeout, "Voyado did not answer in time"),
                VoyadoError::Connect => (Reason::BadGateway, "Voyado could not be reached"),
                VoyadoError::TooLarge => (Reason::BadGateway, "Voyado's answer was too large"),
                _ => (
                    Reason::BadGateway,
                    "Voyado sent an answer that could not be read",
                ),
            };
            return Refusal {
                retry_after,
                ..Refusal::new(reason, message)
            };
        };
        let (reason, field) = self.voyado_reason(status, code.as_deref());
        let message = match reason {
            Reason::NotFound => format!("{what} not found"),
            Reason::InvalidInput => match (field, fields.is_empty()) {
                (Some(f), _) => format!("{f} was rejected by Voyado"),
                (None, false) => format!("{} rejected by Voyado", fields.join(", ")),
                (None, true) => "Voyado rejected the request".to_owned(),
            },
            Reason::CustomerExists => "a customer with this key already exists".to_owned(),
            Reason::AmbiguousCustomer => {
                "several customers match — search by member number".to_owned()
            }
            Reason::TooManyRequests => "Voyado is rate limiting; try again shortly".to_owned(),
            Reason::UpstreamUnavailable => "Voyado is unavailable".to_owned(),
            Reason::UpstreamTimeout => "Voyado did not answer in time".to_owned(),
            Reason::BadGateway => format!("Voyado answered {status}"),
            other => format!("Voyado refused: {other}"),
        };
        Refusal {
            reason,
            message,
            retry_after: match reason {
                Reason::TooManyRequests => Some(retry_after.unwrap_or(1)),
                Reason::UpstreamUnavailable => retry_after,
                _ => None,
            },
            upstream_code: code,
            allow: None,
        }
    }

    /// The status and the envelope body for a refusal.
    pub fn envelope(&self, refusal: &Refusal, request_id: &str) -> (u16, Vec<u8>) {
        let (status, error_code) = self.row(refusal.reason);
        let mut data = json!({"message": refusal.message, "reason": refusal.reason.as_str()});
        if let Some(code) = &refusal.upstream_code {
            data["upstream_code"] = json!(code);
        }
        let body = Envelope {
            error_code,
            error_data: data,
            request_id,
            statuscode: status,
            errortext: &refusal.message,
        };
        (status, serde_json::to_vec(&body).unwrap_or_default())
    }
}

/// Turns any error into the SPI answer: the envelope with the request id, the status from the
/// table, and the headers the reason calls for. Panics come here too, as `internal`.
pub fn envelope(error: ProxyError, table: &ErrorTable, request_id: &str) -> Response<Full<Bytes>> {
    let refusal = table.refusal(error);
    if refusal.reason == Reason::Internal {
        tracing::error!(message = %refusal.message, "internal error");
    }
    let (status, body) = table.envelope(&refusal, request_id);
    let mut response = json_response(body);
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    // By the status the table chose (a market may move a reason to another status), so each
    // status carries what it promises.
    match status {
        401 => {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"sitoo-voyado-proxy\""),
            );
        }
        429 | 503 => {
            headers.insert(
                header::RETRY_AFTER,
                HeaderValue::from(refusal.retry_after.unwrap_or(1)),
            );
        }
        _ => {}
    }
    // The client may still be sending: the connection cannot be reused.
    if matches!(refusal.reason, Reason::BodyTooLarge | Reason::BodyTimeout) {
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    if let Some(allow) = refusal.allow.and_then(|a| HeaderValue::from_str(&a).ok()) {
        headers.insert(header::ALLOW, allow);
    }
    response
}

/// A `200` (or error) answer with a JSON body.
pub fn json_response(body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn check_row(at: &str, row: &ErrorRow, errors: &mut Vec<String>) {
    if let Some(problem) = ErrorRow::status_problem(row.status) {
        errors.push(format!("{at}.status: {problem}"));
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
    use http_body_util::BodyExt;

    fn table() -> ErrorTable {
        ErrorTable::parse(include_str!("../../mappings/errors.toml")).unwrap()
    }

    #[test]
    fn voyado_codes_map_to_reasons_first_match_wins() {
        let t = table();
        assert_eq!(
            t.voyado_reason(500, Some("InvalidSystemConfiguration")).0,
            Reason::BadGateway
        );
        assert_eq!(
            t.voyado_reason(400, Some("InvalidPhoneNumber")),
            (Reason::InvalidInput, Some("mobile"))
        );
        assert_eq!(
            t.voyado_reason(409, Some("BonusCheckAlreadyRedeemed")).0,
            Reason::AlreadyRedeemed
        );
        assert_eq!(
            t.voyado_reason(406, Some("RewardVoucherExpired")).0,
            Reason::Expired
        );
        assert_eq!(
            t.voyado_reason(404, Some("BonusCheckNotFound")).0,
            Reason::NotFound
        );
        assert_eq!(t.voyado_reason(503, None).0, Reason::UpstreamUnavailable);
        assert_eq!(t.voyado_reason(500, None).0, Reason::BadGateway);
        assert_eq!(t.voyado_reason(401, None).0, Reason::BadGateway);
    }

    #[test]
    fn envelope_has_every_field() {
        let t = table();
        let refusal = t.refusal(ProxyError::field("email", "is not valid"));
        let (status, body) = t.envelope(&refusal, "r-1");
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(status, 400);
        assert_eq!(v["error_code"], "bad-request");
        assert_eq!(v["error_data"]["reason"], "invalid_input");
        assert_eq!(v["error_data"]["message"], "email is not valid");
        assert_eq!(v["errortext"], "email is not valid");
        assert_eq!(v["request_id"], "r-1");
        assert_eq!(v["statuscode"], 400);
    }

    #[tokio::test]
    async fn rescue_writes_the_headers_the_reason_calls_for() {
        let t = table();
        let r = envelope(ProxyError::overloaded(), &t, "r-2");
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
        let body = r.into_body().collect().await.unwrap().to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["request_id"], "r-2");
        assert_eq!(v["error_data"]["reason"], "overloaded");
        let r = envelope(
            ProxyError::new(Reason::Unauthorized, "authentication failed"),
            &t,
            "r",
        );
        assert_eq!(r.status(), 401);
        assert!(r.headers().contains_key(header::WWW_AUTHENTICATE));
        let r = envelope(ProxyError::new(Reason::BodyTooLarge, "too large"), &t, "r");
        assert_eq!(r.headers()[header::CONNECTION], "close");
    }

    #[test]
    fn a_voyado_failure_keeps_its_code_and_never_its_body() {
        let t = table();
        let e = VoyadoError::from_body(
            429,
            br#"{"errorCode":"TooManyRequests","message":"anna@example.com"}"#,
            Some(7),
        );
        let r = t.refusal(ProxyError::voyado(e, "customer"));
        assert_eq!(r.reason, Reason::TooManyRequests);
        assert_eq!(r.upstream_code.as_deref(), Some("TooManyRequests"));
        assert_eq!(r.retry_after, Some(7));
        assert!(!r.message.contains("anna"));
    }

    #[test]
    fn a_table_missing_a_reason_is_rejected() {
        let text = include_str!("../../mappings/errors.toml").replace("[reasons.expired]", "[x]");
        assert!(ErrorTable::parse(&text).is_err());
    }

    #[test]
    fn a_reason_the_code_does_not_know_is_a_load_error() {
        let text = format!(
            "{}\n[reasons.made_up]\nstatus = 400\nerror_code = \"x\"\n",
            include_str!("../../mappings/errors.toml")
        );
        let errors = ErrorTable::parse(&text).unwrap_err().join("\n");
        assert!(errors.contains("made_up"), "{errors}");
    }
}
