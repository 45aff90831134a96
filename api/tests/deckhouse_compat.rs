//! v1alpha1 is denied only where Deckhouse would fail too (issue 11): every relaxed rule is
//! accepted with a warning naming the field on v1alpha1 and still denied on v1beta1; every
//! remaining v1alpha1 denial ends with its reason; the Deckhouse documentation's manifests pass
//! without a warning.

use serde_json::{Value, json};
use swh_api::validation::{Checked, Reason, Version, check, check_json};
use swh_api::{API_VERSION_V1BETA1, conversion};

/// Deckhouse's web example (docs), v1alpha1.
fn web() -> Value {
    json!({
        "apiVersion": "network.deckhouse.io/v1alpha1",
        "kind": "ServiceWithHealthchecks",
        "metadata": {"name": "web", "namespace": "my-ns"},
        "spec": {
            "ports": [{"port": 80, "protocol": "TCP", "targetPort": 8080}],
            "selector": {"vm": "my-vm"},
            "healthcheck": {"probes": [{"mode": "HTTP", "http": {"targetPort": 8080, "method": "GET", "path": "/healthz"}}]}
        }
    })
}

/// Deckhouse's postgres-read example (docs), v1alpha1.
fn pg() -> Value {
    json!({
        "apiVersion": "network.deckhouse.io/v1alpha1",
        "kind": "ServiceWithHealthchecks",
        "metadata": {"name": "postgres-read", "namespace": "my-ns"},
        "spec": {
            "ports": [{"port": 5432, "protocol": "TCP", "targetPort": 5432}],
            "selector": {"app": "postgres"},
            "healthcheck": {"probes": [{"mode": "PostgreSQL", "postgreSQL": {
                "targetPort": 5432, "dbName": "postgres", "authSecretName": "cred-secret",
                "query": "SELECT 1"}}]}
        }
    })
}

/// Sets the values at JSON pointers (creating objects on the way).
fn with(mut v: Value, sets: &[(&str, Value)]) -> Value {
    for (pointer, value) in sets {
        let mut cur = &mut v;
        let parts: Vec<&str> = pointer.trim_start_matches('/').split('/').collect();
        for (i, part) in parts.iter().enumerate() {
            let last = i + 1 == parts.len();
            cur = match cur {
                Value::Array(a) => {
                    let idx: usize = part.parse().expect("index");
                    if idx == a.len() {
                        a.push(Value::Null);
                    }
                    &mut a[idx]
                }
                other => {
                    if !other.is_object() {
                        *other = json!({});
                    }
                    let m = other.as_object_mut().expect("object");
                    m.entry(part.to_string()).or_insert(Value::Null)
                }
            };
            if last {
                *cur = value.clone();
            }
        }
    }
    v
}

const P0: &str = "/spec/healthcheck/probes/0";

