//! Conversion behaviour beyond exact round trips: what v1alpha1 readers see, which data rides in
//! the annotation, and that edits made through v1alpha1 win over it.

use serde_json::{Value, json};
use swh_api::annotations::V1BETA1_FIELDS;
use swh_api::conversion::{ConversionError, convert, to_v1alpha1, to_v1beta1};
use swh_api::{API_VERSION_V1ALPHA1, API_VERSION_V1BETA1};

fn rich_beta() -> Value {
    json!({
        "apiVersion": "network.deckhouse.io/v1beta1",
        "kind": "ServiceWithHealthchecks",
        "metadata": {"name": "db", "namespace": "prod", "uid": "u-1", "resourceVersion": "7",
                     "labels": {"app": "db"}},
        "spec": {
            "ports": [{"name": "pg", "port": 5432, "protocol": "TCP", "targetPort": "postgres"}],
            "selector": {"app": "db"},
            "healthcheck": {
                "periodSeconds": 5,
                "failOpen": {"minPassingPercent": 30},
                "probes": [
                    {"name": "primary", "mode": "PostgreSQL", "periodSeconds": 2,
                     "postgreSQL": {"port": "postgres", "authSecretName": "cred",
                                    "connection": "PerProbe", "tls": {"mode": "VerifyCA"}}},
                    {"name": "http-1", "mode": "HTTP",
                     "http": {"port": 8080, "expectedStatuses": ["200", "204"]}},
                    {"name": "web", "mode": "HTTP",
                     "http": {"port": 8080, "expectedStatuses": ["200-299"], "bodyContains": "ok"}},
                    {"name": "grpc", "mode": "GRPC", "grpc": {"port": 9090, "service": "db.v1"}}
                ]
            }
        },
        "status": {
            "observedGeneration": 3, "publishedEndpoints": 1, "totalEndpoints": 2, "ready": "1/2",
            "endpointStatuses": [
                {"podName": "db-0", "nodeName": "n1", "podIP": "10.0.0.5", "published": true,
                 "ready": true, "probesSuccessful": true,
                 "probes": [{"name": "primary", "state": "Passing", "since": "2026-01-01T00:00:00Z"}]},
                {"podName": "db-1", "nodeName": "n2", "ready": false, "probesSuccessful": false,
                 "failedProbes": ["primary"]}
            ]
        }
    })
}

fn annotation(v: &Value) -> Value {
    let text = v["metadata"]["annotations"][V1BETA1_FIELDS]
        .as_str()
        .expect("annotation present");
    serde_json::from_str(text).expect("annotation is JSON")
}

#[test]
fn v1alpha1_view_of_a_rich_object() {
    let alpha = convert(rich_beta(), API_VERSION_V1ALPHA1).expect("down");
    assert_eq!(alpha["apiVersion"], API_VERSION_V1ALPHA1);
    let probes = &alpha["spec"]["healthcheck"]["probes"];
    assert_eq!(
        probes[0]["postgreSQL"],
        json!({"targetPort": "postgres", "authSecretName": "cred"})
    );
    assert_eq!(
        probes[1]["http"],
        json!({"targetPort": 8080, "code": [200, 204]})
    );
    assert_eq!(probes[2]["http"], json!({"targetPort": 8080}));
    // gRPC is shown as a TCP probe on the same port.
    assert_eq!(
        probes[3],
        json!({"mode": "TCP", "tcp": {"targetPort": 9090}})
    );
    assert_eq!(
        alpha["status"]["healthcheckCondition"],
        json!({"observedGeneration": 3, "endpoints": 2, "readyEndpoints": 1})
    );
    assert!(
        alpha["status"]["endpointStatuses"][0]
            .get("podIP")
            .is_none()
    );

    // Metadata other than annotations is untouched.
    let mut meta = alpha["metadata"].clone();
    meta.as_object_mut().expect("object").remove("annotations");
    assert_eq!(meta, rich_beta()["metadata"]);

    // The annotation carries only what v1alpha1 can't say; no whole-object fallback.
    let x = annotation(&alpha);
    assert!(x.get("spec").is_none() && x.get("status").is_none(), "{x}");
    assert!(
        x["probes"]
            .as_array()
            .expect("probes")
            .iter()
            .all(|p| p.get("full").is_none()),
        "{x}"
    );
    assert_eq!(x["failOpen"], json!({"minPassingPercent": 30}));
    let idx: Vec<u64> = x["probes"]
        .as_array()
        .expect("probes")
        .iter()
        .map(|p| p["index"].as_u64().expect("index"))
        .collect();
    // http-1 at index 1 has the derived name and numeric statuses: nothing to carry.
    assert_eq!(idx, [0, 2, 3]);
    assert_eq!(x["probes"][2]["mode"], "GRPC");
    assert_eq!(x["probes"][2]["grpcService"], "db.v1");
    assert_eq!(x["endpoints"][0]["podName"], "db-0");

    assert_eq!(
        convert(alpha, API_VERSION_V1BETA1).expect("up"),
        rich_beta()
    );
}

