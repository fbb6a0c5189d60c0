//! The warm card at the speed of the wire, measured by `wrk` (a load generator in C that is not
//! the bottleneck, where a closed-loop reqwest client is): the proxy's demo in its default
//! configuration (its own process, access log on at `info`), a bare hyper server answering the
//! same bytes, and nginx serving them from a file when nginx is installed — alternating, several
//! rounds, medians. `cargo bench --bench wire`; figures and the machine in BENCHMARKS.md.
//!
//! Installs Debian's `wrk` when it is missing (as root); without it, it says so and stops.
//! `WIRE_ROUNDS` (default 5) and `WIRE_SECONDS` (default 4) set the rounds and their length.
//! `WIRE_BASELINE=/path/to/sitoo-voyado-proxy` adds that binary's demo (an older commit's build,
//! say) as one more row of the same rounds, so a change is measured against what it replaced
//! on the same machine at the same time.
//!
//! The output says what a reader needs to judge it: the machine (CPUs, model), the load average
//! before the first and after every round (other work on the cores moves the figures; the
//! ratios within one run move less), each run, the medians, and how many access-log lines each
//! proxy wrote against the requests wrk counted (the log is on, at `info`, as deployed).

use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
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
    let proxy = Proxy::start(Path::new(env!("CARGO_BIN_EXE_sitoo-voyado-proxy")));
    let baseline = std::env::var_os("WIRE_BASELINE").map(|path| Proxy::start(Path::new(&path)));
    let card_url = |proxy: &Proxy| format!("http://{}/demo/SE/customers/{ANNA}", proxy.addr);
    let card = fetch(&card_url(&proxy));
    if let Some(baseline) = &baseline
        && fetch(&card_url(baseline)) != card
    {
        println!("note: the WIRE_BASELINE proxy answers other bytes for the same card");
    }
    let runtime = tokio::runtime::Runtime::new().expect("a runtime for the bare server");
    let bare = runtime.block_on(support::minimal_server(bytes::Bytes::from(card.clone())));
    let nginx = Nginx::start(&card);
    let mut targets: Vec<Target> = vec![
        Target::new("proxy, warm card", card_url(&proxy), Some(&proxy)),
        Target::new("bare hyper, same bytes", format!("http://{bare}/"), None),
    ];
    if let Some(baseline) = &baseline {
        targets.push(Target::new(
            "proxy (WIRE_BASELINE), warm card",
            card_url(baseline),
            Some(baseline),
        ));
    }
    if let Some(nginx) = &nginx {
        targets.push(Target::new(
            "nginx, same bytes from a file",
            format!("http://{}/card.json", nginx.addr),
            None,
        ));
    }
    println!("{}", machine());
    println!(
        "wrk -t1 -c32 -d{seconds}s, {rounds} rounds alternating; the card is {} bytes; \
         load average before: {}",
        card.len(),
        load_average()
    );
    for round in 1..=rounds {
        for target in &mut targets {
            let run = wrk(&target.url, seconds);
            println!(
                "round {round}: {:34} {:>10.0} req/s",
                target.name, run.per_second
            );
            target.runs.push(run.per_second);
            target.requests += run.requests;
        }
        println!(
            "         load average after round {round}: {}",
            load_average()
        );
    }
    let medians: Vec<f64> = targets.iter_mut().map(|t| median(&mut t.runs)).collect();
    println!("\n| server | median req/s | of bare hyper |\n|---|---|---|");
    for (target, m) in targets.iter().zip(&medians) {
        println!("| {} | {m:.0} | {:.2} |", target.name, m / medians[1]);
    }
    println!();
    for target in &targets {
        if let Some(lines) = &target.log_lines {
            // The warm-up request and wrk's last, unanswered ones make the counts differ a little.
            println!(
                "{}: {} access-log lines written for {} requests wrk counted",
                target.name,
                lines.load(Ordering::Relaxed),
                target.requests
            );
        }
    }
}

/// One row of the table: what is asked, its runs, and for a proxy the lines its log has had.
struct Target {
    name: &'static str,
    url: String,
    runs: Vec<f64>,
    requests: u64,
    log_lines: Option<Arc<AtomicU64>>,
}

impl Target {
    fn new(name: &'static str, url: String, proxy: Option<&Proxy>) -> Target {
        Target {
            name,
            url,
            runs: Vec::new(),
            requests: 0,
            log_lines: proxy.map(|p| p.log_lines.clone()),
        }
    }
}

/// CPUs and their model, from `/proc/cpuinfo`.
fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|m| m.trim_start_matches([' ', '\t', ':']))
        .unwrap_or("unknown CPU");
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("machine: {cpus} CPUs, {model}")
}

/// The 1-, 5- and 15-minute load averages.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
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

/// What one wrk run measured.
struct Run {
    per_second: f64,
    requests: u64,
}

/// One wrk run: its `Requests/sec` and the requests it counted.
fn wrk(url: &str, seconds: u64) -> Run {
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
    let per_second = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no Requests/sec in wrk's output:\n{text}"));
    // "  123456 requests in 4.00s, 200.00MB read"
    let requests = text
        .lines()
        .find_map(|l| l.trim().split_once(" requests in "))
        .and_then(|(n, _)| n.parse().ok())
        .unwrap_or(0);
    Run {
        per_second,
        requests,
    }
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
/// that a thread drains, as a container runtime would; the thread counts the lines.
struct Proxy {
    child: Child,
    addr: SocketAddr,
    log_lines: Arc<AtomicU64>,
}

impl Proxy {
    fn start(binary: &Path) -> Proxy {
        let addr = free_port();
        let mut child = Command::new(binary)
            .args(["demo", "--listen", &addr.to_string()])
            .env_remove("RUST_LOG")
            .env_remove("LOG_FORMAT")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{} does not start: {e}", binary.display()));
        let mut logs = child.stderr.take().expect("its log pipe");
        let log_lines = Arc::new(AtomicU64::new(0));
        let counted = log_lines.clone();
        std::thread::spawn(move || {
            let mut sink = [0u8; 64 * 1024];
            while let Ok(n) = logs.read(&mut sink) {
                if n == 0 {
                    break;
                }
                let lines = sink[..n].iter().filter(|&&b| b == b'\n').count();
                counted.fetch_add(lines as u64, Ordering::Relaxed);
            }
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
                return Proxy {
                    child,
                    addr,
                    log_lines,
                };
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
        // One process, no master: `Child::kill` (SIGKILL) on a master would leave its worker
        // running after the bench.
        let conf = format!(
            "master_process off; daemon off; pid {d}/nginx.pid; error_log {d}/error.log;\n\
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
