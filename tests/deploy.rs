//! The deployment files agree with the code. Every YAML and JSON file under `deploy/` parses; the
//! Kubernetes manifests, the config inside the ConfigMap, the Secret example, the alert rules, the
//! Grafana dashboard and the Dockerfile are read and checked against each other and against what
//! the binary does: its ports and health paths, its shutdown timing, its config parser and mapping
//! compiler, and the metric names and labels it exports. Each check returns its problems as text,
//! and the last test breaks the files one way at a time to see each problem reported.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use sitoo_voyado_proxy::app;
use sitoo_voyado_proxy::config::{Config, MappingSource};
use sitoo_voyado_proxy::telemetry::events::cluster::RedisLost;
use sitoo_voyado_proxy::telemetry::events::redeem::{
    Compensating, PromotionUndoRefused, PromotionsRedeemedBeforeFailure, RedeemRollbackFailed,
};
use sitoo_voyado_proxy::telemetry::events::server::{
    RequestDone, RequestFields, WriteTasksAbandoned,
};
use sitoo_voyado_proxy::telemetry::events::voyado::{VoyadoAnswer, VoyadoCall};
use sitoo_voyado_proxy::telemetry::events::{Guid, Guids};
use sitoo_voyado_proxy::telemetry::{Fallback, Metrics, Shed};
use sitoo_voyado_proxy::voyado::VoyadoError;

const DEPLOYMENT: &str = "sitoo-voyado-proxy";
const CONTAINER: &str = "/spec/template/spec/containers/0";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every file below `dir`, sorted.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The documents of a YAML file (comment-only stretches are no documents), or a JSON file's one.
fn parse(path: &Path) -> Result<Vec<Value>, String> {
    let text = read(path);
    let at = path.display();
    match path.extension().and_then(|e| e.to_str()) {
        Some("yaml" | "yml") => serde_saphyr::from_multiple::<Value>(&text)
            .map(|docs| docs.into_iter().filter(|d| !d.is_null()).collect())
            .map_err(|e| format!("{at}: {e}")),
        Some("json") => serde_json::from_str(&text)
            .map(|doc| vec![doc])
            .map_err(|e| format!("{at}: {e}")),
        _ => Err(format!("{at}: neither YAML nor JSON")),
    }
}

/// What `deploy/`, the Dockerfile and `rust-toolchain.toml` say, parsed (then checked below).
#[derive(Clone)]
struct Deploy {
    /// Every Kubernetes object in `deploy/kubernetes/`.
    objects: Vec<Value>,
    alerts: Value,
    dashboard: Value,
    dockerfile: String,
    toolchain: String,
}

impl Deploy {
    fn load() -> Deploy {
        let root = root();
        let mut objects = Vec::new();
        for file in files_under(&root.join("deploy/kubernetes")) {
            objects.extend(parse(&file).unwrap());
        }
        let one = |rel: &str| {
            let mut docs = parse(&root.join(rel)).unwrap();
            assert_eq!(docs.len(), 1, "{rel}: one document");
            docs.remove(0)
        };
        Deploy {
            objects,
            alerts: one("deploy/prometheus/alerts.yaml"),
            dashboard: one("deploy/grafana/sitoo-voyado-proxy.json"),
            dockerfile: read(&root.join("Dockerfile")),
            toolchain: read(&root.join("rust-toolchain.toml")),
        }
    }

    fn object(&self, kind: &str, name: &str) -> Result<&Value, String> {
        self.objects
            .iter()
            .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
            .ok_or_else(|| format!("deploy/kubernetes: no {kind} named {name}"))
    }

    fn object_mut(&mut self, kind: &str, name: &str) -> &mut Value {
        self.objects
            .iter_mut()
            .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
            .unwrap()
    }

    fn deployment(&self) -> Result<&Value, String> {
        self.object("Deployment", DEPLOYMENT)
    }

    fn container(&self) -> Result<&Value, String> {
        self.deployment()?
            .pointer(CONTAINER)
            .ok_or_else(|| "Deployment: no container".to_owned())
    }
}

fn text<'a>(value: &'a Value, pointer: &str) -> Option<&'a str> {
    value.pointer(pointer).and_then(Value::as_str)
}

fn int(value: &Value, pointer: &str) -> Option<u64> {
    value.pointer(pointer).and_then(Value::as_u64)
}

fn items<'a>(value: &'a Value, pointer: &str) -> impl Iterator<Item = &'a Value> {
    value
        .pointer(pointer)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

// --- The config the pods run, as the Deployment mounts it ---