/// (case, v1alpha1 object, warning path on v1alpha1, error path on v1beta1).
fn relaxed() -> Vec<(&'static str, Value, &'static str, &'static str)> {
    let many_probes: Vec<Value> = (0..33)
        .map(|i| json!({"mode": "TCP", "tcp": {"targetPort": 8000 + i}}))
        .collect();
    vec![
        (
            "timeout above the period (the user's PostgreSQL case)",
            with(
                pg(),
                &[
                    ("/spec/healthcheck/periodSeconds", json!(1)),
                    (&format!("{P0}/timeoutSeconds"), json!(3)),
                ],
            ),
            "spec.healthcheck.probes[0].timeoutSeconds",
            "spec.healthcheck.probes[0].timeoutSeconds",
        ),
        (
            "timeout above the default period",
            with(web(), &[(&format!("{P0}/timeoutSeconds"), json!(30))]),
            "spec.healthcheck.probes[0].timeoutSeconds",
            "spec.healthcheck.probes[0].timeoutSeconds",
        ),
        (
            "timeout above 30 h",
            with(web(), &[(&format!("{P0}/timeoutSeconds"), json!(200_000))]),
            "spec.healthcheck.probes[0].timeoutSeconds",
            "spec.healthcheck.probes[0].timeoutSeconds",
        ),
        (
            "failureThreshold above 10000",
            with(web(), &[(&format!("{P0}/failureThreshold"), json!(20_000))]),
            "spec.healthcheck.probes[0].failureThreshold",
            "spec.healthcheck.probes[0].failureThreshold",
        ),
        (
            "more than 32 probes",
            with(web(), &[("/spec/healthcheck/probes", json!(many_probes))]),
            "spec.healthcheck.probes",
            "spec.healthcheck.probes",
        ),
        (
            "path without a leading slash",
            with(web(), &[(&format!("{P0}/http/path"), json!("healthz"))]),
            "spec.healthcheck.probes[0].http.path",
            "spec.healthcheck.probes[0].http.path",
        ),
        (
            "path with a space",
            with(
                web(),
                &[(&format!("{P0}/http/path"), json!("/health check"))],
            ),
            "spec.healthcheck.probes[0].http.path",
            "spec.healthcheck.probes[0].http.path",
        ),
        (
            "host that is not a DNS name (Deckhouse's format: hostname takes letters)",
            with(
                web(),
                &[(&format!("{P0}/http/host"), json!("bücher.example"))],
            ),
            "spec.healthcheck.probes[0].http.host",
            "spec.healthcheck.probes[0].http.host",
        ),
        (
            "status code no server sends",
            with(web(), &[(&format!("{P0}/http/code"), json!([200, 999]))]),
            "spec.healthcheck.probes[0].http.code[1]",
            "spec.healthcheck.probes[0].http.expectedStatuses[1]",
        ),
        (
            "caCert not PEM",
            with(
                web(),
                &[
                    (&format!("{P0}/http/scheme"), json!("HTTPS")),
                    (&format!("{P0}/http/caCert"), json!("not a certificate")),
                ],
            ),
            "spec.healthcheck.probes[0].http.caCert",
            "spec.healthcheck.probes[0].http.caCert",
        ),
        (
            "sub-object of another mode",
            with(
                web(),
                &[
                    (&format!("{P0}/mode"), json!("TCP")),
                    (&format!("{P0}/tcp"), json!({"targetPort": 8080})),
                ],
            ),
            "spec.healthcheck.probes[0].http",
            "spec.healthcheck.probes[0].http",
        ),
        (
            "authSecretName that no Secret can have",
            with(
                pg(),
                &[(
                    &format!("{P0}/postgreSQL/authSecretName"),
                    json!("Cred_Secret"),
                )],
            ),
            "spec.healthcheck.probes[0].postgreSQL.authSecretName",
            "spec.healthcheck.probes[0].postgreSQL.authSecretName",
        ),
        (
            "empty query",
            with(pg(), &[(&format!("{P0}/postgreSQL/query"), json!(""))]),
            "spec.healthcheck.probes[0].postgreSQL.query",
            "spec.healthcheck.probes[0].postgreSQL.query",
        ),
        (
            "empty dbName",
            with(pg(), &[(&format!("{P0}/postgreSQL/dbName"), json!(""))]),
            "spec.healthcheck.probes[0].postgreSQL.dbName",
            "spec.healthcheck.probes[0].postgreSQL.dbName",
        ),
        (
            "sessionAffinity Deckhouse ignores",
            with(web(), &[("/spec/sessionAffinity", json!("Sticky"))]),
            "spec.sessionAffinity",
            "spec.sessionAffinity",
        ),
        (
            "sessionAffinityConfig without ClientIP",
            with(
                web(),
                &[(
                    "/spec/sessionAffinityConfig",
                    json!({"clientIP": {"timeoutSeconds": 60}}),
                )],
            ),
            "spec.sessionAffinityConfig",
            "spec.sessionAffinityConfig",
        ),
        (
            "sessionAffinityConfig timeout out of range",
            with(
                web(),
                &[
                    ("/spec/sessionAffinity", json!("ClientIP")),
                    (
                        "/spec/sessionAffinityConfig",
                        json!({"clientIP": {"timeoutSeconds": 0}}),
                    ),
                ],
            ),
            "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
            "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
        ),
        (
            "externalTrafficPolicy on ClusterIP",
            with(web(), &[("/spec/externalTrafficPolicy", json!("Local"))]),
            "spec.externalTrafficPolicy",
            "spec.externalTrafficPolicy",
        ),
        (
            "unknown externalTrafficPolicy on ClusterIP (ignored)",
            with(web(), &[("/spec/externalTrafficPolicy", json!("Nearest"))]),
            "spec.externalTrafficPolicy",
            "spec.externalTrafficPolicy",
        ),
        (
            "healthCheckNodePort on ClusterIP",
            with(web(), &[("/spec/healthCheckNodePort", json!(30999))]),
            "spec.healthCheckNodePort",
            "spec.healthCheckNodePort",
        ),
        (
            "allocateLoadBalancerNodePorts on ClusterIP",
            with(
                web(),
                &[("/spec/allocateLoadBalancerNodePorts", json!(false))],
            ),
            "spec.allocateLoadBalancerNodePorts",
            "spec.allocateLoadBalancerNodePorts",
        ),
        (
            "loadBalancerClass on ClusterIP",
            with(
                web(),
                &[("/spec/loadBalancerClass", json!("example.com/vip"))],
            ),
            "spec.loadBalancerClass",
            "spec.loadBalancerClass",
        ),
        (
            "loadBalancerClass that is not a label-style name",
            with(
                web(),
                &[
                    ("/spec/type", json!("LoadBalancer")),
                    ("/spec/loadBalancerClass", json!("not a class")),
                ],
            ),
            "spec.loadBalancerClass",
            "spec.loadBalancerClass",
        ),
        (
            "loadBalancerIP not an IP",
            with(web(), &[("/spec/loadBalancerIP", json!("auto"))]),
            "spec.loadBalancerIP",
            "spec.loadBalancerIP",
        ),
        (
            "loadBalancerSourceRanges not a CIDR",
            with(
                web(),
                &[
                    ("/spec/type", json!("LoadBalancer")),
                    ("/spec/loadBalancerSourceRanges", json!(["10.0.0.0/99"])),
                ],
            ),
            "spec.loadBalancerSourceRanges[0]",
            "spec.loadBalancerSourceRanges[0]",
        ),
        (
            "externalIPs not IPs",
            with(web(), &[("/spec/externalIPs", json!(["gateway"]))]),
            "spec.externalIPs[0]",
            "spec.externalIPs[0]",
        ),
        (
            "three clusterIPs (Deckhouse's schema prunes the field)",
            with(
                web(),
                &[(
                    "/spec/clusterIPs",
                    json!(["10.96.0.10", "fd00::10", "10.96.0.11"]),
                )],
            ),
            "spec.clusterIPs",
            "spec.clusterIPs",
        ),
        (
            "unknown IP family",
            with(web(), &[("/spec/ipFamilies", json!(["IPv5"]))]),
            "spec.ipFamilies[0]",
            "spec.ipFamilies[0]",
        ),
        (
            "unknown ipFamilyPolicy",
            with(web(), &[("/spec/ipFamilyPolicy", json!("TripleStack"))]),
            "spec.ipFamilyPolicy",
            "spec.ipFamilyPolicy",
        ),
        (
            "unknown trafficDistribution",
            with(web(), &[("/spec/trafficDistribution", json!("PreferFar"))]),
            "spec.trafficDistribution",
            "spec.trafficDistribution",
        ),
    ]
}

