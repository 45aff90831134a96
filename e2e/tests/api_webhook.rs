//! The API as users meet it, on the real local control plane with swh-webhook installed:
//! Deckhouse manifests accepted (v1alpha1 denies only what Deckhouse fails on too; what swh
//! finds risky is a warning kubectl prints), invalid manifests rejected naming the field and the
//! reason (schema, CEL and webhook layers), conversion round trips through both versions,
//! printer columns, the child Service guard, and certificate rotation of a running webhook.
//!
//! Installs the webhook itself when it is not there yet (idempotent; `swh-local up` may already
//! have done it).

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use swh_e2e::controlplane::LocalCluster;
use swh_e2e::{process, testenv, webhook_install};

static INSTALLED: Mutex<bool> = Mutex::new(false);

fn cluster() -> LocalCluster {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let mut cluster =
        testenv::shared_cluster().expect("shared local cluster (run `make test` or `make up`)");
    let mut done = INSTALLED.lock().unwrap_or_else(|e| e.into_inner());
    if !*done {
        webhook_install::install(&mut cluster, &testenv::workspace_bin("swh-webhook"))
            .expect("installing swh-webhook (build it first: cargo build -p swh-webhook)");
        *done = true;
    }
    cluster
}

struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn kubectl(cluster: &LocalCluster, args: &[&str], stdin: Option<&str>) -> Out {
    let mut cmd: Command = cluster.kubectl();
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("kubectl");
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input.as_bytes()).expect("stdin");
    }
    let out = child.wait_with_output().expect("kubectl output");
    Out {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn ok(cluster: &LocalCluster, args: &[&str], stdin: Option<&str>) -> Out {
    let o = kubectl(cluster, args, stdin);
    assert!(o.ok, "kubectl {}: {}", args.join(" "), o.stderr);
    o
}

/// A fresh namespace, deleted (without waiting) when dropped.
struct Ns<'a> {
    cluster: &'a LocalCluster,
    name: String,
}

impl<'a> Ns<'a> {
    fn new(cluster: &'a LocalCluster, prefix: &str) -> Ns<'a> {
        let name = testenv::unique_name(prefix);
        ok(cluster, &["create", "namespace", &name], None);
        Ns { cluster, name }
    }
}

impl Drop for Ns<'_> {
    fn drop(&mut self) {
        let _ = kubectl(
            self.cluster,
            &["delete", "namespace", &self.name, "--wait=false"],
            None,
        );
    }
}

fn get_json(cluster: &LocalCluster, ns: &str, resource: &str, name: &str) -> Value {
    let o = ok(
        cluster,
        &["get", "-n", ns, resource, name, "-o", "json"],
        None,
    );
    serde_json::from_str(&o.stdout).expect("json")
}

const ALPHA: &str = "servicewithhealthchecks.v1alpha1.network.deckhouse.io";
const BETA: &str = "servicewithhealthchecks.v1beta1.network.deckhouse.io";

// ---------------------------------------------------------------------------------------------
// Deckhouse examples (reference/deckhouse-docs.ru.md), unchanged except the namespace
// ---------------------------------------------------------------------------------------------

const DECKHOUSE_WEB: &str = r#"
apiVersion: network.deckhouse.io/v1alpha1
kind: ServiceWithHealthchecks
metadata:
  name: web
spec:
  ports:
  - port: 80
    protocol: TCP
    targetPort: 8080
  selector:
    vm: my-vm
  healthcheck:
    probes:
    - mode: HTTP
      http:
        targetPort: 8080
        method: GET
        path: /healthz
"#;

const DECKHOUSE_SMTP: &str = r#"
apiVersion: network.deckhouse.io/v1alpha1
kind: ServiceWithHealthchecks
metadata:
  name: smtp
spec:
  ports:
  - port: 25
    protocol: TCP
    targetPort: 2525
  selector:
    vm: my-vm
  healthcheck:
    probes:
    - mode: TCP
      tcp:
        targetPort: 2525
"#;

const DECKHOUSE_PG_READ: &str = r#"
apiVersion: network.deckhouse.io/v1alpha1
kind: ServiceWithHealthchecks
metadata:
  name: postgres-read
spec:
  ports:
  - port: 5432
    protocol: TCP
    targetPort: 5432
  selector:
    app: postgres
  healthcheck:
    probes:
    - mode: PostgreSQL
      postgreSQL:
        targetPort: 5432
        dbName: postgres
        authSecretName: cred-secret
        query: "SELECT 1"
"#;

const DECKHOUSE_PG_WRITE: &str = r#"
apiVersion: network.deckhouse.io/v1alpha1
kind: ServiceWithHealthchecks
metadata:
  name: postgres-write
spec:
  ports:
  - port: 5432
    protocol: TCP
    targetPort: 5432
  selector:
    app: postgres
  healthcheck:
    probes:
    - mode: PostgreSQL
      postgreSQL:
        targetPort: 5432
        dbName: postgres
        authSecretName: cred-secret
        query: "SELECT NOT pg_is_in_recovery()"
"#;

#[test]
fn deckhouse_examples_are_accepted_and_missing_secrets_warn() {
    let cluster = cluster();
    let ns = Ns::new(&cluster, "wh-dh");
    for (name, yaml) in [
        ("web", DECKHOUSE_WEB),
        ("smtp", DECKHOUSE_SMTP),
        ("postgres-read", DECKHOUSE_PG_READ),
    ] {
        let dry = ok(
            &cluster,
            &["apply", "--dry-run=server", "-n", &ns.name, "-f", "-"],
            Some(yaml),
        );
        assert!(dry.stdout.contains(name), "{}", dry.stdout);
        let o = ok(&cluster, &["create", "-n", &ns.name, "-f", "-"], Some(yaml));
        if name == "postgres-read" {
            assert!(
                o.stderr.contains("cred-secret") && o.stderr.contains("does not exist"),
                "expected a missing-Secret warning: {}",
                o.stderr
            );
        } else {
            assert!(!o.stderr.contains("Warning"), "{name}: {}", o.stderr);
        }
    }
    // The documented Secret, then the second PostgreSQL example: no warning.
    ok(
        &cluster,
        &[
            "-n",
            &ns.name,
            "create",
            "secret",
            "generic",
            "cred-secret",
            "--from-literal=user=postgres",
            "--from-literal=password=example",
        ],
        None,
    );
    let o = ok(
        &cluster,
        &["create", "-n", &ns.name, "-f", "-"],
        Some(DECKHOUSE_PG_WRITE),
    );
    assert!(!o.stderr.contains("does not exist"), "{}", o.stderr);

    // Printer columns.
    let o = ok(&cluster, &["get", "swh", "-n", &ns.name], None);
    let header: Vec<&str> = o
        .stdout
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        ["NAME", "TYPE", "CLUSTER-IP", "READY", "PROBES", "AGE"],
        "{}",
        o.stdout
    );
    assert!(o.stdout.contains("postgres-write"), "{}", o.stdout);
}

