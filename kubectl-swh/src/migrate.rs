//! `kubectl swh migrate`: a Service becomes a ServiceWithHealthchecks with the same spec and
//! probes proposed from the selected pods' readinessProbes.
//!
//! - `migrate svc/NAME`: prints the proposal (YAML, v1beta1 or `--api-version v1alpha1`).
//! - `--dry-run`: what `--apply` would change, as a diff (`kubectl diff` exit codes).
//! - `--apply`: creates the SWH with the adopt annotation, waits for the controller's handover
//!   (Service without selector, owned by the SWH) and rolls back on timeout. On a terminal a
//!   status line says what it waits for (endpoints carried by agent slices so far / needed, time
//!   left before the rollback), redrawn in place; elsewhere the output is line by line.
//! - `-f FILE|-`: offline; converts every Service of a multi-document file or `List`, other
//!   documents are kept byte for byte.

use std::collections::{BTreeMap, BTreeSet};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
    Preconditions, PropagationPolicy,
};
use kube::{Api, Client};
use serde_json::{Value, json};
use serde_yaml::Value as Yaml;
use swh_api::conversion;
use swh_api::service_to_swh::{FromServiceError, from_service};
use swh_api::v1beta1::{
    GrpcProbe, HttpHeader, HttpProbe, HttpScheme, Probe, ProbeMode, ServiceWithHealthchecks,
    TcpProbe,
};

use crate::args::{ApiVersion, GlobalArgs, MigrateArgs, service_target};
use crate::progress::{self, StatusLine};
use crate::{Error, FIELD_MANAGER, Out, output};

// ------------------------------------------------------------------------------------------
// Probe proposal (pure)
// ------------------------------------------------------------------------------------------

/// A pod (or pod template) whose readinessProbes inform the proposal.
#[derive(Debug, Clone, Default)]
pub struct PodSource {
    /// How to name it in comments: `pod web-0`, `Deployment/web`.
    pub origin: String,
    pub labels: BTreeMap<String, String>,
    pub spec: PodSpec,
}

/// A proposed probe and where it came from (written as a YAML comment above it).
#[derive(Debug, Clone, PartialEq)]
pub struct Proposal {
    pub probe: Probe,
    pub comment: String,
}