#[test]
fn edits_through_v1alpha1_win_over_the_annotation() {
    let mut alpha = convert(rich_beta(), API_VERSION_V1ALPHA1).expect("down");
    // A v1alpha1 client changes the expected codes of probe 2 and the port of the gRPC probe,
    // and turns probe 0 into a TCP probe.
    alpha["spec"]["healthcheck"]["probes"][2]["http"]["code"] = json!([418]);
    alpha["spec"]["healthcheck"]["probes"][3]["tcp"]["targetPort"] = json!(9091);
    alpha["spec"]["healthcheck"]["probes"][0] = json!({"mode": "TCP", "tcp": {"targetPort": 5432}});
    let beta = to_v1beta1(alpha).expect("up");
    let probes = beta.spec.probes();
    assert_eq!(
        probes[2]
            .http
            .as_ref()
            .and_then(|h| h.expected_statuses.clone()),
        Some(vec!["418".to_string()])
    );
    assert_eq!(
        probes[2]
            .http
            .as_ref()
            .and_then(|h| h.body_contains.clone())
            .as_deref(),
        Some("ok")
    );
    let grpc = probes[3].grpc.as_ref().expect("still gRPC");
    assert_eq!(
        grpc.port,
        k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(9091)
    );
    assert_eq!(grpc.service.as_deref(), Some("db.v1"));
    // Mode changed: the PostgreSQL extras no longer apply; the name is derived again.
    assert_eq!(probes[0].name, "tcp-0");
    assert_eq!(probes[0].period_seconds, None);
    assert!(
        beta.metadata
            .annotations
            .as_ref()
            .is_none_or(|a| !a.contains_key(V1BETA1_FIELDS))
    );
}

#[test]
fn deckhouse_object_gets_no_annotation() {
    let alpha = json!({
        "apiVersion": "network.deckhouse.io/v1alpha1",
        "kind": "ServiceWithHealthchecks",
        "metadata": {"name": "smtp"},
        "spec": {"ports": [{"port": 25, "targetPort": 2525}],
                 "healthcheck": {"probes": [{"mode": "TCP", "tcp": {"targetPort": 2525}}]}}
    });
    let beta = convert(alpha.clone(), API_VERSION_V1BETA1).expect("up");
    assert_eq!(
        beta["spec"]["healthcheck"]["probes"][0],
        json!({"name": "tcp-0", "mode": "TCP", "tcp": {"port": 2525}})
    );
    assert!(beta["metadata"].get("annotations").is_none());
    let typed = to_v1alpha1(beta).expect("down");
    assert!(typed.metadata.annotations.is_none());
}

