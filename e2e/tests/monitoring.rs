//! Alerts and dashboard (`config/prometheus/`), checked by the real tools:
//!
//! * `promtool check rules` and `promtool test rules` (Debian's prometheus 2.42), and every
//!   alert has a promtool case where it fires and one where it must not;
//! * the PrometheusRule wrapper and the Helm chart's PrometheusRule carry exactly rules.yaml;
//! * the Grafana dashboard is valid JSON of the expected shape;
//! * a real Prometheus, started here on loopback with the running components' admin ports as
//!   static targets (and rules.yaml loaded), scrapes them while an SWH with a failing probe
//!   and one in fail-open make them work: every metric name the rules and the dashboard use
//!   is exported by a component (no alert on a metric nobody emits), every rule evaluates
//!   without error, every dashboard query runs, and SWHNoReadyEndpoints and
//!   SWHFailOpenEngaged go pending for those SWHs (SWHAgentNotReady for no agent).

mod tools;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use swh_e2e::controlplane::LocalCluster;
use swh_e2e::objects::{self, PodSpecLite};
use swh_e2e::webhook_install::WebhookEndpoint;
use swh_e2e::{process, testenv};
use tools::{documents, helm, root, run, run_ok, temp_dir};

fn dir() -> PathBuf {
    root().join("config/prometheus")
}

