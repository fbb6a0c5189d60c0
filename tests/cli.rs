//! The binary as an operator runs it: `check` on good and bad configs, and the README's curl
//! examples pasted against a fresh demo.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

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
    for key in [
        "market[0].voyado_url",
        "market[0].timezone",
        "market[0].clearable_fields: 'shoe_size'",
        "market[0].clearable_fields: the contact key 'email'",
    ] {
        assert!(errors.contains(key), "{key} missing in:\n{errors}");
    }
    assert!(errors.lines().all(|l| l.contains("bad.toml")), "{errors}");
    let out = Command::new(BIN).arg("bogus").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

struct Demo(std::process::Child);

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn every_readme_curl_example_works_against_the_demo() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let address = format!("127.0.0.1:{port}");
    let mut demo = Demo(
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