/// The files the container sees under its volume mounts (ConfigMap data, by item or by key).
fn mounted_files(d: &Deploy) -> Result<BTreeMap<PathBuf, String>, String> {
    let deployment = d.deployment()?;
    let container = d.container()?;
    let mut files = BTreeMap::new();
    for mount in items(container, "/volumeMounts") {
        let name = &mount["name"];
        let at = PathBuf::from(text(mount, "/mountPath").unwrap_or_default());
        let volume = items(deployment, "/spec/template/spec/volumes")
            .find(|v| &v["name"] == name)
            .ok_or_else(|| format!("Deployment: volumeMount {name} has no volume"))?;
        let sources: Vec<&Value> = match volume.get("projected") {
            Some(p) => items(p, "/sources").collect(),
            None => vec![volume],
        };
        for source in sources {
            let Some(cm) = source.get("configMap") else {
                continue;
            };
            let cm_name = text(cm, "/name").unwrap_or_default();
            let data = d.object("ConfigMap", cm_name)?["data"]
                .as_object()
                .ok_or_else(|| format!("ConfigMap {cm_name}: no data"))?;
            let chosen: Vec<(String, String)> = match cm.get("items") {
                Some(list) => items(list, "")
                    .map(|i| {
                        let key = text(i, "/key").unwrap_or_default().to_owned();
                        let path = text(i, "/path").unwrap_or_default().to_owned();
                        (key, path)
                    })
                    .collect(),
                None => data.keys().map(|k| (k.clone(), k.clone())).collect(),
            };
            for (key, path) in chosen {
                let content = data[&key]
                    .as_str()
                    .ok_or_else(|| format!("ConfigMap {cm_name}: no key {key}"))?;
                files.insert(at.join(path), content.to_owned());
            }
        }
    }
    Ok(files)
}

/// The value after `flag` in the container's args.
fn arg<'a>(container: &'a Value, flag: &str) -> Option<&'a str> {
    let args: Vec<&str> = items(container, "/args")
        .filter_map(Value::as_str)
        .collect();
    let at = args.iter().position(|a| *a == flag)?;
    args.get(at + 1).copied()
}

/// The environment the container gets: literal `env` values and every key of the Secrets it
/// takes with `envFrom` (here the example Secret's placeholders).
fn container_env(d: &Deploy) -> Result<BTreeMap<String, String>, String> {
    let container = d.container()?;
    let mut env = BTreeMap::new();
    for var in items(container, "/env") {
        if let (Some(name), Some(value)) = (text(var, "/name"), text(var, "/value")) {
            env.insert(name.to_owned(), value.to_owned());
        }
    }
    for from in items(container, "/envFrom") {
        let Some(name) = text(from, "/secretRef/name") else {
            continue;
        };
        let secret = d.object("Secret", name)?;
        if secret.get("data").is_some() {
            return Err(format!(
                "Secret {name}: an example holds stringData placeholders, never data"
            ));
        }
        for (key, value) in secret["stringData"].as_object().into_iter().flatten() {
            let value = value.as_str().unwrap_or_default();
            if !value.contains("PLACEHOLDER") {
                return Err(format!(
                    "Secret {name}: {key} must be a placeholder, not a key"
                ));
            }
            env.insert(key.clone(), value.to_owned());
        }
    }
    Ok(env)
}

static SCRATCH: AtomicUsize = AtomicUsize::new(0);

/// The config file the Deployment points `serve --config` at, parsed with the container's
/// environment and compiled against the mappings mounted beside it, as `serve` would. The
/// mounted mappings must be the repository's `mappings/`, byte for byte.
fn deployed_config(d: &Deploy) -> Result<Config, String> {
    let container = d.container()?;
    let file = arg(container, "--config").ok_or("Deployment: args have no --config FILE")?;
    let files = mounted_files(d)?;
    let text = files
        .get(Path::new(file))
        .ok_or_else(|| format!("Deployment: --config {file} is not in any mounted ConfigMap"))?;
    let env = container_env(d)?;

    // The mounted tree, laid out in a scratch directory.
    let n = SCRATCH.fetch_add(1, Ordering::Relaxed);
    let scratch = std::env::temp_dir().join(format!("svp-deploy-{}-{n}", std::process::id()));
    let inside = |p: &Path| {
        let relative: PathBuf = p
            .components()
            .filter(|c| matches!(c, Component::Normal(_)))
            .collect();
        scratch.join(relative)
    };
    for (path, content) in &files {
        let at = inside(path);
        std::fs::create_dir_all(at.parent().unwrap()).unwrap();
        std::fs::write(&at, content).unwrap();
    }
    let base = inside(Path::new(file)).parent().unwrap().to_path_buf();
    let mut mappings_dir = None;
    let parsed = Config::parse(
        text,
        &format!("configmap.yaml: {file}"),
        |dir| {
            mappings_dir = Some(base.join(dir));
            MappingSource::Dir(base.join(dir))
        },
        |name| env.get(name).cloned(),
    );
    let result = parsed.map_err(|e| e.to_string()).and_then(|config| {
        let dir = mappings_dir.ok_or("config: no mappings directory")?;
        same_mappings(&dir)?;
        app::compile(&config).map_err(|e| e.to_string())?;
        Ok(config)
    });
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

/// The mounted mappings directory holds exactly the repository's `mappings/*.toml`.
fn same_mappings(mounted: &Path) -> Result<(), String> {
    let toml = |dir: &Path| -> BTreeSet<String> {
        std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .filter(|n| n.ends_with(".toml"))
                    .collect()
            })
            .unwrap_or_default()
    };
    let repo = root().join("mappings");
    let (want, have) = (toml(&repo), toml(mounted));
    if want != have {
        return Err(format!(
            "mounted mappings {have:?} are not the repository's {want:?}: regenerate the mappings \
             ConfigMap (configmap.yaml) and the projected volume's items (deployment.yaml)"
        ));
    }
    for name in want {
        if read(&repo.join(&name)) != read(&mounted.join(&name)) {
            return Err(format!(
                "mapping {name} in configmap.yaml differs from mappings/{name}: regenerate it \
                 (kubectl create configmap ... --from-file=mappings/, see configmap.yaml)"
            ));
        }
    }
    Ok(())
}