/// `true` when every selector entry is among `labels` (an empty selector selects nothing here:
/// a Service without a selector has no pods of its own).
pub fn selects(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

fn resolve_port(port: &IntOrString, containers: &[&Container]) -> (IntOrString, Option<String>) {
    match port {
        IntOrString::Int(_) => (port.clone(), None),
        IntOrString::String(name) => {
            if let Ok(n) = name.parse::<i32>() {
                return (IntOrString::Int(n), None);
            }
            let found = containers.iter().find_map(|c| {
                c.ports
                    .as_deref()
                    .unwrap_or_default()
                    .iter()
                    .find(|p| p.name.as_deref() == Some(name.as_str()))
                    .map(|p| p.container_port)
            });
            match found {
                Some(n) => (
                    IntOrString::Int(n),
                    Some(format!("named port {name} resolved to {n}")),
                ),
                None => (
                    port.clone(),
                    Some(format!(
                        "named port {name} not found in the container; kept by name"
                    )),
                ),
            }
        }
    }
}

fn port_label(p: &IntOrString) -> String {
    match p {
        IntOrString::Int(n) => n.to_string(),
        IntOrString::String(s) => s.to_lowercase(),
    }
}

/// The probe a kubelet readinessProbe becomes, with notes; `None` for exec (and empty) probes.
fn from_readiness(c: &Container) -> Option<(Probe, &'static str, Vec<String>)> {
    let rp = c.readiness_probe.as_ref()?;
    let mut notes = Vec::new();
    let own = [c];
    let mut probe = Probe {
        timeout_seconds: rp.timeout_seconds,
        success_threshold: rp.success_threshold,
        failure_threshold: rp.failure_threshold,
        period_seconds: rp.period_seconds,
        // The kubelet's default initial delay is 0 (the SWH default is 10).
        initial_delay_seconds: Some(rp.initial_delay_seconds.unwrap_or(0)),
        ..Default::default()
    };
    let kind = if let Some(h) = &rp.http_get {
        let (port, note) = resolve_port(&h.port, &own);
        notes.extend(note);
        let mut host = None;
        let mut headers = Vec::new();
        for hh in h.http_headers.as_deref().unwrap_or_default() {
            if hh.name.eq_ignore_ascii_case("host") {
                host = Some(hh.value.clone());
            } else {
                headers.push(HttpHeader {
                    name: hh.name.clone(),
                    value: hh.value.clone(),
                });
            }
        }
        if let Some(hst) = h.host.as_deref().filter(|h| !h.is_empty()) {
            notes.push(format!(
                "httpGet.host {hst} not used: the agent always dials the pod IP"
            ));
        }
        let https = h.scheme.as_deref() == Some("HTTPS");
        probe.mode = ProbeMode::Http;
        probe.http = Some(HttpProbe {
            port,
            path: h.path.clone().filter(|p| !p.is_empty()),
            host,
            scheme: https.then_some(HttpScheme::Https),
            // The kubelet does not verify certificates either.
            insecure_skip_tls_verify: https.then_some(true),
            http_headers: (!headers.is_empty()).then_some(headers),
            ..Default::default()
        });
        "httpGet"
    } else if let Some(t) = &rp.tcp_socket {
        let (port, note) = resolve_port(&t.port, &own);
        notes.extend(note);
        probe.mode = ProbeMode::Tcp;
        probe.tcp = Some(TcpProbe { port });
        "tcpSocket"
    } else if let Some(g) = &rp.grpc {
        probe.mode = ProbeMode::Grpc;
        probe.grpc = Some(GrpcProbe {
            port: IntOrString::Int(g.port),
            service: g.service.clone().filter(|s| !s.is_empty()),
        });
        "grpc"
    } else {
        return None;
    };
    Some((probe, kind, notes))
}

fn probe_port(p: &Probe) -> Option<&IntOrString> {
    p.http
        .as_ref()
        .map(|h| &h.port)
        .or(p.tcp.as_ref().map(|t| &t.port))
        .or(p.grpc.as_ref().map(|g| &g.port))
        .or(p.postgre_sql.as_ref().map(|g| &g.port))
}

fn unique_name(base: String, taken: &mut BTreeSet<String>) -> String {
    let base: String = base.chars().take(55).collect();
    let base = base.trim_end_matches('-').to_string();
    let mut name = base.clone();
    let mut n = 2;
    while taken.contains(&name) {
        name = format!("{base}-{n}");
        n += 1;
    }
    taken.insert(name.clone());
    name
}

fn more(origins: &[String]) -> String {
    match origins.len() {
        0 => String::new(),
        1 => origins[0].clone(),
        n => format!("{} (and {} more)", origins[0], n - 1),
    }
}

/// A probe found in readinessProbes: (dedup key, probe, kind, container, notes, origins).
type Found = (
    String,
    Probe,
    &'static str,
    String,
    Vec<String>,
    Vec<String>,
);

/// Probes for `svc` from the readinessProbes of `pods` (those the selector matches): httpGet →
/// HTTP, tcpSocket → TCP, grpc → GRPC, named ports resolved, identical probes merged. Without
/// any, one TCP probe per target port (`no_pods` says why in the comment when no pod matched).
pub fn propose(svc: &Service, pods: &[PodSource], no_pods: &str) -> Vec<Proposal> {
    let spec = svc.spec.clone().unwrap_or_default();
    let selector = spec.selector.clone().unwrap_or_default();
    let matching: Vec<&PodSource> = pods
        .iter()
        .filter(|p| selects(&selector, &p.labels))
        .collect();
    // key → (probe, kind, container, notes, origins)
    let mut found: Vec<Found> = Vec::new();
    let mut exec_only: Vec<String> = Vec::new();
    for pod in &matching {
        for c in &pod.spec.containers {
            match from_readiness(c) {
                Some((probe, kind, notes)) => {
                    let key = serde_json::to_string(&probe).unwrap_or_default();
                    match found.iter_mut().find(|f| f.0 == key) {
                        Some(f) => f.5.push(pod.origin.clone()),
                        None => found.push((
                            key,
                            probe,
                            kind,
                            c.name.clone(),
                            notes,
                            vec![pod.origin.clone()],
                        )),
                    }
                }
                None if c.readiness_probe.as_ref().is_some_and(|p| p.exec.is_some())
                    && !exec_only.contains(&c.name) =>
                {
                    exec_only.push(c.name.clone());
                }
                None => {}
            }
        }
    }
    let mut taken = BTreeSet::new();
    let mut out: Vec<Proposal> = found
        .into_iter()
        .map(|(_, mut probe, kind, container, notes, origins)| {
            let port = probe_port(&probe).map(port_label).unwrap_or_default();
            probe.name = unique_name(format!("{}-{port}", probe.mode.lower()), &mut taken);
            let mut comment = format!(
                "from readinessProbe.{kind} of container {container} in {}",
                more(&origins)
            );
            for n in notes {
                comment.push_str(&format!("; {n}"));
            }
            Proposal { probe, comment }
        })
        .collect();
    if out.is_empty() {
        let why = if !exec_only.is_empty() {
            format!(
                "the readinessProbe of container {} is exec, which the agent cannot run",
                exec_only.join(", ")
            )
        } else if matching.is_empty() {
            no_pods.to_string()
        } else {
            "the selected pods have no readinessProbe".to_string()
        };
        let containers: Vec<&Container> = matching
            .iter()
            .flat_map(|p| p.spec.containers.iter())
            .collect();
        let mut seen = BTreeSet::new();
        for p in spec.ports.as_deref().unwrap_or_default() {
            let proto = p.protocol.as_deref().unwrap_or("TCP");
            if proto != "TCP" {
                continue;
            }
            let target = swh_api::defaults::effective_target_port(p);
            let (port, note) = resolve_port(&target, &containers);
            if !seen.insert(port_label(&port)) {
                continue;
            }
            let port_name = p
                .name
                .as_deref()
                .filter(|n| !n.is_empty())
                .map(|n| format!(" of port {n}"))
                .unwrap_or_default();
            let mut comment = format!(
                "TCP connect to targetPort {}{port_name}: {why}",
                port_label(&target)
            );
            if let (Some(n), false) = (note, matching.is_empty()) {
                comment.push_str(&format!("; {n}"));
            }
            let name = unique_name(format!("tcp-{}", port_label(&port)), &mut taken);
            out.push(Proposal {
                probe: Probe {
                    name,
                    mode: ProbeMode::Tcp,
                    tcp: Some(TcpProbe { port }),
                    ..Default::default()
                },
                comment,
            });
        }
    }
    out
}

/// The SWH for `svc` with `proposals`, in `version`, as a YAML value, plus the comment of each
/// probe in order.
pub fn build_swh(
    svc: &Service,
    proposals: &[Proposal],
    version: ApiVersion,
) -> Result<(Yaml, Vec<String>), BuildError> {
    let mut probes: Vec<Probe> = proposals.iter().map(|p| p.probe.clone()).collect();
    let mut swh: ServiceWithHealthchecks =
        from_service(svc, Vec::new()).map_err(BuildError::Service)?;
    if !probes.is_empty() {
        let mut hc = swh_api::v1beta1::Healthcheck::default();
        let periods: BTreeSet<Option<i32>> = probes.iter().map(|p| p.period_seconds).collect();
        if let [Some(p)] = periods.iter().collect::<Vec<_>>()[..] {
            hc.period_seconds = Some(*p);
            probes.iter_mut().for_each(|p| p.period_seconds = None);
        }
        let delays: BTreeSet<Option<i32>> =
            probes.iter().map(|p| p.initial_delay_seconds).collect();
        if let [Some(d)] = delays.iter().collect::<Vec<_>>()[..] {
            hc.initial_delay_seconds = Some(*d);
            probes
                .iter_mut()
                .for_each(|p| p.initial_delay_seconds = None);
        }
        if version == ApiVersion::V1Alpha1 {
            for (i, p) in probes.iter_mut().enumerate() {
                p.name = conversion::derived_probe_name(p.mode, i);
            }
        }
        hc.probes = Some(probes);
        swh.spec.healthcheck = Some(hc);
    }
    let comments = proposals.iter().map(|p| p.comment.clone()).collect();
    let value = match version {
        ApiVersion::V1Beta1 => serde_yaml::to_value(&swh),
        ApiVersion::V1Alpha1 => {
            let v = serde_json::to_value(&swh).map_err(|e| BuildError::Encode(e.to_string()))?;
            let alpha =
                conversion::to_v1alpha1(v).map_err(|e| BuildError::Encode(e.to_string()))?;
            serde_yaml::to_value(&alpha)
        }
    }
    .map_err(|e| BuildError::Encode(e.to_string()))?;
    Ok((strip_empty(value), comments))
}

/// Why an SWH could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Service(FromServiceError),
    #[error("encoding the ServiceWithHealthchecks: {0}")]
    Encode(String),
}

/// Drops `status` and empty `metadata` maps/`creationTimestamp: null` that typed serialization
/// may leave behind.
fn strip_empty(mut v: Yaml) -> Yaml {
    if let Some(m) = v.as_mapping_mut() {
        m.remove("status");
        if let Some(meta) = m.get_mut("metadata").and_then(Yaml::as_mapping_mut) {
            meta.retain(|_, val| match val {
                Yaml::Null => false,
                Yaml::Mapping(x) => !x.is_empty(),
                Yaml::Sequence(x) => !x.is_empty(),
                _ => true,
            });
        }
    }
    v
}

/// YAML of `value` with `# comment` lines above the items of each `probes:` list, the n-th
/// list taking the n-th group of comments.
pub fn yaml_with_comments(
    value: &Yaml,
    groups: &[Vec<String>],
) -> Result<String, serde_yaml::Error> {
    let text = serde_yaml::to_string(value)?;
    Ok(insert_probe_comments(&text, groups))
}

fn insert_probe_comments(text: &str, groups: &[Vec<String>]) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let probe_lists = lines
        .iter()
        .filter(|l| l.trim_start() == "probes:" || l.trim_start() == "- probes:")
        .count();
    if probe_lists != groups.len() {
        return text.to_string();
    }
    let mut out = String::new();
    let mut group = 0usize;
    let mut state: Option<(usize, usize)> = None; // (indent of "probes:", item index)
    for line in lines {
        let indent = line.len() - line.trim_start().len();
        if let Some((ind, idx)) = state {
            if line.starts_with(&format!("{}- ", " ".repeat(ind))) {
                if let Some(c) = groups.get(group - 1).and_then(|g| g.get(idx)) {
                    out.push_str(&format!("{}# {c}\n", " ".repeat(ind)));
                }
                state = Some((ind, idx + 1));
            } else if indent <= ind && !line.trim().is_empty() {
                state = None;
            }
        }
        out.push_str(line);
        out.push('\n');
        let t = line.trim_start();
        if t == "probes:" || t == "- probes:" {
            let ind = if t.starts_with("- ") {
                indent + 2
            } else {
                indent
            };
            group += 1;
            state = Some((ind, 0));
        }
    }
    out
}

