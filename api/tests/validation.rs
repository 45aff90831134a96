//! Invalid objects: each produces an error whose path names the offending field, and whose
//! message says what would be valid.

use serde_json::{Value, json};
use swh_api::v1beta1::ServiceWithHealthchecks;
use swh_api::validation::{FieldError, validate, warnings};

const CA: &str = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUQ2Fub25pY2FsVGVzdENlcnQwCgYIKoZIzj0EAwIwDzEN\nMAsGA1UEAwwEdGVzdA==\n-----END CERTIFICATE-----\n";

fn base() -> Value {
    json!({
        "apiVersion": "network.deckhouse.io/v1beta1",
        "kind": "ServiceWithHealthchecks",
        "metadata": {"name": "db-write", "namespace": "prod"},
        "spec": {
            "type": "ClusterIP",
            "selector": {"app": "postgres"},
            "ports": [
                {"name": "pg", "port": 5432, "protocol": "TCP", "targetPort": 5432},
                {"name": "metrics", "port": 9187, "protocol": "TCP", "targetPort": "metrics"}
            ],
            "healthcheck": {
                "initialDelaySeconds": 5,
                "periodSeconds": 10,
                "failOpen": {"minPassingPercent": 50},
                "probes": [
                    {"name": "primary", "mode": "PostgreSQL", "timeoutSeconds": 2,
                     "postgreSQL": {"port": 5432, "authSecretName": "cred-secret",
                                    "query": "SELECT NOT pg_is_in_recovery()",
                                    "tls": {"mode": "VerifyCA", "caCert": CA}}},
                    {"name": "http", "mode": "HTTP",
                     "http": {"port": "http", "path": "/healthz", "host": "db.example.com",
                              "scheme": "HTTPS", "caCert": CA,
                              "httpHeaders": [{"name": "X-Probe", "value": "1"}],
                              "expectedStatuses": ["200-299", "301"], "bodyContains": "ok"}},
                    {"name": "tcp", "mode": "TCP", "tcp": {"port": 5432}},
                    {"name": "grpc", "mode": "GRPC", "grpc": {"port": 9090, "service": "db"}}
                ]
            }
        }
    })
}

fn obj(v: Value) -> ServiceWithHealthchecks {
    serde_json::from_value(v).expect("test object decodes")
}

/// Set (or with `Value::Null`, remove) the value at a JSON pointer.
fn with(mut v: Value, pointer: &str, new: Value) -> Value {
    let (parent, key) = pointer.rsplit_once('/').expect("pointer");
    let target = v.pointer_mut(parent).expect("parent exists");
    match target {
        Value::Object(m) => {
            if new.is_null() {
                m.remove(key);
            } else {
                m.insert(key.to_string(), new);
            }
        }
        Value::Array(a) => {
            let i: usize = key.parse().expect("index");
            if new.is_null() {
                a.remove(i);
            } else if i == a.len() {
                a.push(new);
            } else {
                a[i] = new;
            }
        }
        _ => panic!("parent is a scalar"),
    }
    v
}

#[test]
fn base_object_is_valid() {
    let errs = validate(&obj(base()), None);
    assert!(errs.is_empty(), "{errs:#?}");
}

#[test]
fn transition_periods_up_to_the_period_are_valid() {
    let p = "/spec/healthcheck/probes";
    for (period, transition) in [(None, 1), (None, 10), (Some(3), 3), (Some(30), 15)] {
        let mut v = with(
            base(),
            &format!("{p}/2/transitionPeriodSeconds"),
            json!(transition),
        );
        if let Some(period) = period {
            v = with(v, &format!("{p}/2/periodSeconds"), json!(period));
        }
        let errs = validate(&obj(v), None);
        assert!(
            errs.is_empty(),
            "period {period:?}, transition {transition}: {errs:#?}"
        );
    }
}

