//! The integrator docs against the code: `docs/openapi.yaml` names every route of
//! `mappings/routes.toml` (and no other), the error table in `docs/SPI.md` matches
//! `mappings/errors.toml`, and real answers — one of every route and the common refusals — match
//! the schema, content type and headers the OpenAPI document gives for their route and status.
//! Each check is also run against a deliberately wrong document, to show it catches the drift.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::*;
use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use sitoo_voyado_proxy::sim::{Fault, FaultAction};

const OPENAPI: &str = include_str!("../docs/openapi.yaml");
const SPI_MD: &str = include_str!("../docs/SPI.md");
const ROUTES: &str = include_str!("../mappings/routes.toml");
const ERRORS: &str = include_str!("../mappings/errors.toml");

/// The route table's paths are relative to this.
const SPI_PREFIX: &str = "/{tenant}/{market}";
/// The routes outside the SPI prefix.
const ADMIN: [&str; 3] = ["/healthz", "/readyz", "/metrics"];
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];
/// The header line of the error table in `docs/SPI.md`.
const ERROR_TABLE_HEADER: &str = "| reason | status | error_code | when |";

fn openapi() -> Value {
    serde_saphyr::from_str(OPENAPI).expect("docs/openapi.yaml is YAML")
}

/// (METHOD, full path template) → operation, from `mappings/routes.toml`.
fn table_routes() -> BTreeMap<(String, String), String> {
    let file: Value = toml::from_str(ROUTES).unwrap();
    file["route"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let text = |k: &str| r[k].as_str().unwrap().to_owned();
            let path = format!("{SPI_PREFIX}{}", text("path"));
            ((text("method"), path), text("operation"))
        })
        .collect()
}

/// The path part of a server URL: `https://{host}/{tenant}/{market}` → `/{tenant}/{market}`.
fn server_path(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.find('/')
        .map_or("", |i| rest[i..].trim_end_matches('/'))
}

/// A documented operation: its path key in the document and its `x-spi-operation`.
struct DocRoute {
    key: String,
    operation: Option<String>,
}

/// (METHOD, full path template) → the documented operation. A path's full template is its
/// servers' path (the path item's own servers, else the document's) and its key.
fn doc_routes(doc: &Value, problems: &mut Vec<String>) -> BTreeMap<(String, String), DocRoute> {
    let mut routes = BTreeMap::new();
    let Some(paths) = doc["paths"].as_object() else {
        problems.push("openapi.yaml has no paths".into());
        return routes;
    };
    for (key, item) in paths {
        let servers = item
            .get("servers")
            .or_else(|| doc.get("servers"))
            .and_then(Value::as_array);
        let prefixes: BTreeSet<&str> = servers
            .into_iter()
            .flatten()
            .filter_map(|s| s["url"].as_str())
            .map(server_path)
            .collect();
        let prefix = match prefixes.len() {
            0 => "",
            1 => prefixes.first().unwrap(),
            _ => {
                problems.push(format!("{key}: servers disagree on the path: {prefixes:?}"));
                continue;
            }
        };
        for method in METHODS {
            if let Some(op) = item.get(method) {
                let operation = op["x-spi-operation"].as_str().map(str::to_owned);
                let full = format!("{prefix}{key}");
                let route = DocRoute {
                    key: key.clone(),
                    operation,
                };
                routes.insert((method.to_ascii_uppercase(), full), route);
            }
        }
    }
    routes
}

/// Every route of the table is documented with its operation, and nothing else is, besides
/// health, readiness and metrics.
fn route_problems(doc: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let documented = doc_routes(doc, &mut problems);
    for ((method, path), operation) in table_routes() {
        match documented.get(&(method.clone(), path.clone())) {
            None => problems.push(format!("openapi.yaml lacks {method} {path}")),
            Some(d) if d.operation.as_deref() != Some(operation.as_str()) => {
                problems.push(format!(
                    "{method} {path}: x-spi-operation is {:?}, the route table says {operation}",
                    d.operation
                ))
            }
            Some(_) => {}
        }
    }
    let table = table_routes();
    for (method, path) in documented.keys() {
        let known = if path.starts_with(&format!("{SPI_PREFIX}/")) {
            table.contains_key(&(method.clone(), path.clone()))
        } else {
            (method == "GET" || method == "HEAD") && ADMIN.contains(&path.as_str())
        };
        if !known {
            problems.push(format!(
                "openapi.yaml documents {method} {path}, which the proxy does not route"
            ));
        }
    }
    for path in ADMIN {
        for method in ["GET", "HEAD"] {
            if !documented.contains_key(&(method.to_owned(), path.to_owned())) {
                problems.push(format!("openapi.yaml lacks {method} {path}"));
            }
        }
    }
    problems
}

/// reason → (status, error_code), from `mappings/errors.toml`.
fn error_table() -> BTreeMap<String, (u64, String)> {
    let file: Value = toml::from_str(ERRORS).unwrap();
    file["reasons"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(reason, row)| {
            let code = row["error_code"].as_str().unwrap().to_owned();
            (reason.clone(), (row["status"].as_u64().unwrap(), code))
        })
        .collect()
}