// ---------------------------------------------------------------------------------------------
// Invalid manifests: each rejected, naming the field
// ---------------------------------------------------------------------------------------------

fn alpha_base() -> Value {
    json!({
        "apiVersion": "network.deckhouse.io/v1alpha1",
        "kind": "ServiceWithHealthchecks",
        "metadata": {"name": "bad"},
        "spec": {
            "ports": [{"port": 80, "protocol": "TCP", "targetPort": 8080}],
            "selector": {"app": "web"},
            "healthcheck": {"probes": [{"mode": "HTTP", "http": {"targetPort": 8080, "path": "/healthz"}}]}
        }
    })
}

fn beta_base() -> Value {
    json!({
        "apiVersion": "network.deckhouse.io/v1beta1",
        "kind": "ServiceWithHealthchecks",
        "metadata": {"name": "bad"},
        "spec": {
            "ports": [{"name": "http", "port": 80, "targetPort": 8080}],
            "selector": {"app": "web"},
            "healthcheck": {"probes": [{"name": "ready", "mode": "HTTP", "http": {"port": 8080, "path": "/healthz"}}]}
        }
    })
}

fn set(mut v: Value, pointer: &str, value: Value) -> Value {
    let (parent, key) = pointer.rsplit_once('/').expect("pointer");
    let slot = v.pointer_mut(parent).expect("parent exists");
    match slot {
        Value::Object(m) => {
            m.insert(key.to_string(), value);
        }
        Value::Array(a) => {
            let i: usize = key.parse().expect("index");
            if i < a.len() {
                a[i] = value;
            } else {
                a.push(value);
            }
        }
        _ => panic!("{pointer}: parent is not a container"),
    }
    v
}

/// Why a denial is one: the end of its message (`swh_api::validation::Reason`). OpenAPI schema
/// rejections carry the API server's own message: they are ranges, enums and keys Deckhouse's
/// schema has too.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Why {
    /// Deckhouse's schema rejects it too.
    Schema,
    /// The child Service would be invalid.
    Service,
    /// No probe can run.
    NoProbe,
    /// A v1beta1 rule (v1alpha1 only warns).
    Beta,
    /// A v1beta1-only field.
    BetaField,
}

impl Why {
    fn suffix(self) -> Option<&'static str> {
        match self {
            Why::Schema => Some("(Deckhouse's schema rejects it too)"),
            Why::Service => Some("(the Service would be invalid)"),
            Why::NoProbe => Some("(no probe can run)"),
            Why::Beta => Some("(v1beta1 only: v1alpha1 accepts it with a warning)"),
            Why::BetaField => None,
        }
    }
}