// ------------------------------------------------------------------------------------------
// Offline: -f FILE (pure)
// ------------------------------------------------------------------------------------------

/// One YAML document of a file, as written.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RawDoc {
    /// The `---` line that opened it, if any (kept as written).
    pub separator: Option<String>,
    /// The text after the separator line.
    pub body: String,
    /// 1-based line number of the first line of `body`.
    pub start_line: usize,
}

/// Splits a multi-document YAML text at `---` lines (column 0), keeping everything.
pub fn split_documents(text: &str) -> Vec<RawDoc> {
    let mut docs = Vec::new();
    let mut cur = RawDoc {
        separator: None,
        body: String::new(),
        start_line: 1,
    };
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let bare = line.trim_end_matches(['\n', '\r']);
        let is_sep =
            bare == "---" || (bare.starts_with("---") && bare[3..].starts_with([' ', '\t']));
        if is_sep {
            if cur.separator.is_some() || !cur.body.is_empty() {
                docs.push(std::mem::take(&mut cur));
            }
            let rest = bare[3..].trim_start();
            if rest.is_empty() || rest.starts_with('#') {
                cur.separator = Some(line.to_string());
                cur.start_line = i + 2;
            } else {
                // Content on the separator line: `--- {a: 1}`.
                cur.separator = Some("---\n".to_string());
                cur.body.push_str(rest);
                cur.body.push('\n');
                cur.start_line = i + 1;
            }
        } else {
            cur.body.push_str(line);
        }
    }
    if cur.separator.is_some() || !cur.body.is_empty() {
        docs.push(cur);
    }
    docs
}

fn is_blank_doc(body: &str) -> bool {
    body.lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#') || l.trim() == "...")
}

/// Why a file could not be converted. Nothing is printed when this happens.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FileError {
    #[error("document {doc} (line {line}): invalid YAML: {message}")]
    Yaml {
        doc: usize,
        line: usize,
        message: String,
    },
    #[error("document {doc} (line {line}): {message}")]
    Object {
        doc: usize,
        line: usize,
        message: String,
    },
}

fn str_at<'a>(v: &'a Yaml, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Yaml::as_str)
}

fn is_service(v: &Yaml) -> bool {
    str_at(v, "kind") == Some("Service") && str_at(v, "apiVersion") == Some("v1")
}

fn object_name(v: &Yaml) -> String {
    let meta = v.get("metadata");
    let name = meta
        .and_then(|m| m.get("name"))
        .and_then(Yaml::as_str)
        .unwrap_or("<unnamed>");
    match meta.and_then(|m| m.get("namespace")).and_then(Yaml::as_str) {
        Some(ns) => format!("{ns}/{name}"),
        None => name.to_string(),
    }
}

/// Pod templates found in a document: Pods and the workloads that embed a template.
fn pod_sources(v: &Yaml, out: &mut Vec<(Option<String>, PodSource)>) {
    if let Some(items) = v.get("items").and_then(Yaml::as_sequence) {
        for i in items {
            pod_sources(i, out);
        }
        return;
    }
    let kind = str_at(v, "kind").unwrap_or_default();
    let template = match kind {
        "Pod" => Some(v.clone()),
        "Deployment"
        | "StatefulSet"
        | "DaemonSet"
        | "ReplicaSet"
        | "Job"
        | "ReplicationController" => v.get("spec").and_then(|s| s.get("template")).cloned(),
        "CronJob" => v
            .get("spec")
            .and_then(|s| s.get("jobTemplate"))
            .and_then(|s| s.get("spec"))
            .and_then(|s| s.get("template"))
            .cloned(),
        _ => None,
    };
    let Some(t) = template else { return };
    let Some(spec) = t
        .get("spec")
        .and_then(|s| serde_yaml::from_value::<PodSpec>(s.clone()).ok())
    else {
        return;
    };
    let labels = t
        .get("metadata")
        .and_then(|m| m.get("labels"))
        .and_then(|l| serde_yaml::from_value::<BTreeMap<String, String>>(l.clone()).ok())
        .unwrap_or_default();
    let ns = v
        .get("metadata")
        .and_then(|m| m.get("namespace"))
        .and_then(Yaml::as_str)
        .map(String::from);
    let name = v
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Yaml::as_str)
        .unwrap_or("<unnamed>");
    out.push((
        ns,
        PodSource {
            origin: format!("{kind}/{name}"),
            labels,
            spec,
        },
    ));
}

fn convert_service(
    v: &Yaml,
    templates: &[(Option<String>, PodSource)],
    version: ApiVersion,
) -> Result<(Yaml, Vec<String>), String> {
    let svc: Service = serde_yaml::from_value(v.clone())
        .map_err(|e| format!("service {}: {e}", object_name(v)))?;
    let ns = svc.metadata.namespace.clone();
    let pods: Vec<PodSource> = templates
        .iter()
        .filter(|(tns, _)| tns.is_none() || ns.is_none() || *tns == ns)
        .map(|(_, p)| p.clone())
        .collect();
    let proposals = propose(
        &svc,
        &pods,
        "no pod template in the file matches the selector",
    );
    build_swh(&svc, &proposals, version).map_err(|e| match e {
        BuildError::Service(e) => e.to_string(),
        e => format!("service {}: {e}", object_name(v)),
    })
}

/// Converts every Service in `text` (multi-document YAML, `List`s included); every other
/// document is kept as written, in order. All or nothing: the first error aborts.
pub fn migrate_file(text: &str, version: ApiVersion) -> Result<String, FileError> {
    let docs = split_documents(text);
    // Parse everything first (errors name the document and the line).
    let mut parsed: Vec<Option<Yaml>> = Vec::new();
    for (i, d) in docs.iter().enumerate() {
        if is_blank_doc(&d.body) {
            parsed.push(None);
            continue;
        }
        let padded = format!("{}{}", "\n".repeat(d.start_line - 1), d.body);
        match serde_yaml::from_str::<Yaml>(&padded) {
            Ok(v) => parsed.push(Some(v)),
            Err(e) => {
                return Err(FileError::Yaml {
                    doc: i + 1,
                    line: e.location().map(|l| l.line()).unwrap_or(d.start_line),
                    message: e.to_string(),
                });
            }
        }
    }
    let mut templates = Vec::new();
    for v in parsed.iter().flatten() {
        pod_sources(v, &mut templates);
    }
    let mut out = String::new();
    for (i, (d, v)) in docs.iter().zip(&parsed).enumerate() {
        let err = |message: String| FileError::Object {
            doc: i + 1,
            line: d.start_line,
            message,
        };
        if let Some(sep) = &d.separator {
            out.push_str(sep);
            if !sep.ends_with('\n') {
                out.push('\n');
            }
        }
        let Some(v) = v else {
            out.push_str(&d.body);
            continue;
        };
        if is_service(v) {
            let (swh, comments) = convert_service(v, &templates, version).map_err(err)?;
            let y = yaml_with_comments(&swh, &[comments]).map_err(|e| err(e.to_string()))?;
            out.push_str(&y);
            continue;
        }
        let items = v.get("items").and_then(Yaml::as_sequence);
        if let Some(items) = items.filter(|it| it.iter().any(is_service)) {
            let mut new_items = Vec::new();
            let mut groups = Vec::new();
            for (j, item) in items.iter().enumerate() {
                if is_service(item) {
                    let (swh, comments) = convert_service(item, &templates, version)
                        .map_err(|m| err(format!("items[{j}]: {m}")))?;
                    new_items.push(swh);
                    groups.push(comments);
                } else {
                    new_items.push(item.clone());
                }
            }
            let mut list = v.clone();
            if let Some(m) = list.as_mapping_mut() {
                m.insert("items".into(), Yaml::Sequence(new_items));
            }
            let y = yaml_with_comments(&list, &groups).map_err(|e| err(e.to_string()))?;
            out.push_str(&y);
            continue;
        }
        out.push_str(&d.body);
    }
    Ok(out)
}

