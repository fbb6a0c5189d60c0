//! `--features otlp`: with `[telemetry] otlp_endpoint` set, `serve` exports its spans over
//! OTLP/HTTP (protobuf at `/v1/traces`). A tiny collector on loopback records what arrives.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_sitoo-voyado-proxy");

/// Accepts HTTP/1.1 requests and records each one's request line and content type.
fn collector() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let record = record.clone();
            std::thread::spawn(move || answer(stream, &record));
        }
    });
    (address, seen)
}

fn answer(mut stream: TcpStream, record: &Mutex<Vec<String>>) {
    let mut buffer = vec![0u8; 65536];
    let mut read = 0;
    // Headers, then as much body as Content-Length says.
    loop {
        let Ok(n) = stream.read(&mut buffer[read..]) else {
            return;
        };
        if n == 0 {
            return;
        }
        read += n;
        let text = String::from_utf8_lossy(&buffer[..read]).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let head = text[..end].to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if read >= end + 4 + length {
                let line = head.lines().next().unwrap_or_default().to_owned();
                let kind = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-type:"))
                    .unwrap_or_default()
                    .trim()
                    .to_owned();
                record
                    .lock()
                    .unwrap()
                    .push(format!("{line} {kind} {length}"));
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
                return;
            }
        }
    }
}

#[test]
fn serve_exports_its_spans_to_the_configured_collector() {
    let (collector, seen) = collector();
    let dir = std::env::temp_dir().join(format!("svp-otlp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let listen = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"{listen}\"\nmappings = \"{}/mappings\"\n[telemetry]\n\
             otlp_endpoint = \"http://{collector}\"\n[[market]]\ntenant = \"t\"\nmarket = \"SE\"\n\
             crm_api_keys = [\"k\"]\nvoyado_url = \"http://127.0.0.1:9\"\nvoyado_api_key = \"k\"\n\
             default_country = \"SE\"\n",
            env!("CARGO_MANIFEST_DIR")
        ),
    )
    .unwrap();
    let mut serve = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Another process: polled in real time, at most 1000 x 10 ms.
    let mut up = false;
    for _ in 0..1000 {
        if let Ok(mut stream) = TcpStream::connect(listen) {
            stream
                .write_all(b"GET /t/SE/consents HTTP/1.1\r\nHost: x\r\nAuthorization: Basic cDpr\r\nConnection: close\r\n\r\n")
                .unwrap();
            let mut answer = String::new();
            let _ = stream.read_to_string(&mut answer);
            up = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(up, "serve did not come up");
    // SIGTERM: the proxy drains and shuts the exporter down, which sends what is batched.
    assert!(
        Command::new("kill")
            .args(["-TERM", &serve.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let status = serve.wait().unwrap();
    assert!(status.success(), "{status}");
    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.iter().any(|r| r.starts_with("post /v1/traces ")
            && r.contains("application/x-protobuf")
            && !r.ends_with(" 0")),
        "{seen:?}"
    );
}