// --- Kubernetes ---

/// A probe's or Service's port: a number, or the name of a container port.
fn resolve_port(container: &Value, port: &Value) -> Option<u16> {
    match port {
        Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
        Value::String(name) => items(container, "/ports")
            .find(|p| p["name"] == name.as_str())
            .and_then(|p| int(p, "/containerPort"))
            .and_then(|n| u16::try_from(n).ok()),
        _ => None,
    }
}

fn kubernetes_problems(d: &Deploy) -> Vec<String> {
    let mut problems = Vec::new();
    for kind in [
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
    ] {
        if let Err(e) = d.object(kind, DEPLOYMENT) {
            problems.push(e);
        }
    }
    for object in &d.objects {
        for key in ["/apiVersion", "/kind", "/metadata/name"] {
            if text(object, key).is_none() {
                problems.push(format!("an object under deploy/kubernetes has no {key}"));
            }
        }
    }
    let (deployment, container) = match (d.deployment(), d.container()) {
        (Ok(dep), Ok(c)) => (dep, c),
        (Err(e), _) | (_, Err(e)) => {
            problems.push(e);
            return problems;
        }
    };
    let config = match deployed_config(d) {
        Ok(c) => c,
        Err(e) => {
            problems.push(format!("the deployed config: {e}"));
            return problems;
        }
    };

    // Ports: the container declares what the config listens on, on every interface.
    let listen = config.listen;
    let admin = config.admin_listen;
    for (key, address) in [("listen", Some(listen)), ("admin_listen", admin)] {
        let Some(address) = address else { continue };
        if !address.ip().is_unspecified() {
            problems.push(format!(
                "config {key} = {address}: a pod must listen on 0.0.0.0, or probes and the \
                 Service cannot reach it"
            ));
        }
    }
    let declared: BTreeSet<u16> = items(container, "/ports")
        .filter_map(|p| int(p, "/containerPort"))
        .filter_map(|n| u16::try_from(n).ok())
        .collect();
    let served: BTreeSet<u16> = [Some(listen), admin]
        .into_iter()
        .flatten()
        .map(|a| a.port())
        .collect();
    if declared != served {
        problems.push(format!(
            "Deployment container ports {declared:?} are not the config's listen/admin_listen \
             ports {served:?}"
        ));
    }

    // Probes: on the admin listener when there is one (outside the SPI connection limit).
    let health_port = admin.unwrap_or(listen).port();
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        let Some(get) = container.get(probe).and_then(|p| p.get("httpGet")) else {
            problems.push(format!("Deployment: no {probe} httpGet"));
            continue;
        };
        if get["path"] != path {
            problems.push(format!("{probe} path {} is not {path}", get["path"]));
        }
        let port = resolve_port(container, &get["port"]);
        if port != Some(health_port) {
            problems.push(format!(
                "{probe} port {} is {port:?}, not the port that serves {path} ({health_port}, \
                 admin_listen or else listen)",
                get["port"]
            ));
        }
    }
    let annotated = text(
        deployment,
        "/spec/template/metadata/annotations/prometheus.io~1port",
    );
    if annotated != Some(health_port.to_string().as_str()) {
        problems.push(format!(
            "prometheus.io/port annotation {annotated:?} is not the metrics port {health_port}"
        ));
    }

    // Shutdown: readiness turns 503 within the delay, and the pod outlives delay + grace.
    let delay = config.limits.shutdown_delay_ms;
    let grace = config.limits.shutdown_grace_ms;
    if delay == 0 {
        problems.push(
            "config limits.shutdown_delay_ms is 0: the listener closes before the endpoints see \
             /readyz 503"
                .into(),
        );
    }
    let period = int(container, "/readinessProbe/periodSeconds").unwrap_or(10);
    let failures = int(container, "/readinessProbe/failureThreshold").unwrap_or(3);
    if period * failures * 1000 > delay {
        problems.push(format!(
            "readinessProbe notices a drain after up to {} s, longer than shutdown_delay_ms {delay}",
            period * failures
        ));
    }
    match int(
        deployment,
        "/spec/template/spec/terminationGracePeriodSeconds",
    ) {
        Some(s) if s * 1000 > delay + grace => {}
        other => problems.push(format!(
            "terminationGracePeriodSeconds {other:?} must exceed (shutdown_delay_ms + \
             shutdown_grace_ms) / 1000 = {} s",
            (delay + grace) / 1000
        )),
    }

    // Security.
    let pod_security = &deployment["spec"]["template"]["spec"]["securityContext"];
    let security = &container["securityContext"];
    for (what, ok) in [
        (
            "runAsNonRoot",
            security["runAsNonRoot"] == true
                || (pod_security["runAsNonRoot"] == true && security["runAsNonRoot"].is_null()),
        ),
        (
            "readOnlyRootFilesystem",
            security["readOnlyRootFilesystem"] == true,
        ),
        (
            "allowPrivilegeEscalation false",
            security["allowPrivilegeEscalation"] == false,
        ),
    ] {
        if !ok {
            problems.push(format!("container securityContext: {what} is not set"));
        }
    }
    if container.pointer("/resources/requests").is_none()
        || container.pointer("/resources/limits/memory").is_none()
    {
        problems.push("container resources: requests and a memory limit are needed".into());
    }

    // The Service reaches the SPI; the HPA, the PDB and the Service select this Deployment's pods.
    let pod_labels = &deployment["spec"]["template"]["metadata"]["labels"];
    let selects_pods = |selector: &Value| {
        selector
            .as_object()
            .is_some_and(|s| !s.is_empty() && s.iter().all(|(k, v)| pod_labels.get(k) == Some(v)))
    };
    if !selects_pods(&deployment["spec"]["selector"]["matchLabels"]) {
        problems.push("Deployment selector does not match its pod labels".into());
    }
    if let Ok(service) = d.object("Service", DEPLOYMENT) {
        if !selects_pods(&service["spec"]["selector"]) {
            problems.push("Service selector does not match the pods".into());
        }
        let ports: Vec<&Value> = items(service, "/spec/ports").collect();
        if ports.is_empty() {
            problems.push("Service has no port".into());
        }
        for port in ports {
            let target = resolve_port(container, &port["targetPort"]);
            if target != Some(listen.port()) {
                problems.push(format!(
                    "Service targetPort {} is {target:?}, not the SPI port {}",
                    port["targetPort"],
                    listen.port()
                ));
            }
        }
    }
    if let Ok(pdb) = d.object("PodDisruptionBudget", DEPLOYMENT)
        && !selects_pods(&pdb["spec"]["selector"]["matchLabels"])
    {
        problems.push("PodDisruptionBudget selector does not match the pods".into());
    }
    if let Some(cluster) = &config.cluster {
        problems.extend(redis_problems(d, cluster.redis_url.expose()));
    }
    if let Ok(hpa) = d.object("HorizontalPodAutoscaler", DEPLOYMENT) {
        let target = &hpa["spec"]["scaleTargetRef"];
        if target["kind"] != "Deployment" || target["name"] != DEPLOYMENT {
            problems.push("HorizontalPodAutoscaler does not scale the Deployment".into());
        }
    }
    // Without [cluster] each pod takes rate_per_second / replicas for good, so the HPA is bound
    // to `replicas`. With it the budget is one, in Redis, and `replicas` is only the share while
    // Redis is away: the HPA is free.
    if let (Ok(hpa), None) = (
        d.object("HorizontalPodAutoscaler", DEPLOYMENT),
        &config.cluster,
    ) {
        // At the HPA's maximum, a rolling update adds maxSurge pods (25% by default, rounded
        // up); each pod takes rate_per_second / replicas, so replicas must cover them all.
        let max = int(hpa, "/spec/maxReplicas").unwrap_or(u64::MAX);
        let surge = match deployment.pointer("/spec/strategy/rollingUpdate/maxSurge") {
            Some(Value::Number(n)) => n.as_u64().unwrap_or(0),
            Some(Value::String(p)) => {
                let percent: u64 = p.trim_end_matches('%').parse().unwrap_or(100);
                (max * percent).div_ceil(100)
            }
            _ => max.div_ceil(4),
        };
        if u64::from(config.voyado.replicas) < max.saturating_add(surge) {
            problems.push(format!(
                "config voyado.replicas = {} is below the HPA's maxReplicas {max} + maxSurge \
                 {surge}: at the maximum, during a rollout, the pods together would exceed \
                 Voyado's rate budget",
                config.voyado.replicas
            ));
        }
    }
    problems
}

