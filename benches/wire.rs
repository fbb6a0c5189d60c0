//! The warm card at the speed of the wire, measured by `wrk` (a load generator in C that is not
//! the bottleneck, where a closed-loop reqwest client is): the proxy's demo in its default
//! configuration (its own process, access log on at `info`), a bare hyper server answering the
//! same bytes, and nginx serving them from a file when nginx is installed — alternating, several
//! rounds, medians. `cargo bench --bench wire`; figures and the machine in BENCHMARKS.md.
//!
//! Installs Debian's `wrk` when it is missing (as root); without it, it says so and stops.
//! `WIRE_ROUNDS` (default 5) and `WIRE_SECONDS` (default 4) set the rounds and their length.

use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

mod support;

const ANNA: &str = "8f0c1d2e-0000-4000-8000-000000000001";
/// `pos:demo-key`, the demo's CRM key.
const DEMO_AUTH: &str = "Basic cG9zOmRlbW8ta2V5";

fn main() {
    if !has_wrk() {
        eprintln!(
            "wire: wrk is not installed and could not be installed (apt-get install wrk); skipped"
        );
        return;
    }
    let rounds = env_number("WIRE_ROUNDS", 5);
    let seconds = env_number("WIRE_SECONDS", 4);
    let proxy = Proxy::start();
    let card_url = format!("http://{}/demo/SE/customers/{ANNA}", proxy.addr);
    let card = fetch(&card_url);
    let runtime = tokio::runtime::Runtime::new().expect("a runtime for the bare server");
    let bare = runtime.block_on(support::minimal_server(bytes::Bytes::from(card.clone())));
    let nginx = Nginx::start(&card);
    let mut targets: Vec<(&str, String)> = vec![
        ("proxy, warm card", card_url),
        ("bare hyper, same bytes", format!("http://{bare}/")),
    ];
    if let Some(nginx) = &nginx {
        targets.push((
            "nginx, same bytes from a file",
            format!("http://{}/card.json", nginx.addr),
        ));
    }
    println!(
        "wrk -t1 -c32 -d{seconds}s, {rounds} rounds alternating; the card is {} bytes",
        card.len()
    );
    let mut results: Vec<Vec<f64>> = vec![Vec::new(); targets.len()];
    for round in 1..=rounds {
        for (i, (name, url)) in targets.iter().enumerate() {
            let rps = wrk(url, seconds);
            println!("round {round}: {name:32} {rps:>10.0} req/s");
            results[i].push(rps);
        }
    }
    let medians: Vec<f64> = results.iter_mut().map(|r| median(r)).collect();
    println!("\n| server | median req/s | of bare hyper |\n|---|---|---|");
    for ((name, _), m) in targets.iter().zip(&medians) {
        println!("| {name} | {m:.0} | {:.2} |", m / medians[1]);
    }
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn has_wrk() -> bool {
    let found = || Command::new("wrk").arg("--version").output().is_ok();
    if found() {
        return true;
    }
    let _ = Command::new("apt-get")
        .args(["install", "-y", "wrk"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    found()
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// One wrk run: its `Requests/sec`.
fn wrk(url: &str, seconds: u64) -> f64 {
    let output = Command::new("wrk")
        .args(["-t1", "-c32", &format!("-d{seconds}s"), "-H"])
        .arg(format!("Authorization: {DEMO_AUTH}"))
        .arg(url)
        .output()
        .expect("wrk runs");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        !text.contains("Non-2xx"),
        "wrk saw answers other than 2xx from {url}:\n{text}"
    );
    text.lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no Requests/sec in wrk's output:\n{text}"))
}

/// A loopback port nobody listens on now.
fn free_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("its address")
}

/// A GET with the demo's key, by hand (one request: no client crate needed for it).
fn fetch(url: &str) -> Vec<u8> {
    let output = Command::new("curl")
        .args(["-fsS", "-u", "pos:demo-key", url])
        .output()
        .expect("curl runs");
    assert!(output.status.success(), "GET {url} failed");
    output.stdout
}

/// The demo (proxy + simulator) in its own process, logging at its default level into a pipe
/// that a thread drains, as a container runtime would.
struct Proxy {
    child: Child,
    addr: SocketAddr,
}

impl Proxy {
    fn start() -> Proxy {
        let addr = free_port();
        let mut child = Command::new(env!("CARGO_BIN_EXE_sitoo-voyado-proxy"))
            .args(["demo", "--listen", &addr.to_string()])
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the proxy starts");
        let mut logs = child.stderr.take().expect("its log pipe");
        std::thread::spawn(move || {
            let mut sink = [0u8; 64 * 1024];
            while logs.read(&mut sink).is_ok_and(|n| n > 0) {}
        });
        let ready = format!("http://{addr}/readyz");
        for _ in 0..300 {
            let up = Command::new("curl")
                .args(["-fsS", &ready])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if up {
                return Proxy { child, addr };
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("the demo did not become ready on {addr}");
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// nginx serving the card from a file, when it is installed.
struct Nginx {
    child: Child,
    addr: SocketAddr,
    _dir: TempDir,
}

impl Nginx {
    fn start(card: &[u8]) -> Option<Nginx> {
        Command::new("nginx").arg("-v").output().ok()?;
        let addr = free_port();
        let dir = TempDir::new("wire-nginx");
        std::fs::write(dir.0.join("card.json"), card).ok()?;
        let conf = format!(
            "worker_processes 1; daemon off; pid {d}/nginx.pid; error_log {d}/error.log;\n\
             events {{ worker_connections 1024; }}\n\
             http {{ access_log off; default_type application/json;\n\
               client_body_temp_path {d}; proxy_temp_path {d}; fastcgi_temp_path {d};\n\
               uwsgi_temp_path {d}; scgi_temp_path {d};\n\
               server {{ listen {addr}; root {d}; }} }}\n",
            d = dir.0.display()
        );
        let conf_path = dir.0.join("nginx.conf");
        std::fs::write(&conf_path, conf).ok()?;
        let child = Command::new("nginx")
            .arg("-c")
            .arg(&conf_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        std::thread::sleep(Duration::from_millis(300));
        Some(Nginx {
            child,
            addr,
            _dir: dir,
        })
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