fn assert_error(name: &str, v: Value, path: &str) -> Vec<FieldError> {
    let errs = validate(&obj(v), None);
    assert!(
        errs.iter().any(|e| e.path == path),
        "case {name}: want an error at {path}, got {errs:#?}"
    );
    for e in &errs {
        assert!(!e.message.is_empty(), "case {name}: empty message");
        assert_eq!(e.to_string(), format!("{}: {}", e.path, e.message));
    }
    errs
}

#[test]
fn invalid_objects_name_the_field() {
    let p = "/spec/healthcheck/probes";
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "name uppercase",
            with(base(), "/metadata/name", json!("DB")),
            "metadata.name",
        ),
        (
            "name starts with digit",
            with(base(), "/metadata/name", json!("1db")),
            "metadata.name",
        ),
        (
            "name too long",
            with(base(), "/metadata/name", json!("a".repeat(64))),
            "metadata.name",
        ),
        (
            "type ExternalName",
            with(base(), "/spec/type", json!("ExternalName")),
            "spec.type",
        ),
        (
            "type unknown",
            with(base(), "/spec/type", json!("Magic")),
            "spec.type",
        ),
        (
            "port name invalid",
            with(base(), "/spec/ports/0/name", json!("PG_1")),
            "spec.ports[0].name",
        ),
        (
            "port name missing with 2 ports",
            with(base(), "/spec/ports/1/name", Value::Null),
            "spec.ports[1].name",
        ),
        (
            "port name duplicate",
            with(base(), "/spec/ports/1/name", json!("pg")),
            "spec.ports[1].name",
        ),
        (
            "port out of range",
            with(base(), "/spec/ports/0/port", json!(70000)),
            "spec.ports[0].port",
        ),
        (
            "port zero",
            with(base(), "/spec/ports/0/port", json!(0)),
            "spec.ports[0].port",
        ),
        (
            "duplicate port+protocol",
            with(base(), "/spec/ports/1/port", json!(5432)),
            "spec.ports[1]",
        ),
        (
            "protocol unknown",
            with(base(), "/spec/ports/0/protocol", json!("ICMP")),
            "spec.ports[0].protocol",
        ),
        (
            "targetPort out of range",
            with(base(), "/spec/ports/0/targetPort", json!(0)),
            "spec.ports[0].targetPort",
        ),
        (
            "targetPort bad name",
            with(
                base(),
                "/spec/ports/1/targetPort",
                json!("Metrics_Port_Long"),
            ),
            "spec.ports[1].targetPort",
        ),
        (
            "nodePort with ClusterIP",
            with(base(), "/spec/ports/0/nodePort", json!(30080)),
            "spec.ports[0].nodePort",
        ),
        (
            "no ports",
            with(base(), "/spec/ports", json!([])),
            "spec.ports",
        ),
        (
            "clusterIP garbage",
            with(base(), "/spec/clusterIP", json!("10.0.0.300")),
            "spec.clusterIP",
        ),
        (
            "externalIP garbage",
            with(base(), "/spec/externalIPs", json!(["nope"])),
            "spec.externalIPs[0]",
        ),
        (
            "source range not CIDR",
            with(
                base(),
                "/spec/loadBalancerSourceRanges",
                json!(["10.0.0.0/33"]),
            ),
            "spec.loadBalancerSourceRanges[0]",
        ),
        (
            "ETP with ClusterIP",
            with(base(), "/spec/externalTrafficPolicy", json!("Local")),
            "spec.externalTrafficPolicy",
        ),
        (
            "selector bad key",
            with(base(), "/spec/selector", json!({"bad key": "x"})),
            "spec.selector[\"bad key\"]",
        ),
        (
            "ipFamilies duplicate",
            with(base(), "/spec/ipFamilies", json!(["IPv4", "IPv4"])),
            "spec.ipFamilies[1]",
        ),
        (
            "session affinity timeout",
            with(
                with(base(), "/spec/sessionAffinity", json!("ClientIP")),
                "/spec/sessionAffinityConfig",
                json!({"clientIP": {"timeoutSeconds": 0}}),
            ),
            "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
        ),
        (
            "mode without sub-object",
            with(base(), &format!("{p}/1/http"), Value::Null),
            "spec.healthcheck.probes[1]",
        ),
        (
            "extra sub-object",
            with(base(), &format!("{p}/2/http"), json!({"port": 80})),
            "spec.healthcheck.probes[2].http",
        ),
        (
            "probe name invalid",
            with(base(), &format!("{p}/0/name"), json!("Primary!")),
            "spec.healthcheck.probes[0].name",
        ),
        (
            "probe name duplicate",
            with(base(), &format!("{p}/2/name"), json!("http")),
            "spec.healthcheck.probes[2].name",
        ),
        (
            "probe port out of range",
            with(base(), &format!("{p}/2/tcp/port"), json!(65536)),
            "spec.healthcheck.probes[2].tcp.port",
        ),
        (
            "grpc named port invalid",
            with(base(), &format!("{p}/3/grpc/port"), json!("-grpc")),
            "spec.healthcheck.probes[3].grpc.port",
        ),
        (
            "failureThreshold zero",
            with(base(), &format!("{p}/0/failureThreshold"), json!(0)),
            "spec.healthcheck.probes[0].failureThreshold",
        ),
        (
            "successThreshold negative",
            with(base(), &format!("{p}/0/successThreshold"), json!(-1)),
            "spec.healthcheck.probes[0].successThreshold",
        ),
        (
            "timeout zero",
            with(base(), &format!("{p}/0/timeoutSeconds"), json!(0)),
            "spec.healthcheck.probes[0].timeoutSeconds",
        ),
        (
            "timeout above period",
            with(base(), &format!("{p}/0/timeoutSeconds"), json!(11)),
            "spec.healthcheck.probes[0].timeoutSeconds",
        ),
        (
            "timeout above probe period",
            with(base(), &format!("{p}/0/periodSeconds"), json!(1)),
            "spec.healthcheck.probes[0].timeoutSeconds",
        ),
        (
            "transition period zero",
            with(base(), &format!("{p}/2/transitionPeriodSeconds"), json!(0)),
            "spec.healthcheck.probes[2].transitionPeriodSeconds",
        ),
        (
            "transition period above the healthcheck period",
            with(base(), &format!("{p}/2/transitionPeriodSeconds"), json!(11)),
            "spec.healthcheck.probes[2].transitionPeriodSeconds",
        ),
        (
            "transition period above the probe's own period",
            with(
                with(base(), &format!("{p}/2/periodSeconds"), json!(3)),
                &format!("{p}/2/transitionPeriodSeconds"),
                json!(4),
            ),
            "spec.healthcheck.probes[2].transitionPeriodSeconds",
        ),
        (
            "period zero",
            with(base(), "/spec/healthcheck/periodSeconds", json!(0)),
            "spec.healthcheck.periodSeconds",
        ),
        (
            "initial delay negative",
            with(base(), "/spec/healthcheck/initialDelaySeconds", json!(-5)),
            "spec.healthcheck.initialDelaySeconds",
        ),
        (
            "http path relative",
            with(base(), &format!("{p}/1/http/path"), json!("healthz")),
            "spec.healthcheck.probes[1].http.path",
        ),
        (
            "http header name",
            with(
                base(),
                &format!("{p}/1/http/httpHeaders/0/name"),
                json!("X Probe"),
            ),
            "spec.healthcheck.probes[1].http.httpHeaders[0].name",
        ),
        (
            "http header value newline",
            with(
                base(),
                &format!("{p}/1/http/httpHeaders/0/value"),
                json!("a\r\nInjected: 1"),
            ),
            "spec.healthcheck.probes[1].http.httpHeaders[0].value",
        ),
        (
            "status out of range",
            with(
                base(),
                &format!("{p}/1/http/expectedStatuses/1"),
                json!("600"),
            ),
            "spec.healthcheck.probes[1].http.expectedStatuses[1]",
        ),
        (
            "status range reversed",
            with(
                base(),
                &format!("{p}/1/http/expectedStatuses/0"),
                json!("299-200"),
            ),
            "spec.healthcheck.probes[1].http.expectedStatuses[0]",
        ),
        (
            "status not a number",
            with(
                base(),
                &format!("{p}/1/http/expectedStatuses/0"),
                json!("2xx"),
            ),
            "spec.healthcheck.probes[1].http.expectedStatuses[0]",
        ),
        (
            "host invalid",
            with(base(), &format!("{p}/1/http/host"), json!("bad host!")),
            "spec.healthcheck.probes[1].http.host",
        ),
        (
            "caCert not PEM",
            with(base(), &format!("{p}/1/http/caCert"), json!("not a cert")),
            "spec.healthcheck.probes[1].http.caCert",
        ),
        (
            "body with HEAD",
            with(base(), &format!("{p}/1/http/method"), json!("HEAD")),
            "spec.healthcheck.probes[1].http.bodyContains",
        ),
        (
            "secret name invalid",
            with(
                base(),
                &format!("{p}/0/postgreSQL/authSecretName"),
                json!("Cred_Secret"),
            ),
            "spec.healthcheck.probes[0].postgreSQL.authSecretName",
        ),
        (
            "query empty",
            with(base(), &format!("{p}/0/postgreSQL/query"), json!("  ")),
            "spec.healthcheck.probes[0].postgreSQL.query",
        ),
        (
            "pg tls caCert garbage",
            with(
                base(),
                &format!("{p}/0/postgreSQL/tls/caCert"),
                json!("-----BEGIN CERTIFICATE-----\n%%%\n-----END CERTIFICATE-----"),
            ),
            "spec.healthcheck.probes[0].postgreSQL.tls.caCert",
        ),
        (
            "failOpen out of range",
            with(
                base(),
                "/spec/healthcheck/failOpen/minPassingPercent",
                json!(0),
            ),
            "spec.healthcheck.failOpen.minPassingPercent",
        ),
        (
            "headless with NodePort",
            with(
                with(base(), "/spec/clusterIP", json!("None")),
                "/spec/type",
                json!("NodePort"),
            ),
            "spec.clusterIP",
        ),
    ];
    assert!(cases.len() >= 25);
    let mut distinct = std::collections::BTreeSet::new();
    for (name, v, path) in cases {
        assert!(distinct.insert(name), "duplicate case name {name}");
        assert_error(name, v, path);
    }
}

