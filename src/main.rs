//! The command line: no arguments runs the demo; `serve --config FILE` runs in production;
//! `check --config FILE` validates a config and its mappings and exits non-zero with every error.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use sitoo_voyado_proxy::config::Config;
use sitoo_voyado_proxy::server::{App, serve};
use sitoo_voyado_proxy::{demo, voyado};
use tokio::net::TcpListener;

const USAGE: &str = "\
usage:
  sitoo-voyado-proxy                        the demo: proxy on 127.0.0.1:8080 + Voyado simulator
  sitoo-voyado-proxy demo [--listen ADDR]   the demo on another address
  sitoo-voyado-proxy serve --config FILE    production
  sitoo-voyado-proxy check --config FILE    validate config and mappings, then exit
";

enum Command {
    Demo(SocketAddr),
    Serve(PathBuf),
    Check(PathBuf),
}

fn parse(args: &[String]) -> Result<Command, String> {
    let flag = |name: &str| -> Result<&str, String> {
        match args.get(1..) {
            Some([f, value]) if f == name => Ok(value),
            _ => Err(format!("expected {name} VALUE")),
        }
    };
    match args.first().map(String::as_str) {
        None => Ok(Command::Demo(SocketAddr::from(([127, 0, 0, 1], 8080)))),
        Some("demo") if args.len() == 1 => {
            Ok(Command::Demo(SocketAddr::from(([127, 0, 0, 1], 8080))))
        }
        Some("demo") => flag("--listen")?
            .parse()
            .map(Command::Demo)
            .map_err(|_| "--listen takes ADDR:PORT".into()),
        Some("serve") => Ok(Command::Serve(flag("--config")?.into())),
        Some("check") => Ok(Command::Check(flag("--config")?.into())),
        Some(other) => Err(format!("unknown command '{other}'")),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if matches!(
        args.first().map(String::as_str),
        Some("-h" | "--help" | "help")
    ) {
        print!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let command = match parse(&args) {
        Ok(c) => c,
        Err(e) => {
            eprint!("{e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(command))
}

async fn run(command: Command) -> ExitCode {
    let (simulator, config) = match command {
        Command::Check(file) => {
            return match Config::load(&file, voyado::build_http_client()) {
                Ok(config) => {
                    println!("{}: ok ({} markets)", file.display(), config.markets.len());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::FAILURE
                }
            };
        }
        Command::Serve(file) => (None, Config::load(&file, voyado::build_http_client())),
        Command::Demo(listen) => match demo::start(listen).await {
            Ok((sim, config)) => (Some(sim), Ok(config)),
            Err(e) => (None, Err(e)),
        },
    };
    let config = match config {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let listener = match TcpListener::bind(config.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cannot listen on {}: {e}", config.listen);
            return ExitCode::FAILURE;
        }
    };
    if let Some(sim) = &simulator {
        tracing::info!(voyado = %sim.url(), "demo: Voyado simulator started");
        tracing::info!(
            "demo: try  curl -u pos:{} 'http://{}/{}/SE/customers?key_type=member_number&key=10012'",
            demo::CRM_KEY,
            config.listen,
            demo::TENANT
        );
    }
    tracing::info!(listen = %config.listen, markets = config.markets.len(), "sitoo-voyado-proxy ready");
    let app = App::new(config);
    let shutdown = async {
        // SIGTERM is what a container orchestrator sends; SIGINT is Ctrl-C.
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            Some(()) = async { terminate.as_mut()?.recv().await } => {}
        }
        tracing::info!("shutting down: draining open requests");
    };
    match serve(listener, app, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
