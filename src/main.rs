//! The command line: no arguments runs the demo; `serve --config FILE` runs in production;
//! `check --config FILE` validates a config and its mappings (no network) and exits non-zero with
//! every error; `map` shows what a market's mapping makes of a Voyado contact or an SPI body
//! (no network); `probe` tours one market's Voyado read-only (and says whether the `[cluster]`
//! Redis answers) and exits non-zero on any answer whose shape the proxy cannot read. `--log-format json` (or `LOG_FORMAT=json`) writes one JSON object
//! per log line.
//! `bench` plays till traffic against a proxy and reports what it measured (exit 2 on a bad flag).

#[cfg(feature = "simulator")]
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use sitoo_voyado_proxy::app::{self, App};
#[cfg(feature = "bench")]
use sitoo_voyado_proxy::bench;
use sitoo_voyado_proxy::config::{Config, ConfigError, Place};
#[cfg(feature = "simulator")]
use sitoo_voyado_proxy::demo;
use sitoo_voyado_proxy::telemetry::logging::{self, LogFormat};
use sitoo_voyado_proxy::{dryrun, reload, server, workbench};
use tokio::net::TcpListener;

const USAGE: &str = "\
usage:
  sitoo-voyado-proxy                        the demo: proxy on 127.0.0.1:8080 + Voyado simulator
  sitoo-voyado-proxy demo [--listen ADDR]   the demo on another address
  sitoo-voyado-proxy serve --config FILE    production
  sitoo-voyado-proxy check --config FILE    validate config and mappings, then exit
  sitoo-voyado-proxy map --config FILE --market TENANT/MARKET --voyado CONTACT.json
                                            the SPI customer the till would see
  sitoo-voyado-proxy map --config FILE --market TENANT/MARKET --spi BODY.json [--current CONTACT.json]
                                            the Voyado write an edit (or, without --current, a
                                            create) would send
  sitoo-voyado-proxy map --config FILE --market TENANT/MARKET --order ORDER.json [--contact-type TYPE]
                                            the Voyado receipt a Sitoo order (as its REST API
                                            answers it) would become, signs and all
  sitoo-voyado-proxy probe --config FILE --market TENANT/MARKET [--contact ID]
                                            read-only tour of that market's Voyado: every call
                                            the proxy makes (with a test contact's id), its
                                            answer's shape and paging, and whether the [cluster]
                                            Redis answers; exits 1 on a mismatch
  sitoo-voyado-proxy bench --in-process [--voyado-latency 50ms|p50=40ms,p99=200ms] [--cold]
        [--replicas N] [--redis URL] [--voyado-budget RATE/BURST]
                                            N proxies here (sharing the Redis at URL, else each
                                            its static share), Voyado's budget per key
  sitoo-voyado-proxy bench --target URL --tenant T --market M --key KEY [--allow-writes]
        [--rate N] [--duration 60s] [--warmup 10s] [--mix FILE] [--out DIR] [--baseline DIR]
        [--ramp [--slo 300ms]] [--seed N]
                                            load test with till sessions, open loop (Poisson,
                                            N requests/s); results.json and report.html in DIR
options:
  --log-format text|json                    log lines as text (default) or JSON; also LOG_FORMAT
";

enum Command {
    #[cfg(feature = "simulator")]
    Demo(SocketAddr),
    Serve(PathBuf),
    Check(PathBuf),
    Map {
        config: PathBuf,
        market: String,
        input: MapInput,
    },
    Probe {
        config: PathBuf,
        market: String,
        contact: Option<String>,
    },
    #[cfg(feature = "bench")]
    Bench(Box<bench::Args>),
}

/// `--name value` pairs, each of the `known` names at most once.
fn flags<'a>(args: &'a [String], known: &[&str]) -> Result<Vec<(&'a str, &'a str)>, String> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for pair in args.chunks(2) {
        let [name, value] = pair else {
            return Err(format!("{} takes a value", pair[0]));
        };
        if !known.contains(&name.as_str()) || out.iter().any(|(n, _)| n == name) {
            return Err(format!("unexpected {name}"));
        }
        out.push((name, value));
    }
    Ok(out)
}