/// The rows of the error table in the SPI guide: reason → (status, error_code).
fn doc_error_rows(md: &str, problems: &mut Vec<String>) -> BTreeMap<String, (u64, String)> {
    let mut lines = md.lines().skip_while(|l| l.trim() != ERROR_TABLE_HEADER);
    if lines.next().is_none() {
        problems.push(format!("SPI.md has no table headed {ERROR_TABLE_HEADER}"));
    }
    let mut rows = BTreeMap::new();
    for line in lines
        .skip(1)
        .take_while(|l| l.trim_start().starts_with('|'))
    {
        let cells: Vec<&str> = line
            .trim()
            .trim_matches('|')
            .split('|')
            .map(|c| c.trim().trim_matches('`'))
            .collect();
        match (cells.first(), cells.get(1).map(|s| s.parse()), cells.get(2)) {
            (Some(reason), Some(Ok(status)), Some(code)) => {
                rows.insert((*reason).to_owned(), (status, (*code).to_owned()));
            }
            _ => problems.push(format!("SPI.md: unreadable error table row: {line}")),
        }
    }
    rows
}

/// The guide's error table and the envelope's reason list say what `errors.toml` says.
fn error_table_problems(md: &str, doc: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let table = error_table();
    let rows = doc_error_rows(md, &mut problems);
    for (reason, row) in &table {
        match rows.get(reason) {
            None => problems.push(format!("SPI.md's error table lacks {reason}")),
            Some(doc_row) if doc_row != row => problems.push(format!(
                "SPI.md says {reason} is {doc_row:?}, errors.toml says {row:?}"
            )),
            Some(_) => {}
        }
    }
    for reason in rows.keys().filter(|r| !table.contains_key(*r)) {
        problems.push(format!(
            "SPI.md's error table has {reason}, errors.toml does not"
        ));
    }
    let reasons = &doc["components"]["schemas"]["Error"]["properties"]["error_data"]["properties"]
        ["reason"]["enum"];
    let documented: BTreeSet<&str> = reasons
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let known: BTreeSet<&str> = table.keys().map(String::as_str).collect();
    if documented != known {
        problems.push(format!(
            "openapi.yaml's Error reasons {documented:?} are not errors.toml's {known:?}"
        ));
    }
    problems
}

/// The OpenAPI document with its schemas compiled on demand (JSON Schema 2020-12, formats
/// asserted). A schema is compiled inside a document that also holds `components`, so its
/// `$ref`s to `#/components/schemas/...` resolve; nothing is fetched.
struct Contract {
    doc: Value,
    compiler: boon::Compiler,
    schemas: boon::Schemas,
    compiled: BTreeMap<String, boon::SchemaIndex>,
    /// Routes answered with a 2xx and checked.
    covered: BTreeSet<(String, String)>,
    problems: Vec<String>,
}

impl Contract {
    fn new(doc: Value) -> Contract {
        let mut compiler = boon::Compiler::new();
        compiler.set_default_draft(boon::Draft::V2020_12);
        compiler.enable_format_assertions();
        Contract {
            doc,
            compiler,
            schemas: boon::Schemas::new(),
            compiled: BTreeMap::new(),
            covered: BTreeSet::new(),
            problems: Vec::new(),
        }
    }

    /// Follows a local `$ref` (`#/components/...`), repeatedly.
    fn resolve(&self, value: &Value) -> Value {
        let mut value = value.clone();
        while let Some(target) = value.get("$ref").and_then(Value::as_str) {
            let pointer = target.trim_start_matches('#');
            match self.doc.pointer(pointer) {
                Some(next) => value = next.clone(),
                None => return Value::Null,
            }
        }
        value
    }

    fn validate(&mut self, schema: &Value, instance: &Value) -> Result<(), String> {
        let key = schema.to_string();
        let index = match self.compiled.get(&key) {
            Some(index) => *index,
            None => {
                let document = json!({
                    "components": {"schemas": self.doc["components"]["schemas"].clone()},
                    "allOf": [schema],
                });
                let loc = format!(
                    "{}/docs/openapi.yaml/compiled/{}.json",
                    env!("CARGO_MANIFEST_DIR"),
                    self.compiled.len()
                );
                self.compiler
                    .add_resource(&loc, document)
                    .map_err(|e| format!("{e:#}"))?;
                let index = self
                    .compiler
                    .compile(&loc, &mut self.schemas)
                    .map_err(|e| format!("schema {schema} does not compile: {e:#}"))?;
                self.compiled.insert(key, index);
                index
            }
        };
        self.schemas
            .validate(instance, index)
            .map_err(|e| format!("{e:#}"))
    }

    /// The operation object of a path key and method.
    fn operation(&self, method: &Method, key: &str) -> Option<Value> {
        let op = self.doc["paths"]
            .get(key)?
            .get(method.as_str().to_ascii_lowercase())?;
        Some(op.clone())
    }