fn yaml_file(p: &Path) -> Value {
    let text = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn rules() -> Value {
    yaml_file(&dir().join("rules.yaml"))
}

/// (alert name, expression) of every alerting rule.
fn alerts(rules: &Value) -> Vec<(String, String)> {
    rules["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_array().expect("rules").iter())
        .map(|r| {
            (
                r["alert"].as_str().expect("an alerting rule").to_string(),
                r["expr"].as_str().expect("expr").to_string(),
            )
        })
        .collect()
}

fn dashboard() -> Value {
    let text = std::fs::read_to_string(dir().join("dashboard.json")).expect("dashboard.json");
    serde_json::from_str(&text).expect("dashboard.json is JSON")
}

/// Every query of the dashboard, with Grafana's variables replaced for Prometheus.
fn dashboard_queries(d: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for p in d["panels"].as_array().expect("panels") {
        for t in p["targets"].as_array().into_iter().flatten() {
            let e = t["expr"].as_str().expect("target expr");
            out.push((
                format!("{} / {}", p["title"], t["refId"]),
                e.replace("$__rate_interval", "1m")
                    .replace("$instance", ".*"),
            ));
        }
    }
    out
}

fn promtool(args: &[&str]) -> std::process::Output {
    let mut c = Command::new("promtool");
    c.args(args).current_dir(dir());
    run(c, None)
}

#[test]
fn promtool_checks_and_tests_the_rules() {
    let out = promtool(&["check", "rules", "rules.yaml"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "promtool check rules: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let n = alerts(&rules()).len();
    assert!(
        text.contains(&format!("SUCCESS: {n} rules found")),
        "promtool check rules: {text}"
    );
    let out = promtool(&["test", "rules", "tests.yaml"]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool test rules: {text}");
    assert!(text.contains("SUCCESS"), "promtool test rules: {text}");
}

/// promtool fails a rule that is wrong for its test (so the pass above means something).
#[test]
fn promtool_test_fails_a_broken_rule() {
    let tmp = temp_dir("swh-promtool");
    let broken = std::fs::read_to_string(dir().join("rules.yaml"))
        .expect("rules")
        .replace("up{job=\"swh-agent\"} == 0", "up{job=\"swh-agent\"} == 1");
    std::fs::write(tmp.join("rules.yaml"), broken).expect("write");
    std::fs::copy(dir().join("tests.yaml"), tmp.join("tests.yaml")).expect("copy");
    let mut c = Command::new("promtool");
    c.args(["test", "rules", "tests.yaml"]).current_dir(&tmp);
    let out = run(c, None);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&tmp);
    assert!(
        !out.status.success(),
        "a broken SWHAgentDown passed: {text}"
    );
    assert!(text.contains("SWHAgentDown"), "{text}");
}

#[test]
fn every_alert_has_a_firing_and_a_silent_case() {
    let tests = yaml_file(&dir().join("tests.yaml"));
    let mut fires: BTreeSet<String> = BTreeSet::new();
    let mut silent: BTreeSet<String> = BTreeSet::new();
    for t in tests["tests"].as_array().expect("tests") {
        for a in t["alert_rule_test"].as_array().into_iter().flatten() {
            let name = a["alertname"].as_str().expect("alertname").to_string();
            let exp = a["exp_alerts"].as_array().map(Vec::len).unwrap_or(0);
            if exp > 0 {
                fires.insert(name);
            } else {
                silent.insert(name);
            }
        }
    }
    for (name, _) in alerts(&rules()) {
        assert!(
            fires.contains(&name),
            "{name}: no promtool case where it fires"
        );
        assert!(
            silent.contains(&name),
            "{name}: no promtool case where it stays silent"
        );
    }
    // Every alert says how bad and what happened.
    for g in rules()["groups"].as_array().expect("groups") {
        for r in g["rules"].as_array().expect("rules") {
            let name = &r["alert"];
            assert!(
                ["critical", "warning"].contains(&r["labels"]["severity"].as_str().unwrap_or("")),
                "{name}: severity"
            );
            for a in ["summary", "description"] {
                assert!(r["annotations"][a].is_string(), "{name}: annotation {a}");
            }
        }
    }
}

#[test]
fn prometheusrule_wrapper_and_chart_carry_rules_yaml() {
    let want = rules();
    let wrapper = yaml_file(&dir().join("prometheusrule.yaml"));
    assert_eq!(wrapper["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(wrapper["kind"], "PrometheusRule");
    assert_eq!(
        wrapper["spec"], want,
        "prometheusrule.yaml's spec differs from rules.yaml"
    );

    let home = temp_dir("swh-helm-mon");
    let mut c = helm(&home);
    c.args(["template", "swh"])
        .arg(root().join("config/helm/swh"))
        .args([
            "-n",
            "monitoring-test",
            "--set",
            "monitoring.prometheusRule.enabled=true",
            "--set",
            "monitoring.prometheusRule.labels.release=kube-prometheus",
            "--set",
            "monitoring.podMonitor.enabled=true",
        ]);
    let docs = documents(&run_ok(c, None));
    let _ = std::fs::remove_dir_all(&home);
    let pr = docs
        .iter()
        .find(|d| d["kind"] == "PrometheusRule")
        .expect("the chart renders a PrometheusRule");
    assert_eq!(
        pr["spec"], want,
        "the chart's PrometheusRule differs from rules.yaml"
    );
    assert_eq!(pr["metadata"]["namespace"], "monitoring-test");
    assert_eq!(pr["metadata"]["labels"]["release"], "kube-prometheus");
    // The PodMonitor names the jobs the alerts select on.
    let pm = docs
        .iter()
        .find(|d| d["kind"] == "PodMonitor")
        .expect("the chart renders a PodMonitor");
    assert_eq!(pm["spec"]["jobLabel"], "app.kubernetes.io/name");
    assert_eq!(
        pm["spec"]["selector"]["matchExpressions"][0]["values"],
        serde_json::json!(["swh-webhook", "swh-controller", "swh-agent"])
    );
    assert_eq!(pm["spec"]["podMetricsEndpoints"][0]["port"], "admin");
    // Off by default.
    let home = temp_dir("swh-helm-mon");
    let mut c = helm(&home);
    c.args(["template", "swh"])
        .arg(root().join("config/helm/swh"));
    let docs = documents(&run_ok(c, None));
    let _ = std::fs::remove_dir_all(&home);
    assert!(
        !docs
            .iter()
            .any(|d| d["kind"] == "PrometheusRule" || d["kind"] == "PodMonitor")
    );
}

#[test]
fn dashboard_is_a_grafana_dashboard() {
    let d = dashboard();
    assert!(d["title"].is_string() && d["uid"].is_string());
    let panels = d["panels"].as_array().expect("panels");
    let ids: Vec<i64> = panels
        .iter()
        .map(|p| p["id"].as_i64().expect("id"))
        .collect();
    assert_eq!(
        ids.iter().collect::<BTreeSet<_>>().len(),
        ids.len(),
        "panel ids repeat"
    );
    for p in panels {
        let g = &p["gridPos"];
        let (x, w) = (g["x"].as_i64().expect("x"), g["w"].as_i64().expect("w"));
        assert!(
            x >= 0 && w > 0 && x + w <= 24,
            "{}: gridPos {g}",
            p["title"]
        );
        if p["type"] != "row" {
            assert_eq!(p["datasource"]["uid"], "${datasource}", "{}", p["title"]);
            assert!(
                !p["targets"].as_array().expect("targets").is_empty(),
                "{}: no query",
                p["title"]
            );
        }
    }
    let vars: BTreeSet<&str> = d["templating"]["list"]
        .as_array()
        .expect("templating")
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    assert_eq!(vars, ["datasource", "instance"].into());
    // Every metric family the components export is on the dashboard at least once.
    let used: BTreeSet<String> = dashboard_queries(&d)
        .iter()
        .flat_map(|(_, e)| metric_names(e))
        .map(|n| family(&n).to_string())
        .collect();
    for f in [
        "swh_agent_probe_results",
        "swh_agent_probe_duration_seconds",
        "swh_agent_slice_writes",
        "swh_agent_status_writes",
        "swh_agent_scheduling_lag_seconds",
        "swh_agent_targets",
        "swh_agent_probe_transitions",
        "swh_agent_transition_publish_seconds",
        "swh_controller_reconciles",
        "swh_controller_reconcile_failures",
        "swh_controller_reconcile_duration_seconds",
        "swh_controller_leader",
        "swh_controller_api_writes",
        "swh_controller_orphan_slices_deleted",
        "swh_webhook_requests",
        "swh_webhook_request_duration_seconds",
        "swh_agent_ready",
        "swh_agent_fail_open_swhs",
        "swh_controller_swh_endpoints",
        "swh_controller_fail_open_transitions",
    ] {
        assert!(used.contains(f), "the dashboard does not show {f}");
    }
}

// ---- metric names out of PromQL -----------------------------------------------------------

const KEYWORDS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "inf",
    "nan",
];

const GROUPING: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// The metric names of a PromQL expression: identifiers outside label matchers, ranges,
/// strings and grouping lists that are not functions or keywords.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    let mut last_word = String::new();
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    while i < chars.len() {
        let c = chars[i];
        if matches!(c, '{' | '[' | '"' | '\'') {
            // Skip a label matcher list, a range or a string (strings inside a matcher list
            // may hold braces).
            let close = match c {
                '{' => '}',
                '[' => ']',
                q => q,
            };
            i += 1;
            let mut quote: Option<char> = None;
            while i < chars.len() {
                let d = chars[i];
                match quote {
                    Some(_) if d == '\\' => i += 1,
                    Some(q) if d == q => quote = None,
                    Some(_) => {}
                    None if d == close => break,
                    None if close != '"' && close != '\'' && (d == '"' || d == '\'') => {
                        quote = Some(d)
                    }
                    None if d == '\\' => i += 1,
                    None => {}
                }
                i += 1;
            }
            i += 1;
            continue;
        }
        if c == '(' && GROUPING.contains(&last_word.as_str()) {
            while i < chars.len() && chars[i] != ')' {
                i += 1;
            }
            i += 1;
            last_word.clear();
            continue;
        }
        if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len() && ident(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let mut j = i;
            while j < chars.len() && chars[j] == ' ' {
                j += 1;
            }
            // A call, or an aggregation with its grouping first (`sum by (le) (...)`).
            let rest: String = chars[j..].iter().collect();
            let is_call = rest.starts_with('(')
                || rest.starts_with("by ")
                || rest.starts_with("by(")
                || rest.starts_with("without ")
                || rest.starts_with("without(");
            let lower = word.to_ascii_lowercase();
            if !is_call && !KEYWORDS.contains(&lower.as_str()) {
                names.insert(word);
            }
            last_word = lower;
            continue;
        }
        if c.is_ascii_digit() {
            // Numbers and durations (5m, 1.5e3).
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
            continue;
        }
        if !c.is_whitespace() {
            last_word.clear();
        }
        i += 1;
    }
    names
}

/// The family a sample name belongs to (`_total`, `_bucket`, `_sum`, `_count` stripped).
fn family(name: &str) -> &str {
    for s in ["_total", "_bucket", "_sum", "_count"] {
        if let Some(f) = name.strip_suffix(s) {
            return f;
        }
    }
    name
}

#[test]
fn metric_names_are_read_out_of_promql() {
    let n = metric_names(
        r#"sum by (job, instance) (rate(a_total{result="error", x=~"a{b}"}[5m])) / ignoring (error) group_left sum(b) > 0.1 and on(job) absent(up{job="x"} == 1) or histogram_quantile(0.99, sum by (le) (rate(c_bucket[5m])))"#,
    );
    assert_eq!(
        n,
        ["a_total", "b", "c_bucket", "up"].map(String::from).into()
    );
}

// ---- the live check -------------------------------------------------------------------------

/// HTTP GET on 127.0.0.1:`port`: (status, body), or None when there is no answer.
fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_secs(2),
    )
    .ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf).to_string();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let code = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, body.to_string()))
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A Prometheus API answer's `data` (status success), or the error.
fn api(port: u16, path: &str) -> Result<Value, String> {
    let (code, body) = http_get(port, path).ok_or_else(|| format!("GET {path}: no answer"))?;
    let v: Value =
        serde_json::from_str(&body).map_err(|e| format!("GET {path}: {code} {e}: {body}"))?;
    if v["status"] != "success" {
        return Err(format!("GET {path}: {code} {body}"));
    }
    Ok(v["data"].clone())
}

