//! The edge under abuse (contract §6.6), over real sockets against the simulator: a trickled
//! body, a flood past the in-flight limit, a connection past the connection limit, 2 MiB bodies,
//! SIGTERM during a slow redeem (the real binary), hostile search and lookup keys, a Voyado reply
//! over the cap, the Prometheus exposition and the admin address.
//!
//! `/readyz` answering `503` while draining is not tested: at SIGTERM both the SPI and the admin
//! listener stop accepting and idle connections are closed, so no client can ask it then.
//!
//! Real time throughout, as in `upstream.rs`: the proxy, the simulator and the clients talk over
//! loopback sockets (and, for SIGTERM, to another process), so paused tokio time would fire the
//! proxy's timers before answers already on their way. Waits are bounded polls or timeouts; the
//! only fixed pauses pace a client that is *meant* to be slow.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};
use reqwest::Method;
use serde_json::{Value, json};
use sitoo_voyado_proxy::sim::{FIXTURE, FaultAction, Simulator};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};

const BIN: &str = env!("CARGO_BIN_EXE_sitoo-voyado-proxy");
/// `pos:se-key`, the Basic-auth header value for demo/SE.
const SE_AUTH: &str = "Basic cG9zOnNlLWtleQ==";

/// An HTTP/1.1 answer read whole off a raw socket.
struct RawAnswer {
    status: u16,
    /// The head, lower-cased (header names and values), for `contains` checks.
    head: String,
    body: Value,
}

impl RawAnswer {
    /// Parses `bytes` as exactly one answer with a `Content-Length` body, which must be complete.
    #[track_caller]
    fn parse(bytes: &[u8]) -> RawAnswer {
        let text = String::from_utf8_lossy(bytes);
        let end = text
            .find("\r\n\r\n")
            .unwrap_or_else(|| panic!("no complete head in {text:?}"));
        let head = text[..end].to_ascii_lowercase();
        let status = head
            .strip_prefix("http/1.1 ")
            .and_then(|rest| rest.get(..3))
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("not an HTTP/1.1 answer: {text:?}"));
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no content-length in {head}"));
        let body = &bytes[end + 4..];
        assert_eq!(body.len(), length, "incomplete body in {text:?}");
        RawAnswer {
            status,
            head,
            body: serde_json::from_slice(body).unwrap_or(Value::Null),
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        let prefix = format!("{name}: ");
        self.head
            .lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
    }

    /// A complete SPI envelope with this status and reason, its request id echoed in the header.
    #[track_caller]
    fn assert_error(&self, status: u16, reason: &str) {
        assert_eq!(self.status, status, "{} {}", self.head, self.body);
        assert_eq!(self.body["statuscode"], status, "{}", self.body);
        assert_eq!(self.body["error_data"]["reason"], reason, "{}", self.body);
        assert!(self.body["error_code"].is_string(), "{}", self.body);
        let id = self.body["request_id"].as_str().unwrap_or("");
        assert!(!id.is_empty(), "{}", self.body);
        // Header values were lower-cased with the head.
        assert_eq!(
            self.header("request-id"),
            Some(id.to_ascii_lowercase().as_str()),
            "{}",
            self.head
        );
    }
}

fn proxy_addr(h: &Harness) -> &str {
    h.proxy.trim_start_matches("http://")
}

/// A connection whose kernel takes at most about 64 KiB of unsent data, as over a real network:
/// on loopback the default send buffer (up to 4 MiB) would swallow a 2 MiB body whole, and the
/// writer would never notice the proxy stop reading.
async fn narrow_connection(h: &Harness) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_send_buffer_size(32 * 1024).unwrap();
    socket
        .connect(proxy_addr(h).parse().unwrap())
        .await
        .unwrap()
}

/// Reads until the peer closes, at most `within`; `None` if it was still open then. A reset
/// after the answer counts as closed (what was read before it is kept).
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
    let mut bytes = Vec::new();
    match timeout(within, stream.read_to_end(&mut bytes)).await {
        Ok(_) => Some(bytes),
        Err(_) => None,
    }
}

/// One keep-alive `GET path` on an open connection; the answer, read up to its end.
async fn get_on(stream: &mut TcpStream, path: &str) -> RawAnswer {
    RawAnswer::parse(get_on_raw(stream, path).await.as_bytes())
}

/// One `GET path` on an open connection; the raw answer (head and body) as text.
async fn get_on_raw(stream: &mut TcpStream, path: &str) -> String {
    let request = format!("GET {path} HTTP/1.1\r\nHost: proxy\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    timeout(Duration::from_secs(5), async {
        // Bounded by the timeout; ends once the declared body is in.
        loop {
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "closed before the answer");
            bytes.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&bytes).into_owned();
            if let Some(end) = text.find("\r\n\r\n") {
                let length: usize = text[..end]
                    .to_ascii_lowercase()
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: ").map(str::to_owned))
                    .and_then(|n| n.trim().parse().ok())
                    .unwrap_or(0);
                if bytes.len() >= end + 4 + length {
                    return text;
                }
            }
        }
    })
    .await
    .expect("no answer within 5 s")
}