/// Manifests denied: (case, object, field named in the error, reason). Every v1alpha1 case is
/// one Deckhouse fails on too (its schema, its child Service, or its agent).
fn invalid_cases() -> Vec<(&'static str, Value, &'static str, Why)> {
    let a = alpha_base;
    let b = beta_base;
    vec![
        // Service-level
        (
            "unknown type",
            set(a(), "/spec/type", json!("Bogus")),
            "spec.type",
            Why::Service,
        ),
        (
            "ExternalName",
            set(a(), "/spec/type", json!("ExternalName")),
            "spec.type",
            Why::Service,
        ),
        (
            "bad protocol",
            set(a(), "/spec/ports/0/protocol", json!("ICMP")),
            "spec.ports[0].protocol",
            Why::Service,
        ),
        (
            "port out of range",
            set(a(), "/spec/ports/0/port", json!(70000)),
            "spec.ports[0].port",
            Why::Service,
        ),
        (
            "two unnamed ports",
            set(
                a(),
                "/spec/ports/1",
                json!({"port": 81, "targetPort": 8081}),
            ),
            "spec.ports",
            Why::Service,
        ),
        (
            "duplicate port names",
            set(
                set(
                    set(a(), "/spec/ports/0/name", json!("web")),
                    "/spec/ports/1",
                    json!({"name": "web", "port": 81}),
                ),
                "/spec/ports/0/name",
                json!("web"),
            ),
            "spec.ports[1].name",
            Why::Service,
        ),
        (
            "invalid port name",
            set(a(), "/spec/ports/0/name", json!("Web_Port")),
            "spec.ports[0].name",
            Why::Service,
        ),
        (
            "duplicate port and protocol",
            set(
                set(a(), "/spec/ports/0/name", json!("a")),
                "/spec/ports/1",
                json!({"name": "b", "port": 80, "protocol": "TCP"}),
            ),
            "spec.ports[1]",
            Why::Schema,
        ),
        (
            "targetPort 0",
            set(a(), "/spec/ports/0/targetPort", json!(0)),
            "spec.ports[0].targetPort",
            Why::Service,
        ),
        (
            "name starts with a digit",
            set(a(), "/metadata/name", json!("1web")),
            "metadata.name",
            Why::Service,
        ),
        (
            "name with a dot",
            set(a(), "/metadata/name", json!("web.example")),
            "metadata.name",
            Why::Service,
        ),
        (
            "nodePort on ClusterIP",
            set(a(), "/spec/ports/0/nodePort", json!(30080)),
            "spec.ports",
            Why::Service,
        ),
        (
            "clusterIP not an IP",
            set(a(), "/spec/clusterIP", json!("not-an-ip")),
            "spec.clusterIP",
            Why::Service,
        ),
        (
            "internalTrafficPolicy",
            set(a(), "/spec/internalTrafficPolicy", json!("Nearest")),
            "spec.internalTrafficPolicy",
            Why::Service,
        ),
        (
            "selector key",
            set(a(), "/spec/selector", json!({"bad key": "x"})),
            "spec.selector",
            Why::NoProbe,
        ),
        // Probes
        (
            "unknown probe mode",
            set(a(), "/spec/healthcheck/probes/0/mode", json!("UDP")),
            "spec.healthcheck.probes[0].mode",
            Why::Schema,
        ),
        (
            "mode without its section",
            set(
                a(),
                "/spec/healthcheck/probes/0",
                json!({"mode": "HTTP", "tcp": {"targetPort": 8080}}),
            ),
            "spec.healthcheck.probes[0]",
            Why::NoProbe,
        ),
        (
            "timeout zero",
            set(a(), "/spec/healthcheck/probes/0/timeoutSeconds", json!(0)),
            "spec.healthcheck.probes[0].timeoutSeconds",
            Why::Schema,
        ),
        (
            "negative period",
            set(a(), "/spec/healthcheck/periodSeconds", json!(-1)),
            "spec.healthcheck.periodSeconds",
            Why::Schema,
        ),
        (
            "http method",
            set(
                a(),
                "/spec/healthcheck/probes/0/http/method",
                json!("FETCH"),
            ),
            "spec.healthcheck.probes[0].http.method",
            Why::Schema,
        ),
        (
            "probe target port 0",
            set(a(), "/spec/healthcheck/probes/0/http/targetPort", json!(0)),
            "spec.healthcheck.probes[0].http.targetPort",
            Why::Schema,
        ),
        (
            "host with a space",
            set(
                a(),
                "/spec/healthcheck/probes/0/http/host",
                json!("my host"),
            ),
            "spec.healthcheck.probes[0].http.host",
            Why::Schema,
        ),
        (
            "header name",
            set(
                a(),
                "/spec/healthcheck/probes/0/http/httpHeaders",
                json!([{"name": "bad header", "value": "x"}]),
            ),
            "spec.healthcheck.probes[0].http.httpHeaders[0].name",
            Why::NoProbe,
        ),
        (
            "header value with a line break",
            set(
                a(),
                "/spec/healthcheck/probes/0/http/httpHeaders",
                json!([{"name": "X-Probe", "value": "a\r\nInjected: 1"}]),
            ),
            "spec.healthcheck.probes[0].http.httpHeaders[0].value",
            Why::NoProbe,
        ),
        // v1beta1 (stricter: the same settings are v1alpha1 warnings, see below)
        (
            "v1beta1: timeout above period",
            set(
                set(b(), "/spec/healthcheck/periodSeconds", json!(2)),
                "/spec/healthcheck/probes/0/timeoutSeconds",
                json!(5),
            ),
            "timeoutSeconds",
            Why::Beta,
        ),
        (
            "v1beta1: transitionPeriodSeconds zero",
            set(
                b(),
                "/spec/healthcheck/probes/0/transitionPeriodSeconds",
                json!(0),
            ),
            "transitionPeriodSeconds",
            Why::BetaField,
        ),
        (
            "v1beta1: transitionPeriodSeconds above the period",
            set(
                set(b(), "/spec/healthcheck/periodSeconds", json!(2)),
                "/spec/healthcheck/probes/0/transitionPeriodSeconds",
                json!(5),
            ),
            "transitionPeriodSeconds",
            Why::BetaField,
        ),
        (
            "v1beta1: transitionPeriodSeconds above the probe's period",
            set(
                set(b(), "/spec/healthcheck/probes/0/periodSeconds", json!(3)),
                "/spec/healthcheck/probes/0/transitionPeriodSeconds",
                json!(4),
            ),
            "transitionPeriodSeconds",
            Why::BetaField,
        ),
        (
            "v1beta1: path with a space",
            set(b(), "/spec/healthcheck/probes/0/http/path", json!("/a b")),
            "spec.healthcheck.probes[0].http.path",
            Why::Beta,
        ),
        (
            "v1beta1: sessionAffinity",
            set(b(), "/spec/sessionAffinity", json!("Sticky")),
            "spec.sessionAffinity",
            Why::Schema,
        ),
        (
            "v1beta1: auth secret name",
            set(
                b(),
                "/spec/healthcheck/probes/0",
                json!({"name": "db", "mode": "PostgreSQL", "postgreSQL": {"port": 5432, "authSecretName": "Bad_Secret"}}),
            ),
            "spec.healthcheck.probes[0].postgreSQL.authSecretName",
            Why::Beta,
        ),
        (
            "duplicate probe names",
            set(
                b(),
                "/spec/healthcheck/probes/1",
                json!({"name": "ready", "mode": "TCP", "tcp": {"port": 8080}}),
            ),
            "spec.healthcheck.probes[1]",
            Why::BetaField,
        ),
        (
            "probe name not a DNS label",
            set(b(), "/spec/healthcheck/probes/0/name", json!("Ready!")),
            "spec.healthcheck.probes[0].name",
            Why::BetaField,
        ),
        (
            "expected status out of range",
            set(
                b(),
                "/spec/healthcheck/probes/0/http/expectedStatuses",
                json!(["700"]),
            ),
            "spec.healthcheck.probes[0].http.expectedStatuses[0]",
            Why::Beta,
        ),
        (
            "caCert not PEM",
            set(
                b(),
                "/spec/healthcheck/probes/0/http/caCert",
                json!("not a certificate"),
            ),
            "spec.healthcheck.probes[0].http.caCert",
            Why::Beta,
        ),
        (
            "failOpen percent",
            set(
                b(),
                "/spec/healthcheck/failOpen",
                json!({"minPassingPercent": 0}),
            ),
            "spec.healthcheck.failOpen.minPassingPercent",
            Why::BetaField,
        ),
        (
            "grpc without grpc section",
            set(
                b(),
                "/spec/healthcheck/probes/0",
                json!({"name": "g", "mode": "GRPC"}),
            ),
            "spec.healthcheck.probes[0]",
            Why::NoProbe,
        ),
    ]
}