/// The `[cluster]` Redis is one the manifests run — a Service whose port is the URL's (a host
/// without a dot) — or an external one (a host with a domain); the Secret the proxy reads holds
/// the password a `${NAME}` in the URL names (checked with the rest of the environment).
fn redis_problems(d: &Deploy, redis_url: &str) -> Vec<String> {
    let Ok(url) = url::Url::parse(redis_url) else {
        return vec!["config cluster.redis_url is not a URL".into()];
    };
    let host = url.host_str().unwrap_or_default();
    if host.contains('.') {
        return Vec::new();
    }
    let Ok(service) = d.object("Service", host) else {
        return vec![format!(
            "config cluster.redis_url names host {host}, which is no Service under \
             deploy/kubernetes (give an external Redis' full host name, or add the Service)"
        )];
    };
    let port = u64::from(url.port().unwrap_or(6379));
    if !items(service, "/spec/ports").any(|p| int(p, "/port") == Some(port)) {
        return vec![format!(
            "config cluster.redis_url's port {port} is not a port of Service {host}"
        )];
    }
    Vec::new()
}

// --- Metrics in alerts and the dashboard ---

/// Sample name → label name → the values seen, from the proxy's own exposition after one of each
/// kind of sample was recorded (a labelled family appears only after its first sample), with
/// the outcome labels the Voyado client really uses.
fn exported() -> BTreeMap<String, BTreeMap<String, BTreeSet<String>>> {
    let metrics = Metrics::new();
    let d = Duration::from_millis(30);
    for status in [200, 400, 404, 429, 502, 503, 504] {
        metrics.emit(RequestDone {
            operation: "get_customer",
            status,
            elapsed: d,
            request: RequestFields::default(),
        });
    }
    let _in_flight = metrics.in_flight();
    metrics.shed(Shed::Requests);
    metrics.shed(Shed::Connections);
    let endpoint = "/api/v2/contacts/{}";
    metrics.emit(VoyadoCall {
        endpoint,
        elapsed: d,
        answer: VoyadoAnswer::Answered { status: 200 },
    });
    for error in [
        VoyadoError::from_body(429, b"{}", Some(1)),
        VoyadoError::from_body(500, b"{}", None),
        VoyadoError::from_body(400, b"{}", None),
        VoyadoError::Timeout,
        VoyadoError::Connect,
        VoyadoError::Malformed,
        VoyadoError::TooLarge,
    ] {
        metrics.emit(VoyadoCall {
            endpoint,
            elapsed: d,
            answer: VoyadoAnswer::Failed {
                outcome: error.outcome(),
                error: &error,
            },
        });
    }
    metrics.cache("/api/v2/contacts/{}", true);
    metrics.cache("card", false);
    metrics.breaker_state("devshop.voyado.com", 1);
    metrics.throttled("devshop.voyado.com");
    let (id, ids) = ("8f0c1d2e-0000-4000-8000-000000000001", [String::new()]);
    metrics.emit(PromotionUndoRefused {
        customer_id: Guid(id),
        promotions: Guids(&ids),
    });
    metrics.emit(PromotionsRedeemedBeforeFailure {
        customer_id: Guid(id),
        promotions: Guids(&ids),
    });
    metrics.emit(RedeemRollbackFailed {
        bonus_check_id: Guid(id),
        e: &VoyadoError::Timeout,
        after: Compensating::Redeem,
    });
    metrics.emit(WriteTasksAbandoned { count: 1 });
    metrics.redeem_replayed();
    metrics.emit(RedisLost { reason: "timeout" });
    metrics.cluster_fallback(Fallback::Budget);
    let mut out: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for line in metrics.render().lines().filter(|l| !l.starts_with('#')) {
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let labels = out.entry(line[..name_end].to_owned()).or_default();
        if line[name_end..].starts_with('{') {
            for (k, v) in label_pairs(&line[name_end + 1..]) {
                labels.entry(k).or_default().insert(v);
            }
        }
    }
    out
}