// ---------------------------------------------------------------------------------------------
// 1. A trickled body

#[tokio::test]
async fn a_trickled_body_is_408_at_the_deadline_and_the_connection_is_closed() {
    const DEADLINE: Duration = Duration::from_millis(600);
    let h = Harness::with_deadline(DEADLINE.as_millis() as u64).await;
    let stream = TcpStream::connect(proxy_addr(&h)).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let head = format!(
        "POST /demo/SE/customers HTTP/1.1\r\nHost: proxy\r\nAuthorization: {SE_AUTH}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
    );
    let sent = Instant::now();
    writer.write_all(head.as_bytes()).await.unwrap();
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    // One byte every 100 ms, never all 100 of them: the pacing is the behaviour under test.
    let trickle = tokio::spawn(async move {
        for byte in b"{\"name_first\":\"T\"".iter().cycle().take(99) {
            tokio::select! {
                _ = &mut stopped => return,
                () = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
            if writer.write_all(&[*byte]).await.is_err() {
                return;
            }
        }
        // Never finishing: hold the connection until told to stop.
        let _ = stopped.await;
    });
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 4096];
    let first = timeout(DEADLINE + Duration::from_secs(2), reader.read(&mut chunk))
        .await
        .expect("no answer within the deadline + 2 s")
        .unwrap();
    let answered = sent.elapsed();
    let _ = stop.send(());
    bytes.extend_from_slice(&chunk[..first]);
    // The rest of the answer, then the proxy's close (a reset is a close too).
    let closed = timeout(Duration::from_secs(3), reader.read_to_end(&mut bytes))
        .await
        .is_ok();
    trickle.abort();
    let a = RawAnswer::parse(&bytes);
    a.assert_error(408, "body_timeout");
    assert!(
        answered >= DEADLINE - Duration::from_millis(50),
        "answered after {answered:?}, before the {DEADLINE:?} deadline"
    );
    assert!(
        answered < DEADLINE + Duration::from_millis(1000),
        "answered after {answered:?}, long past the {DEADLINE:?} deadline"
    );
    assert_eq!(a.header("connection"), Some("close"), "{}", a.head);
    assert!(closed, "the proxy kept the connection open after the 408");
    assert!(h.sim.requests().is_empty(), "{:?}", h.sim.requests());
    assert_eq!(h.sim.writes(), 0);
}

// ---------------------------------------------------------------------------------------------
// 2. A flood past max_in_flight

#[tokio::test]
async fn a_flood_past_max_in_flight_is_shed_at_once_with_retry_after() {
    const SLOW: Duration = Duration::from_millis(300);
    let h = Arc::new(Harness::with_top("[limits]\nmax_in_flight = 4\n", "").await);
    // Every contact call of Anna's card (contact, promotions, bonus checks) is slow.
    h.sim
        .inject(fault(Method::GET, ANNA, FaultAction::Delay(SLOW), 1000));
    let mut flood = tokio::task::JoinSet::new();
    for _ in 0..40 {
        let h = h.clone();
        flood.spawn(async move {
            let sent = Instant::now();
            let a = h.get(&format!("/customers/{ANNA}")).await;
            (a, sent.elapsed())
        });
    }
    let mut served = Vec::new();
    let mut shed = Vec::new();
    while let Some(joined) = flood.join_next().await {
        let (a, took) = joined.unwrap();
        match a.status.as_u16() {
            200 => served.push(took),
            503 => {
                a.assert_error(503, "overloaded");
                assert_eq!(a.headers["retry-after"], "1");
                assert_eq!(
                    a.headers["request-id"],
                    a.body["request_id"].as_str().unwrap()
                );
                shed.push(took);
            }
            other => panic!("{other}: {}", a.body),
        }
    }
    assert!(served.len() >= 4, "only {} served", served.len());
    assert!(
        !shed.is_empty(),
        "nothing shed: all {} served",
        served.len()
    );
    let slowest_shed = shed.iter().max().copied().unwrap_or_default();
    let fastest_served = served.iter().min().copied().unwrap_or_default();
    assert!(
        fastest_served >= SLOW,
        "a card answered in {fastest_served:?}, without the slow Voyado"
    );
    // Relative, not absolute: on two shared cores a 503 may take well over 100 ms to come back,
    // but a shed request that waited for a slot would come back after an admitted one.
    assert!(
        slowest_shed < fastest_served,
        "a 503 took {slowest_shed:?}, the fastest card {fastest_served:?}: shed requests waited"
    );
    let text = h.metrics_text().await;
    let line = format!("svp_shed_total{{what=\"requests\"}} {}", shed.len());
    assert!(text.lines().any(|l| l == line), "no `{line}` in\n{text}");
}