    /// Checks an answer of `method` on the path `key` against the response the document gives
    /// for its status.
    fn check(&mut self, method: &Method, key: &str, answer: &Answer) {
        let what = format!("{method} {key} → {}", answer.status.as_u16());
        let Some(op) = self.operation(method, key) else {
            self.problems
                .push(format!("{what}: no such operation in openapi.yaml"));
            return;
        };
        let status = answer.status.as_str();
        let Some(response) = op["responses"]
            .get(status)
            .or_else(|| op["responses"].get("default"))
        else {
            self.problems
                .push(format!("{what}: the status is not documented"));
            return;
        };
        let response = self.resolve(response);
        self.check_response(&what, &response, answer);
        if answer.status.is_success() {
            let full = self.full_path(key);
            self.covered
                .insert((method.as_str().to_owned(), full.clone()));
        }
    }

    /// Checks an answer against a response of `components.responses` (refusals that belong to
    /// no documented operation: an unknown path, a method a path does not take).
    fn check_component(&mut self, name: &str, answer: &Answer) {
        let what = format!("components.responses.{name} ({})", answer.status.as_u16());
        let response = self.doc["components"]["responses"][name].clone();
        if response.is_null() {
            self.problems.push(format!("{what}: not in openapi.yaml"));
            return;
        }
        let response = self.resolve(&response);
        self.check_response(&what, &response, answer);
    }

    /// The content type, the body against its schema, and every header the response declares.
    fn check_response(&mut self, what: &str, response: &Value, answer: &Answer) {
        let content_type = answer
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let essence = |t: &str| {
            t.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        };
        let content = response["content"].as_object().cloned().unwrap_or_default();
        if content.is_empty() && answer.body == json!("") {
            // A documented answer without a body (HEAD): none came.
        } else {
            let media = content
                .iter()
                .find(|(t, _)| essence(t) == essence(content_type));
            match media {
                None => self.problems.push(format!(
                    "{what}: answered {content_type:?}, documented {:?}",
                    content.keys().collect::<Vec<_>>()
                )),
                Some((_, media)) => {
                    let schema = media["schema"].clone();
                    if let Err(e) = self.validate(&schema, &answer.body) {
                        self.problems
                            .push(format!("{what}: body {} does not match: {e}", answer.body));
                    }
                }
            }
        }
        let headers = response["headers"].as_object().cloned().unwrap_or_default();
        for (name, header) in headers {
            let header = self.resolve(&header);
            let required = header["required"].as_bool().unwrap_or(false);
            match answer.headers.get(name.as_str()).map(|v| v.to_str()) {
                None if required => self
                    .problems
                    .push(format!("{what}: the required header {name} is missing")),
                None => {}
                Some(value) => {
                    let text = value.unwrap_or("").to_owned();
                    let schema = header["schema"].clone();
                    let value = match (schema["type"].as_str(), text.parse::<i64>()) {
                        (Some("integer"), Ok(n)) => json!(n),
                        _ => json!(text),
                    };
                    if let Err(e) = self.validate(&schema, &value) {
                        self.problems
                            .push(format!("{what}: header {name}: {text:?}: {e}"));
                    }
                }
            }
        }
    }

    /// Checks a request body the test sends against the operation's request body schema.
    fn check_request(&mut self, method: &Method, key: &str, body: &Value) {
        let what = format!("{method} {key} request body");
        let Some(op) = self.operation(method, key) else {
            self.problems
                .push(format!("{what}: no such operation in openapi.yaml"));
            return;
        };
        let request = self.resolve(&op["requestBody"]);
        let schema = request["content"]["application/json"]["schema"].clone();
        if schema.is_null() {
            self.problems
                .push(format!("{what}: no application/json schema documented"));
        } else if let Err(e) = self.validate(&schema, body) {
            self.problems
                .push(format!("{what}: {body} does not match: {e}"));
        }
    }

    /// The `Allow` of a 405 lists exactly the methods the document gives the path.
    fn check_allow(&mut self, key: &str, answer: &Answer) {
        let allow: BTreeSet<String> = answer
            .headers
            .get("allow")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .split(',')
            .map(|m| m.trim().to_owned())
            .filter(|m| !m.is_empty())
            .collect();
        let documented: BTreeSet<String> = METHODS
            .iter()
            .filter(|m| self.doc["paths"][key].get(**m).is_some())
            .map(|m| m.to_ascii_uppercase())
            .collect();
        if allow != documented {
            self.problems.push(format!(
                "405 on {key}: Allow is {allow:?}, openapi.yaml documents {documented:?}"
            ));
        }
    }

    fn full_path(&self, key: &str) -> String {
        let mut ignored = Vec::new();
        doc_routes(&self.doc, &mut ignored)
            .into_iter()
            .find(|(_, d)| d.key == key)
            .map_or_else(|| key.to_owned(), |((_, full), _)| full)
    }

    /// Every example in the document matches its schema: media types and parameters
    /// (`example`, `examples.*.value`) and schemas (`examples`).
    fn check_examples(&mut self) {
        let mut found = Vec::new();
        collect_examples(&self.doc, "", &mut found);
        if let Some(schemas) = self.doc["components"]["schemas"].as_object() {
            for (name, schema) in schemas {
                for example in schema["examples"].as_array().into_iter().flatten() {
                    let reference = json!({"$ref": format!("#/components/schemas/{name}")});
                    found.push((
                        format!("components.schemas.{name}"),
                        reference,
                        example.clone(),
                    ));
                }
            }
        }
        for (at, schema, example) in found {
            let schema = self.resolve(&schema);
            if let Err(e) = self.validate(&schema, &example) {
                self.problems.push(format!(
                    "the example at {at} does not match its schema: {e}"
                ));
            }
        }
    }