#[test]
fn unknown_api_versions_are_named_in_the_error() {
    let err = convert(rich_beta(), "network.deckhouse.io/v2").expect_err("unknown target");
    assert!(
        matches!(err, ConversionError::UnknownApiVersion(ref v) if v == "network.deckhouse.io/v2")
    );
    assert!(err.to_string().contains("network.deckhouse.io/v2"));
    let mut obj = rich_beta();
    obj["apiVersion"] = json!("example.com/v1");
    let err = convert(obj, API_VERSION_V1ALPHA1).expect_err("unknown source");
    assert!(err.to_string().contains("example.com/v1"), "{err}");
    assert!(matches!(
        convert(json!({"kind": "X"}), API_VERSION_V1ALPHA1),
        Err(ConversionError::MissingApiVersion)
    ));
    assert!(matches!(
        convert(json!([1]), API_VERSION_V1ALPHA1),
        Err(ConversionError::MissingApiVersion)
    ));
}

#[test]
fn schema_invalid_objects_are_errors_not_panics() {
    let mut obj = rich_beta();
    obj["spec"]["healthcheck"]["probes"][0]["mode"] = json!("ICMP");
    let err = convert(obj, API_VERSION_V1ALPHA1).expect_err("invalid");
    assert!(err.to_string().contains("v1beta1"), "{err}");
}

#[test]
fn same_version_is_identity_even_for_unusual_content() {
    let obj = json!({"apiVersion": API_VERSION_V1ALPHA1, "kind": "ServiceWithHealthchecks",
                     "metadata": {"name": "x"}, "spec": {"unknown": true}});
    assert_eq!(convert(obj.clone(), API_VERSION_V1ALPHA1).expect("id"), obj);
}

#[test]
fn malformed_annotation_is_ignored_and_kept() {
    let alpha = json!({
        "apiVersion": API_VERSION_V1ALPHA1, "kind": "ServiceWithHealthchecks",
        "metadata": {"name": "x", "annotations": {V1BETA1_FIELDS: "{not json"}},
        "spec": {}
    });
    let beta = convert(alpha.clone(), API_VERSION_V1BETA1).expect("up");
    assert_eq!(beta["metadata"]["annotations"][V1BETA1_FIELDS], "{not json");
    assert_eq!(convert(beta, API_VERSION_V1ALPHA1).expect("down"), alpha);
}

#[test]
fn transition_period_rides_in_the_annotation_and_round_trips() {
    let beta = json!({
        "apiVersion": "network.deckhouse.io/v1beta1",
        "kind": "ServiceWithHealthchecks",
        "metadata": {"name": "pg", "namespace": "db"},
        "spec": {
            "selector": {"app": "pg"},
            "healthcheck": {
                "periodSeconds": 10,
                "probes": [
                    // A derived name: only transitionPeriodSeconds needs the annotation.
                    {"name": "tcp-0", "mode": "TCP", "failureThreshold": 3,
                     "transitionPeriodSeconds": 1, "tcp": {"port": 5432}},
                    {"name": "http-1", "mode": "HTTP", "http": {"port": 8080}}
                ]
            }
        }
    });
    let alpha = convert(beta.clone(), API_VERSION_V1ALPHA1).expect("down");
    // v1alpha1 has no such field: its probe shows the v1alpha1 fields only.
    assert_eq!(
        alpha["spec"]["healthcheck"]["probes"][0],
        json!({"mode": "TCP", "failureThreshold": 3, "tcp": {"targetPort": 5432}})
    );
    let x = annotation(&alpha);
    assert_eq!(
        x["probes"],
        json!([{"index": 0, "mode": "TCP", "transitionPeriodSeconds": 1}]),
        "carried field-wise, not as a whole-probe fallback"
    );
    assert_eq!(
        convert(alpha.clone(), API_VERSION_V1BETA1).expect("up"),
        beta
    );
    let typed = to_v1beta1(alpha).expect("typed");
    assert_eq!(typed.spec.probes()[0].transition_period_seconds, Some(1));
    assert_eq!(typed.spec.probes()[1].transition_period_seconds, None);
}
