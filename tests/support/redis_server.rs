//! A real Redis for the tests: Debian's `redis-server` on a free loopback port, without
//! persistence, stopped when the handle drops. Without `redis-server` on PATH the tests that
//! need it say so in one line and pass, so `cargo test` works on a bare machine; with `CI` set
//! they fail instead, so CI (whose `.ci/run` installs it) can never skip them silently.
#![allow(dead_code)] // each test binary uses its own part of the harness

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running `redis-server`; killed (and reaped) on drop.
pub struct RedisServer {
    port: u16,
    child: Option<Child>,
}

impl RedisServer {
    /// A fresh server on a free port, or `None` (after one line on stderr) when there is no
    /// `redis-server` and `CI` is not set.
    pub fn start() -> Option<RedisServer> {
        if !on_path("redis-server") {
            assert!(
                std::env::var_os("CI").is_none(),
                "redis-server is not on PATH, and CI must not skip the Redis tests (.ci/run \
                 installs it)"
            );
            eprintln!("redis-server is not on PATH: skipping a test that needs a real Redis");
            return None;
        }
        // Bound and let go at once: the port is free unless something takes it in between.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free loopback port")
            .port();
        let mut server = RedisServer { port, child: None };
        server.restart();
        Some(server)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Waits until `n` subscribers listen on the proxies' write channel (`svp:writes`).
    pub async fn subscribers(&self, n: i64) {
        let client = redis::Client::open(self.url()).unwrap();
        let mut connection = client.get_multiplexed_async_connection().await.unwrap();
        for _ in 0..500 {
            let (_, listening): (String, i64) = redis::cmd("PUBSUB")
                .arg("NUMSUB")
                .arg("svp:writes")
                .query_async(&mut connection)
                .await
                .unwrap();
            if listening == n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{n} subscribers never listened");
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Stops the server as a crash would: no goodbye to its clients.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes the server (SIGSTOP): connections stay open and nothing answers, as with a
    /// Redis behind a dead network path.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    /// A new, empty server on the same port (after `kill`).
    pub fn restart(&mut self) {
        self.kill();
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        self.wait_until_it_answers();
    }

    fn wait_until_it_answers(&self) {
        for _ in 0..500 {
            if self.pings() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!(
            "redis-server did not answer on port {} within 5 s",
            self.port
        );
    }

    /// PING through redis-rs' blocking connection: the harness needs no runtime.
    fn pings(&self) -> bool {
        let Ok(client) = redis::Client::open(self.url()) else {
            return false;
        };
        client
            .get_connection_with_timeout(Duration::from_millis(200))
            .and_then(|mut connection| redis::cmd("PING").query::<String>(&mut connection))
            .is_ok_and(|pong| pong == "PONG")
    }

    fn signal(&self, signal: &str) {
        if let Some(child) = &self.child {
            let status = Command::new("kill")
                .args([signal, &child.id().to_string()])
                .status()
                .expect("kill runs");
            assert!(status.success(), "kill {signal}");
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        // A frozen server ignores nothing but SIGKILL, which `kill` sends.
        self.kill();
    }
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}