/// The `--admin-listen` port of a running process.
fn admin_port(pid: u32) -> Option<u16> {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    cmdline
        .split(|b| *b == 0)
        .filter_map(|a| std::str::from_utf8(a).ok())
        .find_map(|a| a.strip_prefix("--admin-listen="))
        .and_then(|a| a.rsplit(':').next())
        .and_then(|p| p.parse().ok())
}

/// job → admin ports of the shared cluster's components.
fn targets(cluster: &LocalCluster) -> BTreeMap<&'static str, Vec<u16>> {
    let mut t: BTreeMap<&'static str, Vec<u16>> = BTreeMap::new();
    let ep = WebhookEndpoint::load(cluster).expect("swh-webhook.json (the process-mode webhook)");
    t.entry("swh-webhook").or_default().push(ep.admin_port);
    for p in &cluster.processes {
        let job = if p.name.starts_with("swh-agent") {
            "swh-agent"
        } else if p.name.starts_with("swh-controller") {
            "swh-controller"
        } else {
            continue;
        };
        if let Some(port) = admin_port(p.pid) {
            t.entry(job).or_default().push(port);
        }
    }
    for job in ["swh-webhook", "swh-controller", "swh-agent"] {
        assert!(
            t.contains_key(job),
            "no running {job} in the shared cluster: {t:?}"
        );
    }
    t
}