/// The files `map` reads.
#[derive(Debug)]
enum MapInput {
    Voyado(PathBuf),
    Spi {
        body: PathBuf,
        current: Option<PathBuf>,
    },
    Order {
        order: PathBuf,
        contact_type: Option<String>,
    },
}

fn map_command(args: &[String]) -> Result<Command, String> {
    let given = flags(
        args,
        &[
            "--config",
            "--market",
            "--voyado",
            "--spi",
            "--current",
            "--order",
            "--contact-type",
        ],
    )?;
    let value = |name: &str| given.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
    let required = |name: &str| value(name).ok_or_else(|| format!("map needs {name}"));
    let (voyado, spi, current) = (value("--voyado"), value("--spi"), value("--current"));
    let (order, contact_type) = (value("--order"), value("--contact-type"));
    let input = match (voyado, spi, current, order, contact_type) {
        (Some(file), None, None, None, None) => MapInput::Voyado(file.into()),
        (None, Some(file), current, None, None) => MapInput::Spi {
            body: file.into(),
            current: current.map(PathBuf::from),
        },
        (None, None, None, Some(file), contact_type) => MapInput::Order {
            order: file.into(),
            contact_type: contact_type.map(str::to_owned),
        },
        _ => {
            return Err("map takes --voyado FILE, --spi FILE [--current FILE], \
                        or --order FILE [--contact-type TYPE]"
                .into());
        }
    };
    Ok(Command::Map {
        config: required("--config")?.into(),
        market: required("--market")?.to_owned(),
        input,
    })
}

fn probe_command(args: &[String]) -> Result<Command, String> {
    let given = flags(args, &["--config", "--market", "--contact"])?;
    let value = |name: &str| given.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
    let required = |name: &str| value(name).ok_or_else(|| format!("probe needs {name}"));
    Ok(Command::Probe {
        config: required("--config")?.into(),
        market: required("--market")?.to_owned(),
        contact: value("--contact").map(str::to_owned),
    })
}

/// Takes `--log-format VALUE` out of `args`, wherever it stands.
fn take_log_format(args: &mut Vec<String>) -> Result<Option<String>, String> {
    let Some(at) = args.iter().position(|a| a == "--log-format") else {
        return Ok(None);
    };
    if at + 1 >= args.len() {
        return Err("--log-format takes text or json".into());
    }
    let value = args.remove(at + 1);
    args.remove(at);
    Ok(Some(value))
}

fn parse(args: &[String]) -> Result<Command, String> {
    let flag = |name: &str| -> Result<&str, String> {
        match args.get(1..) {
            Some([f, value]) if f == name => Ok(value),
            _ => Err(format!("expected {name} VALUE")),
        }
    };
    #[cfg(feature = "simulator")]
    let demo_at = SocketAddr::from(([127, 0, 0, 1], 8080));
    match args.first().map(String::as_str) {
        #[cfg(feature = "simulator")]
        None => Ok(Command::Demo(demo_at)),
        #[cfg(feature = "simulator")]
        Some("demo") if args.len() == 1 => Ok(Command::Demo(demo_at)),
        #[cfg(feature = "simulator")]
        Some("demo") => flag("--listen")?
            .parse()
            .map(Command::Demo)
            .map_err(|_| "--listen takes ADDR:PORT".into()),
        #[cfg(not(feature = "simulator"))]
        None | Some("demo") => Err("this build has no demo (built without the simulator)".into()),
        Some("serve") => Ok(Command::Serve(flag("--config")?.into())),
        Some("check") => Ok(Command::Check(flag("--config")?.into())),
        Some("map") => map_command(&args[1..]),
        Some("probe") => probe_command(&args[1..]),
        #[cfg(feature = "bench")]
        Some("bench") => bench::parse(&args[1..]).map(|b| Command::Bench(Box::new(b))),
        #[cfg(not(feature = "bench"))]
        Some("bench") => Err("this build has no bench (built without the bench feature)".into()),
        Some(other) => Err(format!("unknown command '{other}'")),
    }
}