fn layer(stderr: &str) -> &'static str {
    if stderr.contains("admission webhook") {
        "webhook"
    } else if stderr.contains("Unsupported value")
        || stderr.contains("Duplicate value")
        || stderr.contains("should be less than")
        || stderr.contains("should be greater than")
        || stderr.contains("must be of type")
        || stderr.contains("in body")
    {
        "schema"
    } else {
        "CEL"
    }
}

#[test]
fn invalid_manifests_are_rejected_naming_the_field_and_the_reason() {
    let cluster = cluster();
    let ns = Ns::new(&cluster, "wh-bad");
    let cases = invalid_cases();
    assert!(cases.len() >= 25);
    let mut failures = Vec::new();
    let mut layers = std::collections::BTreeMap::<&str, usize>::new();
    for (what, obj, field, why) in &cases {
        let text = serde_json::to_string(obj).expect("json");
        let o = kubectl(
            &cluster,
            &["apply", "--dry-run=server", "-n", &ns.name, "-f", "-"],
            Some(&text),
        );
        let l = layer(&o.stderr);
        let alpha = obj["apiVersion"] == "network.deckhouse.io/v1alpha1";
        if o.ok {
            failures.push(format!("{what}: accepted: {}", o.stdout.trim()));
        } else if !o.stderr.contains(field) {
            failures.push(format!(
                "{what}: rejected ({l}) without naming {field}: {}",
                o.stderr.trim()
            ));
        } else if l == "schema" {
            // The API server's own message, for a constraint Deckhouse's schema has too.
            if alpha && *why != Why::Schema {
                failures.push(format!(
                    "{what}: v1alpha1 schema rejection of a {why:?} case: {}",
                    o.stderr.trim()
                ));
            }
            *layers.entry(l).or_default() += 1;
        } else if let Some(suffix) = why.suffix()
            && !o.stderr.contains(suffix)
        {
            failures.push(format!(
                "{what}: rejected ({l}) without its reason {suffix:?}: {}",
                o.stderr.trim()
            ));
        } else {
            *layers.entry(l).or_default() += 1;
            eprintln!(
                "{what:32} [{l:7}] {}",
                o.stderr.trim().lines().next().unwrap_or("")
            );
        }
    }
    eprintln!("rejections by layer: {layers:?}");
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    assert!(
        layers.len() == 3,
        "expected all three layers to reject something: {layers:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Deckhouse-valid manifests: accepted by v1alpha1 (with a warning where swh sees a risk)
// ---------------------------------------------------------------------------------------------

/// Manifests Deckhouse accepts: (case, v1alpha1 object, text of the `Warning:` kubectl prints;
/// empty: no warning). One per rule that v1alpha1 relaxed into a warning, then the Deckhouse
/// documentation's examples.
fn deckhouse_valid_cases() -> Vec<(&'static str, Value, &'static str)> {
    let a = alpha_base;
    let pg = || {
        set(
            a(),
            "/spec/healthcheck/probes/0",
            json!({"mode": "PostgreSQL", "postgreSQL": {"targetPort": 5432, "dbName": "postgres", "authSecretName": "cred-secret", "query": "SELECT 1"}}),
        )
    };
    let yaml = |text: &str| -> Value { serde_yaml::from_str(text).expect("Deckhouse example") };
    let many: Vec<Value> = (0..33)
        .map(|i| json!({"mode": "TCP", "tcp": {"targetPort": 8000 + i}}))
        .collect();
    vec![
        (
            "timeout above the period (PostgreSQL, the reported case)",
            set(
                set(pg(), "/spec/healthcheck/periodSeconds", json!(1)),
                "/spec/healthcheck/probes/0/timeoutSeconds",
                json!(3),
            ),
            "Warning: spec.healthcheck.probes[0].timeoutSeconds: 3 > periodSeconds 1: a slow \
             target is probed at most every 3 s",
        ),
        (
            "timeout above 30 h",
            set(
                a(),
                "/spec/healthcheck/probes/0/timeoutSeconds",
                json!(200_000),
            ),
            "Warning: spec.healthcheck.probes[0].timeoutSeconds: 200000 > periodSeconds 10",
        ),
        (
            "failureThreshold above 10000",
            set(
                a(),
                "/spec/healthcheck/probes/0/failureThreshold",
                json!(20_000),
            ),
            "Warning: spec.healthcheck.probes[0].failureThreshold: 20000 is above 10000",
        ),
        (
            "33 probes",
            set(a(), "/spec/healthcheck/probes", json!(many)),
            "Warning: spec.healthcheck.probes: 33 probes: v1beta1 takes at most 32",
        ),
        (
            "path without a slash",
            set(
                a(),
                "/spec/healthcheck/probes/0/http/path",
                json!("healthz"),
            ),
            "Warning: spec.healthcheck.probes[0].http.path: \"healthz\" does not start with '/'; \
             it is requested as \"/healthz\"",
        ),
        (
            "path with a space",
            set(a(), "/spec/healthcheck/probes/0/http/path", json!("/a b")),
            "Warning: spec.healthcheck.probes[0].http.path: \"/a b\" has spaces",
        ),
        (
            "host Deckhouse's format accepts",
            set(
                a(),
                "/spec/healthcheck/probes/0/http/host",
                json!("bücher.example"),
            ),
            "Warning: spec.healthcheck.probes[0].http.host: \"bücher.example\" is not a DNS name",
        ),
        (
            "status code outside HTTP's",
            set(
                a(),
                "/spec/healthcheck/probes/0/http/code",
                json!([200, 999]),
            ),
            "Warning: spec.healthcheck.probes[0].http.code[1]: 999 is not an HTTP status",
        ),
        (
            "caCert not PEM",
            set(
                set(
                    a(),
                    "/spec/healthcheck/probes/0/http/scheme",
                    json!("HTTPS"),
                ),
                "/spec/healthcheck/probes/0/http/caCert",
                json!("not a certificate"),
            ),
            "Warning: spec.healthcheck.probes[0].http.caCert: not a PEM certificate bundle",
        ),
        (
            "section of another mode",
            set(
                set(a(), "/spec/healthcheck/probes/0/mode", json!("TCP")),
                "/spec/healthcheck/probes/0/tcp",
                json!({"targetPort": 8080}),
            ),
            "Warning: spec.healthcheck.probes[0].http: mode is TCP, so http is ignored",
        ),
        (
            "auth secret name no Secret can have",
            set(
                pg(),
                "/spec/healthcheck/probes/0/postgreSQL/authSecretName",
                json!("Bad_Secret"),
            ),
            "Warning: spec.healthcheck.probes[0].postgreSQL.authSecretName: \"Bad_Secret\" is not \
             a valid Secret name",
        ),
        (
            "empty query",
            set(
                pg(),
                "/spec/healthcheck/probes/0/postgreSQL/query",
                json!(""),
            ),
            "Warning: spec.healthcheck.probes[0].postgreSQL.query: query is empty",
        ),
        (
            "empty dbName",
            set(
                pg(),
                "/spec/healthcheck/probes/0/postgreSQL/dbName",
                json!(""),
            ),
            "Warning: spec.healthcheck.probes[0].postgreSQL.dbName: \"\" is not a usable database \
             name",
        ),
        (
            "sessionAffinity Deckhouse ignores",
            set(a(), "/spec/sessionAffinity", json!("Sticky")),
            "Warning: spec.sessionAffinity: unsupported value \"Sticky\"; use ClientIP or None \
             (Deckhouse ignores this field",
        ),
        (
            "sessionAffinityConfig without ClientIP",
            set(
                a(),
                "/spec/sessionAffinityConfig",
                json!({"clientIP": {"timeoutSeconds": 60}}),
            ),
            "Warning: spec.sessionAffinityConfig: only used with sessionAffinity: ClientIP",
        ),
        (
            "externalTrafficPolicy on ClusterIP",
            set(a(), "/spec/externalTrafficPolicy", json!("Local")),
            "Warning: spec.externalTrafficPolicy: only used when type is NodePort or LoadBalancer",
        ),
        (
            "healthCheckNodePort on ClusterIP",
            set(a(), "/spec/healthCheckNodePort", json!(30999)),
            "Warning: spec.healthCheckNodePort: only used with type LoadBalancer",
        ),
        (
            "allocateLoadBalancerNodePorts on ClusterIP",
            set(a(), "/spec/allocateLoadBalancerNodePorts", json!(false)),
            "Warning: spec.allocateLoadBalancerNodePorts: only used when type is LoadBalancer",
        ),
        (
            "loadBalancerClass on ClusterIP",
            set(a(), "/spec/loadBalancerClass", json!("example.com/vip")),
            "Warning: spec.loadBalancerClass: only used when type is LoadBalancer",
        ),
        (
            "loadBalancerIP not an IP",
            set(a(), "/spec/loadBalancerIP", json!("auto")),
            "Warning: spec.loadBalancerIP: \"auto\" is not a valid IP address",
        ),
        (
            "source range not a CIDR",
            set(
                set(a(), "/spec/type", json!("LoadBalancer")),
                "/spec/loadBalancerSourceRanges",
                json!(["10.0.0.0/99"]),
            ),
            "Warning: spec.loadBalancerSourceRanges[0]: \"10.0.0.0/99\" is not a CIDR",
        ),
        (
            "externalIPs not IPs",
            set(a(), "/spec/externalIPs", json!(["gateway"])),
            "Warning: spec.externalIPs[0]: \"gateway\" is not a valid IP address",
        ),
        (
            "three clusterIPs",
            set(
                a(),
                "/spec/clusterIPs",
                json!(["10.96.0.10", "fd00::10", "10.96.0.11"]),
            ),
            "Warning: spec.clusterIPs: 3 addresses given",
        ),
        (
            "ipFamilies",
            set(a(), "/spec/ipFamilies", json!(["IPv5"])),
            "Warning: spec.ipFamilies[0]: unsupported family \"IPv5\"",
        ),
        (
            "ipFamilyPolicy",
            set(a(), "/spec/ipFamilyPolicy", json!("TripleStack")),
            "Warning: spec.ipFamilyPolicy: unsupported value \"TripleStack\"",
        ),
        (
            "trafficDistribution",
            set(a(), "/spec/trafficDistribution", json!("PreferFar")),
            "Warning: spec.trafficDistribution: unsupported value \"PreferFar\"",
        ),
        // The Deckhouse documentation's examples, unchanged (the Secret exists: no warning).
        ("docs: web", yaml(DECKHOUSE_WEB), ""),
        ("docs: smtp", yaml(DECKHOUSE_SMTP), ""),
        ("docs: postgres-read", yaml(DECKHOUSE_PG_READ), ""),
        ("docs: postgres-write", yaml(DECKHOUSE_PG_WRITE), ""),
    ]
}

#[test]
fn deckhouse_valid_manifests_are_accepted_with_the_warning_kubectl_prints() {
    let cluster = cluster();
    let ns = Ns::new(&cluster, "wh-dh-ok");
    ok(
        &cluster,
        &[
            "-n",
            &ns.name,
            "create",
            "secret",
            "generic",
            "cred-secret",
            "--from-literal=user=postgres",
            "--from-literal=password=example",
        ],
        None,
    );
    let cases = deckhouse_valid_cases();
    assert!(cases.len() >= 30);
    let mut failures = Vec::new();
    for (i, (what, obj, warning)) in cases.iter().enumerate() {
        let mut obj = obj.clone();
        let name = format!("dh-{i}");
        obj["metadata"]["name"] = json!(name);
        let o = kubectl(
            &cluster,
            &["create", "-n", &ns.name, "-f", "-"],
            Some(&obj.to_string()),
        );
        if !o.ok {
            failures.push(format!("{what}: denied: {}", o.stderr.trim()));
            continue;
        }
        let warnings: Vec<&str> = o
            .stderr
            .lines()
            .filter(|l| l.starts_with("Warning: "))
            .collect();
        if warning.is_empty() {
            if !warnings.is_empty() {
                failures.push(format!("{what}: unexpected warnings: {warnings:?}"));
            }
        } else if !warnings.iter().any(|w| w.starts_with(warning)) {
            failures.push(format!(
                "{what}: no warning starting with {warning:?}: {}",
                o.stderr.trim()
            ));
        } else {
            eprintln!("{what:44} {}", warnings[0]);
        }
        // Stored (as v1beta1) and readable in both versions.
        for resource in [ALPHA, BETA] {
            let r = kubectl(
                &cluster,
                &["get", "-n", &ns.name, resource, &name, "-o", "name"],
                None,
            );
            if !r.ok {
                failures.push(format!("{what}: not readable as {resource}: {}", r.stderr));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn status_of_a_v1alpha1_object_with_a_long_timeout_is_written_through_v1beta1() {
    // The controller writes status through v1beta1, whose schema has the timeout ≤ period
    // rule: an unchanged spec must not block it (the API server ratchets unchanged fields).
    let cluster = cluster();
    let ns = Ns::new(&cluster, "wh-slow");
    let mut obj = set(
        set(alpha_base(), "/spec/healthcheck/periodSeconds", json!(1)),
        "/spec/healthcheck/probes/0/timeoutSeconds",
        json!(3),
    );
    obj["metadata"]["name"] = json!("slow");
    let o = ok(
        &cluster,
        &["create", "-n", &ns.name, "-f", "-"],
        Some(&obj.to_string()),
    );
    assert!(o.stderr.contains("3 > periodSeconds 1"), "{}", o.stderr);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let beta = get_json(&cluster, &ns.name, BETA, "slow");
        let synced = beta["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| {
                c["type"] == "ChildServiceReady"
                    && c["status"] == "True"
                    && c["observedGeneration"] == beta["metadata"]["generation"]
            });
        if synced {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the controller's status never arrived: {}",
            beta["status"]
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // An edit through v1beta1 keeps the stored timeout (a warning, not a denial).
    let o = ok(
        &cluster,
        &[
            "patch",
            "-n",
            &ns.name,
            BETA,
            "slow",
            "--type=merge",
            "-p",
            r#"{"spec":{"selector":{"app":"web2"}}}"#,
        ],
        None,
    );
    assert!(
        o.stderr.contains("(kept: the stored object has it)"),
        "{}",
        o.stderr
    );
}

#[test]
fn a_changed_cluster_ip_is_a_v1alpha1_warning() {
    // Deckhouse accepts it and reports ChildServiceClusterIPImmutable; so does swh.
    let cluster = cluster();
    let ns = Ns::new(&cluster, "wh-cip");
    let mut obj = alpha_base();
    obj["metadata"]["name"] = json!("pinned");
    let created = ok(
        &cluster,
        &["create", "-n", &ns.name, "-f", "-"],
        Some(&obj.to_string()),
    );
    assert!(!created.stderr.contains("Warning"), "{}", created.stderr);
    let o = ok(
        &cluster,
        &[
            "patch",
            "-n",
            &ns.name,
            ALPHA,
            "pinned",
            "--type=merge",
            "-p",
            r#"{"spec":{"clusterIP":"10.96.200.1"}}"#,
        ],
        None,
    );
    let first = o.stderr.clone();
    let o = kubectl(
        &cluster,
        &[
            "patch",
            "-n",
            &ns.name,
            ALPHA,
            "pinned",
            "--type=merge",
            "-p",
            r#"{"spec":{"clusterIP":"10.96.200.2"}}"#,
        ],
        None,
    );
    assert!(o.ok, "denied: {}", o.stderr);
    assert!(
        o.stderr
            .contains("Warning: spec.clusterIP: clusterIP was \"10.96.200.1\" and can't change"),
        "{first}\n{}",
        o.stderr
    );
}

// ---------------------------------------------------------------------------------------------
// Conversion
// ---------------------------------------------------------------------------------------------

/// Every field of `want` is in `got` with the same value (the server may add defaults).
fn assert_subset(want: &Value, got: &Value, path: &str) {
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => {
            for (k, v) in w {
                let g = g
                    .get(k)
                    .unwrap_or_else(|| panic!("{path}.{k} missing in {got}"));
                assert_subset(v, g, &format!("{path}.{k}"));
            }
        }
        (Value::Array(w), Value::Array(g)) => {
            assert_eq!(w.len(), g.len(), "{path}: length");
            for (i, (w, g)) in w.iter().zip(g).enumerate() {
                assert_subset(w, g, &format!("{path}[{i}]"));
            }
        }
        _ => assert_eq!(want, got, "{path}"),
    }
}

#[test]
fn v1alpha1_reads_back_as_v1beta1_and_again_as_the_same_v1alpha1() {
    let cluster = cluster();
    let ns = Ns::new(&cluster, "wh-conv");
    let mut applied = alpha_base();
    applied["metadata"]["name"] = json!("alpha");
    applied["spec"]["ports"] = json!([
        {"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080},
        {"name": "admin", "port": 81, "protocol": "TCP", "targetPort": "admin"}
    ]);
    applied["spec"]["healthcheck"] = json!({
        "initialDelaySeconds": 3,
        "periodSeconds": 7,
        "probes": [
            {"mode": "HTTP", "timeoutSeconds": 2, "successThreshold": 2, "failureThreshold": 4,
             "http": {"targetPort": 8080, "path": "/healthz", "method": "GET", "scheme": "HTTP", "code": [200, 204],
                      "httpHeaders": [{"name": "X-Probe", "value": "1"}]}},
            {"mode": "TCP", "timeoutSeconds": 1, "successThreshold": 1, "failureThreshold": 3, "tcp": {"targetPort": 2525}},
            {"mode": "PostgreSQL", "timeoutSeconds": 1, "successThreshold": 1, "failureThreshold": 3,
             "postgreSQL": {"targetPort": 5432, "dbName": "postgres", "authSecretName": "cred", "query": "SELECT 1"}}
        ]
    });
    ok(
        &cluster,
        &["apply", "-n", &ns.name, "-f", "-"],
        Some(&applied.to_string()),
    );

    let beta = get_json(&cluster, &ns.name, BETA, "alpha");
    assert_eq!(beta["apiVersion"], "network.deckhouse.io/v1beta1");
    let names: Vec<&str> = beta["spec"]["healthcheck"]["probes"]
        .as_array()
        .expect("probes")
        .iter()
        .map(|p| p["name"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(names, ["http-0", "tcp-1", "postgresql-2"]);
    assert_eq!(
        beta["spec"]["healthcheck"]["probes"][0]["http"]["port"],
        8080
    );

    let alpha = get_json(&cluster, &ns.name, ALPHA, "alpha");
    assert_eq!(alpha["apiVersion"], "network.deckhouse.io/v1alpha1");
    assert_subset(&applied["spec"], &alpha["spec"], "spec");
    // (The v1beta1-fields annotation may appear: the server defaults v1beta1-only fields such
    // as postgreSQL.connection on the storage version; the spec is what matters here.)
    // Stable: reading again (after a v1beta1 read) gives the identical spec.
    let _ = get_json(&cluster, &ns.name, BETA, "alpha");
    let again = get_json(&cluster, &ns.name, ALPHA, "alpha");
    assert_eq!(alpha["spec"], again["spec"]);
    // Writing the v1alpha1 read back unchanged is a no-op for the spec (read again on a
    // conflict: the controller writes status concurrently).
    let mut current = again.clone();
    for attempt in 0.. {
        let o = kubectl(
            &cluster,
            &["replace", "-n", &ns.name, "-f", "-"],
            Some(&current.to_string()),
        );
        if o.ok {
            break;
        }
        assert!(
            o.stderr.contains("Conflict") && attempt < 10,
            "kubectl replace: {}",
            o.stderr
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
        current = get_json(&cluster, &ns.name, ALPHA, "alpha");
        assert_eq!(current["spec"], again["spec"]);
    }
    let beta_after = get_json(&cluster, &ns.name, BETA, "alpha");
    assert_eq!(beta["spec"], beta_after["spec"]);
    assert_eq!(
        beta["metadata"]["generation"],
        beta_after["metadata"]["generation"]
    );
}

#[test]
fn v1beta1_only_fields_survive_an_update_through_v1alpha1() {
    let cluster = cluster();
    let ns = Ns::new(&cluster, "wh-rt");
    let applied = json!({
        "apiVersion": "network.deckhouse.io/v1beta1",
        "kind": "ServiceWithHealthchecks",
        "metadata": {"name": "rich"},
        "spec": {
            "ports": [{"name": "http", "port": 80, "targetPort": "web"}, {"name": "grpc", "port": 9090, "targetPort": 9090}],
            "selector": {"app": "rich"},
            "healthcheck": {
                "periodSeconds": 10,
                "failOpen": {"minPassingPercent": 50},
                "probes": [
                    {"name": "ready", "mode": "HTTP", "periodSeconds": 5, "initialDelaySeconds": 1,
                     "http": {"port": "web", "path": "/ready", "expectedStatuses": ["200-299"], "bodyContains": "ok"}},
                    {"name": "grpc-health", "mode": "GRPC", "grpc": {"port": 9090, "service": "x.Health"}},
                    {"name": "db", "mode": "PostgreSQL", "postgreSQL": {"port": 5432, "authSecretName": "cred", "connection": "PerProbe"}}
                ]
            }
        }
    });
    ok(
        &cluster,
        &["apply", "--server-side", "-n", &ns.name, "-f", "-"],
        Some(&applied.to_string()),
    );

    // Update through v1alpha1: change a field both versions have. Read-modify-replace, again
    // on a conflict, as any client does: the controller writes status concurrently.
    let mut attempts = 0;
    loop {
        let mut alpha = get_json(&cluster, &ns.name, ALPHA, "rich");
        assert_eq!(
            alpha["spec"]["healthcheck"]["probes"][1]["mode"], "TCP",
            "gRPC shows as TCP to v1alpha1"
        );
        alpha["spec"]["selector"] = json!({"app": "rich", "tier": "web"});
        alpha["spec"]["healthcheck"]["probes"][0]["timeoutSeconds"] = json!(3);
        let o = kubectl(
            &cluster,
            &["replace", "-n", &ns.name, "-f", "-"],
            Some(&alpha.to_string()),
        );
        if o.ok {
            break;
        }
        attempts += 1;
        assert!(
            o.stderr.contains("Conflict") && attempts < 10,
            "kubectl replace: {}",
            o.stderr
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }

    let beta = get_json(&cluster, &ns.name, BETA, "rich");
    let mut want = applied["spec"].clone();
    want["selector"] = json!({"app": "rich", "tier": "web"});
    want["healthcheck"]["probes"][0]["timeoutSeconds"] = json!(3);
    assert_subset(&want, &beta["spec"], "spec");
    let annotations = beta["metadata"]["annotations"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    assert!(
        !annotations.contains_key("network.deckhouse.io/v1beta1-fields"),
        "the stash must not leak into v1beta1: {annotations:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Child Service guard
// ---------------------------------------------------------------------------------------------

#[test]
fn adding_a_selector_to_a_child_service_is_denied_except_for_the_controller() {
    let cluster = cluster();
    let ns = Ns::new(&cluster, "wh-svc");
    ok(
        &cluster,
        &["create", "-n", &ns.name, "-f", "-"],
        Some(DECKHOUSE_WEB),
    );
    let swh = get_json(&cluster, &ns.name, BETA, "web");
    let uid = swh["metadata"]["uid"].as_str().expect("uid").to_string();
    let svc = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "ownerReferences": [{
            "apiVersion": "network.deckhouse.io/v1beta1", "kind": "ServiceWithHealthchecks",
            "name": "web", "uid": uid, "controller": true, "blockOwnerDeletion": true
        }]},
        "spec": {"ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}]}
    });
    // With the controller running (the full stack), it creates this child Service itself;
    // without it, create the owned Service by hand.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        if kubectl(&cluster, &["get", "svc", "web", "-n", &ns.name], None).ok {
            break;
        }
        if std::time::Instant::now() > deadline {
            ok(
                &cluster,
                &["create", "-n", &ns.name, "-f", "-"],
                Some(&svc.to_string()),
            );
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let owner = kubectl(
        &cluster,
        &[
            "get",
            "svc",
            "web",
            "-n",
            &ns.name,
            "-o",
            "jsonpath={.metadata.ownerReferences[0].uid}",
        ],
        None,
    );
    assert_eq!(
        owner.stdout.trim(),
        uid,
        "the child Service is owned by the SWH"
    );
    let patch = r#"{"spec":{"selector":{"vm":"my-vm"}}}"#;

    // Someone else (allowed by RBAC via system:masters, stopped by the webhook).
    let o = kubectl(
        &cluster,
        &[
            "patch",
            "svc",
            "web",
            "-n",
            &ns.name,
            "--as=someone",
            "--as-group=system:masters",
            "-p",
            patch,
        ],
        None,
    );
    assert!(!o.ok, "selector added by someone else: {}", o.stdout);
    assert!(
        o.stderr.contains("denied the request") && o.stderr.contains("spec.selector"),
        "{}",
        o.stderr
    );
    let o = kubectl(
        &cluster,
        &[
            "patch",
            "svc",
            "web",
            "-n",
            &ns.name,
            "--as=someone",
            "--as-group=system:masters",
            "-p",
            r#"{"spec":{"type":"ExternalName","externalName":"example.com"}}"#,
        ],
        None,
    );
    assert!(
        !o.ok && o.stderr.contains("spec.type"),
        "{} {}",
        o.stdout,
        o.stderr
    );
    // A harmless change by someone else passes.
    ok(
        &cluster,
        &[
            "label",
            "svc",
            "web",
            "-n",
            &ns.name,
            "--as=someone",
            "--as-group=system:masters",
            "x=y",
        ],
        None,
    );
    // The controller's identity passes.
    ok(
        &cluster,
        &[
            "patch",
            "svc",
            "web",
            "-n",
            &ns.name,
            &format!("--as={}", webhook_install::CONTROLLER_USERNAME),
            "--as-group=system:masters",
            "-p",
            patch,
        ],
        None,
    );
}

// ---------------------------------------------------------------------------------------------
// Certificate rotation of a running webhook (a private process with its own certificates)
// ---------------------------------------------------------------------------------------------

struct TestCa {
    pem: String,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl TestCa {
    fn new() -> TestCa {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params
            .distinguished_name
            .push(DnType::CommonName, "rotation-ca");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        let cert = params.self_signed(&key).expect("ca");
        TestCa {
            pem: cert.pem(),
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    fn issue(&self, cert: &Path, key: &Path) -> Vec<u8> {
        use rcgen::{CertificateParams, KeyPair, SanType};
        let k = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).expect("params");
        params
            .subject_alt_names
            .push(SanType::IpAddress([127, 0, 0, 1].into()));
        let c = params.signed_by(&k, &self.issuer).expect("sign");
        // Write to temporaries and rename (atomic, like a Secret volume update).
        let (ct, kt) = (
            cert.with_extension("tmp-crt"),
            key.with_extension("tmp-key"),
        );
        std::fs::write(&kt, k.serialize_pem()).expect("key");
        std::fs::write(&ct, c.pem()).expect("cert");
        std::fs::rename(&kt, key).expect("rename key");
        std::fs::rename(&ct, cert).expect("rename cert");
        c.der().to_vec()
    }
}

/// The leaf certificate (DER) served on a new TLS handshake, verified against `ca_pem`.
fn served_cert(port: u16, ca_pem: &str) -> Result<Vec<u8>, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots
            .add(c.map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    }
    let cfg = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from("127.0.0.1")
        .map_err(|e| e.to_string())?
        .to_owned();
    let mut conn = rustls::ClientConnection::new(Arc::new(cfg), name).map_err(|e| e.to_string())?;
    let mut sock = std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    while conn.is_handshaking() {
        conn.complete_io(&mut sock).map_err(|e| e.to_string())?;
    }
    let der = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.to_vec())
        .ok_or("no peer certificate")?;
    let _ = sock.read(&mut [0u8; 0]);
    Ok(der)
}

#[test]
fn rotated_certificate_files_are_served_on_the_next_handshake() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let exe = testenv::workspace_bin("swh-webhook");
    assert!(exe.exists(), "build swh-webhook first: {}", exe.display());
    let dir = std::env::temp_dir().join(testenv::unique_name("swh-wh-rotation"));
    std::fs::create_dir_all(&dir).expect("dir");
    let (cert, key) = (dir.join("tls.crt"), dir.join("tls.key"));
    let ca = TestCa::new();
    let first = ca.issue(&cert, &key);
    let (port, admin) = (
        process::free_port().expect("port"),
        process::free_port().expect("port"),
    );
    let mut cmd = Command::new(&exe);
    cmd.arg(format!("--listen=127.0.0.1:{port}"))
        .arg(format!("--admin-listen=127.0.0.1:{admin}"))
        .arg(format!("--tls-cert-file={}", cert.display()))
        .arg(format!("--tls-key-file={}", key.display()))
        .arg("--no-api");
    let mut child = process::spawn_logged("swh-webhook-rotation", cmd, &dir.join("webhook.log"))
        .expect("spawn");
    let start = Instant::now();
    while webhook_install::http_status(admin, "/readyz") != Some(200) {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "not ready: {}",
            std::fs::read_to_string(dir.join("webhook.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        assert_eq!(served_cert(port, &ca.pem).expect("handshake"), first);
        let second = ca.issue(&cert, &key);
        assert_ne!(first, second);
        assert_eq!(
            served_cert(port, &ca.pem).expect("handshake after rotation"),
            second,
            "the very next handshake serves the new certificate"
        );
        // A new CA too (full rotation): the next handshake verifies against the new CA only.
        let ca2 = TestCa::new();
        let third = ca2.issue(&cert, &key);
        assert_eq!(
            served_cert(port, &ca2.pem).expect("handshake with the new CA"),
            third
        );
        assert!(
            served_cert(port, &ca.pem).is_err(),
            "the old CA no longer verifies"
        );
    }));
    process::stop(child.id(), Some(&mut child), Duration::from_secs(10));
    let log = std::fs::read_to_string(dir.join("webhook.log")).unwrap_or_default();
    assert!(log.contains("SIGTERM"), "graceful shutdown logged: {log}");
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}