/// `k="v",k2="v2"}...` (exposition or PromQL matchers with `=`) → pairs, up to the closing brace;
/// values may hold braces and escaped quotes.
fn label_pairs(s: &str) -> Vec<(String, String)> {
    matchers(s)
        .into_iter()
        .map(|(name, _, value)| (name, value))
        .collect()
}

/// PromQL label matchers `name op "value"` up to the closing brace.
fn matchers(s: &str) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        if chars.peek().is_none_or(|c| *c == '}') {
            return out;
        }
        let mut name = String::new();
        while let Some(c) = chars.next_if(|c| c.is_ascii_alphanumeric() || *c == '_') {
            name.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut op = String::new();
        while let Some(c) = chars.next_if(|c| matches!(c, '=' | '!' | '~')) {
            op.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('"') {
            return out;
        }
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => value.extend(chars.next()),
                '"' => break,
                c => value.push(c),
            }
        }
        out.push((name, op, value));
    }
}

/// Every PromQL expression in the alert rules (`expr`) and the dashboard (`expr`, and template
/// `query` strings), with where it was found.
fn expressions(d: &Deploy) -> Vec<(String, String)> {
    fn walk(at: &str, value: &Value, out: &mut Vec<(String, String)>) {
        match value {
            Value::Object(map) => {
                let name = map
                    .get("alert")
                    .or_else(|| map.get("title"))
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let here = if name.is_empty() {
                    at.to_owned()
                } else {
                    format!("{at} {name:?}")
                };
                for (k, v) in map {
                    match (k.as_str(), v) {
                        ("expr" | "query", Value::String(e)) => out.push((here.clone(), e.clone())),
                        _ => walk(&here, v, out),
                    }
                }
            }
            Value::Array(list) => list.iter().for_each(|v| walk(at, v, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk("alerts.yaml", &d.alerts, &mut out);
    walk("sitoo-voyado-proxy.json", &d.dashboard, &mut out);
    out
}

fn metrics_problems(d: &Deploy) -> Vec<String> {
    let exported = exported();
    let mut problems = Vec::new();
    let all = expressions(d);
    if !all.iter().any(|(at, _)| at.starts_with("alerts.yaml"))
        || !all
            .iter()
            .any(|(at, _)| at.starts_with("sitoo-voyado-proxy.json"))
    {
        problems.push("alerts.yaml and the dashboard must both have expressions".into());
    }
    for (at, expr) in &all {
        let mut labels_here: BTreeSet<String> = ["le".to_owned()].into();
        let mut rest = expr.as_str();
        while let Some(start) = rest.find("svp_") {
            let boundary = rest[..start]
                .chars()
                .last()
                .is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_'));
            let tail = &rest[start..];
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(tail.len());
            let name = &tail[..end];
            rest = &tail[end..];
            if !boundary {
                continue;
            }
            let Some(labels) = exported.get(name) else {
                problems.push(format!(
                    "{at}: {name} is not a metric the proxy exports (counters end in _total, \
                     histograms in _bucket/_sum/_count)"
                ));
                continue;
            };
            labels_here.extend(labels.keys().cloned());
            if let Some(inner) = rest.strip_prefix('{') {
                for (label, op, value) in matchers(inner) {
                    match labels.get(&label) {
                        None => problems.push(format!("{at}: {name} has no label {label}")),
                        Some(values) if op == "=" && !values.contains(&value) => {
                            problems.push(format!(
                                "{at}: {name}{{{label}=\"{value}\"}} matches nothing the proxy \
                                 records (it records {values:?})"
                            ))
                        }
                        Some(_) => {}
                    }
                }
            }
        }
        // `by (...)` / `without (...)` name labels of the metrics in the expression.
        for keyword in ["by", "without"] {
            let mut rest = expr.as_str();
            while let Some(at_kw) = rest.find(keyword) {
                let before = rest[..at_kw].chars().last();
                let after = rest[at_kw + keyword.len()..].trim_start();
                rest = &rest[at_kw + keyword.len()..];
                if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                    continue;
                }
                let Some(list) = after.strip_prefix('(') else {
                    continue;
                };
                let list = &list[..list.find(')').unwrap_or(list.len())];
                for label in list.split(',').map(str::trim).filter(|l| !l.is_empty()) {
                    if !labels_here.contains(label) {
                        problems.push(format!(
                            "{at}: {keyword} ({label}) is not a label of the metrics in {expr:?}"
                        ));
                    }
                }
            }
        }
    }

    // The rules are complete rules.
    let mut names = BTreeSet::new();
    let rules: Vec<&Value> = items(&d.alerts, "/groups")
        .flat_map(|g| items(g, "/rules"))
        .collect();
    if rules.is_empty() {
        problems.push("alerts.yaml: no rules".into());
    }
    for rule in rules {
        let name = text(rule, "/alert").unwrap_or("");
        if name.is_empty() || !names.insert(name.to_owned()) {
            problems.push(format!(
                "alerts.yaml: alert name {name:?} missing or repeated"
            ));
        }
        for key in ["/expr", "/labels/severity", "/annotations/summary"] {
            if text(rule, key).is_none() {
                problems.push(format!("alerts.yaml: {name} has no {key}"));
            }
        }
    }
    problems
}

// --- The Dockerfile ---

/// Instructions with continuation lines joined (heredoc bodies are left out).
fn instructions(dockerfile: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut heredoc: Option<String> = None;
    for line in dockerfile.lines() {
        if let Some(end) = &heredoc {
            if line.trim() == end {
                heredoc = None;
            }
            continue;
        }
        let trimmed = line.trim();
        if current.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        if let Some(body) = trimmed.strip_suffix('\\') {
            current.push_str(body);
            current.push(' ');
            continue;
        }
        current.push_str(trimmed);
        if let Some(at) = current.find("<<") {
            let marker = current[at + 2..].trim_start_matches('-');
            let marker: String = marker
                .trim_start_matches(['\'', '"'])
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            heredoc = Some(marker);
        }
        out.push(std::mem::take(&mut current));
    }
    out
}

fn docker_problems(d: &Deploy) -> Vec<String> {
    let mut problems = Vec::new();
    let lines = instructions(&d.dockerfile);
    let find = |word: &str| -> Vec<&str> {
        lines
            .iter()
            .filter_map(|l| {
                l.strip_prefix(word)
                    .filter(|rest| rest.starts_with(' '))
                    .map(str::trim)
            })
            .collect()
    };

    // The builder is the pinned toolchain.
    let channel = d
        .toolchain
        .lines()
        .find_map(|l| l.trim().strip_prefix("channel"))
        .map(|v| v.trim_start_matches([' ', '=']).trim().trim_matches('"'))
        .unwrap_or_default();
    let rust_version = find("ARG")
        .into_iter()
        .find_map(|a| a.strip_prefix("RUST_VERSION="));
    let froms = find("FROM");
    let builder_from = froms.first().copied().unwrap_or_default();
    let builder = builder_from.replace("${RUST_VERSION}", rust_version.unwrap_or(""));
    if !builder.starts_with(&format!("rust:{channel}-")) {
        problems.push(format!(
            "Dockerfile builder `FROM {builder_from}` (RUST_VERSION {rust_version:?}) is not the \
             rust-toolchain.toml channel {channel}"
        ));
    }
    if froms.len() < 2 {
        problems.push("Dockerfile: not multi-stage".into());
    }

    // Runs as a non-root user, answers health, exposes the ports.
    let user = find("USER").last().copied().unwrap_or("root");
    if matches!(user.split(':').next(), Some("root" | "0")) {
        problems.push(format!("Dockerfile: USER {user} is root"));
    }
    if !find("HEALTHCHECK").iter().any(|h| h.contains("/healthz")) {
        problems.push("Dockerfile: no HEALTHCHECK on /healthz".into());
    }
    let exposed: BTreeSet<&str> = find("EXPOSE")
        .into_iter()
        .flat_map(|e| e.split_whitespace())
        .collect();
    if let Ok(container) = d.container() {
        for port in items(container, "/ports").filter_map(|p| int(p, "/containerPort")) {
            if !exposed.contains(port.to_string().as_str()) {
                problems.push(format!(
                    "Dockerfile EXPOSE {exposed:?} lacks container port {port}"
                ));
            }
        }
        // The image's default command serves the config where the Deployment mounts it.
        let cmd = find("CMD").last().copied().unwrap_or_default();
        if let Some(file) = arg(container, "--config")
            && !cmd.contains(&format!("\"{file}\""))
        {
            problems.push(format!(
                "Dockerfile CMD {cmd} does not serve --config {file} (the Deployment's)"
            ));
        }
    }
    // `docker run IMAGE demo` listens where -p can reach it.
    let code: String = d
        .dockerfile
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    let demo_listen = code
        .split("--listen ")
        .skip(1)
        .filter_map(|s| s.split_whitespace().next())
        .find_map(|a| a.parse::<SocketAddr>().ok());
    match demo_listen {
        Some(a) if a.ip().is_unspecified() && exposed.contains(a.port().to_string().as_str()) => {}
        other => problems.push(format!(
            "Dockerfile: `demo` must get --listen 0.0.0.0:<an EXPOSEd port>, found {other:?}"
        )),
    }
    problems
}

fn all_problems(d: &Deploy) -> Vec<String> {
    let mut all = kubernetes_problems(d);
    all.extend(metrics_problems(d));
    all.extend(docker_problems(d));
    all
}

fn assert_none(problems: Vec<String>) {
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn every_file_under_deploy_parses() {
    let files = files_under(&root().join("deploy"));
    assert!(files.len() >= 8, "{files:?}");
    let errors: Vec<String> = files.iter().filter_map(|f| parse(f).err()).collect();
    assert_none(errors);
}

#[test]
fn the_deployed_config_passes_check_with_the_repository_mappings() {
    let config = deployed_config(&Deploy::load()).unwrap_or_else(|e| panic!("{e}"));
    assert!(!config.markets.is_empty());
}

#[test]
fn kubernetes_manifests_agree_with_the_config_and_the_code() {
    assert_none(kubernetes_problems(&Deploy::load()));
}

#[test]
fn alerts_and_dashboard_use_only_exported_metrics() {
    assert_none(metrics_problems(&Deploy::load()));
}

#[test]
fn dockerfile_agrees_with_the_toolchain_and_the_deployment() {
    assert_none(docker_problems(&Deploy::load()));
}

/// Each file broken one way at a time: the checks above report it.
#[test]
fn each_check_catches_a_broken_file() {
    let good = Deploy::load();
    assert_none(all_problems(&good));

    type Break = Box<dyn Fn(&mut Deploy)>;
    fn container(d: &mut Deploy) -> &mut Value {
        d.object_mut("Deployment", DEPLOYMENT)
            .pointer_mut(CONTAINER)
            .unwrap()
    }
    let config_toml = |d: &mut Deploy, from: &str, to: &str| {
        let cm = d.object_mut("ConfigMap", "sitoo-voyado-proxy-config");
        let text = cm["data"]["config.toml"].as_str().unwrap();
        assert!(text.contains(from), "config.toml has no {from:?}");
        cm["data"]["config.toml"] = json!(text.replacen(from, to, 1));
    };
    let alert_expr = |d: &mut Deploy, expr: &str| {
        d.alerts["groups"][0]["rules"][0]["expr"] = json!(expr);
    };
    let cases: Vec<(&str, Break)> = vec![
        (
            "livenessProbe path",
            Box::new(move |d: &mut Deploy| {
                container(d)["livenessProbe"]["httpGet"]["path"] = json!("/health")
            }),
        ),
        (
            "readinessProbe port",
            Box::new(move |d: &mut Deploy| {
                container(d)["readinessProbe"]["httpGet"]["port"] = json!(8081)
            }),
        ),
        (
            "readinessProbe notices a drain",
            Box::new(move |d: &mut Deploy| {
                container(d)["readinessProbe"]["periodSeconds"] = json!(10)
            }),
        ),
        (
            "terminationGracePeriodSeconds",
            Box::new(|d: &mut Deploy| {
                d.object_mut("Deployment", DEPLOYMENT)["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] =
                    json!(25)
            }),
        ),
        (
            "terminationGracePeriodSeconds",
            Box::new(move |d: &mut Deploy| {
                config_toml(d, "shutdown_grace_ms = 20000", "shutdown_grace_ms = 40000")
            }),
        ),
        (
            "shutdown_delay_ms is 0",
            Box::new(move |d: &mut Deploy| {
                config_toml(d, "shutdown_delay_ms = 5000", "shutdown_delay_ms = 0")
            }),
        ),
        (
            "readOnlyRootFilesystem",
            Box::new(move |d: &mut Deploy| {
                container(d)["securityContext"]["readOnlyRootFilesystem"] = json!(false)
            }),
        ),
        (
            "runAsNonRoot",
            Box::new(move |d: &mut Deploy| {
                container(d)["securityContext"]["runAsNonRoot"] = json!(false)
            }),
        ),
        (
            "container ports",
            Box::new(move |d: &mut Deploy| container(d)["ports"][1]["containerPort"] = json!(9091)),
        ),
        (
            "must listen on 0.0.0.0",
            Box::new(move |d: &mut Deploy| {
                config_toml(
                    d,
                    "admin_listen = \"0.0.0.0:",
                    "admin_listen = \"127.0.0.1:",
                )
            }),
        ),
        (
            "Service targetPort",
            Box::new(|d: &mut Deploy| {
                d.object_mut("Service", DEPLOYMENT)["spec"]["ports"][0]["targetPort"] =
                    json!("admin")
            }),
        ),
        (
            "prometheus.io/port",
            Box::new(|d: &mut Deploy| {
                d.object_mut("Deployment", DEPLOYMENT)["spec"]["template"]["metadata"]["annotations"]
                    ["prometheus.io/port"] = json!("8080")
            }),
        ),
        (
            // Only without [cluster] does `replicas` bind the HPA.
            "below the HPA's maxReplicas 8 + maxSurge 1",
            Box::new(|d: &mut Deploy| {
                let cm = d.object_mut("ConfigMap", "sitoo-voyado-proxy-config");
                let text = cm["data"]["config.toml"].as_str().unwrap().to_owned();
                let at = text.find("[cluster]\n").expect("config.toml has [cluster]");
                let end = at + text[at..].find("\n\n").unwrap();
                cm["data"]["config.toml"] = json!(format!("{}{}", &text[..at], &text[end..]));
                d.object_mut("HorizontalPodAutoscaler", DEPLOYMENT)["spec"]["maxReplicas"] =
                    json!(8)
            }),
        ),
        (
            "which is no Service under deploy/kubernetes",
            Box::new(move |d: &mut Deploy| config_toml(d, "@sitoo-voyado-proxy-redis:", "@redis:")),
        ),
        (
            "is not a port of Service sitoo-voyado-proxy-redis",
            Box::new(move |d: &mut Deploy| {
                config_toml(
                    d,
                    "sitoo-voyado-proxy-redis:6379",
                    "sitoo-voyado-proxy-redis:6380",
                )
            }),
        ),
        (
            "REDIS_PASSWORD is not set",
            Box::new(|d: &mut Deploy| {
                let secret = d.object_mut("Secret", "sitoo-voyado-proxy-keys");
                secret["stringData"]
                    .as_object_mut()
                    .unwrap()
                    .remove("REDIS_PASSWORD");
            }),
        ),
        (
            "svp_cluster_up has no label what",
            Box::new(move |d: &mut Deploy| alert_expr(d, "svp_cluster_up{what=\"budget\"} == 0")),
        ),
        (
            "is not set",
            Box::new(|d: &mut Deploy| {
                let secret = d.object_mut("Secret", "sitoo-voyado-proxy-keys");
                secret["stringData"]
                    .as_object_mut()
                    .unwrap()
                    .remove("VOYADO_API_KEY_DEVSHOP");
            }),
        ),
        (
            "must be a placeholder",
            Box::new(|d: &mut Deploy| {
                let secret = d.object_mut("Secret", "sitoo-voyado-proxy-keys");
                secret["stringData"]["VOYADO_API_KEY_DEVSHOP"] = json!("a-real-looking-key");
            }),
        ),
        (
            "differs from mappings/routes.toml",
            Box::new(|d: &mut Deploy| {
                let cm = d.object_mut("ConfigMap", "sitoo-voyado-proxy-mappings");
                let routes = cm["data"]["routes.toml"].as_str().unwrap().to_owned();
                cm["data"]["routes.toml"] = json!(format!("{routes}\n# edited\n"));
            }),
        ),
        (
            "not the repository's",
            Box::new(move |d: &mut Deploy| {
                let volumes = &mut d.object_mut("Deployment", DEPLOYMENT)["spec"]["template"]["spec"]
                    ["volumes"][0]["projected"]["sources"][1]["configMap"]["items"];
                volumes.as_array_mut().unwrap().pop();
            }),
        ),
        (
            "svp_requests is not a metric",
            Box::new(move |d: &mut Deploy| alert_expr(d, "sum(rate(svp_requests[5m])) > 0")),
        ),
        (
            "has no label endpoint",
            Box::new(move |d: &mut Deploy| {
                alert_expr(
                    d,
                    "sum(rate(svp_voyado_throttled_total{endpoint=\"x\"}[5m])) > 0",
                )
            }),
        ),
        (
            "matches nothing the proxy records",
            Box::new(move |d: &mut Deploy| {
                alert_expr(
                    d,
                    "sum(increase(svp_voyado_calls_total{outcome=\"too_many_requests\"}[10m])) > 0",
                )
            }),
        ),
        (
            "by (tenant)",
            Box::new(move |d: &mut Deploy| {
                alert_expr(
                    d,
                    "sum by (tenant) (rate(svp_voyado_throttled_total[5m])) > 0",
                )
            }),
        ),
        (
            "svp_voyado_breaker is not a metric",
            Box::new(|d: &mut Deploy| {
                d.dashboard["panels"][1]["targets"][0]["expr"] = json!("max(svp_voyado_breaker)")
            }),
        ),
        (
            "rust-toolchain.toml channel",
            Box::new(|d: &mut Deploy| {
                d.dockerfile = d.dockerfile.replace("RUST_VERSION=1.", "RUST_VERSION=0.")
            }),
        ),
        (
            "is root",
            Box::new(|d: &mut Deploy| {
                d.dockerfile = d.dockerfile.replace("USER 10001:10001", "USER 0")
            }),
        ),
        (
            "must get --listen 0.0.0.0",
            Box::new(|d: &mut Deploy| {
                d.dockerfile = d
                    .dockerfile
                    .replace("--listen 0.0.0.0:8080", "--listen 127.0.0.1:8080")
            }),
        ),
        (
            "does not serve --config",
            Box::new(|d: &mut Deploy| {
                d.dockerfile = d
                    .dockerfile
                    .replace("/etc/sitoo-voyado-proxy/config.toml\"]", "/config.toml\"]")
            }),
        ),
    ];
    for (expected, break_it) in cases {
        let mut broken = good.clone();
        break_it(&mut broken);
        let problems = all_problems(&broken);
        assert!(
            problems.iter().any(|p| p.contains(expected)),
            "breaking for {expected:?} was not reported; problems: {problems:#?}"
        );
    }
}
