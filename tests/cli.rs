//! The binary as an operator runs it: `check` on good and bad configs, and the README's curl
//! examples pasted against a fresh demo.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

#[path = "support/child.rs"]
mod child;
use child::Killed;

const BIN: &str = env!("CARGO_BIN_EXE_sitoo-voyado-proxy");

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("svp-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn mappings() -> String {
    format!("{}/mappings", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn check_accepts_a_good_config_and_lists_every_error_of_a_bad_one() {
    let dir = scratch("check");
    let good = dir.join("good.toml");
    std::fs::write(
        &good,
        format!(
            "mappings = \"{}\"\n[[market]]\ntenant = \"DevShop\"\nmarket = \"NOR\"\n\
             crm_api_keys = [\"${{SVP_CLI_KEY}}\"]\nvoyado_url = \"https://devshop.voyado.com\"\n\
             voyado_api_key = \"k\"\ndefault_country = \"NO\"\n",
            mappings()
        ),
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&good)
        .env("SVP_CLI_KEY", "secret-from-env")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok (1 markets)"));

    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        format!(
            "mappings = \"{}\"\n[[market]]\ntenant = \"DevShop\"\nmarket = \"NOR\"\n\
             crm_api_keys = [\"k\"]\nvoyado_url = \"not a url\"\nvoyado_api_key = \"k\"\n\
             default_country = \"NO\"\ntimezone = \"Mars/Olympus\"\nclearable_fields = [\"email\", \"shoe_size\"]\n",
            mappings()
        ),
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let errors = String::from_utf8_lossy(&out.stderr);
    // Each at the value's line and column: the config's own checks, and those against the
    // market's mapping (a field it lacks, the mapping's contact key made clearable).
    for line in [
        "bad.toml:6:14: market[0].voyado_url: is not a URL",
        "bad.toml:9:12: market[0].timezone: is not an IANA time zone",
        "bad.toml:10:21: market[0].clearable_fields: the contact key 'email' can never be cleared",
        "bad.toml:10:30: market[0].clearable_fields: 'shoe_size' is not a customer field of the \
         mapping",
    ] {
        assert!(errors.contains(line), "{line} missing in:\n{errors}");
    }
    assert!(errors.lines().all(|l| l.contains("bad.toml")), "{errors}");
    let out = Command::new(BIN).arg("bogus").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn every_readme_curl_example_works_against_the_demo() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let address = format!("127.0.0.1:{port}");
    let mut demo = Killed(
        Command::new(BIN)
            .args(["demo", "--listen", &address])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // The demo is another process, so paused tokio time cannot stand in for this wait: poll in
    // real time until it accepts connections. A 10 ms step keeps the wait close to the demo's
    // start-up time without busy-spinning; 1000 steps (about 10 s) bound it on a loaded machine.
    // A demo that exits (say, the port was taken meanwhile) fails at once rather than at the end.
    let mut listening = false;
    for _ in 0..1000 {
        if let Some(status) = demo.0.try_wait().unwrap() {
            panic!("the demo exited before listening: {status}");
        }
        if std::net::TcpStream::connect(&address).is_ok() {
            listening = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(listening, "the demo did not come up");
    let health = format!("http://{address}/healthz");
    let out = Command::new("curl")
        .args(["-fsS", &health])
        .output()
        .unwrap();
    assert!(out.status.success(), "the demo is not healthy: {out:?}");

    let readme = include_str!("../README.md");
    let mut in_shell_block = false;
    let mut ran = 0;
    for line in readme.lines() {
        if line.starts_with("```") {
            in_shell_block = line == "```sh";
            continue;
        }
        if !in_shell_block || !line.starts_with("curl ") {
            continue;
        }
        // --fail whether or not the README spells it: an error answer is not a working example.
        let command = line
            .replacen("curl ", "curl --fail ", 1)
            .replace("127.0.0.1:8080", &address);
        let out = Command::new("sh").args(["-c", &command]).output().unwrap();
        assert!(
            out.status.success(),
            "{line}\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.stdout.is_empty(), "{line}");
        ran += 1;
    }
    assert!(ran >= 15, "only {ran} examples found");
}

/// A loopback port nobody listens on right now (the demo binds it a moment later).
fn free_address() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("127.0.0.1:{port}")
}

/// Runs the demo with `log_args` before its command and `env` added (`LOG_FORMAT` and `NO_COLOR`
/// removed first, `RUST_LOG=info`), asks one search with `Request-ID: request_id`, sends SIGTERM
/// and returns what the process wrote to stderr, once it has exited 0.
fn demo_stderr(name: &str, log_args: &[&str], env: &[(&str, &str)], request_id: &str) -> String {
    let dir = scratch(name);
    let log = dir.join("stderr.log");
    let address = free_address();
    let mut command = Command::new(BIN);
    command
        .args(log_args)
        .args(["demo", "--listen", &address])
        .env_remove("LOG_FORMAT")
        .env_remove("NO_COLOR")
        .env("RUST_LOG", "info")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    let mut demo = Killed(command.spawn().unwrap());
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
    // Another process: poll in real time until it accepts, at most 1000 x 10 ms.
    let mut listening = false;
    for _ in 0..1000 {
        if let Some(status) = demo.0.try_wait().unwrap() {
            panic!("the demo exited before listening: {status}\n{}", read_log());
        }
        if std::net::TcpStream::connect(&address).is_ok() {
            listening = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(listening, "the demo did not come up\n{}", read_log());

    let mut stream = std::net::TcpStream::connect(&address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // `pos:demo-key`, the demo's Basic-auth header value.
    let request = format!(
        "GET /demo/SE/customers?key_type=member_number&key=10012 HTTP/1.1\r\nHost: proxy\r\n\
         Authorization: Basic cG9zOmRlbW8ta2V5\r\nRequest-ID: {request_id}\r\n\
         Connection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    let pid = demo.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    // Polled in real time, at most 1000 x 10 ms.
    let mut exited = None;
    for _ in 0..1000 {
        exited = demo.0.try_wait().unwrap();
        if exited.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let status = exited.unwrap_or_else(|| panic!("still running 10 s after SIGTERM"));
    // The last lines are flushed at exit, so the log is complete now.
    let text = read_log();
    assert!(status.success(), "exit {status}\n{text}");
    text
}

/// A field of a JSON log line: the event's own (at the top level) or its span's.
fn log_field<'a>(line: &'a Value, name: &str) -> Option<&'a Value> {
    line.get(name).or_else(|| line.get("span")?.get(name))
}

/// Every line is one JSON object, the request's line carries its id, status and route, and no
/// colour code appears anywhere.
fn assert_json_log(stderr: &str, request_id: &str) {
    assert!(
        !stderr.contains("\x1b["),
        "colour codes in JSON logs:\n{stderr}"
    );
    let lines: Vec<Value> = stderr
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l)
                .ok()
                .filter(Value::is_object)
                .unwrap_or_else(|| panic!("not a JSON object: {l:?}\n{stderr}"))
        })
        .collect();
    assert!(lines.len() >= 3, "start, request and stop lines:\n{stderr}");
    let done: Vec<&Value> = lines
        .iter()
        .filter(|l| log_field(l, "request_id").and_then(Value::as_str) == Some(request_id))
        .filter(|l| log_field(l, "message").and_then(Value::as_str) == Some("request done"))
        .collect();
    assert_eq!(done.len(), 1, "one line for the request:\n{stderr}");
    assert_eq!(
        log_field(done[0], "status").and_then(Value::as_u64),
        Some(200),
        "{}",
        done[0]
    );
    assert_eq!(
        log_field(done[0], "route").and_then(Value::as_str),
        Some("/customers"),
        "{}",
        done[0]
    );
}

#[test]
fn log_format_json_by_flag_writes_one_json_object_per_line() {
    let stderr = demo_stderr("json-flag", &["--log-format", "json"], &[], "json-flag-1");
    assert_json_log(&stderr, "json-flag-1");
}

#[test]
fn log_format_json_by_environment_writes_one_json_object_per_line() {
    let stderr = demo_stderr("json-env", &[], &[("LOG_FORMAT", "json")], "json-env-1");
    assert_json_log(&stderr, "json-env-1");
}

/// Text is the default; stderr is a file here, not a terminal, so no colour codes — and the
/// request's line names its id.
#[test]
fn text_logs_off_a_terminal_have_no_colour_and_name_the_request_id() {
    let stderr = demo_stderr("text", &[], &[], "test-id-42");
    assert!(
        !stderr.contains("\x1b["),
        "colour codes in a file:\n{stderr}"
    );
    assert!(
        stderr.lines().all(|l| !l.starts_with('{')),
        "JSON by default:\n{stderr}"
    );
    let done: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("request done") && l.contains("test-id-42"))
        .collect();
    assert_eq!(done.len(), 1, "one line for the request:\n{stderr}");
    assert!(done[0].contains("status=200"), "{}", done[0]);
    assert!(done[0].contains("route=\"/customers\""), "{}", done[0]);
}

/// `serve` with its mappings in a directory: an edited file is served after SIGHUP (polling is
/// off here), and the log names the new generation and the files' digest.
#[test]
fn sighup_reloads_the_mappings() {
    let dir = scratch("sighup");
    let copy = dir.join("mappings");
    std::fs::create_dir_all(&copy).unwrap();
    for file in ["default.toml", "errors.toml", "routes.toml"] {
        std::fs::copy(format!("{}/{file}", mappings()), copy.join(file)).unwrap();
    }
    let address = free_address();
    let config = market_config(
        &dir,
        "mappings",
        &format!("listen = \"{address}\"\nmappings_poll_ms = 0"),
    );
    let log = dir.join("stderr.log");
    let mut serve = Killed(
        Command::new(BIN)
            .args(["serve", "--config"])
            .arg(&config)
            .env_remove("LOG_FORMAT")
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
    // Another process: polled in real time, at most 1000 x 10 ms each.
    let wait_for = |what: &str, serve: &mut Killed| {
        for _ in 0..1000 {
            if let Some(status) = serve.0.try_wait().unwrap() {
                panic!("serve exited: {status}\n{}", read_log());
            }
            if read_log().contains(what) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("no '{what}' in 10 s\n{}", read_log());
    };
    wait_for("sitoo-voyado-proxy ready", &mut serve);
    let default = copy.join("default.toml");
    let text = std::fs::read_to_string(&default).unwrap();
    std::fs::write(&default, text.replace("Bonus Points", "Points")).unwrap();
    let pid = serve.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    wait_for("mappings reloaded", &mut serve);
    let line = read_log()
        .lines()
        .find(|l| l.contains("mappings reloaded"))
        .unwrap()
        .to_owned();
    assert!(line.contains("generation=1"), "{line}");
    assert!(line.contains("mappings="), "{line}");
}

/// A config for one market on the repository's mappings, in a scratch directory.
fn one_market_config(name: &str) -> PathBuf {
    market_config(&scratch(name), &mappings(), "")
}

/// `dir/config.toml`: one market `t/SE` (its Voyado is never called here) on the mappings at
/// `mappings`, with `top` — more top-level keys, then tables — before it.
fn market_config(dir: &std::path::Path, mappings: &str, top: &str) -> PathBuf {
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "mappings = \"{mappings}\"\n{top}\n[[market]]\ntenant = \"t\"\nmarket = \"SE\"\n\
             crm_api_keys = [\"k\"]\nvoyado_url = \"http://127.0.0.1:9\"\n\
             voyado_api_key = \"k\"\ndefault_country = \"SE\"\n"
        ),
    )
    .unwrap();
    config
}

fn run_map(config: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(["map", "--config"])
        .arg(config)
        .args(["--market", "t/SE"])
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn map_prints_the_customer_a_till_would_see_for_a_fixture() {
    let config = one_market_config("map-card");
    let fixtures = format!("{}/fixtures/mapping", env!("CARGO_MANIFEST_DIR"));
    let out = run_map(
        &config,
        &["--voyado", &format!("{fixtures}/card-source.json")],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{fixtures}/card-expected.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(printed, expected);
    assert!(String::from_utf8_lossy(&out.stderr).contains("1 item(s) left out"));
}

#[test]
fn map_prints_the_voyado_write_of_an_edit_and_refuses_a_bad_body() {
    let dir = scratch("map-write");
    let config = one_market_config("map-write");
    let current = dir.join("contact.json");
    std::fs::write(
        &current,
        r#"{"id": "8f0c1d2e-0000-4000-8000-000000000001",
            "attributes": {"firstName": "Anna", "lastName": "Andersson", "email": "anna@example.com"},
            "preferences": {"acceptsEmail": false, "acceptsSms": false, "acceptsPostal": false},
            "consents": []}"#,
    )
    .unwrap();
    let body = dir.join("body.json");
    std::fs::write(
        &body,
        r#"{"name_first": "Anna", "name_last": "Berg", "mobile": "0701112233", "email": ""}"#,
    )
    .unwrap();
    let out = run_map(
        &config,
        &[
            "--spi",
            body.to_str().unwrap(),
            "--current",
            current.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let write: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        write,
        serde_json::json!({"lastName": "Berg", "mobilePhone": "+46701112233"}),
        "only what changed, as Voyado takes it"
    );

    let create = run_map(&config, &["--spi", body.to_str().unwrap()]);
    assert!(create.status.success());
    let create: Value = serde_json::from_slice(&create.stdout).unwrap();
    assert_eq!(create["contactType"], "Member");
    assert_eq!(create["firstName"], "Anna");

    std::fs::write(&body, r#"{"mobile": "not a phone"}"#).unwrap();
    let bad = run_map(&config, &["--spi", body.to_str().unwrap()]);
    assert_eq!(bad.status.code(), Some(1));
    let message = String::from_utf8_lossy(&bad.stderr);
    assert!(message.contains("400 invalid_input: mobile"), "{message}");
    assert!(!message.contains("not a phone"), "{message}");
}

/// `check` on a config whose markets name broken mapping profiles: each problem is printed at its
/// mapping file, line and column — a profile's own mistakes in it, a TOML syntax error too — and
/// the exit code is 1.
#[test]
fn check_names_the_file_line_and_column_of_a_bad_mapping_rule() {
    let dir = scratch("check-mapping");
    let copy = dir.join("mappings");
    std::fs::create_dir_all(&copy).unwrap();
    for file in ["default.toml", "errors.toml", "routes.toml"] {
        std::fs::copy(format!("{}/{file}", mappings()), copy.join(file)).unwrap();
    }
    std::fs::write(
        copy.join("broken.toml"),
        "# This market's profile: the default, but for two rules.\nextends = \"default\"\n\n\
         [[field]]\nspi = \"gender\"\nvoyado = \"attributes.gender\"\ncodec = \"table:gendr\"\n\n\
         [[card]]\nto = \"status.text\"\nform = \"status.statusText\"\n",
    )
    .unwrap();
    std::fs::write(copy.join("half.toml"), "version = 1\n\n[redeem\n").unwrap();
    let config = dir.join("config.toml");
    let market = |market: &str, mapping: &str| {
        format!(
            "[[market]]\ntenant = \"t\"\nmarket = \"{market}\"\ncrm_api_keys = [\"k\"]\n\
             voyado_url = \"http://127.0.0.1:9\"\nvoyado_api_key = \"k\"\ndefault_country = \
             \"SE\"\nmapping = \"{mapping}\"\n"
        )
    };
    std::fs::write(
        &config,
        format!(
            "mappings = \"mappings\"\n{}{}",
            market("SE", "broken"),
            market("NO", "half")
        ),
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let errors = String::from_utf8_lossy(&out.stderr);
    let broken = copy.join("broken.toml").display().to_string();
    let half = copy.join("half.toml").display().to_string();
    // One problem a line, each after the place of the market's `mapping` in the config.
    for line in [
        format!(
            "config.toml:9:11: market[0].mapping: {broken}:7:9: unknown table 'gendr' (did you mean 'gender'?)"
        ),
        format!(
            "config.toml:9:11: market[0].mapping: {broken}:11:1: unknown field `form`, expected one of `to`, `from`"
        ),
        format!("config.toml:17:11: market[1].mapping: {half}:3:8: unclosed table, expected `]`"),
    ] {
        assert!(errors.contains(&line), "{line} missing in:\n{errors}");
    }
    assert_eq!(errors.lines().count(), 3, "{errors}");
}

/// A build without the `otlp` feature refuses an OTLP endpoint rather than ignoring it.
#[cfg(not(feature = "otlp"))]
#[test]
fn a_build_without_otlp_refuses_an_otlp_endpoint() {
    let config = market_config(
        &scratch("otlp-off"),
        &mappings(),
        "[telemetry]\notlp_endpoint = \"http://127.0.0.1:4318\"",
    );
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let message = String::from_utf8_lossy(&out.stderr);
    assert!(
        message.contains("telemetry.otlp_endpoint: this build has no OTLP export"),
        "{message}"
    );
}

/// `check` validates `[cluster]` without connecting: a good table passes with no Redis running,
/// and each problem is placed at its key without quoting the URL (it may hold a password).
#[test]
fn check_validates_the_cluster_table_without_connecting() {
    let dir = scratch("cluster");
    let good = market_config(
        &dir,
        &mappings(),
        "[cluster]\nredis_url = \"rediss://:${SVP_CLI_REDIS_PASSWORD}@redis.invalid:6380\"",
    );
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&good)
        .env("SVP_CLI_REDIS_PASSWORD", "hunter2")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bad = market_config(
        &dir,
        &mappings(),
        "[cluster]\nredis_url = \"http://:hunter2@redis.invalid\"\ntimeout_ms = 0",
    );
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let errors = String::from_utf8_lossy(&out.stderr);
    assert!(
        errors
            .contains("config.toml:3:13: cluster.redis_url: must start with redis:// or rediss://"),
        "{errors}"
    );
    assert!(
        errors.contains("config.toml:4:14: cluster.timeout_ms: must be from 1 to 1000"),
        "{errors}"
    );
    assert!(!errors.contains("hunter2"), "{errors}");
}

/// `map --order`: the receipt a Sitoo order becomes, without Voyado — a refund with its signs,
/// the contact type named, and an order that cannot be booked refused with the row named.
#[test]
fn map_prints_the_receipt_of_a_refund_and_refuses_a_weighed_row() {
    let dir = scratch("map-order");
    let config = one_market_config("map-order");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(
        "sitoo_api_url = \"http://127.0.0.1:9\"\nsitoo_account_id = 1500\n\
         sitoo_api_user = \"u\"\nsitoo_api_password = \"p\"\n",
    );
    std::fs::write(&config, text).unwrap();
    let fixture: Value = serde_json::from_str(sitoo_voyado_proxy::sim::SITOO_FIXTURE).unwrap();
    let order = |id: u64| {
        let file = dir.join(format!("order-{id}.json"));
        let order = fixture["orders"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["orderid"] == id)
            .unwrap();
        std::fs::write(&file, order.to_string()).unwrap();
        file
    };
    let refund = order(1002);
    let out = run_map(
        &config,
        &[
            "--order",
            refund.to_str().unwrap(),
            "--contact-type",
            "Contact",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let receipt: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(receipt["uniqueReceiptId"], "sitoo-1500-1002");
    assert_eq!(receipt["contact"]["contactType"], "Contact");
    assert_eq!(receipt["totalGrossPrice"], serde_json::json!(-200));
    assert_eq!(receipt["items"][0]["type"], "RETURN");
    assert_eq!(receipt["items"][0]["quantity"], serde_json::json!(-1));
    assert_eq!(
        receipt["items"][0]["grossPaidPrice"],
        serde_json::json!(200)
    );
    // An open order is shown with what the proxy would do with it: nothing yet.
    let open = order(1008);
    let out = run_map(&config, &["--order", open.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("the order is Open in Sitoo"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let weighed = order(1010);
    let out = run_map(&config, &["--order", weighed.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("orderitems[0].quantity 0.35"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `--help` after any command prints that command's usage and exits 0, wherever it stands.
#[test]
fn every_command_answers_help_with_its_usage() {
    for (command, rest) in [
        ("demo", &[][..]),
        ("serve", &[][..]),
        ("check", &[][..]),
        ("map", &["--config", "x.toml"][..]),
        ("probe", &[][..]),
        ("bench", &["--in-process"][..]),
    ] {
        let out = Command::new(BIN)
            .arg(command)
            .args(rest)
            .arg("--help")
            .output()
            .unwrap();
        assert!(out.status.success(), "{command}: {out:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains(&format!("sitoo-voyado-proxy {command} ")),
            "{command}: {text}"
        );
        assert!(
            !text.contains("sitoo-voyado-proxy serve ") || command == "serve",
            "{command}: {text}"
        );
    }
}