// ------------------------------------------------------------------------------------------
// Diff (for --dry-run)
// ------------------------------------------------------------------------------------------

/// A unified-style diff of two texts (whole files as context), empty when they are equal.
pub fn diff(old_name: &str, new_name: &str, old: &str, new: &str) -> String {
    if old == new {
        return String::new();
    }
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    // LCS table (the objects are small).
    let mut l = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            l[i][j] = if a[i] == b[j] {
                l[i + 1][j + 1] + 1
            } else {
                l[i + 1][j].max(l[i][j + 1])
            };
        }
    }
    let mut out = format!(
        "--- {old_name}\n+++ {new_name}\n@@ -{},{} +{},{} @@\n",
        usize::from(!a.is_empty()),
        a.len(),
        usize::from(!b.is_empty()),
        b.len()
    );
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            out.push_str(&format!(" {}\n", a[i]));
            i += 1;
            j += 1;
        } else if j < b.len() && (i == a.len() || l[i][j + 1] >= l[i + 1][j]) {
            out.push_str(&format!("+{}\n", b[j]));
            j += 1;
        } else {
            out.push_str(&format!("-{}\n", a[i]));
            i += 1;
        }
    }
    out
}

// ------------------------------------------------------------------------------------------
// Live
// ------------------------------------------------------------------------------------------

fn swh_resource(version: ApiVersion) -> ApiResource {
    let mut ar = crate::status::api_resource();
    if version == ApiVersion::V1Alpha1 {
        ar.version = "v1alpha1".into();
        ar.api_version = swh_api::API_VERSION_V1ALPHA1.into();
    }
    ar
}

fn owned_by_swh(svc: &Service, name: &str) -> Option<OwnerReference> {
    svc.metadata
        .owner_references
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find(|o| {
            o.kind == swh_api::KIND && o.name == name && o.api_version.starts_with(swh_api::GROUP)
        })
        .cloned()
}

fn has_selector(svc: &Service) -> bool {
    svc.spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .is_some_and(|s| !s.is_empty())
}

fn selector_string(sel: &BTreeMap<String, String>) -> String {
    sel.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

async fn selected_pods(client: &Client, ns: &str, svc: &Service) -> Result<Vec<PodSource>, Error> {
    let sel = svc
        .spec
        .as_ref()
        .and_then(|s| s.selector.clone())
        .unwrap_or_default();
    if sel.is_empty() {
        return Ok(Vec::new());
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let list = pods
        .list(&ListParams::default().labels(&selector_string(&sel)))
        .await?;
    let mut out: Vec<PodSource> = list
        .items
        .into_iter()
        .filter(|p| {
            !matches!(
                p.status.as_ref().and_then(|s| s.phase.as_deref()),
                Some("Succeeded" | "Failed")
            )
        })
        .filter_map(|p| {
            Some(PodSource {
                origin: format!("pod {}", p.metadata.name.clone()?),
                labels: p.metadata.labels.clone().unwrap_or_default(),
                spec: p.spec?,
            })
        })
        .collect();
    out.sort_by(|a, b| a.origin.cmp(&b.origin));
    Ok(out)
}

fn clean_service_yaml(svc: &Service) -> Result<String, Error> {
    let mut v = serde_json::to_value(svc).map_err(|e| Error::Other(e.to_string()))?;
    if let Some(m) = v.as_object_mut() {
        m.remove("status");
        if let Some(meta) = m.get_mut("metadata").and_then(Value::as_object_mut) {
            for k in ["managedFields", "resourceVersion", "generation"] {
                meta.remove(k);
            }
        }
    }
    output::to_yaml(&v).map_err(|e| Error::Other(e.to_string()))
}

/// Runs `kubectl swh migrate ...`.
pub async fn run(global: &GlobalArgs, args: &MigrateArgs, out: &mut Out) -> Result<i32, Error> {
    if let Some(file) = &args.filename {
        let text = if file == "-" {
            std::io::read_to_string(std::io::stdin())
                .map_err(|e| Error::Other(format!("reading stdin: {e}")))?
        } else {
            std::fs::read_to_string(file)
                .map_err(|e| Error::Other(format!("reading {file}: {e}")))?
        };
        let converted = migrate_file(&text, args.api_version).map_err(|e| {
            Error::Other(format!(
                "{}: {e}",
                if file == "-" { "<stdin>" } else { file }
            ))
        })?;
        out.print(&converted)?;
        return Ok(0);
    }
    let name = service_target(&args.target).map_err(Error::Usage)?;
    let (client, ns) = crate::client(global).await?;
    let services: Api<Service> = Api::namespaced(client.clone(), &ns);
    let svc = services.get(&name).await?;
    let swh_api_v: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), &ns, &swh_resource(args.api_version));
    if let Some(owner) = owned_by_swh(&svc, &name)
        && !has_selector(&svc)
    {
        out.note(&format!(
            "service/{name} is already managed by {}/{} (migrated)",
            output::resource_prefix(),
            owner.name
        ));
        return Ok(0);
    }
    if !has_selector(&svc) && owned_by_swh(&svc, &name).is_none() {
        return Err(Error::Other(format!(
            "service/{name} has no selector: its endpoints are not managed by Kubernetes, so there are no pods to probe; nothing to migrate"
        )));
    }
    let pods = selected_pods(&client, &ns, &svc).await?;
    let proposals = propose(&svc, &pods, "no pod matches the selector");
    let (swh, comments) = build_swh(&svc, &proposals, args.api_version).map_err(|e| match e {
        BuildError::Service(e) => Error::Other(e.to_string()),
        e => Error::Other(e.to_string()),
    })?;
    let yaml = yaml_with_comments(&swh, &[comments]).map_err(|e| Error::Other(e.to_string()))?;
    let body: Value = serde_json::to_value(&swh).map_err(|e| Error::Other(e.to_string()))?;
    let obj: DynamicObject =
        serde_json::from_value(body).map_err(|e| Error::Other(e.to_string()))?;
    if args.dry_run {
        return dry_run(&services, &swh_api_v, &svc, &obj, &yaml, out).await;
    }
    if !args.apply {
        out.print(&yaml)?;
        return Ok(0);
    }
    let status = StatusLine::new(
        std::io::stderr(),
        progress::enabled(
            std::io::stderr().is_terminal(),
            std::env::var_os("TERM").as_deref(),
        ),
        progress::width(std::env::var_os("COLUMNS").as_deref()),
    );
    let wait = Wait {
        timeout: args.timeout,
        status,
    };
    apply(&client, &ns, &svc, obj, &swh_api_v, wait, out).await
}

