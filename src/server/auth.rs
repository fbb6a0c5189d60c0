//! Market and authentication: the path's tenant and market (routing's [`Routed`]) select a
//! market of the set the request is served with, whose CRM API keys are checked against the
//! Basic-auth password (any user name) in constant time. An unknown tenant or market answers
//! exactly like a wrong key — same body, same work — and only the log says which it was.

use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::future::{self, Either, Ready};
use http::{HeaderMap, Response, header};
use http_body_util::Full;
use subtle::{Choice, ConstantTimeEq};
use tower::{Layer, Service};

use super::context::RequestContext;
use super::handoff::{Authenticated, Routed};
use crate::config::CrmKeyDigest;
use crate::market::Market;
use crate::spi::{ProxyError, Reason};

/// What authentication holds: the decoy key compared against for an unknown tenant or market.
/// The markets themselves come with the request, in the set routing took.
#[derive(Clone)]
pub struct AuthLayer {
    decoy_key: CrmKeyDigest,
}

impl AuthLayer {
    pub fn new(decoy_key: CrmKeyDigest) -> AuthLayer {
        AuthLayer { decoy_key }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = Auth<S>;

    fn layer(&self, inner: S) -> Auth<S> {
        Auth {
            inner,
            layer: self.clone(),
        }
    }
}

/// The authenticating service: the request goes on as [`Authenticated`], with its market, or is
/// refused `401`.
#[derive(Clone)]
pub struct Auth<S> {
    inner: S,
    layer: AuthLayer,
}

impl<S, B> Service<Routed<B>> for Auth<S>
where
    S: Service<Authenticated<B>, Response = Response<Full<Bytes>>, Error = ProxyError>
        + Send
        + 'static,
    S::Future: Send,
    B: Send + 'static,
{
    type Response = Response<Full<Bytes>>;
    type Error = ProxyError;
    // Not boxed: the answer is the inner service's, or a refusal ready at once.
    type Future = Either<S::Future, Ready<Result<Response<Full<Bytes>>, ProxyError>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ProxyError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, routed: Routed<B>) -> Self::Future {
        let Routed {
            request,
            tenant,
            market: market_id,
            served,
            route,
        } = routed;
        let found = served.market(&tenant, &market_id).cloned();
        let context = RequestContext::of(&request);
        match authenticate(&self.layer.decoy_key, found.as_ref(), request.headers()) {
            Ok(market) => {
                // Path segments are the caller's text: only a configured tenant and market are
                // logged, and only once the key proved the caller is theirs.
                context.set_market(market.clone());
                Either::Left(self.inner.call(Authenticated {
                    request,
                    market,
                    route,
                }))
            }
            Err(why) => {
                let _entered = context.span().enter();
                tracing::info!(why, "authentication refused");
                let refused = ProxyError::new(Reason::Unauthorized, "authentication failed");
                Either::Right(future::ready(Err(refused)))
            }
        }
    }
}

/// Basic auth: the password is the market's CRM API key (any user name). A refusal says why,
/// for the log only: the caller is told the same whatever it was.
fn authenticate(
    decoy: &CrmKeyDigest,
    found: Option<&Arc<Market>>,
    headers: &HeaderMap,
) -> Result<Arc<Market>, &'static str> {
    let password = basic_password(headers);
    let offered = CrmKeyDigest::of(password.as_deref().unwrap_or(""));
    let keys = found.map_or(std::slice::from_ref(decoy), |m| &m.settings.crm_keys[..]);
    let mut matched = Choice::from(0);
    for key in keys {
        matched |= key.bytes().ct_eq(offered.bytes());
    }
    match (found, password.is_some(), bool::from(matched)) {
        (None, _, _) => Err("unknown tenant or market"),
        (Some(_), false, _) => Err("no Basic credentials"),
        (Some(_), true, false) => Err("wrong key"),
        (Some(m), true, true) => Ok(m.clone()),
    }
}

fn basic_password(headers: &HeaderMap) -> Option<String> {
    use base64::Engine;
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    // The password is what follows the first `:`, kept in the decoded buffer (no copy).
    let mut password = String::from_utf8(decoded).ok()?;
    let user_end = password.find(':')?;
    password.drain(..=user_end);
    (!password.is_empty()).then_some(password)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use proptest::prelude::*;

    #[test]
    fn basic_credentials_are_decoded() {
        let mut h = HeaderMap::new();
        // "pos:demo-key"
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic cG9zOmRlbW8ta2V5"),
        );
        assert_eq!(basic_password(&h).as_deref(), Some("demo-key"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic !!!!"),
        );
        assert_eq!(basic_password(&h), None);
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer cG9zOmRlbW8ta2V5"),
        );
        assert_eq!(basic_password(&h), None);
    }

    proptest! {
        #[test]
        fn any_authorization_header_decodes_without_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..128),
            password in "\\PC{0,40}",
        ) {
            let mut h = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_bytes(&bytes) {
                h.insert(header::AUTHORIZATION, v);
            }
            let _ = basic_password(&h);
            use base64::Engine;
            let encoded = base64::engine::general_purpose::STANDARD.encode(format!("u:{password}"));
            h.insert(header::AUTHORIZATION, HeaderValue::from_str(&format!("Basic {encoded}")).unwrap());
            prop_assert_eq!(basic_password(&h), (!password.is_empty()).then_some(password));
        }
    }
}