// ---------------------------------------------------------------------------------------------
// 3. A connection past max_connections

#[tokio::test]
async fn a_connection_past_max_connections_gets_503_and_is_closed() {
    let h = Harness::with_top("[limits]\nmax_connections = 2\n", "").await;
    let addr = proxy_addr(&h).to_owned();
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut c = TcpStream::connect(&addr).await.unwrap();
        assert_eq!(get_on(&mut c, "/healthz").await.status, 200);
        held.push(c);
    }
    let shed_connections = "svp_shed_total{what=\"connections\"}";
    let before = get_on_raw(&mut held[0], "/metrics").await;
    assert!(
        before.lines().any(|l| l == format!("{shed_connections} 0")),
        "{before}"
    );
    // Both stay open and idle (keep-alive); a third is one too many: its request is answered 503.
    let started = Instant::now();
    let mut third = TcpStream::connect(&addr).await.unwrap();
    third
        .write_all(b"GET /demo/SE/consents HTTP/1.1\r\nHost: proxy\r\n\r\n")
        .await
        .unwrap();
    let bytes = read_until_closed(&mut third, Duration::from_secs(3))
        .await
        .expect("the third connection was neither answered nor closed within 3 s");
    let took = started.elapsed();
    let a = RawAnswer::parse(&bytes);
    a.assert_error(503, "overloaded");
    assert_eq!(a.header("retry-after"), Some("1"), "{}", a.head);
    assert!(took < Duration::from_millis(500), "refused after {took:?}");
    // The held ones are still served, and the refusal was counted (it is counted before the
    // refused connection is answered, so it shows by now).
    assert_eq!(get_on(&mut held[0], "/healthz").await.status, 200);
    let after = get_on_raw(&mut held[1], "/metrics").await;
    assert!(
        after.lines().any(|l| l == format!("{shed_connections} 1")),
        "{after}"
    );

    drop(held);
    // Their permits come back once the proxy notices the close: poll, at most 100 x 20 ms.
    let mut served = None;
    for _ in 0..100 {
        let mut c = TcpStream::connect(&addr).await.unwrap();
        let request = "GET /healthz HTTP/1.1\r\nHost: proxy\r\nConnection: close\r\n\r\n";
        let _ = c.write_all(request.as_bytes()).await;
        if let Some(bytes) = read_until_closed(&mut c, Duration::from_secs(3)).await
            && bytes.starts_with(b"HTTP/1.1 200")
        {
            served = Some(bytes);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        served.is_some(),
        "no connection served after the held ones closed"
    );
}

// ---------------------------------------------------------------------------------------------
// 4. 2 MiB bodies

const TWO_MIB: usize = 2 * 1024 * 1024;

#[tokio::test]
async fn a_2_mib_body_with_content_length_is_answered_400_not_reset() {
    let h = Harness::start().await;
    let mut stream = narrow_connection(&h).await;
    let mut request = format!(
        "POST /demo/SE/customers HTTP/1.1\r\nHost: proxy\r\nAuthorization: {SE_AUTH}\r\n\
         Content-Type: application/json\r\nContent-Length: {TWO_MIB}\r\n\r\n"
    )
    .into_bytes();
    request.resize(request.len() + TWO_MIB, b' ');
    // All of it first, as a client that does not watch for an early answer does.
    let written = timeout(Duration::from_secs(10), stream.write_all(&request))
        .await
        .expect("the proxy stopped reading: the write stalled for 10 s");
    assert!(
        written.is_ok(),
        "writing the body failed: {written:?} (the proxy closed without draining)"
    );
    let mut bytes = Vec::new();
    let read = timeout(Duration::from_secs(10), stream.read_to_end(&mut bytes))
        .await
        .expect("no answer and no close within 10 s");
    assert!(read.is_ok(), "reading the answer failed: {read:?}");
    let a = RawAnswer::parse(&bytes);
    a.assert_error(400, "body_too_large");
    assert!(h.sim.requests().is_empty(), "{:?}", h.sim.requests());
}