fn checked(v: &Value) -> Checked {
    check_json(v.clone(), None)
}

#[test]
fn relaxed_rules_are_warnings_on_v1alpha1_naming_the_field() {
    let cases = relaxed();
    assert!(cases.len() >= 25);
    let mut failures = Vec::new();
    for (case, alpha, path, _) in &cases {
        let c = checked(alpha);
        if !c.errors.is_empty() {
            failures.push(format!("{case}: denied on v1alpha1: {:?}", c.errors));
            continue;
        }
        let prefix = format!("{path}: ");
        match c.warnings.iter().find(|w| w.starts_with(&prefix)) {
            None => failures.push(format!("{case}: no warning at {path}: {:?}", c.warnings)),
            Some(w) if w.chars().count() > 256 => {
                failures.push(format!("{case}: warning over 256 characters: {w}"))
            }
            Some(_) => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn relaxed_rules_stay_errors_on_v1beta1() {
    let strict = [
        Reason::V1beta1Only.suffix(),
        Reason::ServiceInvalid.suffix(),
    ];
    let mut failures = Vec::new();
    for (case, alpha, _, beta_path) in relaxed() {
        let beta = conversion::convert(alpha, API_VERSION_V1BETA1).expect("converts");
        let c = checked(&beta);
        match c.errors.iter().find(|e| e.path == beta_path) {
            None => failures.push(format!("{case}: no error at {beta_path}: {:?}", c.errors)),
            Some(e) if !strict.iter().any(|s| e.message.ends_with(s)) => {
                failures.push(format!("{case}: error without its reason: {e}"))
            }
            Some(_) => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_users_case_is_accepted_with_the_advice() {
    let alpha = with(
        pg(),
        &[
            ("/spec/healthcheck/periodSeconds", json!(1)),
            (&format!("{P0}/timeoutSeconds"), json!(3)),
        ],
    );
    let c = checked(&alpha);
    assert!(c.errors.is_empty(), "{:?}", c.errors);
    assert!(
        c.warnings.iter().any(|w| w.starts_with(
            "spec.healthcheck.probes[0].timeoutSeconds: 3 > periodSeconds 1: a slow target is \
             probed at most every 3 s"
        )),
        "{:?}",
        c.warnings
    );
}

/// (case, v1alpha1 object, error path, reason).
fn denied() -> Vec<(&'static str, Value, &'static str, Reason)> {
    use Reason::*;
    let two_ports = |a: Value, b: Value| with(web(), &[("/spec/ports", json!([a, b]))]);
    vec![
        (
            "name not a Service name",
            with(web(), &[("/metadata/name", json!("1web"))]),
            "metadata.name",
            ServiceInvalid,
        ),
        (
            "name with a dot",
            with(web(), &[("/metadata/name", json!("web.example"))]),
            "metadata.name",
            ServiceInvalid,
        ),
        (
            "unknown type",
            with(web(), &[("/spec/type", json!("Bogus"))]),
            "spec.type",
            ServiceInvalid,
        ),
        (
            "ExternalName",
            with(web(), &[("/spec/type", json!("ExternalName"))]),
            "spec.type",
            ServiceInvalid,
        ),
        (
            "no ports",
            with(web(), &[("/spec/ports", json!([]))]),
            "spec.ports",
            ServiceInvalid,
        ),
        (
            "port out of range",
            with(web(), &[("/spec/ports/0/port", json!(70000))]),
            "spec.ports[0].port",
            ServiceInvalid,
        ),
        (
            "unknown protocol",
            with(web(), &[("/spec/ports/0/protocol", json!("ICMP"))]),
            "spec.ports[0].protocol",
            ServiceInvalid,
        ),
        (
            "two unnamed ports",
            two_ports(json!({"port": 80}), json!({"port": 81})),
            "spec.ports[1].name",
            ServiceInvalid,
        ),
        (
            "duplicate port names",
            two_ports(
                json!({"name": "web", "port": 80}),
                json!({"name": "web", "port": 81}),
            ),
            "spec.ports[1].name",
            ServiceInvalid,
        ),
        (
            "invalid port name",
            with(web(), &[("/spec/ports/0/name", json!("Web_Port"))]),
            "spec.ports[0].name",
            ServiceInvalid,
        ),
        (
            "duplicate port and protocol",
            two_ports(
                json!({"name": "a", "port": 80}),
                json!({"name": "b", "port": 80, "protocol": "TCP"}),
            ),
            "spec.ports[1]",
            Schema,
        ),
        (
            "targetPort 0",
            with(web(), &[("/spec/ports/0/targetPort", json!(0))]),
            "spec.ports[0].targetPort",
            ServiceInvalid,
        ),
        (
            "targetPort out of range",
            with(web(), &[("/spec/ports/0/targetPort", json!(70000))]),
            "spec.ports[0].targetPort",
            ServiceInvalid,
        ),
        (
            "targetPort bad name",
            with(web(), &[("/spec/ports/0/targetPort", json!("Web_Port"))]),
            "spec.ports[0].targetPort",
            ServiceInvalid,
        ),
        (
            "nodePort on ClusterIP",
            with(web(), &[("/spec/ports/0/nodePort", json!(30080))]),
            "spec.ports[0].nodePort",
            ServiceInvalid,
        ),
        (
            "nodePort out of range",
            with(
                web(),
                &[
                    ("/spec/type", json!("NodePort")),
                    ("/spec/ports/0/nodePort", json!(70000)),
                ],
            ),
            "spec.ports[0].nodePort",
            ServiceInvalid,
        ),
        (
            "appProtocol not a qualified name",
            with(web(), &[("/spec/ports/0/appProtocol", json!("my proto"))]),
            "spec.ports[0].appProtocol",
            ServiceInvalid,
        ),
        (
            "clusterIP not an IP",
            with(web(), &[("/spec/clusterIP", json!("not-an-ip"))]),
            "spec.clusterIP",
            ServiceInvalid,
        ),
        (
            "headless NodePort",
            with(
                web(),
                &[
                    ("/spec/type", json!("NodePort")),
                    ("/spec/clusterIP", json!("None")),
                ],
            ),
            "spec.clusterIP",
            ServiceInvalid,
        ),
        (
            "unknown internalTrafficPolicy",
            with(web(), &[("/spec/internalTrafficPolicy", json!("Nearest"))]),
            "spec.internalTrafficPolicy",
            ServiceInvalid,
        ),
        (
            "unknown externalTrafficPolicy on NodePort",
            with(
                web(),
                &[
                    ("/spec/type", json!("NodePort")),
                    ("/spec/externalTrafficPolicy", json!("Nearest")),
                ],
            ),
            "spec.externalTrafficPolicy",
            ServiceInvalid,
        ),
        (
            "selector key no pod can have",
            with(web(), &[("/spec/selector", json!({"bad key": "x"}))]),
            "spec.selector[\"bad key\"]",
            NoProbe,
        ),
        (
            "selector value no pod can have",
            with(web(), &[("/spec/selector", json!({"vm": "my vm"}))]),
            "spec.selector[\"vm\"]",
            NoProbe,
        ),
        (
            "negative initialDelaySeconds",
            with(
                web(),
                &[("/spec/healthcheck/initialDelaySeconds", json!(-1))],
            ),
            "spec.healthcheck.initialDelaySeconds",
            Schema,
        ),
        (
            "periodSeconds 0",
            with(web(), &[("/spec/healthcheck/periodSeconds", json!(0))]),
            "spec.healthcheck.periodSeconds",
            Schema,
        ),
        (
            "periodSeconds above 30 h",
            with(
                web(),
                &[("/spec/healthcheck/periodSeconds", json!(200_000))],
            ),
            "spec.healthcheck.periodSeconds",
            Schema,
        ),
        (
            "timeoutSeconds 0",
            with(web(), &[(&format!("{P0}/timeoutSeconds"), json!(0))]),
            "spec.healthcheck.probes[0].timeoutSeconds",
            Schema,
        ),
        (
            "successThreshold 0",
            with(web(), &[(&format!("{P0}/successThreshold"), json!(0))]),
            "spec.healthcheck.probes[0].successThreshold",
            Schema,
        ),
        (
            "failureThreshold 0",
            with(web(), &[(&format!("{P0}/failureThreshold"), json!(0))]),
            "spec.healthcheck.probes[0].failureThreshold",
            Schema,
        ),
        (
            "mode HTTP without http",
            with(
                web(),
                &[(P0, json!({"mode": "HTTP", "tcp": {"targetPort": 80}}))],
            ),
            "spec.healthcheck.probes[0]",
            NoProbe,
        ),
        (
            "mode PostgreSQL without postgreSQL",
            with(web(), &[(P0, json!({"mode": "PostgreSQL"}))]),
            "spec.healthcheck.probes[0]",
            NoProbe,
        ),
        (
            "probe targetPort 0",
            with(web(), &[(&format!("{P0}/http/targetPort"), json!(0))]),
            "spec.healthcheck.probes[0].http.targetPort",
            Schema,
        ),
        (
            "probe targetPort out of range",
            with(web(), &[(&format!("{P0}/http/targetPort"), json!(70000))]),
            "spec.healthcheck.probes[0].http.targetPort",
            Schema,
        ),
        (
            "probe targetPort bad name",
            with(
                web(),
                &[(&format!("{P0}/http/targetPort"), json!("Web_Port"))],
            ),
            "spec.healthcheck.probes[0].http.targetPort",
            Schema,
        ),
        (
            "tcp targetPort 0",
            with(
                web(),
                &[(P0, json!({"mode": "TCP", "tcp": {"targetPort": 0}}))],
            ),
            "spec.healthcheck.probes[0].tcp.targetPort",
            Schema,
        ),
        (
            "postgreSQL targetPort 0",
            with(pg(), &[(&format!("{P0}/postgreSQL/targetPort"), json!(0))]),
            "spec.healthcheck.probes[0].postgreSQL.targetPort",
            Schema,
        ),
        (
            "host with a space",
            with(web(), &[(&format!("{P0}/http/host"), json!("my host"))]),
            "spec.healthcheck.probes[0].http.host",
            Schema,
        ),
        (
            "header name no request can carry",
            with(
                web(),
                &[(
                    &format!("{P0}/http/httpHeaders"),
                    json!([{"name": "bad header", "value": "x"}]),
                )],
            ),
            "spec.healthcheck.probes[0].http.httpHeaders[0].name",
            NoProbe,
        ),
        (
            "header value with a line break",
            with(
                web(),
                &[(
                    &format!("{P0}/http/httpHeaders"),
                    json!([{"name": "X-Probe", "value": "a\r\nInjected: 1"}]),
                )],
            ),
            "spec.healthcheck.probes[0].http.httpHeaders[0].value",
            NoProbe,
        ),
        (
            "dbName with NUL",
            with(
                pg(),
                &[(&format!("{P0}/postgreSQL/dbName"), json!("db\u{0}x"))],
            ),
            "spec.healthcheck.probes[0].postgreSQL.dbName",
            NoProbe,
        ),
    ]
}

#[test]
fn remaining_v1alpha1_denials_say_why() {
    let cases = denied();
    let mut failures = Vec::new();
    for (case, alpha, path, reason) in &cases {
        let c = checked(alpha);
        match c.errors.iter().find(|e| e.path == *path) {
            None => failures.push(format!("{case}: no error at {path}: {:?}", c.errors)),
            Some(e) if !e.message.ends_with(reason.suffix()) => failures.push(format!(
                "{case}: want reason {:?}, got: {e}",
                reason.suffix()
            )),
            Some(_) => {}
        }
        // Every v1alpha1 denial names one of the three Deckhouse reasons.
        for e in &c.errors {
            let classes = [Reason::Schema, Reason::ServiceInvalid, Reason::NoProbe];
            if !classes.iter().any(|r| e.message.ends_with(r.suffix())) {
                failures.push(format!("{case}: a v1alpha1 denial without its reason: {e}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn deckhouse_docs_manifests_pass_without_errors_or_warnings() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).expect("fixtures") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("read");
        let v: Value = serde_yaml::from_str(&text).expect("fixture is YAML");
        let c = checked(&v);
        assert!(c.errors.is_empty(), "{}: {:?}", path.display(), c.errors);
        assert!(
            c.warnings.is_empty(),
            "{}: {:?}",
            path.display(),
            c.warnings
        );
        seen += 1;
    }
    assert_eq!(seen, 4, "the four Deckhouse examples");
}

fn beta(v: Value) -> swh_api::v1beta1::ServiceWithHealthchecks {
    conversion::to_v1beta1(v).expect("decodes")
}

#[test]
fn a_changed_cluster_ip_is_a_warning_on_v1alpha1_and_an_error_on_v1beta1() {
    let old = beta(with(web(), &[("/spec/clusterIP", json!("10.96.0.10"))]));
    let new = beta(with(web(), &[("/spec/clusterIP", json!("10.96.0.11"))]));
    let alpha = check(&new, Some(&old), Version::V1alpha1);
    assert!(alpha.errors.is_empty(), "{:?}", alpha.errors);
    assert!(
        alpha
            .warnings
            .iter()
            .any(|w| w.starts_with("spec.clusterIP: ") && w.contains("10.96.0.10")),
        "{:?}",
        alpha.warnings
    );
    let b = check(&new, Some(&old), Version::V1beta1);
    assert!(
        b.errors.iter().any(
            |e| e.path == "spec.clusterIP" && e.message.ends_with(Reason::V1beta1Only.suffix())
        ),
        "{:?}",
        b.errors
    );
}

#[test]
fn a_v1beta1_update_keeps_strict_problems_the_stored_object_had_as_warnings() {
    // Written through v1alpha1 with a timeout above the period, then edited through v1beta1.
    let stored = beta(with(
        pg(),
        &[
            ("/spec/healthcheck/periodSeconds", json!(1)),
            (&format!("{P0}/timeoutSeconds"), json!(3)),
        ],
    ));
    let mut edited = stored.clone();
    edited.spec.selector = Some([("app".to_string(), "postgres-2".to_string())].into());
    let c = check(&edited, Some(&stored), Version::V1beta1);
    assert!(c.errors.is_empty(), "{:?}", c.errors);
    assert!(
        c.warnings.iter().any(|w| w
            .starts_with("spec.healthcheck.probes[0].timeoutSeconds: 3 > periodSeconds 1")
            && w.ends_with("(kept: the stored object has it)")),
        "{:?}",
        c.warnings
    );
    // A new strict problem is still an error.
    let mut worse = edited.clone();
    if let Some(p) = worse
        .spec
        .healthcheck
        .as_mut()
        .and_then(|h| h.probes.as_mut())
        .and_then(|p| p.first_mut())
    {
        p.timeout_seconds = Some(5);
    }
    let c = check(&worse, Some(&stored), Version::V1beta1);
    assert!(
        c.errors
            .iter()
            .any(|e| e.path == "spec.healthcheck.probes[0].timeoutSeconds"),
        "{:?}",
        c.errors
    );
}

#[test]
fn paths_are_sent_percent_encoded_and_codes_outside_http_never_match() {
    let h: swh_api::v1beta1::HttpProbe = serde_json::from_value(json!({
        "port": 8080, "path": "/health check/ü?x=\"1\"", "expectedStatuses": ["999"]
    }))
    .expect("http");
    assert_eq!(h.effective_path(), "/health%20check/%C3%BC?x=%221%22");
    assert!(!h.accepts_status(200), "999 only: 2xx must not pass");
    let plain: swh_api::v1beta1::HttpProbe =
        serde_json::from_value(json!({"port": 8080, "path": "/healthz?a=%20"})).expect("http");
    assert!(matches!(
        plain.effective_path(),
        std::borrow::Cow::Borrowed("/healthz?a=%20")
    ));
    assert_eq!(
        swh_api::validation::parse_status_range("999"),
        Ok((999, 999))
    );
    assert!(swh_api::validation::status_range_problem("999").is_some());
    assert!(swh_api::validation::status_range_problem("200-299").is_none());
}
