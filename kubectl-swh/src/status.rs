//! `kubectl swh status`: the list view (one row per SWH), the detail view (one row per pod, one
//! column per probe) and `--watch`. Rendering is pure (`list_grid`, `detail_grid`, ...); the I/O
//! is in [`run`].

use std::collections::{BTreeMap, HashMap};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ServicePort;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ApiResource, DynamicObject, ListParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use serde_json::Value;
use swh_api::v1beta1::{EndpointStatus, Probe, ProbeState, ProbeStatus, ServiceWithHealthchecks};

use crate::age::{human_duration, since};
use crate::args::{OutputFormat, StatusArgs};
use crate::output;
use crate::table::{Cell, Grid, NONE, Style, Tone, render, render_last_row};
use crate::{Error, Out};

// ------------------------------------------------------------------------------------------
// Pure rendering
// ------------------------------------------------------------------------------------------

fn name_of(swh: &ServiceWithHealthchecks) -> &str {
    swh.metadata.name.as_deref().unwrap_or_default()
}

fn namespace_of(swh: &ServiceWithHealthchecks) -> &str {
    swh.metadata.namespace.as_deref().unwrap_or_default()
}

fn probes_of(swh: &ServiceWithHealthchecks) -> &[Probe] {
    swh.spec
        .healthcheck
        .as_ref()
        .and_then(|h| h.probes.as_deref())
        .unwrap_or_default()
}

fn endpoints_of(swh: &ServiceWithHealthchecks) -> &[EndpointStatus] {
    swh.status
        .as_ref()
        .and_then(|s| s.endpoint_statuses.as_deref())
        .unwrap_or_default()
}

/// `published/total`: `status.ready`, else the counts, else computed from the pod entries.
pub fn ready(swh: &ServiceWithHealthchecks) -> String {
    let st = swh.status.as_ref();
    if let Some(r) = st.and_then(|s| s.ready.clone()).filter(|r| !r.is_empty()) {
        return r;
    }
    if let (Some(p), Some(t)) = (
        st.and_then(|s| s.published_endpoints),
        st.and_then(|s| s.total_endpoints),
    ) {
        return swh_api::v1beta1::ready_column(p, t);
    }
    let eps = endpoints_of(swh);
    let published = eps.iter().filter(|e| is_published(e)).count();
    format!("{published}/{}", eps.len())
}

fn is_published(e: &EndpointStatus) -> bool {
    e.published.or(e.ready).unwrap_or(false)
}

fn service_type(swh: &ServiceWithHealthchecks) -> String {
    swh.spec
        .type_
        .clone()
        .unwrap_or_else(|| swh_api::defaults::SERVICE_TYPE.to_string())
}

fn cluster_ip(swh: &ServiceWithHealthchecks) -> String {
    swh.status
        .as_ref()
        .and_then(|s| s.cluster_ip.clone())
        .or_else(|| swh.spec.cluster_ip.clone())
        .unwrap_or_default()
}