/// The usage of one command (its lines of `USAGE`, and the options every command takes); the
/// whole usage for a command it does not know.
fn usage_of(command: &str) -> String {
    let head = format!("  sitoo-voyado-proxy {command} ");
    let mut out = String::new();
    let mut taking = false;
    for line in USAGE.lines() {
        if line.starts_with("  sitoo-voyado-proxy") || !line.starts_with("  ") {
            taking = line.starts_with(&head) || line == "options:" || line == "usage:";
        }
        if taking {
            out.push_str(line);
            out.push('\n');
        }
    }
    if out.lines().any(|l| l.starts_with(&head)) {
        out
    } else {
        USAGE.to_owned()
    }
}

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let asks_help = |a: &String| matches!(a.as_str(), "-h" | "--help");
    if matches!(args.first().map(String::as_str), Some("help"))
        || args.first().is_some_and(asks_help)
    {
        print!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    if let Some(command) = args.first()
        && args.iter().skip(1).any(asks_help)
    {
        print!("{}", usage_of(command));
        return ExitCode::SUCCESS;
    }
    let chosen = take_log_format(&mut args)
        .and_then(|flag| LogFormat::choose(flag.as_deref(), |name| std::env::var(name).ok()));
    let (format, command) = match chosen.and_then(|f| Ok((f, parse(&args)?))) {
        Ok(parsed) => parsed,
        Err(e) => {
            eprint!("{e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match &command {
        Command::Check(file) => return check(file),
        Command::Map {
            config,
            market,
            input,
        } => {
            return map(config, market, input);
        }
        _ => {}
    }
    // The bench prints its own progress and summary; the in-process proxy's request logs would
    // drown them, so no log subscriber is installed for it.
    #[cfg(feature = "bench")]
    if let Command::Bench(args) = command {
        return bench::main(*args);
    }
    // `serve` reads its config before logging starts: the config says where spans go.
    let config = match &command {
        Command::Serve(file) => match Config::load(file) {
            Ok(config) => Some(config),
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
        },
        _ => None,
    };
    // Kept until exit: dropping it flushes the log lines (and spans) still buffered.
    let _logging = logging::init(
        format,
        config.as_ref().and_then(|c| c.otlp_endpoint.as_ref()),
    );
    logging::install_panic_hook();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(command, config))
}

/// Validates the config and every mapping it names; builds no client and opens no socket.
fn check(file: &std::path::Path) -> ExitCode {
    match app::check(file) {
        Ok(compiled) => {
            println!(
                "{}: ok ({} markets)",
                file.display(),
                compiled.market_count()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// Reads a JSON file for `map`.
fn json_file(file: &std::path::Path) -> Result<serde_json::Value, String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("{}: cannot read: {e}", file.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: not JSON: {e}", file.display()))
}

/// `map`: compiles the config's mappings (no client, no network) and prints what the market's
/// mapping makes of the input.
fn map(config: &std::path::Path, market: &str, input: &MapInput) -> ExitCode {
    let input = match input {
        MapInput::Voyado(file) => json_file(file).map(dryrun::Input::Voyado),
        MapInput::Spi { body, current } => json_file(body).and_then(|body| {
            let current = current.as_deref().map(json_file).transpose()?;
            Ok(dryrun::Input::Spi { body, current })
        }),
        MapInput::Order {
            order,
            contact_type,
        } => json_file(order).map(|order| dryrun::Input::Order {
            order,
            contact_type: contact_type.clone(),
        }),
    };
    let mapped = input.and_then(|input| {
        let compiled = app::check(config).map_err(|e| e.to_string())?;
        dryrun::run(&compiled, market, input, jiff::Timestamp::now())
    });
    match mapped {
        Ok(mapped) => {
            for note in &mapped.notes {
                eprintln!("{note}");
            }
            println!(
                "{}",
                serde_json::to_string_pretty(&mapped.document).unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs `command`; `serve`'s config was loaded before logging started.
async fn run(command: Command, config: Option<Config>) -> ExitCode {
    // The demo's simulator lives as long as the proxy serves.
    type Keep = Option<Box<dyn std::any::Any + Send>>;
    let loaded: Result<(Config, Keep), _> = match command {
        Command::Check(_) | Command::Map { .. } => return ExitCode::FAILURE,
        Command::Probe {
            config,
            market,
            contact,
        } => return probe(&config, &market, contact.as_deref()).await,
        Command::Serve(file) => config.map(|c| (c, None)).ok_or_else(|| {
            let place = Place::whole(file.display().to_string());
            ConfigError::from(place.problem("not loaded"))
        }),
        #[cfg(feature = "bench")]
        Command::Bench(_) => return ExitCode::FAILURE,
        #[cfg(feature = "simulator")]
        Command::Demo(listen) => demo::start(listen).await.map(|(sim, config)| {
            tracing::info!(voyado = %sim.voyado.url(), sitoo = %sim.sitoo.url(), "demo: Voyado and Sitoo simulators started");
            tracing::info!(
                "demo: try  curl -u pos:{} 'http://{}/{}/SE/customers?key_type=member_number&key=10012'",
                demo::CRM_KEY,
                config.listen,
                demo::TENANT
            );
            (config, Some(Box::new(sim) as Box<dyn std::any::Any + Send>))
        }),
    };
    let (config, _simulator) = match loaded {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let app = match App::build(&config) {
        Ok(app) => app,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    // Share the budget from the first request on if Redis answers soon; it is joined whenever
    // it does, so this is the most a start waits for it.
    if let Some(cluster) = &app.cluster {
        cluster.up_within(REDIS_AT_START).await;
    }
    let listener = match TcpListener::bind(config.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cannot listen on {}: {e}", config.listen);
            return ExitCode::FAILURE;
        }
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    if let Some(admin) = config.admin_listen {
        match TcpListener::bind(admin).await {
            Ok(listener) => {
                let mut stopped = stopped.clone();
                tokio::spawn(server::serve_admin(listener, app.clone(), async move {
                    let _ = stopped.wait_for(|s| *s).await;
                }));
                tracing::info!(admin = %admin, "health and metrics also on the admin address");
            }
            Err(e) => {
                eprintln!("cannot listen on {admin}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    if workbench::is_on(&app) {
        let at = config.admin_listen.unwrap_or(config.listen);
        tracing::info!("the mapping workbench: http://{at}/workbench/");
    }
    tokio::spawn(reload::on_sighup(app.clone()));
    if !config.mappings_poll.is_zero() {
        tokio::spawn(reload::watch(app.clone(), config.mappings_poll));
    }
    tracing::info!(listen = %config.listen, markets = app.served().markets.len(), "sitoo-voyado-proxy ready");
    let shutdown = async move {
        wait_for_signal().await;
        let _ = stop.send(true);
    };
    match server::serve(listener, Arc::clone(&app), shutdown).await {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// How long `serve` waits for the `[cluster]` Redis before it listens (it serves on its local
/// fallbacks until Redis answers), and `probe` before it says Redis does not answer.
const REDIS_AT_START: Duration = Duration::from_secs(2);

/// Probes one market's Voyado (read-only) and prints what it found, after whether the
/// `[cluster]` Redis answers; 1 on any mismatch or a Redis that does not.
async fn probe(file: &std::path::Path, market: &str, contact: Option<&str>) -> ExitCode {
    let app = match Config::load(file)
        .map_err(|e| e.to_string())
        .and_then(|config| App::build(&config).map_err(|e| e.to_string()))
    {
        Ok(app) => app,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let served = app.served();
    let Some(found) = served.markets.iter().find(|m| &*m.key == market) else {
        eprintln!("{}: no market {market} (TENANT/MARKET)", file.display());
        return ExitCode::from(2);
    };
    let redis_answers = match &app.cluster {
        Some(cluster) => {
            let up = cluster.up_within(REDIS_AT_START).await;
            if up {
                println!(
                    "ok       redis ([cluster]) answers: the budget, redeem slots and write notifications are shared\n"
                );
            } else {
                println!(
                    "MISMATCH redis ([cluster]) did not answer within {} s: replicas would run on their local fallbacks\n",
                    REDIS_AT_START.as_secs()
                );
            }
            up
        }
        None => true,
    };
    println!(
        "probing {market} at {} (read-only)\n",
        found.settings.voyado_url
    );
    let report = sitoo_voyado_proxy::probe::run(found, contact).await;
    print!("{}", report.render());
    if redis_answers && report.mismatches() == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// SIGTERM is what a container orchestrator sends; SIGINT is Ctrl-C.
async fn wait_for_signal() {
    let mut terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        Some(()) = async { terminate.as_mut()?.recv().await } => {}
    }
}