struct Prometheus {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        process::stop(
            self.child.id(),
            Some(&mut self.child),
            Duration::from_secs(5),
        );
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn start_prometheus(targets: &BTreeMap<&'static str, Vec<u16>>) -> Prometheus {
    let dir = temp_dir("swh-prometheus");
    std::fs::copy(self::dir().join("rules.yaml"), dir.join("rules.yaml")).expect("copy rules");
    let mut cfg = String::from(
        "global: {scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}\n\
         rule_files: [rules.yaml]\nscrape_configs:\n",
    );
    for (job, ports) in targets {
        let list: Vec<String> = ports.iter().map(|p| format!("'127.0.0.1:{p}'")).collect();
        cfg.push_str(&format!(
            "  - job_name: {job}\n    static_configs: [{{targets: [{}]}}]\n",
            list.join(", ")
        ));
    }
    std::fs::write(dir.join("prometheus.yml"), &cfg).expect("write config");
    let mut check = Command::new("promtool");
    check
        .args(["check", "config"])
        .arg(dir.join("prometheus.yml"));
    let out = run(check, None);
    assert!(
        out.status.success(),
        "promtool check config: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let port = process::free_port().expect("free port");
    let log = std::fs::File::create(dir.join("prometheus.log")).expect("log");
    let child = Command::new("prometheus")
        .arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("prometheus (Debian package prometheus; e2e/prereqs.sh installs it)");
    let p = Prometheus { child, port, dir };
    let start = Instant::now();
    while http_get(port, "/-/ready").map(|(c, _)| c) != Some(200) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "prometheus not ready: {}",
            std::fs::read_to_string(p.dir.join("prometheus.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    p
}

const SWH: &str = r#"
apiVersion: network.deckhouse.io/v1alpha1
kind: ServiceWithHealthchecks
metadata:
  name: mon
spec:
  ports:
  - port: 80
    protocol: TCP
    targetPort: 8080
  selector:
    app: mon
  healthcheck:
    initialDelaySeconds: 0
    periodSeconds: 1
    probes:
    - mode: TCP
      tcp:
        targetPort: 8080
"#;

const SWH_FAIL_OPEN: &str = r#"
apiVersion: network.deckhouse.io/v1beta1
kind: ServiceWithHealthchecks
metadata:
  name: mon-fo
spec:
  selector: {app: mon-fo}
  ports: [{name: tcp, port: 80, targetPort: 8080}]
  healthcheck:
    initialDelaySeconds: 0
    periodSeconds: 1
    failOpen: {minPassingPercent: 50}
    probes:
      - name: tcp
        mode: TCP
        successThreshold: 1
        failureThreshold: 1
        tcp: {port: 8080}
"#;

const SWH_TAKEN_IP: &str = r#"
apiVersion: network.deckhouse.io/v1alpha1
kind: ServiceWithHealthchecks
metadata:
  name: taken-ip
spec:
  ports:
  - port: 80
    protocol: TCP
    targetPort: 8080
  selector:
    app: none
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_components_export_every_metric_the_rules_and_dashboard_use() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cluster = testenv::shared_cluster().expect("shared local cluster (make test / make up)");
    let client = testenv::admin_client(&cluster).await.expect("client");
    let targets = targets(&cluster);
    let prom = start_prometheus(&targets);

    // Work for every component: an SWH (webhook validation, controller reconcile) selecting a
    // pod on node-a whose probe fails (nothing listens at its IP): probe results, slice and
    // status writes.
    let ns = testenv::unique_name("mon");
    objects::ensure_namespace(&client, &ns)
        .await
        .expect("namespace");
    let (ip, _) = cluster.pod_network.alloc_pod_ips().expect("pod ip");
    objects::create_pod(
        &client,
        &PodSpecLite {
            namespace: ns.clone(),
            name: "mon-0".into(),
            node: "node-a".into(),
            labels: [("app".to_string(), "mon".to_string())].into(),
            ports: vec![],
        },
    )
    .await
    .expect("pod");
    objects::set_pod_status(&client, &ns, "mon-0", &[ip], true)
        .await
        .expect("pod status");
    let mut c = cluster.kubectl();
    c.args(["apply", "--server-side", "-n", &ns, "-f", "-"]);
    run_ok(c, Some(SWH));
    // And one in fail-open (its only pod fails, 0% < 50%): the controller's transition
    // counter and the agent's fail-open gauge get their series.
    let (ip_fo, _) = cluster.pod_network.alloc_pod_ips().expect("pod ip");
    objects::create_pod(
        &client,
        &PodSpecLite {
            namespace: ns.clone(),
            name: "mon-fo-0".into(),
            node: "node-a".into(),
            labels: [("app".to_string(), "mon-fo".to_string())].into(),
            ports: vec![],
        },
    )
    .await
    .expect("pod");
    objects::set_pod_status(&client, &ns, "mon-fo-0", &[ip_fo], true)
        .await
        .expect("pod status");
    let mut c = cluster.kubectl();
    c.args(["apply", "--server-side", "-n", &ns, "-f", "-"]);
    run_ok(c, Some(SWH_FAIL_OPEN));
    // And a reconcile that fails: an SWH asking for the ClusterIP the `kubernetes` Service
    // holds (the child Service's create is refused), so swh_controller_reconcile_failures
    // exists (prometheus-client exports a labelled family only once it has a child).
    let mut c = cluster.kubectl();
    c.args([
        "get",
        "service",
        "kubernetes",
        "-n",
        "default",
        "-o",
        "jsonpath={.spec.clusterIP}",
    ]);
    let taken = run_ok(c, None);
    let mut c = cluster.kubectl();
    c.args(["apply", "--server-side", "-n", &ns, "-f", "-"]);
    run_ok(
        c,
        Some(&format!("{SWH_TAKEN_IP}  clusterIP: {}\n", taken.trim())),
    );

    // Every target up, and the failing probe seen by Prometheus.
    let port = prom.port;
    let want_targets: usize = targets.values().map(Vec::len).sum();
    testenv::wait_for(
        "every target up, a failed probe and a failed reconcile scraped",
        Duration::from_secs(90),
        || async move {
            let t = api(port, "/api/v1/targets").ok()?;
            let up = t["activeTargets"]
                .as_array()?
                .iter()
                .filter(|t| t["health"] == "up")
                .count();
            let q = api(
                port,
                &format!(
                    "/api/v1/query?query={}",
                    encode(
                        r#"sum(swh_agent_probe_results_total{result="failure"}) > 0 and on() sum(swh_controller_reconcile_failures_total) > 0"#
                    )
                ),
            )
            .ok()?;
            (up == want_targets && !q["result"].as_array()?.is_empty()).then_some(())
        },
    )
    .await;
    // The per-SWH endpoint gauge as the status says (mon: its one pod fails, 0/1), and the
    // real Prometheus evaluating SWHNoReadyEndpoints over it: pending for mon (its `for` is
    // minutes), never for taken-ip (no pod); every agent ready, so no SWHAgentNotReady.
    let ns_q = ns.clone();
    testenv::wait_for(
        "swh_controller_swh_endpoints of mon at 0/1 and SWHNoReadyEndpoints pending for it",
        Duration::from_secs(60),
        || {
            let ns = ns_q.clone();
            async move {
                let q = api(
                    port,
                    &format!(
                        "/api/v1/query?query={}",
                        encode(&format!(
                            r#"swh_controller_swh_endpoints{{namespace="{ns}", name="mon", state="total"}} == 1 and on (job, instance, namespace, name) swh_controller_swh_endpoints{{namespace="{ns}", name="mon", state="published"}} == 0"#
                        ))
                    ),
                )
                .ok()?;
                if q["result"].as_array()?.is_empty() {
                    return None;
                }
                let a = api(port, "/api/v1/alerts").ok()?;
                a["alerts"]
                    .as_array()?
                    .iter()
                    .any(|a| {
                        a["labels"]["alertname"] == "SWHNoReadyEndpoints"
                            && a["labels"]["namespace"] == ns.as_str()
                            && a["labels"]["name"] == "mon"
                    })
                    .then_some(())
            }
        },
    )
    .await;
    // mon-fo in fail-open, seen by the controller (a transition), by node-a's agent (the
    // gauge) and by the real Prometheus's SWHFailOpenEngaged (pending).
    testenv::wait_for(
        "a fail-open transition, swh_agent_fail_open_swhs > 0 and SWHFailOpenEngaged pending",
        Duration::from_secs(60),
        || async move {
            let q = api(
                port,
                &format!(
                    "/api/v1/query?query={}",
                    encode(
                        r#"sum(swh_controller_fail_open_transitions_total{to="entered"}) > 0 and on () max(swh_agent_fail_open_swhs) > 0"#
                    )
                ),
            )
            .ok()?;
            if q["result"].as_array()?.is_empty() {
                return None;
            }
            let a = api(port, "/api/v1/alerts").ok()?;
            a["alerts"]
                .as_array()?
                .iter()
                .any(|a| a["labels"]["alertname"] == "SWHFailOpenEngaged")
                .then_some(())
        },
    )
    .await;
    // A few more scrapes and rule evaluations.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let a = api(port, "/api/v1/alerts").expect("alerts");
    for alert in a["alerts"].as_array().expect("alerts") {
        let l = &alert["labels"];
        assert!(
            !(l["alertname"] == "SWHNoReadyEndpoints"
                && l["namespace"] == ns.as_str()
                && l["name"] == "taken-ip"),
            "SWHNoReadyEndpoints for an SWH without pods: {alert}"
        );
        assert_ne!(
            l["alertname"], "SWHAgentNotReady",
            "a ready agent alerts: {alert}"
        );
    }
    let q = api(
        port,
        &format!("/api/v1/query?query={}", encode("min(swh_agent_ready)")),
    )
    .expect("swh_agent_ready");
    assert_eq!(
        q["result"][0]["value"][1], "1",
        "every agent exports swh_agent_ready 1: {q}"
    );

    let with_samples: BTreeSet<String> = api(port, "/api/v1/label/__name__/values")
        .expect("names")
        .as_array()
        .expect("names")
        .iter()
        .filter_map(|v| v.as_str().map(String::from))
        .collect();
    // Families the components declare (# TYPE) even before a labelled child exists.
    let declared: BTreeSet<String> = api(port, "/api/v1/metadata")
        .expect("metadata")
        .as_object()
        .expect("metadata")
        .keys()
        .cloned()
        .collect();

    let rules = rules();
    let mut used: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (name, expr) in alerts(&rules) {
        for m in metric_names(&expr) {
            used.entry(m).or_default().insert(format!("alert {name}"));
        }
    }
    let queries = dashboard_queries(&dashboard());
    for (what, expr) in &queries {
        for m in metric_names(expr) {
            used.entry(m)
                .or_default()
                .insert(format!("dashboard {what}"));
        }
    }
    assert!(used.len() > 10, "too few metric names found: {used:?}");
    let missing: Vec<String> = used
        .iter()
        .filter(|(m, _)| {
            !(with_samples.contains(*m) || declared.contains(family(m)) || declared.contains(*m))
        })
        .map(|(m, users)| format!("{m} (used by {users:?})"))
        .collect();
    assert!(
        missing.is_empty(),
        "metrics nobody exports:\n{}\nexported: {with_samples:?}\ndeclared: {declared:?}",
        missing.join("\n")
    );
    // Only our components (and Prometheus's own `up`): no alert on someone else's metric.
    for m in used.keys() {
        assert!(
            m.starts_with("swh_") || m == "up",
            "{m} is not an swh metric"
        );
    }

    // Every rule evaluated by the real Prometheus without an error.
    let groups = api(port, "/api/v1/rules").expect("rules");
    let mut evaluated = 0;
    for g in groups["groups"].as_array().expect("groups") {
        for r in g["rules"].as_array().expect("rules") {
            assert_eq!(r["health"], "ok", "rule {}: {}", r["name"], r["lastError"]);
            evaluated += 1;
        }
    }
    assert_eq!(evaluated, alerts(&rules).len());
    // Every dashboard query runs.
    for (what, expr) in &queries {
        api(port, &format!("/api/v1/query?query={}", encode(expr)))
            .unwrap_or_else(|e| panic!("dashboard {what}: {e}"));
    }
    // Live values: the failing probe shows on the dashboard's probe panel.
    let (_, probe_expr) = queries
        .iter()
        .find(|(w, _)| w.contains("Probe results"))
        .expect("probe results panel");
    let v = api(port, &format!("/api/v1/query?query={}", encode(probe_expr))).expect("query");
    assert!(
        v["result"]
            .as_array()
            .expect("result")
            .iter()
            .any(|s| s["metric"]["result"] == "failure" && s["metric"]["mode"] == "tcp"),
        "no failing tcp probe on the dashboard: {v}"
    );

    let mut c = cluster.kubectl();
    c.args(["delete", "namespace", &ns, "--wait=false"]);
    let _ = run(c, None);
    drop(prom);
}