#[test]
fn every_problem_is_reported_at_once() {
    let mut v = base();
    v = with(v, "/metadata/name", json!("Bad_Name"));
    v = with(v, "/spec/type", json!("ExternalName"));
    v = with(v, "/spec/healthcheck/probes/1/http/path", json!("x"));
    v = with(v, "/spec/healthcheck/probes/2/tcp/port", json!(0));
    let errs = validate(&obj(v), None);
    let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
    for want in [
        "metadata.name",
        "spec.type",
        "spec.healthcheck.probes[1].http.path",
        "spec.healthcheck.probes[2].tcp.port",
    ] {
        assert!(paths.contains(&want), "missing {want} in {paths:?}");
    }
}

#[test]
fn mode_mismatch_message_says_what_to_add() {
    let errs = validate(
        &obj(with(base(), "/spec/healthcheck/probes/1/http", Value::Null)),
        None,
    );
    let e = errs
        .iter()
        .find(|e| e.path == "spec.healthcheck.probes[1]")
        .expect("error");
    assert_eq!(
        e.to_string(),
        "spec.healthcheck.probes[1]: mode is HTTP but field http is missing; add \
         spec.healthcheck.probes[1].http (no probe can run)"
    );
}

#[test]
fn cluster_ip_is_immutable_on_update() {
    let old = obj(with(base(), "/spec/clusterIP", json!("10.96.0.10")));
    let same = old.clone();
    assert!(validate(&same, Some(&old)).is_empty());
    for new_ip in [json!("10.96.0.11"), Value::Null, json!("")] {
        let new = obj(with(base(), "/spec/clusterIP", new_ip.clone()));
        let errs = validate(&new, Some(&old));
        assert!(
            errs.iter()
                .any(|e| e.path == "spec.clusterIP" && e.message.contains("10.96.0.10")),
            "{new_ip}: {errs:?}"
        );
    }
    // Setting it on a previously unset object is allowed (migration pins the IP).
    let unset = obj(base());
    let set = obj(with(base(), "/spec/clusterIP", json!("10.96.0.10")));
    assert!(validate(&set, Some(&unset)).is_empty());
}