    fn finish(self) -> Vec<String> {
        self.problems
    }
}

/// (where, schema, example) of every object with a `schema` and examples.
fn collect_examples(value: &Value, at: &str, found: &mut Vec<(String, Value, Value)>) {
    match value {
        Value::Object(map) => {
            if let Some(schema) = map.get("schema") {
                if let Some(example) = map.get("example") {
                    found.push((at.to_owned(), schema.clone(), example.clone()));
                }
                for (name, example) in map
                    .get("examples")
                    .and_then(Value::as_object)
                    .into_iter()
                    .flatten()
                {
                    let example = example["value"].clone();
                    found.push((format!("{at}.examples.{name}"), schema.clone(), example));
                }
            }
            for (key, child) in map {
                collect_examples(child, &format!("{at}/{key}"), found);
            }
        }
        Value::Array(list) => {
            for (i, child) in list.iter().enumerate() {
                collect_examples(child, &format!("{at}/{i}"), found);
            }
        }
        _ => {}
    }
}

// ---- the checks ------------------------------------------------------------------------------

#[test]
fn every_route_of_the_route_table_is_documented_and_no_other() {
    let problems = route_problems(&openapi());
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_guides_error_table_matches_errors_toml() {
    let problems = error_table_problems(SPI_MD, &openapi());
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_documents_examples_match_their_schemas() {
    let mut contract = Contract::new(openapi());
    contract.check_examples();
    let problems = contract.finish();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The guide's JSON blocks are JSON (they are examples for people; the schemas are checked above).
#[test]
fn the_guides_json_examples_are_json() {
    let mut blocks = SPI_MD.split("```json\n").skip(1).peekable();
    assert!(blocks.peek().is_some(), "SPI.md has no JSON examples");
    for block in blocks {
        let json = block.split("```").next().unwrap_or("");
        if let Err(e) = serde_json::from_str::<Value>(json) {
            panic!("SPI.md: {e} in\n{json}");
        }
    }
}

/// Neither document links outside the repository, and every file a link names exists.
#[test]
fn the_docs_link_nothing_outside_the_repository() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let docs = root.join("docs");
    for (name, text) in [("SPI.md", SPI_MD), ("openapi.yaml", OPENAPI)] {
        for (i, line) in text.lines().enumerate() {
            for link in line.split("](").skip(1) {
                let target = link.split(')').next().unwrap_or("");
                let at = format!("{name}:{}: {target}", i + 1);
                assert!(!target.contains("://") && !target.starts_with('/'), "{at}");
                let file = target.split('#').next().unwrap_or("");
                if !file.is_empty() {
                    let path = docs.join(file).canonicalize().expect(&at);
                    assert!(path.starts_with(root), "{at}");
                }
            }
        }
    }
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// A request on demo/SE as the POS sends it.
async fn call(
    h: &Harness,
    method: Method,
    path: &str,
    body: Option<&Value>,
    headers: &[(&str, &str)],
) -> Answer {
    let body = body.map(Value::to_string);
    h.call(
        method,
        &format!("/demo/SE{path}"),
        Some("se-key"),
        body.as_deref(),
        headers,
    )
    .await
}

/// A request without authentication, its body kept as text (health, readiness, metrics).
async fn admin_text(h: &Harness, method: Method, path: &str) -> Answer {
    let response = h
        .client
        .request(method, format!("{}{path}", h.proxy))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let headers: HeaderMap = response.headers().clone();
    let body = Value::String(response.text().await.unwrap());
    Answer {
        status,
        headers,
        body,
    }
}

/// A refusal to provoke: method, the path key in the document, the path sent, the body, the
/// status and the reason.
type Refusal = (
    Method,
    &'static str,
    String,
    Option<Value>,
    u16,
    &'static str,
);

/// One request of every route and the common refusals, each answer checked against the
/// document; then every route must have been answered with a 2xx.
async fn run_every_route(contract: &mut Contract) {
    let h = Harness::start().await;
    let card = format!("/customers/{ANNA}");
    let get = Method::GET;

    // Search: a customer, and none.
    let a = call(
        &h,
        get.clone(),
        "/customers?key_type=member_number&key=10012",
        None,
        &[],
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body.as_array().map(Vec::len), Some(1), "{}", a.body);
    contract.check(&get, "/customers", &a);
    let nobody = format!(
        "/customers?key_type=email&key={}",
        urlencode("nobody@example.com")
    );
    let a = call(&h, get.clone(), &nobody, None, &[]).await;
    assert_eq!(a.body, json!([]));
    contract.check(&get, "/customers", &a);

    // Add, with the optional headers.
    let new = json!({
        "email": "jane.roe@example.com", "name_first": "Jane", "name_last": "Roe",
        "mobile": "0709998877", "gender": "female", "birth_date": "1990-02-01",
        "invoice_address": {"address": "Street 1", "city": "Town", "zip": "11122", "country_id": "se"},
        "accepts_communication": ["email"], "consents": ["consent_personal_offers"]
    });
    contract.check_request(&Method::POST, "/customers", &new);
    let ids = [
        ("Store-ID", "store%20200"),
        ("Register-ID", "3"),
        ("Staff-ID", "anna%20k"),
        ("Request-ID", "pos-1.add_a"),
    ];
    let a = call(&h, Method::POST, "/customers", Some(&new), &ids).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.headers["request-id"], "pos-1.add_a");
    contract.check(&Method::POST, "/customers", &a);

    // The card, edits.
    let a = call(&h, get.clone(), &card, None, &[]).await;
    assert_eq!(a.status, 200, "{}", a.body);
    contract.check(&get, "/customers/{customer_id}", &a);
    let edit = json!({"name_last": "Berg", "accepts_communication": ["email", "sms"],
                      "invoice_address": {"city": ""}, "email": ""});
    contract.check_request(&Method::PUT, "/customers/{customer_id}", &edit);
    let a = call(&h, Method::PUT, &card, Some(&edit), &[]).await;
    assert_eq!(a.status, 200, "{}", a.body);
    contract.check(&Method::PUT, "/customers/{customer_id}", &a);
    let edit = json!({"name_last": "Andersson", "consents": ["memberTerms"]});
    contract.check_request(&Method::PATCH, "/customers/{customer_id}", &edit);
    let a = call(&h, Method::PATCH, &card, Some(&edit), &[]).await;
    assert_eq!(a.status, 200, "{}", a.body);
    contract.check(&Method::PATCH, "/customers/{customer_id}", &a);

    // The customer of an order, and an events batch with nothing to export.
    let order_customer = json!({"email": "bo.berg@example.com", "name_first": "Bo"});
    contract.check_request(&Method::POST, "/orders/customer", &order_customer);
    let a = call(
        &h,
        Method::POST,
        "/orders/customer",
        Some(&order_customer),
        &[],
    )
    .await;
    assert_eq!(a.body["matched_by"], "email", "{}", a.body);
    contract.check(&Method::POST, "/orders/customer", &a);
    let events = json!([{"event_id": "e1", "event_type": "z-report", "event_date": 1,
                         "account_id": 1500, "data": {}},
                        {"event_id": "e2", "event_type": "order", "event_date": 1,
                         "account_id": 1500, "data": {"eshop_id": 1, "order_id": 7,
                         "order_event_type": "add", "order_state_changed": "open"}}]);
    contract.check_request(&Method::POST, "/events", &events);
    let a = call(&h, Method::POST, "/events", Some(&events), &[]).await;
    assert_eq!(a.status, 200, "{}", a.body);
    contract.check(&Method::POST, "/events", &a);

    // Purchase history.
    let a = call(
        &h,
        get.clone(),
        &format!("{card}/transactions?limit=5"),
        None,
        &[],
    )
    .await;
    assert_eq!(a.body.as_array().map(Vec::len), Some(5), "{}", a.body);
    contract.check(&get, "/customers/{customer_id}/transactions", &a);

    // Redeem, and its repeat under the same Request-ID.
    let redeem = json!({"bonus_checks": [CHECK_100, CHECK_SECOND], "promotions": [PROMO_10]});
    let path = "/customers/{customer_id}/redeem";
    contract.check_request(&Method::POST, path, &redeem);
    let id = [("Request-ID", "till-7-redeem-1")];
    let first = call(
        &h,
        Method::POST,
        &format!("{card}/redeem"),
        Some(&redeem),
        &id,
    )
    .await;
    assert_eq!(first.status, 200, "{}", first.body);
    contract.check(&Method::POST, path, &first);
    let again = call(
        &h,
        Method::POST,
        &format!("{card}/redeem"),
        Some(&redeem),
        &id,
    )
    .await;
    assert_eq!(again.body, first.body);
    contract.check(&Method::POST, path, &again);
    let typed = json!({"items": [{"type": "promotion", "id": PROMO_50}]});
    contract.check_request(&Method::POST, path, &typed);
    let a = call(
        &h,
        Method::POST,
        &format!("{card}/redeem"),
        Some(&typed),
        &[],
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    contract.check(&Method::POST, path, &a);

    // Undo: DELETE with a body, both POST aliases, one with query parameters.
    let undo = json!({"bonus_checks": [CHECK_100]});
    contract.check_request(&Method::DELETE, path, &undo);
    let a = call(
        &h,
        Method::DELETE,
        &format!("{card}/redeem"),
        Some(&undo),
        &[],
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    contract.check(&Method::DELETE, path, &a);
    let undo = json!({"bonus_checks": [CHECK_SECOND]});
    let alias = "/customers/{customer_id}/undo-redeem";
    contract.check_request(&Method::POST, alias, &undo);
    let a = call(
        &h,
        Method::POST,
        &format!("{card}/undo-redeem"),
        Some(&undo),
        &[],
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    contract.check(&Method::POST, alias, &a);
    let query = format!("{card}/redeem/undo?bonus_checks={CHECK_REDEEMED}");
    let a = call(&h, Method::POST, &query, None, &[]).await;
    assert_eq!(a.status, 200, "{}", a.body);
    contract.check(&Method::POST, "/customers/{customer_id}/redeem/undo", &a);

    // Consents and lookup (both paths, and nobody).
    let a = call(&h, get.clone(), "/consents", None, &[]).await;
    contract.check(&get, "/consents", &a);
    let a = call(
        &h,
        get.clone(),
        "/lookup?key_type=personal_id&key=700101-1233",
        None,
        &[],
    )
    .await;
    assert_eq!(a.body[0]["name_first"], "Sven", "{}", a.body);
    contract.check(&get, "/lookup", &a);
    let alias = "/customers/lookup?key_type=mobile&key=0705556677";
    let a = call(&h, get.clone(), alias, None, &[]).await;
    assert_eq!(a.status, 200, "{}", a.body);
    contract.check(&get, "/customers/lookup", &a);
    let a = call(
        &h,
        get.clone(),
        "/lookup?key_type=personal_id&key=198505055551",
        None,
        &[],
    )
    .await;
    assert_eq!(a.body, json!([]));
    contract.check(&get, "/lookup", &a);
    // The same asked with a JSON body, on both paths.
    for (path, body) in [
        (
            "/lookup",
            json!({"key_type": "personal_id", "key": "700101-1233"}),
        ),
        (
            "/customers/lookup",
            json!({"key_type": "mobile", "key": "0705556677"}),
        ),
    ] {
        contract.check_request(&Method::POST, path, &body);
        let a = call(&h, Method::POST, path, Some(&body), &[]).await;
        assert_eq!(a.status, 200, "{}", a.body);
        contract.check(&Method::POST, path, &a);
    }

    // Health, readiness, metrics.
    for path in ADMIN {
        for method in [Method::GET, Method::HEAD] {
            let a = admin_text(&h, method.clone(), path).await;
            assert_eq!(a.status, 200, "{method} {path}");
            contract.check(&method, path, &a);
        }
    }

    // Refusals.
    let refusals: [Refusal; 10] = [
        (
            get.clone(),
            "/customers",
            "/customers?key_type=shoe&key=42".into(),
            None,
            400,
            "invalid_input",
        ),
        (
            get.clone(),
            "/customers/{customer_id}",
            "/customers/not-a-guid".into(),
            None,
            404,
            "not_found",
        ),
        (
            Method::POST,
            "/customers",
            "/customers".into(),
            Some(json!({"email": "anna.andersson@example.com", "name_first": "Anna"})),
            400,
            "customer_exists",
        ),
        (
            get.clone(),
            "/customers",
            "/customers?key_type=mobile&key=0703334455".into(),
            None,
            400,
            "ambiguous_customer",
        ),
        (
            get.clone(),
            "/customers/{customer_id}",
            format!("/customers/{UNKNOWN_ID}"),
            None,
            404,
            "not_found",
        ),
        (
            Method::POST,
            "/customers/{customer_id}/redeem",
            format!("{card}/redeem"),
            Some(json!({"bonus_checks": [CHECK_EXPIRED]})),
            400,
            "expired",
        ),
        (
            Method::POST,
            "/customers/{customer_id}/redeem",
            format!("{card}/redeem"),
            Some(json!({"promotions": [UNKNOWN_ID]})),
            404,
            "not_found",
        ),
        (
            Method::DELETE,
            "/customers/{customer_id}/redeem",
            format!("{card}/redeem"),
            Some(json!({"promotions": [PROMO_REDEEMED]})),
            400,
            "cannot_undo_promotion",
        ),
        (
            Method::POST,
            "/customers/{customer_id}/redeem",
            format!("{card}/redeem"),
            Some(json!({"bonus_checks": [CHECK_100]})),
            400,
            "invalid_input",
        ),
        (
            Method::PUT,
            "/customers/{customer_id}",
            card.clone(),
            Some(json!({"gender": "unknown"})),
            400,
            "invalid_input",
        ),
    ];
    for (method, key, path, body, status, reason) in refusals {
        // The redeem refused for invalid input repeats the earlier Request-ID with another body.
        let headers: &[(&str, &str)] = if reason == "invalid_input" && key.ends_with("redeem") {
            &id
        } else {
            &[]
        };
        let a = call(&h, method.clone(), &path, body.as_ref(), headers).await;
        a.assert_error(status, reason);
        contract.check(&method, key, &a);
    }
    let a = h
        .call(
            Method::POST,
            "/demo/SE/customers",
            Some("se-key"),
            Some("{\"email\":"),
            &[],
        )
        .await;
    a.assert_error(400, "invalid_input");
    contract.check(&Method::POST, "/customers", &a);
    let big = format!("{{\"bonus_checks\":[\"{}\"]}}", "a".repeat(70 * 1024));
    let a = h
        .call(
            Method::POST,
            &format!("/demo/SE{card}/redeem"),
            Some("se-key"),
            Some(&big),
            &[],
        )
        .await;
    a.assert_error(400, "body_too_large");
    assert_eq!(a.headers["connection"], "close");
    contract.check(&Method::POST, "/customers/{customer_id}/redeem", &a);

    // Authentication: a wrong key, none, an unknown market; lookup where it is off.
    for (path, key) in [
        (format!("/demo/SE{card}"), Some("wrong")),
        (format!("/demo/SE{card}"), None),
        ("/demo/XX/consents".to_owned(), Some("se-key")),
    ] {
        let a = h.call(get.clone(), &path, key, None, &[]).await;
        a.assert_error(401, "unauthorized");
        let key = if path.ends_with("consents") {
            "/consents"
        } else {
            "/customers/{customer_id}"
        };
        contract.check(&get, key, &a);
    }
    let a = h
        .get_as("/demo/NO/lookup?key_type=mobile&key=41234567", "no-key")
        .await;
    a.assert_error(403, "forbidden");
    contract.check(&get, "/lookup", &a);

    // No such path; a path with another method (no credentials needed for either).
    let a = h.call(get.clone(), "/demo/SE/nope", None, None, &[]).await;
    a.assert_error(404, "not_found");
    contract.check_component("NotFound", &a);
    for (method, path, key) in [
        (Method::DELETE, "/demo/SE/consents".to_owned(), "/consents"),
        (Method::PUT, "/demo/SE/customers".to_owned(), "/customers"),
        (
            Method::GET,
            format!("/demo/SE{card}/redeem"),
            "/customers/{customer_id}/redeem",
        ),
        (
            Method::DELETE,
            format!("/demo/SE{card}"),
            "/customers/{customer_id}",
        ),
    ] {
        let a = h.call(method, &path, None, None, &[]).await;
        a.assert_error(405, "method_not_allowed");
        contract.check_component("MethodNotAllowed", &a);
        contract.check_allow(key, &a);
    }
}

/// Voyado failing: the answers the proxy gives for it (each on a fresh proxy, since a 429 pauses
/// the key and failures count towards the cool-off).
async fn run_voyado_failures(contract: &mut Contract) {
    let cases = [
        (FaultAction::Status(429, None), 1, 429, "too_many_requests"),
        (
            FaultAction::Status(503, None),
            2,
            503,
            "upstream_unavailable",
        ),
        (FaultAction::Status(500, None), 1, 502, "bad_gateway"),
        (
            FaultAction::Delay(Duration::from_millis(900)),
            1,
            504,
            "upstream_timeout",
        ),
    ];
    for (action, times, status, reason) in cases {
        let h = Harness::start().await;
        h.sim.inject(Fault {
            method: Method::GET,
            path_contains: "/promotions",
            action,
            times,
        });
        let a = h.get(&format!("/customers/{ANNA}")).await;
        a.assert_error(status, reason);
        contract.check(&Method::GET, "/customers/{customer_id}", &a);
    }
}

#[tokio::test]
async fn every_answer_matches_the_openapi_document() {
    let mut contract = Contract::new(openapi());
    run_every_route(&mut contract).await;
    run_voyado_failures(&mut contract).await;
    let documented: BTreeSet<(String, String)> = table_routes()
        .into_keys()
        .chain(
            ADMIN
                .iter()
                .flat_map(|p| ["GET", "HEAD"].map(|m| (m.to_owned(), (*p).to_owned()))),
        )
        .collect();
    let missed: Vec<String> = documented
        .difference(&contract.covered)
        .map(|(method, path)| format!("{method} {path} was never answered with a 2xx"))
        .collect();
    let mut problems = contract.finish();
    problems.extend(missed);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// ---- each check catches a wrong document ----------------------------------------------------

#[test]
fn the_route_check_catches_a_missing_a_mislabelled_and_an_extra_route() {
    let mut doc = openapi();
    doc["paths"]
        .as_object_mut()
        .unwrap()
        .remove("/customers/{customer_id}/undo-redeem");
    doc["paths"]["/lookup"]["get"]["x-spi-operation"] = json!("search");
    doc["paths"]["/customers/{customer_id}"]["delete"] = json!({"responses": {}});
    doc["paths"]["/healthz"]
        .as_object_mut()
        .unwrap()
        .remove("servers");
    let problems = route_problems(&doc).join("\n");
    for expected in [
        "lacks POST /{tenant}/{market}/customers/{customer_id}/undo-redeem",
        "GET /{tenant}/{market}/lookup: x-spi-operation",
        "documents DELETE /{tenant}/{market}/customers/{customer_id}",
        "documents GET /{tenant}/{market}/healthz",
        "lacks GET /healthz",
    ] {
        assert!(problems.contains(expected), "{expected}\n{problems}");
    }
}

#[test]
fn the_error_table_check_catches_a_wrong_missing_or_stale_row() {
    let wrong = SPI_MD
        .replace("| `expired` | 400 |", "| `expired` | 410 |")
        .replace(
            "| `forbidden` | 403 | `forbidden` |",
            "| `forbidden` | 403 | `denied` |",
        );
    let missing: String = SPI_MD
        .lines()
        .filter(|l| !l.starts_with("| `internal` |"))
        .map(|l| format!("{l}\n"))
        .collect();
    let stale = SPI_MD.replace(
        ERROR_TABLE_HEADER,
        &format!("{ERROR_TABLE_HEADER}\n|---|---|---|---|\n| `gone` | 410 | `gone` | never |"),
    );
    let mut doc = openapi();
    let reasons = &mut doc["components"]["schemas"]["Error"]["properties"]["error_data"]["properties"]
        ["reason"]["enum"];
    reasons
        .as_array_mut()
        .unwrap()
        .retain(|r| r != "overloaded");
    let good = openapi();
    for (md, doc, expected) in [
        (wrong.as_str(), &good, "SPI.md says expired is (410"),
        (
            wrong.as_str(),
            &good,
            "SPI.md says forbidden is (403, \"denied\")",
        ),
        (missing.as_str(), &good, "lacks internal"),
        (stale.as_str(), &good, "has gone"),
        (SPI_MD, &doc, "Error reasons"),
    ] {
        let problems = error_table_problems(md, doc).join("\n");
        assert!(problems.contains(expected), "{expected}\n{problems}");
    }
}

#[test]
fn the_example_check_catches_a_wrong_example() {
    let mut doc = openapi();
    doc["components"]["schemas"]["Customer"]["examples"][0]["gender"] = json!("unknown");
    let path = &mut doc["paths"]["/customers/{customer_id}/transactions"]["get"]["responses"];
    path["200"]["content"]["application/json"]["example"][0]["date"] = json!("yesterday");
    let mut contract = Contract::new(doc);
    contract.check_examples();
    let problems = contract.finish().join("\n");
    for expected in [
        "components.schemas.Customer",
        "/transactions/get/responses/200",
    ] {
        assert!(problems.contains(expected), "{expected}\n{problems}");
    }
}

#[tokio::test]
async fn the_schema_check_catches_a_wrong_schema_header_or_content_type() {
    let h = Harness::start().await;
    let card = h.get(&format!("/customers/{ANNA}")).await;
    let list = h
        .get(&format!("/customers/{ANNA}/transactions?limit=2"))
        .await;
    let refused = h.get(&format!("/customers/{UNKNOWN_ID}")).await;
    let unauthorized = h
        .call(Method::GET, "/demo/SE/consents", Some("wrong"), None, &[])
        .await;
    let card_key = "/customers/{customer_id}";
    type Break = fn(&mut Value);
    let cases: [(Break, &Answer, &str, &str); 7] = [
        // A field the proxy does not send made required.
        (
            |d| {
                let required = &mut d["components"]["schemas"]["Customer"]["required"];
                required.as_array_mut().unwrap().push(json!("loyalty_tier"));
            },
            &card,
            card_key,
            "loyalty_tier",
        ),
        // A field the proxy sends left out of a closed schema.
        (
            |d| {
                let properties = &mut d["components"]["schemas"]["Customer"]["properties"];
                properties.as_object_mut().unwrap().remove("store_id_home");
            },
            &card,
            card_key,
            "store_id_home",
        ),
        // A wrong type.
        (
            |d| {
                d["components"]["schemas"]["Transaction"]["properties"]["date"] =
                    json!({"type": "string"})
            },
            &list,
            "/customers/{customer_id}/transactions",
            "date",
        ),
        // The envelope's optional field made required.
        (
            |d| {
                let required = &mut d["components"]["schemas"]["Error"]["properties"]["error_data"]
                    ["required"];
                required
                    .as_array_mut()
                    .unwrap()
                    .push(json!("upstream_code"));
            },
            &unauthorized,
            "/consents",
            "upstream_code",
        ),
        // A header the answer lacks made required.
        (
            |d| {
                d["components"]["responses"]["NotFound"]["headers"]["Retry-After"] =
                    json!({"$ref": "#/components/headers/RetryAfter"});
            },
            &refused,
            card_key,
            "Retry-After is missing",
        ),
        // A wrong content type.
        (
            |d| {
                let response = &mut d["components"]["responses"]["CustomerCard"]["content"];
                let media = response
                    .as_object_mut()
                    .unwrap()
                    .remove("application/json")
                    .unwrap();
                response["text/plain"] = media;
            },
            &card,
            card_key,
            "answered \"application/json\"",
        ),
        // The WWW-Authenticate header's value.
        (
            |d| d["components"]["headers"]["WWWAuthenticate"]["schema"]["const"] = json!("Bearer"),
            &unauthorized,
            "/consents",
            "WWW-Authenticate",
        ),
    ];
    // The unchanged document passes all of them.
    let mut contract = Contract::new(openapi());
    for (_, answer, key, _) in &cases {
        contract.check(&Method::GET, key, answer);
    }
    let problems = contract.finish();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    for (i, (wreck, answer, key, expected)) in cases.into_iter().enumerate() {
        let mut doc = openapi();
        wreck(&mut doc);
        let mut contract = Contract::new(doc);
        contract.check(&Method::GET, key, answer);
        let problems = contract.finish().join("\n");
        assert!(!problems.is_empty(), "case {i}: a wrong document passed");
        assert!(
            problems.contains(expected),
            "case {i}: {expected}\n{problems}"
        );
    }
}