#[tokio::test]
async fn a_2_mib_chunked_body_is_answered_400_not_reset() {
    let h = Harness::start().await;
    let mut stream = narrow_connection(&h).await;
    let mut request = format!(
        "POST /demo/SE/customers HTTP/1.1\r\nHost: proxy\r\nAuthorization: {SE_AUTH}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    .into_bytes();
    let chunk = vec![b' '; 64 * 1024];
    for _ in 0..TWO_MIB / chunk.len() {
        request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        request.extend_from_slice(&chunk);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    let written = timeout(Duration::from_secs(10), stream.write_all(&request))
        .await
        .expect("the proxy stopped reading: the write stalled for 10 s");
    let mut bytes = Vec::new();
    let read = timeout(Duration::from_secs(10), stream.read_to_end(&mut bytes))
        .await
        .expect("no answer and no close within 10 s");
    assert!(
        written.is_ok() && read.is_ok(),
        "write {written:?}, read {read:?}: the client saw a broken connection, \
         having read {:?}",
        String::from_utf8_lossy(&bytes)
    );
    let a = RawAnswer::parse(&bytes);
    a.assert_error(400, "body_too_large");
    assert!(h.sim.requests().is_empty(), "{:?}", h.sim.requests());
}

// ---------------------------------------------------------------------------------------------
// 5. SIGTERM during a slow redeem (the real binary)

/// The binary serving a config file; killed (by its own pid) if the test ends before it exits.
struct Served {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Served {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// A loopback port nobody listens on right now (the child binds it a moment later).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Writes `config` (with `{port}`, `{admin_port}` and `{mappings}` filled in) to a scratch
/// directory and runs `serve --config` on it until it accepts connections.
async fn serve_binary(name: &str, config: &str, admin_port: u16) -> Served {
    let dir = std::env::temp_dir().join(format!("svp-edge-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port();
    let file = dir.join("config.toml");
    let mappings = format!("{}/mappings", env!("CARGO_MANIFEST_DIR"));
    std::fs::write(
        &file,
        config
            .replace("{port}", &port.to_string())
            .replace("{admin_port}", &admin_port.to_string())
            .replace("{mappings}", &mappings),
    )
    .unwrap();
    let log = dir.join("stderr.log");
    let child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&file)
        .env("RUST_LOG", "debug")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut served = Served { child, port, log };
    // Another process: poll in real time until it accepts, at most 1000 x 10 ms.
    for _ in 0..1000 {
        if let Some(status) = served.child.try_wait().unwrap() {
            panic!(
                "the proxy exited before listening: {status}\n{}",
                served.log()
            );
        }
        if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return served;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the proxy did not listen within 10 s\n{}", served.log());
}

const SERVED_MARKET: &str = r#"
[[market]]
tenant = "demo"
market = "SE"
crm_api_keys = ["se-key"]
voyado_url = "{voyado}"
voyado_api_key = "sim-demo-key"
default_country = "SE"
voyado_timeout_ms = 900
request_timeout_ms = 1000
"#;

#[tokio::test]
async fn sigterm_during_a_slow_redeem_waits_for_the_write_and_exits_0() {
    let sim = Simulator::start(([127, 0, 0, 1], 0).into(), FIXTURE)
        .await
        .unwrap();
    let config = format!(
        "listen = \"127.0.0.1:{{port}}\"\nmappings = \"{{mappings}}\"\n\
         [limits]\nshutdown_grace_ms = 10000\n{SERVED_MARKET}"
    )
    .replace("{voyado}", &sim.url());
    let mut proxy = serve_binary("sigterm", &config, 0).await;
    // The list read takes 400 ms and each redeem 700 ms (under the 900 ms Voyado timeout): the
    // first redeem is still running at the 1000 ms deadline, the second starts after it.
    sim.inject(fault(
        Method::GET,
        "/bonuschecks",
        FaultAction::Delay(Duration::from_millis(400)),
        1,
    ));
    sim.inject(fault(
        Method::POST,
        "/redeem",
        FaultAction::Delay(Duration::from_millis(700)),
        2,
    ));
    let url = format!(
        "http://127.0.0.1:{}/demo/SE/customers/{ANNA}/redeem",
        proxy.port
    );
    // The crate's client builder installs the TLS provider reqwest needs (no Harness here).
    let redeem = tokio::spawn(
        sitoo_voyado_proxy::voyado::build_http_client()
            .post(url)
            .basic_auth("pos", Some("se-key"))
            .header("content-type", "application/json")
            .body(json!({"bonus_checks": [CHECK_100, CHECK_SECOND]}).to_string())
            .send(),
    );
    // SIGTERM once the first redeem is on its way to Voyado: at most 500 x 10 ms.
    let redeeming = |sim: &Simulator| {
        sim.requests()
            .iter()
            .any(|r| r.method == Method::POST && r.path.ends_with("/redeem"))
    };
    for _ in 0..500 {
        if redeeming(&sim) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(redeeming(&sim), "the redeem never reached Voyado");
    terminate(&proxy);
    let terminated = Instant::now();

    // No new connections once draining (polled: the signal takes a moment to arrive).
    let mut refused = false;
    for _ in 0..100 {
        if TcpStream::connect(("127.0.0.1", proxy.port)).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // The request open at SIGTERM is still answered: at its deadline, before the write is done.
    let answer = timeout(Duration::from_secs(5), redeem)
        .await
        .expect("no answer within 5 s of SIGTERM")
        .unwrap()
        .expect("the open request was cut off by the shutdown");
    assert_eq!(answer.status(), 504);
    let body: Value = serde_json::from_slice(&answer.bytes().await.unwrap()).unwrap();
    assert_eq!(body["error_data"]["reason"], "upstream_timeout", "{body}");

    // The process waits for the detached redeem, then exits 0.
    let status = exit_status(&mut proxy).await;
    let log = proxy.log();
    assert!(status.success(), "exit {status}\n{log}");
    assert!(
        refused,
        "still accepting connections after SIGTERM ({:?})",
        terminated.elapsed()
    );
    for check in [CHECK_100, CHECK_SECOND] {
        assert_eq!(
            sim.bonus_check(DEMO_KEY, ANNA, check).unwrap()["redeemed"],
            true,
            "{check} not redeemed: the process exited before its write\n{log}"
        );
    }
    assert_eq!(sim.writes(), 2);
}

/// With a shutdown delay, SIGTERM first turns readiness to 503 while the proxy still answers, so a
/// load balancer stops sending before the listener closes; then the process exits 0.
#[tokio::test]
async fn sigterm_turns_readiness_503_before_the_listener_closes() {
    let sim = Simulator::start(([127, 0, 0, 1], 0).into(), FIXTURE)
        .await
        .unwrap();
    let config = format!(
        "listen = \"127.0.0.1:{{port}}\"\nmappings = \"{{mappings}}\"\n\
         [limits]\nshutdown_delay_ms = 1500\n{SERVED_MARKET}"
    )
    .replace("{voyado}", &sim.url());
    let mut proxy = serve_binary("readyz", &config, 0).await;
    let mut stream = TcpStream::connect(("127.0.0.1", proxy.port)).await.unwrap();
    assert_eq!(get_on(&mut stream, "/readyz").await.status, 200);
    terminate(&proxy);
    // The signal takes a moment to arrive: poll the same connection, at most 100 x 10 ms.
    let mut draining = false;
    for _ in 0..100 {
        if get_on(&mut stream, "/readyz").await.status == 503 {
            draining = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(draining, "readiness never turned 503 after SIGTERM");
    // Still serving during the delay, on a new connection too.
    let mut fresh = TcpStream::connect(("127.0.0.1", proxy.port)).await.unwrap();
    assert_eq!(get_on(&mut fresh, "/healthz").await.status, 200);
    drop((stream, fresh));
    let status = exit_status(&mut proxy).await;
    assert!(status.success(), "exit {status}\n{}", proxy.log());
}

/// SIGTERM by the child's own pid.
fn terminate(served: &Served) {
    let pid = served.child.id().to_string();
    let signalled = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(signalled.success());
}

/// Polls (in real time: another process) until the child exits, at most 1000 x 10 ms.
async fn exit_status(served: &mut Served) -> std::process::ExitStatus {
    for _ in 0..1000 {
        if let Some(status) = served.child.try_wait().unwrap() {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("still running 10 s after SIGTERM\n{}", served.log());
}

/// `admin_listen` on port 0 could not be found from outside, so a free port is picked first (as
/// `cli.rs` does for the demo): health, readiness and metrics there, no SPI.
#[tokio::test]
async fn admin_listen_serves_health_readiness_and_metrics_but_no_spi() {
    let sim = Simulator::start(([127, 0, 0, 1], 0).into(), FIXTURE)
        .await
        .unwrap();
    let config = format!(
        "listen = \"127.0.0.1:{{port}}\"\nadmin_listen = \"127.0.0.1:{{admin_port}}\"\n\
         mappings = \"{{mappings}}\"\n{SERVED_MARKET}"
    )
    .replace("{voyado}", &sim.url());
    let admin_port = free_port();
    let mut proxy = serve_binary("admin", &config, admin_port).await;
    let admin = format!("127.0.0.1:{admin_port}");
    // The admin listener is bound before the SPI one, so it is up: no wait needed.
    let mut c = TcpStream::connect(&admin).await.unwrap();
    for (path, status) in [("/healthz", 200), ("/readyz", 200), ("/metrics", 200)] {
        let a = get_on_raw(&mut c, path).await;
        assert!(a.starts_with(&format!("HTTP/1.1 {status}")), "{path}: {a}");
        if path == "/metrics" {
            assert!(a.contains("# TYPE svp_requests_in_flight gauge"), "{a}");
        }
    }
    let spi = format!(
        "GET /demo/SE/consents HTTP/1.1\r\nHost: proxy\r\nAuthorization: {SE_AUTH}\r\n\r\n"
    );
    c.write_all(spi.as_bytes()).await.unwrap();
    let mut chunk = [0u8; 4096];
    let n = timeout(Duration::from_secs(5), c.read(&mut chunk))
        .await
        .unwrap()
        .unwrap();
    let answer = String::from_utf8_lossy(&chunk[..n]);
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    assert!(
        sim.requests().is_empty(),
        "the admin address reached Voyado"
    );
    drop(c);
    terminate(&proxy);
    let status = exit_status(&mut proxy).await;
    assert!(status.success(), "exit {status}\n{}", proxy.log());
}

// ---------------------------------------------------------------------------------------------
// 6. Hostile keys

/// A Finnish market beside demo/SE (lookup on) and demo/NO (lookup off).
const FI_MARKET: &str = r#"
[[market]]
tenant = "demo"
market = "FI"
crm_api_keys = ["fi-key"]
voyado_url = "{voyado}"
voyado_api_key = "sim-demo-key"
default_country = "FI"
lookup_enabled = true
voyado_timeout_ms = 400
request_timeout_ms = 1500
"#;

const KEY_TYPES: [&str; 4] = ["email", "mobile", "member_number", "personal_id"];

/// (market, key, lookup enabled)
const MARKETS: [(&str, &str, bool); 3] = [
    ("SE", "se-key", true),
    ("NO", "no-key", false),
    ("FI", "fi-key", true),
];

/// Percent-encodes every byte but letters and digits.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A key as it goes into the query string: text encoded by us, or raw (already `%`-encoded,
/// possibly to bytes that are no UTF-8).
fn hostile_key() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>().prop_map(|s| encode(&s)),
        "[0-9é٣+ -]{0,16}".prop_map(|s| encode(&s)),
        "[0-9]{6}[-+A][0-9]{3}[0-9A-Yé]".prop_map(|s| encode(&s)),
        "(\\+|00| )?[0-9 -]{0,14}[^0-9]?".prop_map(|s| encode(&s)),
        "[a-zé.+]{0,8}@?[a-zé-]{0,8}\\.?[a-z]{0,3}".prop_map(|s| encode(&s)),
        proptest::collection::vec(any::<u8>(), 0..24)
            .prop_map(|bytes| bytes.iter().map(|b| format!("%{b:02X}")).collect()),
        "[0-9a-zA-Zé%+ -]{0,8}".prop_map(|s| s.replace(' ', "%20")),
        (1usize..8000, "[0-9a-zé]").prop_map(|(n, c)| encode(&c.repeat(n))),
    ]
}

/// The fixed list: past panics, invalid UTF-8, NUL, emoji, encodings of nothing in particular.
fn fixed_keys() -> Vec<String> {
    let mut keys: Vec<String> = [
        "131052-30%C3%A9",
        "%FF%FE",
        "%C0%80",
        "%ED%A0%80",
        "%",
        "%%",
        "%G0",
        "%2",
        "+",
        "%2B",
        "%20",
        "-",
        "131052-308T",
        "131052-308t",
        "811218-9876",
        "198112189876",
        "0701112233",
        "10012",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    for text in [
        "\u{0}",
        "10012\u{0}",
        "😀",
        "0701112233😀",
        "anna.andersson@example.com\u{0}",
        "\u{202e}3322111070",
        "\u{0663}\u{0663}\u{0663}",
        "0701112233\u{200b}",
        "anna.andersson@exämple.com",
        "@",
        "a@b.c",
        &"9".repeat(60_000),
        &"é".repeat(5_000),
    ] {
        keys.push(encode(text));
    }
    keys
}

/// `Ok` for a `200` list or a `400` envelope naming `key` or `key_type`.
fn judge(what: &str, a: &Answer) -> Result<(), String> {
    let fail = |why: &str| Err(format!("{what}: {why}: {} {}", a.status, a.body));
    match a.status.as_u16() {
        200 if a.body.is_array() => Ok(()),
        400 => {
            let id = a.body["request_id"].as_str().unwrap_or("");
            if a.body["statuscode"] != 400 || !a.body["error_code"].is_string() || id.is_empty() {
                return fail("not a complete envelope");
            }
            if a.headers.get("request-id").and_then(|v| v.to_str().ok()) != Some(id) {
                return fail("request id not echoed");
            }
            let message = a.message();
            if message.starts_with("key ") || message.starts_with("key_type ") {
                Ok(())
            } else {
                fail("the message does not name key or key_type")
            }
        }
        _ => fail("neither 200 nor 400"),
    }
}

/// Every market, key type and operation with `key` as the key, and with it as the key type.
async fn try_everywhere(h: &Harness, key: &str) -> Result<(), String> {
    let mut calls = Vec::new();
    for (market, crm_key, lookup) in MARKETS {
        let mut ops = vec!["customers"];
        if lookup {
            ops.push("lookup");
        }
        for op in ops {
            for key_type in KEY_TYPES {
                calls.push((
                    format!("/demo/{market}/{op}?key_type={key_type}&key={key}"),
                    crm_key,
                ));
            }
            calls.push((
                format!("/demo/{market}/{op}?key_type={key}&key=10012"),
                crm_key,
            ));
        }
    }
    let answers =
        futures_util::future::join_all(calls.iter().map(|(path, crm_key)| h.get_as(path, crm_key)))
            .await;
    for ((path, _), a) in calls.iter().zip(&answers) {
        // A long key is cut in the report; the path says where.
        let shown: String = path.chars().take(160).collect();
        judge(&shown, a)?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_keys_are_200_or_400_naming_the_field_never_500() {
    let h = Harness::with_top("", FI_MARKET).await;
    let started = Instant::now();
    // Every fixed key is tried, so one report lists all that fail.
    let mut failures = Vec::new();
    for key in fixed_keys() {
        if let Err(e) = try_everywhere(&h, &key).await {
            failures.push(e);
        }
    }
    let runtime = tokio::runtime::Handle::current();
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    // The runner is synchronous: each case blocks this worker on the async calls, while the
    // other worker runs the proxy and the simulator.
    let outcome = tokio::task::block_in_place(|| {
        runner.run(&hostile_key(), |key| {
            runtime
                .block_on(try_everywhere(&h, &key))
                .map_err(TestCaseError::fail)
        })
    });
    if let Err(e) = outcome {
        failures.push(format!("random keys: {e}"));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Not a benchmark (a debug build takes about 5 s on two cores): a guard against a key
    // that makes the proxy hang or work quadratically, which would take minutes. Wide, so that
    // a busy shared machine does not fail it.
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
}

/// Voyado takes Finnish personal ids (HETU) as well as Swedish ones: a valid one is searched,
/// and finding nobody is `[]`, not a refusal.
#[tokio::test]
async fn a_valid_finnish_personal_id_is_searched_not_refused() {
    let h = Harness::with_top("", FI_MARKET).await;
    let a = h
        .get_as(
            "/demo/FI/customers?key_type=personal_id&key=131052-308T",
            "fi-key",
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body, json!([]));
    let searched = h.seen("GET", "/contacts/id");
    assert_eq!(searched.len(), 1);
    assert!(
        searched[0]
            .query
            .contains("socialSecurityNumber=131052-308T"),
        "{}",
        searched[0].query
    );
}

// ---------------------------------------------------------------------------------------------
// 7. A Voyado reply over the cap

#[tokio::test]
async fn a_voyado_reply_over_the_cap_is_502() {
    let h = Harness::with_top("[limits]\nvoyado_reply_max_bytes = 200\n", "").await;
    h.get(&format!("/customers/{ANNA}"))
        .await
        .assert_error(502, "bad_gateway");
    h.get("/consents").await.assert_error(502, "bad_gateway");
    // Below the cap, an answer still goes through: a search that finds nobody.
    let none = h.get("/customers?key_type=member_number&key=99999").await;
    assert_eq!(none.status, 200, "{}", none.body);
    assert_eq!(none.body, json!([]));
}

// ---------------------------------------------------------------------------------------------
// 8. /metrics

/// A market whose timeouts leave a slow Voyado call seconds to finish.
const PATIENT_MARKET: &str = r#"
[[market]]
tenant = "patient"
market = "SE"
crm_api_keys = ["patient-key"]
voyado_url = "{voyado}"
voyado_api_key = "sim-demo-key"
default_country = "SE"
voyado_timeout_ms = 5000
request_timeout_ms = 8000
"#;

/// `svp_requests_in_flight` in an exposition.
fn in_flight(text: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix("svp_requests_in_flight "))
        .and_then(|v| v.trim().parse().ok())
}

#[tokio::test]
async fn the_in_flight_gauge_counts_a_request_while_it_runs() {
    let h = Harness::with_top("", PATIENT_MARKET).await;
    // Only the card's first Voyado call is slow: 1.5 s to scrape in while it waits.
    h.sim.inject(fault(
        Method::GET,
        ANNA,
        FaultAction::Delay(Duration::from_millis(1500)),
        1,
    ));
    // A scrape through the SPI address is a request too, and counts itself.
    let scrape = || async {
        let text = h.metrics_text().await;
        let own = in_flight(&h.app.metrics.render());
        (in_flight(&text), own)
    };
    assert_eq!(scrape().await, (Some(1.0), Some(0.0)), "at rest");
    let path = format!("/patient/SE/customers/{ANNA}");
    let card = h.get_as(&path, "patient-key");
    let watch = async {
        // Until the card's call reached Voyado, where it waits: at most 500 x 10 ms.
        for _ in 0..500 {
            if !h.seen("GET", ANNA).is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(
            !h.seen("GET", ANNA).is_empty(),
            "the card never reached Voyado"
        );
        scrape().await
    };
    let (a, during) = tokio::join!(card, watch);
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(during, (Some(2.0), Some(1.0)), "while the card ran");
    // The gauge is let go before the answer is sent, so it is down by the time it is read.
    assert_eq!(scrape().await, (Some(1.0), Some(0.0)), "after the card");
}

#[tokio::test]
async fn metrics_are_prometheus_text_counting_what_was_served() {
    let h = Harness::start().await;
    const CARDS: usize = 3;
    for _ in 0..CARDS {
        assert_eq!(h.get(&format!("/customers/{ANNA}")).await.status, 200);
    }
    assert_eq!(h.get(&format!("/customers/{UNKNOWN_ID}")).await.status, 404);
    let response = h
        .client
        .get(format!("{}/metrics", h.proxy))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();

    for (family, kind) in [
        ("svp_requests", "counter"),
        ("svp_request_duration_seconds", "histogram"),
        ("svp_requests_in_flight", "gauge"),
        ("svp_voyado_call_duration_seconds", "histogram"),
    ] {
        assert!(
            text.lines()
                .any(|l| l.starts_with(&format!("# HELP {family} "))),
            "no HELP for {family}\n{text}"
        );
        assert!(
            scrape.docs.get(family).is_some_and(|h| !h.is_empty()),
            "{family}: {:?}",
            scrape.docs
        );
        let type_line = format!("# TYPE {family} {kind}");
        assert!(text.lines().any(|l| l == type_line), "no `{type_line}`");
    }

    let sample = |metric: &str, labels: &[(&str, &str)]| {
        scrape.samples.iter().find(|s| {
            s.metric == metric
                && s.labels.len() == labels.len()
                && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v))
        })
    };
    let value =
        |metric: &str, labels: &[(&str, &str)]| match sample(metric, labels).map(|s| &s.value) {
            Some(
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v),
            ) => Some(*v),
            _ => None,
        };
    let card = [("operation", "get_customer"), ("status", "200")];
    assert_eq!(
        value("svp_requests_total", &card),
        Some(CARDS as f64),
        "{text}"
    );
    let missing = [("operation", "get_customer"), ("status", "404")];
    assert_eq!(value("svp_requests_total", &missing), Some(1.0), "{text}");
    // Only the scrape itself may be in flight while it is answered.
    let in_flight = value("svp_requests_in_flight", &[]).expect("no in-flight gauge");
    assert!(in_flight <= 1.0, "{in_flight} in flight at rest");

    match sample(
        "svp_request_duration_seconds",
        &[("operation", "get_customer")],
    )
    .map(|s| &s.value)
    {
        Some(prometheus_parse::Value::Histogram(buckets)) => {
            let all = buckets
                .iter()
                .find(|b| b.less_than == f64::INFINITY)
                .expect("no +Inf bucket");
            assert_eq!(all.count, (CARDS + 1) as f64, "{buckets:?}");
        }
        other => panic!("get_customer duration is not a histogram: {other:?}"),
    }
    assert!(
        text.lines()
            .any(|l| l.starts_with("svp_request_duration_seconds_bucket{") && l.contains("le=\"")),
        "no request _bucket with le\n{text}"
    );
    // The Voyado endpoint labels hold `{}`, which prometheus-parse drops: read the text.
    assert!(
        text.lines().any(
            |l| l.starts_with("svp_voyado_call_duration_seconds_bucket{")
                && l.contains("le=\"")
                && l.contains("endpoint=\"/api/v2/contacts/{}\",outcome=\"ok\"")
        ),
        "no Voyado call _bucket for the contact endpoint\n{text}"
    );
}

/// W3C trace context from the till reaches every Voyado call of that request — the card's
/// concurrent first round, its second round, a search's lookups — and no other request's.
#[tokio::test]
async fn traceparent_reaches_every_voyado_call_of_its_request() {
    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let h = Harness::start().await;
    let traced = |path: &'static str| {
        let h = &h;
        async move {
            h.call(
                Method::GET,
                path,
                Some("se-key"),
                None,
                &[("traceparent", PARENT), ("tracestate", "till=7")],
            )
            .await
        }
    };
    let before = h.sim.requests().len();
    let a = traced("/demo/SE/customers?key_type=mobile&key=0701112233").await;
    assert_eq!(a.status, 200, "{}", a.body);
    let seen = h.sim.requests();
    let calls = &seen[before..];
    assert!(
        calls.len() >= 5,
        "a search and its card: {} calls",
        calls.len()
    );
    for call in calls {
        assert_eq!(
            call.headers.get("traceparent").unwrap(),
            PARENT,
            "{}",
            call.path
        );
        assert_eq!(
            call.headers.get("tracestate").unwrap(),
            "till=7",
            "{}",
            call.path
        );
    }
    // An untraced request sends none.
    let before = h.sim.requests().len();
    let a = h.get("/consents").await;
    assert_eq!(a.status, 200);
    for call in &h.sim.requests()[before..] {
        assert!(call.headers.get("traceparent").is_none(), "{}", call.path);
    }
}