#[test]
fn warnings_cover_selector_and_insecure_tls() {
    let v = with(base(), "/spec/selector", Value::Null);
    let v = with(
        v,
        "/spec/healthcheck/probes/1/http/insecureSkipTLSVerify",
        json!(true),
    );
    let w = warnings(&obj(v));
    assert!(w.iter().any(|w| w.contains("EVERY pod")), "{w:?}");
    assert!(
        w.iter().any(|w| w.contains("insecureSkipTLSVerify")),
        "{w:?}"
    );
    assert!(
        warnings(&obj(base())).is_empty(),
        "{:?}",
        warnings(&obj(base()))
    );
}

#[test]
fn node_port_is_fine_for_node_port_type() {
    let v = with(base(), "/spec/type", json!("NodePort"));
    let v = with(v, "/spec/ports/0/nodePort", json!(30080));
    let v = with(v, "/spec/externalTrafficPolicy", json!("Local"));
    let errs = validate(&obj(v), None);
    assert!(errs.is_empty(), "{errs:#?}");
}

#[test]
fn validate_json_accepts_both_versions() {
    let alpha = json!({
        "apiVersion": "network.deckhouse.io/v1alpha1", "kind": "ServiceWithHealthchecks",
        "metadata": {"name": "web"},
        "spec": {"ports": [{"port": 80}], "selector": {"a": "b"},
                 "healthcheck": {"probes": [{"mode": "HTTP", "http": {"targetPort": 8080}}]}}
    });
    assert!(swh_api::validation::validate_json(alpha.clone(), None).is_empty());
    let mut bad = alpha;
    bad["spec"]["healthcheck"]["probes"][0]["mode"] = json!("TCP");
    let errs = swh_api::validation::validate_json(bad, None);
    assert!(
        errs.iter().any(|e| e.path == "spec.healthcheck.probes[0]"),
        "{errs:?}"
    );
    let errs = swh_api::validation::validate_json(json!({"apiVersion": "v1"}), None);
    assert_eq!(errs.len(), 1);
    assert!(errs[0].message.contains("\"v1\""), "{errs:?}");
}

#[test]
fn v1beta1_only_settings_must_fit_the_v1alpha1_annotation() {
    let p = "/spec/healthcheck/probes";
    // A 40 KB CA bundle in one PostgreSQL probe is fine...
    let bundle = CA.repeat(40_000 / CA.len());
    let one = with(
        base(),
        &format!("{p}/0/postgreSQL/tls/caCert"),
        json!(bundle),
    );
    let errs = validate(&obj(one.clone()), None);
    assert!(errs.is_empty(), "{errs:#?}");
    // ...the same bundle in three probes is more than v1alpha1 readers can be given.
    let mut three = one;
    for i in 4..6 {
        let mut probe = three["spec"]["healthcheck"]["probes"][0].clone();
        probe["name"] = json!(format!("replica{i}"));
        three = with(three, &format!("{p}/{i}"), probe);
    }
    let errs = assert_error("three bundles", three, "spec.healthcheck.probes");
    let e = errs
        .iter()
        .find(|e| e.path == "spec.healthcheck.probes")
        .expect("error");
    assert!(
        e.message.contains("98304") && e.message.contains("caCert"),
        "{}",
        e.message
    );
}