/// kubectl's PORT(S): `80/TCP`, `80:30080/TCP`.
pub fn ports(ports: &[ServicePort]) -> String {
    ports
        .iter()
        .map(|p| {
            let proto = p.protocol.as_deref().unwrap_or(swh_api::defaults::PROTOCOL);
            match p.node_port {
                Some(np) if np != 0 => format!("{}:{np}/{proto}", p.port),
                _ => format!("{}/{proto}", p.port),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn selector(swh: &ServiceWithHealthchecks) -> String {
    swh.spec
        .selector
        .as_ref()
        .map(|s| {
            s.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

fn probe_names(swh: &ServiceWithHealthchecks) -> String {
    probes_of(swh)
        .iter()
        .map(|p| p.name.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// Headers of the list view.
pub fn list_headers(all_namespaces: bool, wide: bool) -> Vec<String> {
    let mut h = Vec::new();
    if all_namespaces {
        h.push("NAMESPACE");
    }
    h.extend(["NAME", "TYPE", "CLUSTER-IP", "READY", "PROBES", "AGE"]);
    if wide {
        h.extend(["PORT(S)", "SELECTOR"]);
    }
    h.into_iter().map(String::from).collect()
}

fn ready_tone(r: &str) -> Tone {
    match r.split_once('/') {
        Some((p, t)) if p == t && p != "0" => Tone::Good,
        Some(("0", _)) => Tone::Bad,
        Some(_) => Tone::Warn,
        None => Tone::Plain,
    }
}

/// One row of the list view.
pub fn list_row(
    swh: &ServiceWithHealthchecks,
    all_namespaces: bool,
    wide: bool,
    now: Timestamp,
) -> Vec<Cell> {
    let mut row = Vec::new();
    if all_namespaces {
        row.push(Cell::or_none(namespace_of(swh)));
    }
    let r = ready(swh);
    row.push(Cell::or_none(name_of(swh)));
    row.push(Cell::or_none(service_type(swh)));
    row.push(Cell::or_none(cluster_ip(swh)));
    row.push(Cell::toned(r.clone(), ready_tone(&r)));
    row.push(Cell::or_none(probe_names(swh)));
    row.push(Cell::plain(since(
        swh.metadata.creation_timestamp.as_ref(),
        now,
    )));
    if wide {
        row.push(Cell::or_none(ports(
            swh.spec.ports.as_deref().unwrap_or_default(),
        )));
        row.push(Cell::or_none(selector(swh)));
    }
    row
}

/// The list view.
pub fn list_grid(
    items: &[ServiceWithHealthchecks],
    all_namespaces: bool,
    wide: bool,
    now: Timestamp,
) -> Grid {
    Grid {
        headers: list_headers(all_namespaces, wide),
        rows: items
            .iter()
            .map(|s| list_row(s, all_namespaces, wide, now))
            .collect(),
    }
}

/// The line above the detail table, e.g.
/// `web (namespace vm): ClusterIP 10.96.0.10, ports 80/TCP, 1/1 published, age 5m`.
pub fn detail_header(swh: &ServiceWithHealthchecks, now: Timestamp) -> String {
    let ip = cluster_ip(swh);
    let p = ports(swh.spec.ports.as_deref().unwrap_or_default());
    let mut s = format!(
        "{} (namespace {}): {}",
        name_of(swh),
        namespace_of(swh),
        service_type(swh)
    );
    if !ip.is_empty() {
        s.push_str(&format!(" {ip}"));
    }
    s.push_str(&format!(
        ", ports {}, {} published, age {}",
        if p.is_empty() { NONE } else { &p },
        ready(swh),
        since(swh.metadata.creation_timestamp.as_ref(), now)
    ));
    s
}

/// Conditions worth a line under the header: every one whose status is not `True`, except
/// `FailOpen`/`ChildServiceConflict`, which matter when they are `True`.
pub fn condition_notes(swh: &ServiceWithHealthchecks) -> Vec<String> {
    let conds = swh
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    conds
        .iter()
        .filter(|c| {
            let inverted = c.type_ == swh_api::conditions::FAIL_OPEN
                || c.type_ == swh_api::conditions::CHILD_SERVICE_CONFLICT;
            (c.status == "True") == inverted
        })
        .map(|c| {
            let mut s = format!("{}={} {}", c.type_, c.status, c.reason);
            if !c.message.is_empty() {
                s.push_str(&format!(": {}", c.message));
            }
            s
        })
        .collect()
}

/// Probe columns: the spec's probes in order, then names only the status knows.
fn probe_columns(swh: &ServiceWithHealthchecks) -> Vec<String> {
    let mut names: Vec<String> = probes_of(swh).iter().map(|p| p.name.clone()).collect();
    for e in endpoints_of(swh) {
        for p in e.probes.as_deref().unwrap_or_default() {
            if !names.contains(&p.name) {
                names.push(p.name.clone());
            }
        }
    }
    names
}

/// Headers of the detail view.
pub fn detail_headers(swh: &ServiceWithHealthchecks, wide: bool) -> Vec<String> {
    let mut h: Vec<String> = ["POD", "NODE", "IP", "PUBLISHED"]
        .into_iter()
        .map(String::from)
        .collect();
    h.extend(probe_columns(swh));
    if wide {
        h.push("LAST-PROBE".into());
    }
    h
}

fn duration_since(t: &Time, now: Timestamp) -> String {
    human_duration(now.duration_since(t.0).as_nanos())
}

/// One probe cell: `✓ 4m10s`, `✗ 503 Service Unavailable, 4×, 40s`, `? 3s`; with `wide` also
/// the consecutive counts against the thresholds.
pub fn probe_cell(
    st: Option<&ProbeStatus>,
    spec: Option<&Probe>,
    wide: bool,
    now: Timestamp,
) -> Cell {
    let Some(st) = st else {
        return Cell::plain(NONE);
    };
    let held = st.since.as_ref().map(|t| duration_since(t, now));
    let mut parts: Vec<String> = Vec::new();
    let (symbol, tone) = match st.state {
        ProbeState::Passing => ("✓", Tone::Good),
        ProbeState::Failing => ("✗", Tone::Bad),
        ProbeState::Unknown => ("?", Tone::Warn),
    };
    let err = st
        .last_error
        .as_deref()
        .map(|e| e.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|e| !e.is_empty());
    match st.state {
        ProbeState::Passing => {}
        ProbeState::Failing => {
            parts.push(err.unwrap_or_else(|| "failing".into()));
            if let Some(n) = st.consecutive_failures.filter(|n| *n > 1) {
                parts.push(format!("{n}×"));
            }
        }
        ProbeState::Unknown => {
            parts.push(err.unwrap_or_else(|| "not probed yet".into()));
        }
    }
    if let Some(h) = held {
        parts.push(h);
    }
    let mut text = if parts.is_empty() {
        symbol.to_string()
    } else {
        format!("{symbol} {}", parts.join(", "))
    };
    if wide {
        let (s_th, f_th) = spec
            .map(|p| {
                (
                    swh_api::defaults::effective_success_threshold(p),
                    swh_api::defaults::effective_failure_threshold(p),
                )
            })
            .unwrap_or((
                swh_api::defaults::SUCCESS_THRESHOLD,
                swh_api::defaults::FAILURE_THRESHOLD,
            ));
        text.push_str(&format!(
            " (ok {}/{s_th}, fail {}/{f_th})",
            st.consecutive_successes.unwrap_or(0),
            st.consecutive_failures.unwrap_or(0)
        ));
    }
    Cell::toned(text, tone)
}

fn last_probe(e: &EndpointStatus) -> Option<&Time> {
    e.probes
        .as_deref()
        .unwrap_or_default()
        .iter()
        .filter_map(|p| p.last_probe_time.as_ref())
        .chain(e.last_probe_time.as_ref())
        .max_by_key(|t| t.0)
}

/// One row per pod of the detail view, keyed by pod name.
pub fn detail_rows(
    swh: &ServiceWithHealthchecks,
    wide: bool,
    now: Timestamp,
) -> Vec<(String, Vec<Cell>)> {
    let columns = probe_columns(swh);
    let specs: HashMap<&str, &Probe> = probes_of(swh)
        .iter()
        .map(|p| (p.name.as_str(), p))
        .collect();
    let mut eps: Vec<&EndpointStatus> = endpoints_of(swh).iter().collect();
    eps.sort_by(|a, b| a.pod_name.cmp(&b.pod_name));
    eps.into_iter()
        .map(|e| {
            let published = is_published(e);
            let mut row = vec![
                Cell::or_none(e.pod_name.clone()),
                Cell::or_none(e.node_name.clone().unwrap_or_default()),
                Cell::or_none(e.pod_ip.clone().unwrap_or_default()),
                Cell::toned(
                    published.to_string(),
                    if published { Tone::Good } else { Tone::Bad },
                ),
            ];
            let states: HashMap<&str, &ProbeStatus> = e
                .probes
                .as_deref()
                .unwrap_or_default()
                .iter()
                .map(|p| (p.name.as_str(), p))
                .collect();
            for c in &columns {
                row.push(probe_cell(
                    states.get(c.as_str()).copied(),
                    specs.get(c.as_str()).copied(),
                    wide,
                    now,
                ));
            }
            if wide {
                row.push(Cell::plain(
                    last_probe(e)
                        .map(|t| format!("{} ago", duration_since(t, now)))
                        .unwrap_or_else(|| NONE.to_string()),
                ));
            }
            (e.pod_name.clone(), row)
        })
        .collect()
}

/// The detail table.
pub fn detail_grid(swh: &ServiceWithHealthchecks, wide: bool, now: Timestamp) -> Grid {
    Grid {
        headers: detail_headers(swh, wide),
        rows: detail_rows(swh, wide, now)
            .into_iter()
            .map(|(_, r)| r)
            .collect(),
    }
}

/// The whole detail view as printed: header line, condition notes, blank line, table.
pub fn detail_text(
    swh: &ServiceWithHealthchecks,
    wide: bool,
    now: Timestamp,
    style: Style,
) -> String {
    let mut out = String::new();
    if !style.no_headers {
        out.push_str(&detail_header(swh, now));
        out.push('\n');
        for n in condition_notes(swh) {
            out.push_str(&format!("  {n}\n"));
        }
        out.push('\n');
    }
    let grid = detail_grid(swh, wide, now);
    if !grid.rows.is_empty() {
        out.push_str(&render(&grid, style));
    }
    out
}

// ------------------------------------------------------------------------------------------
// I/O
// ------------------------------------------------------------------------------------------

/// The v1beta1 resource (the storage version every reader speaks).
pub fn api_resource() -> ApiResource {
    ApiResource::erase::<ServiceWithHealthchecks>(&())
}

fn typed(obj: &DynamicObject) -> Result<ServiceWithHealthchecks, Error> {
    let v = serde_json::to_value(obj).map_err(|e| Error::Other(e.to_string()))?;
    serde_json::from_value(v).map_err(|e| {
        Error::Other(format!(
            "cannot read {}/{}: {e}",
            output::resource_prefix(),
            obj.metadata.name.as_deref().unwrap_or_default()
        ))
    })
}

fn raw(obj: &DynamicObject) -> Value {
    serde_json::to_value(obj).unwrap_or(Value::Null)
}

fn not_found_resource(e: kube::Error) -> Error {
    match e {
        kube::Error::Api(s) if s.code == 404 && s.details.is_none() => Error::Other(format!(
            "the server doesn't have a resource type \"{}\" (is the ServiceWithHealthchecks CRD installed?)",
            swh_api::PLURAL
        )),
        e => Error::Kube(e),
    }
}

/// `kubectl swh status ...`.
pub async fn run(
    client: Client,
    namespace: &str,
    args: &StatusArgs,
    style: Style,
    out: &mut Out,
) -> Result<i32, Error> {
    if args.name.is_some() && args.all_namespaces {
        return Err(Error::Usage(
            "a resource cannot be retrieved by name across all namespaces".into(),
        ));
    }
    if args.name.is_some() && args.selector.is_some() {
        return Err(Error::Usage(
            "selectors are not allowed when a NAME is given".into(),
        ));
    }
    let ar = api_resource();
    let api: Api<DynamicObject> = if args.all_namespaces {
        Api::all_with(client, &ar)
    } else {
        Api::namespaced_with(client, namespace, &ar)
    };
    match &args.name {
        Some(name) => one(api, name, namespace, args, style, out).await,
        None => many(api, namespace, args, style, out).await,
    }
}

async fn one(
    api: Api<DynamicObject>,
    name: &str,
    namespace: &str,
    args: &StatusArgs,
    style: Style,
    out: &mut Out,
) -> Result<i32, Error> {
    let obj = api.get(name).await.map_err(|e| match e {
        kube::Error::Api(s) if s.code == 404 && s.details.is_some() => {
            Error::Kube(kube::Error::Api(s))
        }
        e => not_found_resource(e),
    })?;
    let wide = args.output == Some(OutputFormat::Wide);
    match args.output {
        Some(f @ (OutputFormat::Json | OutputFormat::Yaml | OutputFormat::Name)) => {
            out.print(&format_objects(f, vec![raw(&obj)], true)?)?;
            if !args.watch {
                return Ok(0);
            }
            let mut first = true;
            let mut stream = watcher(
                api,
                watcher::Config::default().fields(&format!("metadata.name={name}")),
            )
            .applied_objects()
            .boxed();
            while let Some(o) = stream.try_next().await.map_err(watch_err)? {
                if std::mem::take(&mut first)
                    && o.metadata.resource_version == obj.metadata.resource_version
                {
                    continue;
                }
                out.print(&format_objects(f, vec![raw(&o)], true)?)?;
            }
            Ok(0)
        }
        _ => {
            let swh = typed(&obj)?;
            let now = Timestamp::now();
            out.print(&detail_text(&swh, wide, now, style))?;
            if endpoints_of(&swh).is_empty() {
                out.note(&format!(
                    "No pods selected by {}/{name} in {namespace} namespace (or none probed yet).",
                    output::resource_prefix()
                ));
            }
            if !args.watch {
                return Ok(0);
            }
            watch_detail(api, name, swh, wide, style, out).await
        }
    }
}

async fn watch_detail(
    api: Api<DynamicObject>,
    name: &str,
    first: ServiceWithHealthchecks,
    wide: bool,
    style: Style,
    out: &mut Out,
) -> Result<i32, Error> {
    let now = Timestamp::now();
    let mut printed = detail_grid(&first, wide, now);
    let mut header_printed = !printed.rows.is_empty();
    // Rows are compared as rendered at a fixed instant, so only real changes print a row
    // (durations grow by themselves).
    let mut last: BTreeMap<String, Vec<Cell>> = detail_rows(&first, wide, Timestamp::UNIX_EPOCH)
        .into_iter()
        .collect();
    let mut stream = watcher(
        api,
        watcher::Config::default().fields(&format!("metadata.name={name}")),
    )
    .boxed();
    while let Some(ev) = stream.try_next().await.map_err(watch_err)? {
        let obj = match ev {
            watcher::Event::Apply(o) | watcher::Event::InitApply(o) => o,
            watcher::Event::Delete(_) => {
                out.note(&format!("{}/{name} deleted", output::resource_prefix()));
                continue;
            }
            watcher::Event::Init | watcher::Event::InitDone => continue,
        };
        let swh = match typed(&obj) {
            Ok(s) => s,
            Err(e) => {
                out.note(&format!("error: {e}"));
                continue;
            }
        };
        let now = Timestamp::now();
        let headers = detail_headers(&swh, wide);
        if headers != printed.headers {
            // The probe set changed: start a new table.
            printed = Grid {
                headers,
                rows: Vec::new(),
            };
            header_printed = false;
        }
        let fixed: BTreeMap<String, Vec<Cell>> = detail_rows(&swh, wide, Timestamp::UNIX_EPOCH)
            .into_iter()
            .collect();
        for (pod, row) in detail_rows(&swh, wide, now) {
            let Some(cmp) = fixed.get(&pod) else { continue };
            if last.get(&pod) == Some(cmp) {
                continue;
            }
            last.insert(pod, cmp.clone());
            printed.rows.push(row);
            if !header_printed && !style.no_headers {
                out.print(&render(&printed, style))?;
                header_printed = true;
            } else {
                out.print(&render_last_row(&printed, style))?;
            }
        }
    }
    Ok(0)
}

fn watch_err(e: watcher::Error) -> Error {
    Error::Other(format!("watch failed: {e}"))
}

fn format_objects(f: OutputFormat, objs: Vec<Value>, single: bool) -> Result<String, Error> {
    match f {
        OutputFormat::Name => Ok(output::names(&objs)),
        OutputFormat::Json => output::to_json(&output::document(objs, single))
            .map_err(|e| Error::Other(e.to_string())),
        _ => {
            let y = output::to_yaml(&output::document(objs, single))
                .map_err(|e| Error::Other(e.to_string()))?;
            Ok(y)
        }
    }
}

async fn many(
    api: Api<DynamicObject>,
    namespace: &str,
    args: &StatusArgs,
    style: Style,
    out: &mut Out,
) -> Result<i32, Error> {
    let mut lp = ListParams::default();
    if let Some(sel) = &args.selector {
        lp = lp.labels(sel);
    }
    let list = api.list(&lp).await.map_err(not_found_resource)?;
    let items = list.items;
    let wide = args.output == Some(OutputFormat::Wide);
    if items.is_empty() && !matches!(args.output, Some(OutputFormat::Json | OutputFormat::Yaml)) {
        if args.all_namespaces {
            out.note("No resources found");
        } else {
            out.note(&format!("No resources found in {namespace} namespace."));
        }
    }
    let mut grid = Grid {
        headers: list_headers(args.all_namespaces, wide),
        rows: Vec::new(),
    };
    let mut last: BTreeMap<(String, String), Vec<Cell>> = BTreeMap::new();
    match args.output {
        Some(f @ (OutputFormat::Json | OutputFormat::Yaml | OutputFormat::Name)) => {
            if !(args.watch && items.is_empty()) {
                out.print(&format_objects(f, items.iter().map(raw).collect(), false)?)?;
            }
        }
        _ => {
            let now = Timestamp::now();
            for o in &items {
                match typed(o) {
                    Ok(s) => {
                        let row = list_row(&s, args.all_namespaces, wide, now);
                        last.insert(
                            key(o),
                            list_row(&s, args.all_namespaces, wide, Timestamp::UNIX_EPOCH),
                        );
                        grid.rows.push(row);
                    }
                    Err(e) => out.note(&format!("error: {e}")),
                }
            }
            if !grid.rows.is_empty() {
                out.print(&render(&grid, style))?;
            }
        }
    }
    if !args.watch {
        return Ok(0);
    }
    let mut cfg = watcher::Config::default();
    if let Some(sel) = &args.selector {
        cfg = cfg.labels(sel);
    }
    let known: HashMap<(String, String), Option<String>> = items
        .iter()
        .map(|o| (key(o), o.metadata.resource_version.clone()))
        .collect();
    let mut stream = watcher(api, cfg).boxed();
    while let Some(ev) = stream.try_next().await.map_err(watch_err)? {
        let (obj, deleted) = match ev {
            watcher::Event::Apply(o) | watcher::Event::InitApply(o) => (o, false),
            watcher::Event::Delete(o) => (o, true),
            watcher::Event::Init | watcher::Event::InitDone => continue,
        };
        if known.get(&key(&obj)) == Some(&obj.metadata.resource_version) {
            continue;
        }
        match args.output {
            Some(f @ (OutputFormat::Json | OutputFormat::Yaml | OutputFormat::Name)) => {
                let mut text = format_objects(f, vec![raw(&obj)], true)?;
                if f == OutputFormat::Yaml {
                    text = format!("---\n{text}");
                }
                out.print(&text)?;
            }
            _ => {
                let swh = match typed(&obj) {
                    Ok(s) => s,
                    Err(e) => {
                        out.note(&format!("error: {e}"));
                        continue;
                    }
                };
                let row = list_row(&swh, args.all_namespaces, wide, Timestamp::now());
                let cmp = list_row(&swh, args.all_namespaces, wide, Timestamp::UNIX_EPOCH);
                if deleted {
                    last.remove(&key(&obj));
                } else if last.get(&key(&obj)) == Some(&cmp) {
                    continue;
                } else {
                    last.insert(key(&obj), cmp);
                }
                grid.rows.push(row);
                if grid.rows.len() == 1 && !style.no_headers {
                    out.print(&render(&grid, style))?;
                } else {
                    out.print(&render_last_row(&grid, style))?;
                }
            }
        }
    }
    Ok(0)
}

fn key(o: &DynamicObject) -> (String, String) {
    (
        o.metadata.namespace.clone().unwrap_or_default(),
        o.metadata.name.clone().unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
    use swh_api::v1beta1::{
        Healthcheck, HttpProbe, ServiceWithHealthchecksSpec, ServiceWithHealthchecksStatus,
        TcpProbe,
    };

    fn now() -> Timestamp {
        "2026-03-01T12:00:00Z".parse().expect("now")
    }

    fn ago(secs: i64) -> Time {
        Time(now() - k8s_openapi::jiff::SignedDuration::from_secs(secs))
    }

    fn probe(name: &str, mode: ProbeMode, port: i32) -> Probe {
        let port = k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(port);
        Probe {
            name: name.into(),
            mode,
            http: (mode == ProbeMode::Http).then(|| HttpProbe {
                port: port.clone(),
                path: Some("/healthz".into()),
                ..Default::default()
            }),
            tcp: (mode == ProbeMode::Tcp).then(|| TcpProbe { port: port.clone() }),
            ..Default::default()
        }
    }

    use swh_api::v1beta1::ProbeMode;

    fn swh(ns: &str, name: &str, probes: Vec<Probe>, age: i64) -> ServiceWithHealthchecks {
        let mut s = ServiceWithHealthchecks::new(
            name,
            ServiceWithHealthchecksSpec {
                ports: Some(vec![ServicePort {
                    port: 80,
                    protocol: Some("TCP".into()),
                    ..Default::default()
                }]),
                selector: Some(BTreeMap::from([("vm".into(), "my-vm".into())])),
                healthcheck: Some(Healthcheck {
                    probes: Some(probes),
                    ..Default::default()
                }),
                ..Default::default()
            },
        );
        s.metadata.namespace = Some(ns.into());
        s.metadata.creation_timestamp = Some(ago(age));
        s
    }

    fn pstat(name: &str, state: ProbeState, since: i64) -> ProbeStatus {
        ProbeStatus {
            name: name.into(),
            state,
            since: Some(ago(since)),
            consecutive_successes: Some(if state == ProbeState::Passing { 5 } else { 0 }),
            consecutive_failures: Some(0),
            last_probe_time: Some(ago(3)),
            ..Default::default()
        }
    }

    fn vm() -> ServiceWithHealthchecks {
        let mut s = swh(
            "vm",
            "web",
            vec![
                probe("web", ProbeMode::Http, 8080),
                probe("smtp", ProbeMode::Tcp, 2525),
            ],
            300,
        );
        let mut failing = pstat("web", ProbeState::Failing, 40);
        failing.last_error = Some("503 Service Unavailable".into());
        failing.consecutive_failures = Some(4);
        s.status = Some(ServiceWithHealthchecksStatus {
            cluster_ip: Some("10.96.0.10".into()),
            ready: Some("1/2".into()),
            endpoint_statuses: Some(vec![
                EndpointStatus {
                    pod_name: "my-vm-b".into(),
                    node_name: Some("node-b".into()),
                    pod_ip: Some("10.250.0.12".into()),
                    published: Some(false),
                    probes: Some(vec![failing, pstat("smtp", ProbeState::Passing, 250)]),
                    ..Default::default()
                },
                EndpointStatus {
                    pod_name: "my-vm-a".into(),
                    node_name: Some("node-a".into()),
                    pod_ip: Some("10.250.0.11".into()),
                    published: Some(true),
                    probes: Some(vec![
                        pstat("web", ProbeState::Passing, 250),
                        pstat("smtp", ProbeState::Passing, 250),
                    ]),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        });
        s
    }

    #[test]
    fn list_view_golden() {
        let mut db = swh(
            "shop",
            "db-read",
            vec![probe("pg", ProbeMode::Tcp, 5432)],
            3 * 86400 + 3600,
        );
        db.spec.type_ = Some("NodePort".into());
        let got = render(
            &list_grid(&[vm(), db], true, false, now()),
            Style::default(),
        );
        let want = "\
NAMESPACE   NAME      TYPE        CLUSTER-IP   READY   PROBES     AGE
vm          web       ClusterIP   10.96.0.10   1/2     web,smtp   5m
shop        db-read   NodePort    <none>       0/0     pg         3d1h
";
        assert_eq!(got, want);
    }

    #[test]
    fn list_view_wide_golden() {
        let got = render(&list_grid(&[vm()], false, true, now()), Style::default());
        let want = "\
NAME   TYPE        CLUSTER-IP   READY   PROBES     AGE   PORT(S)   SELECTOR
web    ClusterIP   10.96.0.10   1/2     web,smtp   5m    80/TCP    vm=my-vm
";
        assert_eq!(got, want);
    }

    #[test]
    fn detail_view_golden() {
        let got = detail_text(&vm(), false, now(), Style::default());
        let want = "\
web (namespace vm): ClusterIP 10.96.0.10, ports 80/TCP, 1/2 published, age 5m

POD       NODE     IP            PUBLISHED   WEB                                  SMTP
my-vm-a   node-a   10.250.0.11   true        ✓ 4m10s                              ✓ 4m10s
my-vm-b   node-b   10.250.0.12   false       ✗ 503 Service Unavailable, 4×, 40s   ✓ 4m10s
";
        assert_eq!(got, want);
    }

    #[test]
    fn detail_view_wide_golden() {
        let got = render(&detail_grid(&vm(), true, now()), Style::default());
        let want = "\
POD       NODE     IP            PUBLISHED   WEB                                                     SMTP                         LAST-PROBE
my-vm-a   node-a   10.250.0.11   true        ✓ 4m10s (ok 5/1, fail 0/3)                              ✓ 4m10s (ok 5/1, fail 0/3)   3s ago
my-vm-b   node-b   10.250.0.12   false       ✗ 503 Service Unavailable, 4×, 40s (ok 0/1, fail 4/3)   ✓ 4m10s (ok 5/1, fail 0/3)   3s ago
";
        assert_eq!(got, want, "\n{got}");
    }

    #[test]
    fn probe_cells() {
        let n = now();
        let mut missing_secret = ProbeStatus {
            name: "pg".into(),
            state: ProbeState::Failing,
            last_error: Some("secret cred-secret not found".into()),
            ..Default::default()
        };
        assert_eq!(
            probe_cell(Some(&missing_secret), None, false, n).text,
            "✗ secret cred-secret not found"
        );
        missing_secret.consecutive_failures = Some(1);
        missing_secret.since = Some(ago(5));
        assert_eq!(
            probe_cell(Some(&missing_secret), None, false, n).text,
            "✗ secret cred-secret not found, 5s"
        );
        let unknown = ProbeStatus {
            name: "x".into(),
            state: ProbeState::Unknown,
            ..Default::default()
        };
        let c = probe_cell(Some(&unknown), None, false, n);
        assert_eq!(c.text, "? not probed yet");
        assert_eq!(c.tone, Tone::Warn);
        assert_eq!(probe_cell(None, None, false, n).text, "<none>");
        let multi_line = ProbeStatus {
            name: "x".into(),
            state: ProbeState::Failing,
            last_error: Some("connection refused\n  (os error 111)".into()),
            ..Default::default()
        };
        assert_eq!(
            probe_cell(Some(&multi_line), None, false, n).text,
            "✗ connection refused (os error 111)"
        );
    }

    #[test]
    fn ready_falls_back_to_counts_and_entries() {
        let mut s = vm();
        if let Some(st) = s.status.as_mut() {
            st.ready = None;
        }
        assert_eq!(ready(&s), "1/2");
        if let Some(st) = s.status.as_mut() {
            st.published_endpoints = Some(3);
            st.total_endpoints = Some(4);
        }
        assert_eq!(ready(&s), "3/4");
        s.status = None;
        assert_eq!(ready(&s), "0/0");
    }

    #[test]
    fn conditions_worth_showing() {
        let mut s = vm();
        let cond = |t: &str, st: &str, r: &str, m: &str| Condition {
            type_: t.into(),
            status: st.into(),
            reason: r.into(),
            message: m.into(),
            last_transition_time: ago(1),
            observed_generation: None,
        };
        if let Some(st) = s.status.as_mut() {
            st.conditions = Some(vec![
                cond(
                    "Ready",
                    "False",
                    "NotAllEndpointsAreReady",
                    "Not all endpoints are ready",
                ),
                cond("ChildServiceReady", "True", "ChildServiceWasCreated", ""),
                cond("FailOpen", "False", "EnoughPassing", ""),
            ]);
        }
        assert_eq!(
            condition_notes(&s),
            vec!["Ready=False NotAllEndpointsAreReady: Not all endpoints are ready".to_string()]
        );
        let text = detail_text(&s, false, now(), Style::default());
        assert!(
            text.contains("\n  Ready=False NotAllEndpointsAreReady"),
            "{text}"
        );
    }

    #[test]
    fn detail_without_pods_prints_only_the_header() {
        let s = swh("vm", "web", vec![probe("web", ProbeMode::Http, 8080)], 10);
        assert_eq!(
            detail_text(&s, false, now(), Style::default()),
            "web (namespace vm): ClusterIP, ports 80/TCP, 0/0 published, age 10s\n\n"
        );
    }

    #[test]
    fn status_only_probe_names_get_a_column() {
        let mut s = vm();
        if let Some(eps) = s
            .status
            .as_mut()
            .and_then(|st| st.endpoint_statuses.as_mut())
        {
            eps[0]
                .probes
                .get_or_insert_with(Vec::new)
                .push(pstat("old", ProbeState::Unknown, 1));
        }
        assert_eq!(
            detail_headers(&s, false),
            vec!["POD", "NODE", "IP", "PUBLISHED", "web", "smtp", "old"]
        );
    }
}