async fn dry_run(
    _services: &Api<Service>,
    swhs: &Api<DynamicObject>,
    svc: &Service,
    obj: &DynamicObject,
    yaml: &str,
    out: &mut Out,
) -> Result<i32, Error> {
    let name = obj.metadata.name.clone().unwrap_or_default();
    let mut changes = String::new();
    let existing = swhs.get_opt(&name).await?;
    if existing.is_none() {
        // Server-side dry run: the API server and the webhook validate it as --apply would.
        swhs.create(
            &PostParams {
                dry_run: true,
                field_manager: Some(FIELD_MANAGER.into()),
            },
            obj,
        )
        .await?;
        changes.push_str(&diff(
            &format!("{}/{name} (live: absent)", output::resource_prefix()),
            &format!("{}/{name} (after migrate)", output::resource_prefix()),
            "",
            yaml,
        ));
    }
    // The Service after the handover: no selector, owned by the SWH.
    if has_selector(svc) || owned_by_swh(svc, &name).is_none() {
        let mut after = svc.clone();
        if let Some(s) = after.spec.as_mut() {
            s.selector = None;
        }
        if owned_by_swh(svc, &name).is_none() {
            let refs = after.metadata.owner_references.get_or_insert_with(Vec::new);
            refs.push(OwnerReference {
                api_version: swh_api::API_VERSION_V1BETA1.into(),
                kind: swh_api::KIND.into(),
                name: name.clone(),
                uid: existing
                    .as_ref()
                    .and_then(|e| e.metadata.uid.clone())
                    .unwrap_or_else(|| "<uid of the new ServiceWithHealthchecks>".into()),
                controller: Some(true),
                block_owner_deletion: None,
            });
        }
        changes.push_str(&diff(
            &format!("service/{name} (live)"),
            &format!("service/{name} (after migrate)"),
            &clean_service_yaml(svc)?,
            &clean_service_yaml(&after)?,
        ));
    }
    out.print(&changes)?;
    Ok(i32::from(!changes.is_empty()))
}

fn adopted_progress(obj: &DynamicObject) -> Option<String> {
    let conds = obj.data.pointer("/status/conditions")?.as_array()?;
    let c = conds
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(swh_api::conditions::ADOPTED))?;
    let s = |k: &str| {
        c.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let mut line = format!("Adopted={} {}", s("status"), s("reason"));
    let msg = s("message");
    if !msg.is_empty() {
        line.push_str(&format!(": {msg}"));
    }
    if let Some(r) = obj.data.pointer("/status/ready").and_then(Value::as_str) {
        line.push_str(&format!(" (ready {r})"));
    }
    Some(line)
}

/// `endpointslice.kubernetes.io/managed-by` of the built-in EndpointSlice controller.
const BUILTIN_SLICE_MANAGER: &str = "endpointslice-controller.k8s.io";

/// Addresses of ready endpoints (an unset `ready` counts as ready, as the API says).
fn ready_addresses<'a>(slices: impl Iterator<Item = &'a EndpointSlice>) -> BTreeSet<&'a str> {
    slices
        .flat_map(|s| s.endpoints.iter())
        .filter(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true))
        .flat_map(|e| e.addresses.iter().map(String::as_str))
        .collect()
}

/// What the controller's handover waits for, from the Service's EndpointSlices: (ready
/// addresses of the built-in slices the agents' slices carry as ready, ready addresses of the
/// built-in slices).
pub fn handover_counts(slices: &[EndpointSlice]) -> (usize, usize) {
    let managed_by = |s: &&EndpointSlice, by: &str| {
        s.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(swh_api::labels::MANAGED_BY))
            .is_some_and(|m| m == by)
    };
    let need = ready_addresses(
        slices
            .iter()
            .filter(|s| managed_by(s, BUILTIN_SLICE_MANAGER)),
    );
    let have = ready_addresses(
        slices
            .iter()
            .filter(|s| managed_by(s, swh_api::labels::MANAGED_BY_AGENT)),
    );
    (need.intersection(&have).count(), need.len())
}

/// How `--apply` waits: its timeout and the status line (drawn on a terminal only).
pub struct Wait<W: std::io::Write> {
    pub timeout: Duration,
    pub status: StatusLine<W>,
}

fn handed_over(svc: &Service, name: &str, uid: &str) -> bool {
    !has_selector(svc) && owned_by_swh(svc, name).is_some_and(|o| o.uid == uid)
}

async fn apply<W: std::io::Write>(
    client: &Client,
    ns: &str,
    original: &Service,
    obj: DynamicObject,
    swhs: &Api<DynamicObject>,
    wait: Wait<W>,
    out: &mut Out,
) -> Result<i32, Error> {
    let Wait {
        timeout,
        mut status,
    } = wait;
    let name = obj.metadata.name.clone().unwrap_or_default();
    let services: Api<Service> = Api::namespaced(client.clone(), ns);
    let created = swhs
        .create(
            &PostParams {
                dry_run: false,
                field_manager: Some(FIELD_MANAGER.into()),
            },
            &obj,
        )
        .await?;
    let uid = created.metadata.uid.clone().unwrap_or_default();
    out.print(&format!("{}/{name} created\n", output::resource_prefix()))?;
    out.note(&format!(
        "waiting up to {}s for the controller to take over service/{name}",
        timeout.as_secs()
    ));
    let start = Instant::now();
    let mut last = String::new();
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), ns);
    let own_slices = ListParams::default().labels(&format!("kubernetes.io/service-name={name}"));
    let outcome = loop {
        let svc = services.get(&name).await;
        if let Ok(svc) = &svc
            && handed_over(svc, &name, &uid)
        {
            break Ok(svc.clone());
        }
        if let Ok(Some(o)) = swhs.get_opt(&name).await
            && let Some(p) = adopted_progress(&o)
            && p != last
        {
            status.note(&format!("  {p}"));
            last = p;
        }
        if status.is_enabled() {
            let carried = slices
                .list(&own_slices)
                .await
                .ok()
                .map(|l| handover_counts(&l.items));
            let left = timeout.saturating_sub(start.elapsed());
            status.show(&progress::handover_line(&name, carried, left));
        }
        if start.elapsed() >= timeout {
            break Err(format!(
                "the handover of service/{name} did not finish within {}s",
                timeout.as_secs()
            ));
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = tokio::signal::ctrl_c() => break Err("interrupted".to_string()),
        }
    };
    status.clear();
    match outcome {
        Ok(svc) => {
            let ip = svc
                .spec
                .as_ref()
                .and_then(|s| s.cluster_ip.clone())
                .unwrap_or_default();
            out.note(&format!(
                "service/{name} handed over to {}/{name} (ClusterIP {ip} kept)",
                output::resource_prefix()
            ));
            Ok(0)
        }
        Err(why) => {
            out.note(&format!("{why}; rolling back"));
            let report = rollback(client, ns, original, swhs, &uid).await?;
            Err(Error::Other(format!("{why}: rolled back ({report})")))
        }
    }
}

