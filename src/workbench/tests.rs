//! The workbench in-process: who is let in, and that no caller text makes it panic.

use http_body_util::BodyExt;
use proptest::prelude::*;

use super::*;
use crate::config::{Config, MappingSource};

const TOKEN: &str = "a-workbench-token-for-tests";

/// A market whose Voyado refuses connections at once (nothing listens on the discard port).
fn app(admin: &str) -> Arc<App> {
    let config = Config::parse(
        &format!(
            "{admin}\n[[market]]\ntenant = \"t\"\nmarket = \"m\"\ncrm_api_keys = [\"k\"]\n\
             voyado_url = \"http://127.0.0.1:9\"\nvoyado_api_key = \"k\"\ndefault_country = \"SE\"\n"
        ),
        "test",
        |_| MappingSource::BuiltIn,
        |_| None,
    )
    .unwrap();
    App::build(&config).unwrap()
}

fn request(method: Method, path: &str, token: Option<&str>, body: &str) -> Request<Full<Bytes>> {
    let mut builder = Request::builder().method(method).uri(path);
    if let Some(token) = token {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    builder
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap()
}

async fn call(app: &Arc<App>, request: Request<Full<Bytes>>) -> (StatusCode, Value) {
    let response = serve(app.clone(), request).await;
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

#[test]
fn the_workbench_owns_its_prefix_only() {
    assert!(is_path("/workbench"));
    assert!(is_path("/workbench/api/card"));
    assert!(!is_path("/workbenches"));
    assert!(!is_path("/demo/SE/workbench"));
}

#[tokio::test]
async fn without_a_token_the_workbench_is_off() {
    let app = app("");
    assert!(!is_on(&app));
    let (status, _) = call(&app, request(Method::GET, "/workbench/", None, "")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = call(
        &app,
        request(Method::GET, "/workbench/api/markets", None, ""),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_endpoints_take_the_token_only_as_a_bearer_header() {
    let app = app(&format!("[admin]\ntoken = \"{TOKEN}\""));
    let markets = |token| request(Method::GET, "/workbench/api/markets", token, "");
    for wrong in [None, Some("not-the-token-at-all"), Some("")] {
        let response = serve(app.clone(), markets(wrong)).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{wrong:?}");
        assert!(response.headers().contains_key(header::WWW_AUTHENTICATE));
    }
    // A query parameter is no way in.
    let (status, _) = call(
        &app,
        request(
            Method::GET,
            &format!("/workbench/api/markets?token={TOKEN}"),
            None,
            "",
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = call(&app, markets(Some(TOKEN))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["markets"][0]["market"], "t/m");
    // The page itself holds no data: it loads without the token, and asks for it.
    let (status, _) = call(&app, request(Method::GET, "/workbench/", None, "")).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_contact_id_that_is_not_a_guid_is_refused_naming_the_field() {
    let app = app(&format!("[admin]\ntoken = \"{TOKEN}\""));
    let body = r#"{"market":"t/m","contact_id":"10012"}"#;
    let (status, answer) = call(
        &app,
        request(Method::POST, "/workbench/api/card", Some(TOKEN), body),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["field"], "contact_id");
    assert!(answer["error"].as_str().unwrap().contains("GUID"));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Whatever the path, header and body, the workbench answers (a JSON refusal or a page),
    /// never panics, and lets no one in without the token.
    #[test]
    fn no_caller_text_panics(
        rest in "[a-z/]{0,20}",
        endpoint in prop::sample::select(vec!["markets", "profile", "card", "write", "receipt", "draft", "x"]),
        header_value in "\\PC{0,40}",
        body in prop_oneof![
            "\\PC{0,200}",
            Just(r#"{"market":"t/m","voyado":{"attributes":{"firstName":3}}}"#.to_owned()),
            Just(r#"{"market":"t/m","spi":{"name_first":[1]},"current":{}}"#.to_owned()),
            Just(r#"{"market":"t/m","order":{"orderid":"x"}}"#.to_owned()),
            Just(r#"{"market":"t/m","profile":"[[field]\nspi ="}"#.to_owned()),
        ],
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let app = app(&format!("[admin]\ntoken = \"{TOKEN}\""));
            let page = request(Method::GET, &format!("/workbench/{rest}"), None, "");
            let (status, _) = call(&app, page).await;
            prop_assert!(status.is_success() || status.is_client_error() || status.is_redirection());
            let mut stranger = request(Method::POST, &format!("/workbench/api/{endpoint}"), None, &body);
            if let Ok(value) = HeaderValue::from_str(&header_value) {
                stranger.headers_mut().insert(header::AUTHORIZATION, value);
            }
            let (status, _) = call(&app, stranger).await;
            prop_assert_eq!(status, StatusCode::UNAUTHORIZED);
            let method = if endpoint == "markets" { Method::GET } else { Method::POST };
            let (status, answer) = call(&app, request(method, &format!("/workbench/api/{endpoint}"), Some(TOKEN), &body)).await;
            prop_assert!(
                status == StatusCode::OK || (status.is_client_error() && answer["error"].is_string()),
                "{} {}", status, answer
            );
            Ok(())
        })?;
    }
}