/// Restores the Service as it was (`original`): deletes the SWH with propagationPolicy Orphan
/// (so the Service is not garbage-collected), puts back the selector, labels, annotations and
/// ownerReferences, waits for the built-in EndpointSlices and removes the agent's slices.
pub async fn rollback(
    client: &Client,
    ns: &str,
    original: &Service,
    swhs: &Api<DynamicObject>,
    uid: &str,
) -> Result<String, Error> {
    let name = original.metadata.name.clone().unwrap_or_default();
    let services: Api<Service> = Api::namespaced(client.clone(), ns);
    let mut steps = Vec::new();
    let dp = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Orphan),
        preconditions: Some(Preconditions {
            uid: Some(uid.to_string()),
            resource_version: None,
        }),
        ..Default::default()
    };
    match swhs.delete(&name, &dp).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => return Err(e.into()),
    }
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        match swhs.get_opt(&name).await? {
            Some(o) if o.metadata.uid.as_deref() == Some(uid) => {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            _ => break,
        }
    }
    steps.push(format!(
        "{}/{name} deleted with propagationPolicy=Orphan",
        output::resource_prefix()
    ));

    // Metadata first (owner references, labels, annotations), then the spec: a validating
    // webhook may refuse a selector on a Service that still looks owned by an SWH.
    let current = services.get(&name).await?;
    let meta_patch = json!({"metadata": {
        "labels": map_patch(current.metadata.labels.as_ref(), original.metadata.labels.as_ref()),
        "annotations": map_patch(current.metadata.annotations.as_ref(), original.metadata.annotations.as_ref()),
        "ownerReferences": original.metadata.owner_references.clone().unwrap_or_default(),
    }});
    services
        .patch(&name, &patch_params(), &Patch::Merge(&meta_patch))
        .await?;
    let orig_sel = original.spec.as_ref().and_then(|s| s.selector.as_ref());
    let cur_sel = current.spec.as_ref().and_then(|s| s.selector.as_ref());
    if orig_sel.cloned().unwrap_or_default() != cur_sel.cloned().unwrap_or_default() {
        let spec_patch = json!({"spec": {"selector": map_patch(cur_sel, orig_sel)}});
        services
            .patch(&name, &patch_params(), &Patch::Merge(&spec_patch))
            .await?;
        steps.push(format!(
            "selector {} restored",
            orig_sel.map(selector_string).unwrap_or_default()
        ));
    }

    // Built-in slices back before the agent's go (no moment without ready endpoints).
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), ns);
    let builtin = format!(
        "kubernetes.io/service-name={name},endpointslice.kubernetes.io/managed-by=endpointslice-controller.k8s.io"
    );
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        let l = slices.list(&ListParams::default().labels(&builtin)).await?;
        if !l.items.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let agent = format!(
        "kubernetes.io/service-name={name},{}={}",
        swh_api::labels::MANAGED_BY,
        swh_api::labels::MANAGED_BY_AGENT
    );
    let left = slices.list(&ListParams::default().labels(&agent)).await?;
    let n = left.items.len();
    for s in left.items {
        if let Some(sn) = s.metadata.name {
            match slices.delete(&sn, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    if n > 0 {
        steps.push(format!("{n} agent EndpointSlice(s) removed"));
    }
    steps.push(format!("service/{name} is as it was"));
    Ok(steps.join(", "))
}

/// A JSON merge patch turning map `cur` into `want` (keys only in `cur` become null).
fn map_patch(
    cur: Option<&BTreeMap<String, String>>,
    want: Option<&BTreeMap<String, String>>,
) -> Value {
    let mut m = serde_json::Map::new();
    for k in cur.into_iter().flat_map(|c| c.keys()) {
        if want.is_none_or(|w| !w.contains_key(k)) {
            m.insert(k.clone(), Value::Null);
        }
    }
    for (k, v) in want.into_iter().flatten() {
        if cur.and_then(|c| c.get(k)) != Some(v) {
            m.insert(k.clone(), Value::String(v.clone()));
        }
    }
    Value::Object(m)
}

fn patch_params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ContainerPort, ExecAction, GRPCAction, HTTPGetAction, HTTPHeader, Probe as KubeProbe,
        ServicePort, ServiceSpec, TCPSocketAction,
    };
    use kube::api::ObjectMeta;

    fn svc(name: &str, ports: &[(&str, i32, IntOrString)]) -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("shop".into()),
                labels: Some(BTreeMap::from([("app".into(), name.into())])),
                annotations: Some(BTreeMap::from([
                    ("team".into(), "payments".into()),
                    (
                        swh_api::annotations::LAST_APPLIED.into(),
                        "{\"big\":\"blob\"}".into(),
                    ),
                ])),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                selector: Some(BTreeMap::from([("app".into(), name.into())])),
                cluster_ip: Some("10.96.7.7".into()),
                cluster_ips: Some(vec!["10.96.7.7".into()]),
                session_affinity: Some("ClientIP".into()),
                internal_traffic_policy: Some("Cluster".into()),
                ip_families: Some(vec!["IPv4".into()]),
                ip_family_policy: Some("SingleStack".into()),
                ports: Some(
                    ports
                        .iter()
                        .map(|(n, p, t)| ServicePort {
                            name: Some(n.to_string()),
                            port: *p,
                            protocol: Some("TCP".into()),
                            target_port: Some(t.clone()),
                            ..Default::default()
                        })
                        .collect(),
                ),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn container(name: &str, ports: &[(&str, i32)], rp: Option<KubeProbe>) -> Container {
        Container {
            name: name.into(),
            ports: Some(
                ports
                    .iter()
                    .map(|(n, p)| ContainerPort {
                        name: Some(n.to_string()),
                        container_port: *p,
                        ..Default::default()
                    })
                    .collect(),
            ),
            readiness_probe: rp,
            ..Default::default()
        }
    }

    fn pod(name: &str, app: &str, containers: Vec<Container>) -> PodSource {
        PodSource {
            origin: format!("pod {name}"),
            labels: BTreeMap::from([("app".into(), app.into())]),
            spec: PodSpec {
                containers,
                ..Default::default()
            },
        }
    }

    fn http_probe(port: IntOrString) -> KubeProbe {
        KubeProbe {
            http_get: Some(HTTPGetAction {
                port,
                path: Some("/healthz".into()),
                http_headers: Some(vec![
                    HTTPHeader {
                        name: "Host".into(),
                        value: "web.example".into(),
                    },
                    HTTPHeader {
                        name: "X-Probe".into(),
                        value: "1".into(),
                    },
                ]),
                ..Default::default()
            }),
            period_seconds: Some(5),
            failure_threshold: Some(2),
            ..Default::default()
        }
    }

    #[test]
    fn http_get_with_named_port_becomes_http_probe() {
        let s = svc("web", &[("http", 80, IntOrString::String("http".into()))]);
        let pods: Vec<PodSource> = (0..3)
            .map(|i| {
                pod(
                    &format!("web-{i}"),
                    "web",
                    vec![container(
                        "app",
                        &[("http", 8080)],
                        Some(http_probe(IntOrString::String("http".into()))),
                    )],
                )
            })
            .collect();
        let p = propose(&s, &pods, "none");
        assert_eq!(p.len(), 1, "identical probes of 3 pods merge: {p:?}");
        let probe = &p[0].probe;
        assert_eq!(probe.name, "http-8080");
        assert_eq!(probe.mode, ProbeMode::Http);
        let http = probe.http.as_ref().expect("http");
        assert_eq!(http.port, IntOrString::Int(8080));
        assert_eq!(http.path.as_deref(), Some("/healthz"));
        assert_eq!(http.host.as_deref(), Some("web.example"));
        assert_eq!(http.http_headers.as_ref().map(Vec::len), Some(1));
        assert_eq!(probe.failure_threshold, Some(2));
        assert_eq!(probe.period_seconds, Some(5));
        assert_eq!(
            p[0].comment,
            "from readinessProbe.httpGet of container app in pod web-0 (and 2 more); named port http resolved to 8080"
        );
    }

    #[test]
    fn tcp_grpc_and_https() {
        let s = svc("db", &[("pg", 5432, IntOrString::Int(5432))]);
        let pods = vec![pod(
            "db-0",
            "db",
            vec![
                container(
                    "pg",
                    &[("pg", 5432)],
                    Some(KubeProbe {
                        tcp_socket: Some(TCPSocketAction {
                            port: IntOrString::String("pg".into()),
                            host: None,
                        }),
                        ..Default::default()
                    }),
                ),
                container(
                    "grpc",
                    &[],
                    Some(KubeProbe {
                        grpc: Some(GRPCAction {
                            port: 9090,
                            service: Some("db.Health".into()),
                        }),
                        ..Default::default()
                    }),
                ),
                container(
                    "admin",
                    &[],
                    Some(KubeProbe {
                        http_get: Some(HTTPGetAction {
                            port: IntOrString::Int(8443),
                            scheme: Some("HTTPS".into()),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                ),
            ],
        )];
        let p = propose(&s, &pods, "none");
        let names: Vec<&str> = p.iter().map(|p| p.probe.name.as_str()).collect();
        assert_eq!(names, ["tcp-5432", "grpc-9090", "http-8443"]);
        assert_eq!(
            p[0].probe.tcp.as_ref().map(|t| t.port.clone()),
            Some(IntOrString::Int(5432))
        );
        let g = p[1].probe.grpc.as_ref().expect("grpc");
        assert_eq!(g.service.as_deref(), Some("db.Health"));
        let h = p[2].probe.http.as_ref().expect("http");
        assert_eq!(h.scheme, Some(HttpScheme::Https));
        assert_eq!(h.insecure_skip_tls_verify, Some(true));
        assert!(
            p[1].comment
                .starts_with("from readinessProbe.grpc of container grpc in pod db-0")
        );
    }

    #[test]
    fn no_readiness_probe_means_tcp_per_target_port() {
        let s = svc(
            "web",
            &[
                ("http", 80, IntOrString::Int(8080)),
                ("alt", 8080, IntOrString::Int(8080)),
                ("metrics", 9100, IntOrString::String("metrics".into())),
            ],
        );
        let pods = vec![pod(
            "web-0",
            "web",
            vec![container("app", &[("metrics", 9101)], None)],
        )];
        let p = propose(&s, &pods, "no pod");
        let got: Vec<(&str, IntOrString)> = p
            .iter()
            .map(|p| {
                (
                    p.probe.name.as_str(),
                    p.probe.tcp.as_ref().map(|t| t.port.clone()).expect("tcp"),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("tcp-8080", IntOrString::Int(8080)),
                ("tcp-9101", IntOrString::Int(9101))
            ]
        );
        assert_eq!(
            p[0].comment,
            "TCP connect to targetPort 8080 of port http: the selected pods have no readinessProbe"
        );
        // Pods of other apps are not looked at; without pods the reason says so.
        let p = propose(
            &s,
            &[pod("x", "other", vec![])],
            "no pod matches the selector",
        );
        assert!(
            p[0].comment.ends_with(": no pod matches the selector"),
            "{p:?}"
        );
        assert_eq!(
            p[1].probe.tcp.as_ref().map(|t| t.port.clone()),
            Some(IntOrString::String("metrics".into())),
            "unresolvable named port is kept by name"
        );
    }

    #[test]
    fn exec_probes_fall_back_to_tcp_with_a_reason() {
        let s = svc("web", &[("http", 80, IntOrString::Int(8080))]);
        let exec = KubeProbe {
            exec: Some(ExecAction {
                command: Some(vec!["true".into()]),
            }),
            ..Default::default()
        };
        let p = propose(
            &s,
            &[pod("w", "web", vec![container("app", &[], Some(exec))])],
            "x",
        );
        assert_eq!(p.len(), 1);
        assert!(
            p[0].comment.contains("exec, which the agent cannot run"),
            "{}",
            p[0].comment
        );
    }

    #[test]
    fn build_keeps_every_service_field_and_adopts() {
        let s = svc("web", &[("http", 80, IntOrString::Int(8080))]);
        let pods = vec![pod(
            "web-0",
            "web",
            vec![container(
                "app",
                &[],
                Some(http_probe(IntOrString::Int(8080))),
            )],
        )];
        let (y, comments) =
            build_swh(&s, &propose(&s, &pods, ""), ApiVersion::V1Beta1).expect("build");
        assert_eq!(comments.len(), 1);
        let v: Value = serde_json::to_value(&y).expect("json");
        assert_eq!(v["apiVersion"], "network.deckhouse.io/v1beta1");
        assert_eq!(
            v["metadata"]["annotations"][swh_api::annotations::ADOPT_SERVICE],
            "true"
        );
        assert_eq!(v["metadata"]["annotations"]["team"], "payments");
        assert!(
            v["metadata"]["annotations"]
                .get(swh_api::annotations::LAST_APPLIED)
                .is_none()
        );
        assert_eq!(v["metadata"]["labels"]["app"], "web");
        assert!(v.get("status").is_none());
        let spec = &v["spec"];
        assert_eq!(spec["clusterIP"], "10.96.7.7");
        assert_eq!(spec["clusterIPs"][0], "10.96.7.7");
        assert_eq!(spec["sessionAffinity"], "ClientIP");
        assert_eq!(spec["ipFamilyPolicy"], "SingleStack");
        assert_eq!(spec["selector"]["app"], "web");
        assert_eq!(spec["ports"][0]["targetPort"], 8080);
        // Shared timing moves up to the healthcheck.
        assert_eq!(spec["healthcheck"]["periodSeconds"], 5);
        assert_eq!(spec["healthcheck"]["initialDelaySeconds"], 0);
        assert!(
            spec["healthcheck"]["probes"][0]
                .get("periodSeconds")
                .is_none()
        );
        // It is a valid v1beta1 object.
        let typed: ServiceWithHealthchecks = serde_json::from_value(v).expect("typed");
        assert_eq!(
            typed
                .spec
                .healthcheck
                .and_then(|h| h.probes)
                .map(|p| p.len()),
            Some(1)
        );
    }

    #[test]
    fn v1alpha1_output_uses_deckhouse_fields() {
        let s = svc("web", &[("http", 80, IntOrString::Int(8080))]);
        let (y, _) = build_swh(&s, &propose(&s, &[], "none"), ApiVersion::V1Alpha1).expect("build");
        let v: Value = serde_json::to_value(&y).expect("json");
        assert_eq!(v["apiVersion"], "network.deckhouse.io/v1alpha1");
        assert_eq!(v["spec"]["healthcheck"]["probes"][0]["mode"], "TCP");
        assert_eq!(
            v["spec"]["healthcheck"]["probes"][0]["tcp"]["targetPort"],
            8080
        );
        assert!(
            v["metadata"]["annotations"]
                .get(swh_api::annotations::V1BETA1_FIELDS)
                .is_none(),
            "derived names need no extra annotation: {v}"
        );
    }

    #[test]
    fn comments_sit_above_each_probe() {
        let s = svc(
            "web",
            &[
                ("http", 80, IntOrString::Int(8080)),
                ("smtp", 25, IntOrString::Int(2525)),
            ],
        );
        let (y, c) =
            build_swh(&s, &propose(&s, &[], "no pod"), ApiVersion::V1Beta1).expect("build");
        let text = yaml_with_comments(&y, &[c]).expect("yaml");
        let want = "    probes:
    # TCP connect to targetPort 8080 of port http: no pod
    - name: tcp-8080
      mode: TCP
      tcp:
        port: 8080
    # TCP connect to targetPort 2525 of port smtp: no pod
    - name: tcp-2525
";
        assert!(text.contains(want), "{text}");
        let back: Value = serde_yaml::from_str(&text).expect("still valid YAML");
        assert_eq!(back["kind"], "ServiceWithHealthchecks");
    }

    const FILE: &str = "# shop manifests
apiVersion: v1
kind: ConfigMap
metadata:
  name: cfg   # keep this comment
data:
  a: \"1\"
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
spec:
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: app
        image: web:1
        ports:
        - {name: http, containerPort: 8080}
        readinessProbe:
          httpGet: {path: /ready, port: http}
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
spec:
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: http}
--- # trailing
apiVersion: v1
kind: Secret
metadata: {name: s}
";

    #[test]
    fn file_converts_services_and_keeps_the_rest() {
        let out = migrate_file(FILE, ApiVersion::V1Beta1).expect("converts");
        let docs = split_documents(&out);
        let orig = split_documents(FILE);
        assert_eq!(docs.len(), 4);
        assert_eq!(docs[0], orig[0], "ConfigMap byte for byte");
        assert_eq!(docs[1], orig[1], "Deployment byte for byte");
        assert_eq!(docs[3].body, orig[3].body, "Secret byte for byte");
        assert_eq!(docs[3].separator.as_deref(), Some("--- # trailing\n"));
        let swh: Value = serde_yaml::from_str(&docs[2].body).expect("yaml");
        assert_eq!(swh["kind"], "ServiceWithHealthchecks");
        assert_eq!(
            swh["spec"]["healthcheck"]["probes"][0]["http"]["port"],
            8080
        );
        assert_eq!(
            swh["spec"]["healthcheck"]["probes"][0]["http"]["path"],
            "/ready"
        );
        assert!(
            docs[2].body.contains(
                "# from readinessProbe.httpGet of container app in Deployment/web; named port http resolved to 8080"
            ),
            "{}",
            docs[2].body
        );
        let alpha = migrate_file(FILE, ApiVersion::V1Alpha1).expect("converts");
        assert!(
            alpha.contains("apiVersion: network.deckhouse.io/v1alpha1"),
            "{alpha}"
        );
    }

    #[test]
    fn file_with_a_list() {
        let list = "apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Service
  metadata: {name: a}
  spec:
    selector: {app: a}
    ports: [{port: 80}]
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: c}
- apiVersion: v1
  kind: Service
  metadata: {name: b}
  spec:
    selector: {app: b}
    ports: [{port: 5432}]
";
        let out = migrate_file(list, ApiVersion::V1Beta1).expect("converts");
        let v: Value = serde_yaml::from_str(&out).expect("yaml");
        assert_eq!(v["kind"], "List");
        let kinds: Vec<&str> = v["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|i| i["kind"].as_str().unwrap_or_default())
            .collect();
        assert_eq!(
            kinds,
            [
                "ServiceWithHealthchecks",
                "ConfigMap",
                "ServiceWithHealthchecks"
            ]
        );
        assert_eq!(
            v["items"][2]["spec"]["healthcheck"]["probes"][0]["tcp"]["port"],
            5432
        );
        assert_eq!(
            out.matches("# TCP connect to targetPort").count(),
            2,
            "{out}"
        );
    }

    #[test]
    fn external_name_is_an_error_naming_the_service() {
        let text = "apiVersion: v1
kind: ConfigMap
metadata: {name: c}
---
apiVersion: v1
kind: Service
metadata: {name: legacy-db, namespace: shop}
spec:
  type: ExternalName
  externalName: db.example.com
";
        let err = migrate_file(text, ApiVersion::V1Beta1).expect_err("ExternalName");
        let msg = err.to_string();
        assert!(msg.starts_with("document 2 (line 5): "), "{msg}");
        assert!(
            msg.contains("service legacy-db is of type ExternalName"),
            "{msg}"
        );
    }

    #[test]
    fn bad_yaml_names_document_and_line() {
        let text = "apiVersion: v1
kind: ConfigMap
metadata: {name: c}
---
apiVersion: v1
kind: Service
metadata:
  name: web
 spec: [
";
        let err = migrate_file(text, ApiVersion::V1Beta1).expect_err("bad yaml");
        match &err {
            FileError::Yaml { doc, line, .. } => {
                assert_eq!(*doc, 2);
                assert_eq!(*line, 9, "{err}");
            }
            e => panic!("unexpected {e}"),
        }
        assert!(
            err.to_string()
                .starts_with("document 2 (line 9): invalid YAML"),
            "{err}"
        );
    }

    #[test]
    fn split_keeps_everything() {
        let text = "a: 1\n---\nb: 2\n--- # c\n\n---\nd: 3";
        let docs = split_documents(text);
        assert_eq!(docs.len(), 4);
        let joined: String = docs
            .iter()
            .map(|d| format!("{}{}", d.separator.clone().unwrap_or_default(), d.body))
            .collect();
        assert_eq!(joined, text);
        assert_eq!(docs[2].start_line, 5);
        assert_eq!(
            migrate_file(text, ApiVersion::V1Beta1).expect("no services"),
            text
        );
    }

    #[test]
    fn diff_marks_changes() {
        assert_eq!(diff("a", "b", "x\ny\n", "x\ny\n"), "");
        let d = diff(
            "old",
            "new",
            "a\nselector:\n  app: web\nz\n",
            "a\nz\nowner: swh\n",
        );
        assert_eq!(
            d,
            "--- old\n+++ new\n@@ -1,4 +1,3 @@\n a\n-selector:\n-  app: web\n z\n+owner: swh\n"
        );
    }

    fn slice(manager: &str, eps: &[(&str, Option<bool>)]) -> EndpointSlice {
        let eps: Vec<Value> = eps
            .iter()
            .map(|(a, r)| match r {
                Some(r) => json!({"addresses": [a], "conditions": {"ready": r}}),
                None => json!({"addresses": [a]}),
            })
            .collect();
        serde_json::from_value(json!({
            "metadata": {"name": format!("shop-{manager}"), "labels": {
                "kubernetes.io/service-name": "shop",
                "endpointslice.kubernetes.io/managed-by": manager,
            }},
            "addressType": "IPv4",
            "endpoints": eps,
        }))
        .expect("slice")
    }

    #[test]
    fn handover_counts_the_ready_endpoints_agent_slices_carry() {
        let builtin = slice(
            BUILTIN_SLICE_MANAGER,
            &[
                ("10.0.0.1", Some(true)),
                ("10.0.0.2", None),
                ("10.0.0.3", Some(true)),
                ("10.0.0.9", Some(false)),
            ],
        );
        assert_eq!(handover_counts(std::slice::from_ref(&builtin)), (0, 3));
        // Agent slices (one per node): not-ready and extra addresses do not count.
        let node_a = slice(
            swh_api::labels::MANAGED_BY_AGENT,
            &[("10.0.0.1", Some(true)), ("10.0.0.2", Some(false))],
        );
        let node_b = slice(
            swh_api::labels::MANAGED_BY_AGENT,
            &[("10.0.0.3", None), ("10.0.0.7", Some(true))],
        );
        assert_eq!(
            handover_counts(&[builtin.clone(), node_a.clone(), node_b.clone()]),
            (2, 3)
        );
        // Slices of other writers are neither needed nor carrying.
        let other = slice(
            "someone-else",
            &[("10.0.0.2", Some(true)), ("10.0.0.5", None)],
        );
        assert_eq!(
            handover_counts(&[builtin.clone(), node_a, node_b.clone(), other]),
            (2, 3)
        );
        let all = slice(
            swh_api::labels::MANAGED_BY_AGENT,
            &[("10.0.0.1", None), ("10.0.0.2", Some(true))],
        );
        assert_eq!(handover_counts(&[builtin, all, node_b]), (3, 3));
        assert_eq!(handover_counts(&[]), (0, 0));
    }

    #[test]
    fn merge_patch_for_maps() {
        let cur = BTreeMap::from([("a".to_string(), "1".to_string()), ("x".into(), "2".into())]);
        let want = BTreeMap::from([("a".to_string(), "9".to_string())]);
        assert_eq!(
            map_patch(Some(&cur), Some(&want)),
            json!({"a": "9", "x": null})
        );
        assert_eq!(map_patch(None, Some(&want)), json!({"a": "9"}));
        assert_eq!(map_patch(Some(&cur), None), json!({"a": null, "x": null}));
    }
}
