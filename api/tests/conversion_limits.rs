//! Conversion to v1alpha1 never produces annotations over Kubernetes' 256 KiB limit: huge status
//! details are left out (spec data is always kept), and spec data that can't fit is an error.

use serde_json::{Value, json};
use swh_api::annotations::V1BETA1_FIELDS;
use swh_api::conversion::{
    ConversionError, MAX_ANNOTATIONS_BYTES, STATUS_ANNOTATION_BUDGET, convert,
};
use swh_api::{API_VERSION_V1ALPHA1, API_VERSION_V1BETA1};

fn spec() -> Value {
    json!({
        "ports": [{"name": "pg", "port": 5432, "protocol": "TCP", "targetPort": "postgres"}],
        "selector": {"app": "db"},
        "healthcheck": {
            "periodSeconds": 5,
            "failOpen": {"minPassingPercent": 30},
            "probes": [
                {"name": "primary", "mode": "PostgreSQL", "periodSeconds": 2,
                 "postgreSQL": {"port": "postgres", "authSecretName": "cred",
                                "connection": "PerProbe", "tls": {"mode": "VerifyCA"}}},
                {"name": "web", "mode": "HTTP",
                 "http": {"port": 8080, "expectedStatuses": ["200-299"], "bodyContains": "ok"}}
            ]
        }
    })
}

/// One pod's status as the agent writes it: two probes, realistic errors.
fn endpoint(i: usize) -> Value {
    let failing = i.is_multiple_of(3);
    let ip = format!("10.{}.{}.{}", i / 65536, (i / 256) % 256, i % 256);
    json!({
        "podName": format!("db-7f9c8d6b5-{i:05}"),
        "nodeName": format!("worker-{:03}", i % 100),
        "podIP": ip,
        "published": !failing,
        "ready": !failing,
        "probesSuccessful": !failing,
        "failedProbes": if failing { json!(["primary", "web"]) } else { json!([]) },
        "lastProbeTime": "2026-03-01T12:00:05Z",
        "lastTransitionTime": "2026-03-01T11:58:00Z",
        "probes": [
            {"name": "primary", "state": if failing { "Failing" } else { "Passing" },
             "since": "2026-03-01T11:58:00Z",
             "lastError": format!("dial tcp {ip}:5432: connect: connection refused"),
             "consecutiveFailures": if failing { 7 } else { 0 },
             "consecutiveSuccesses": if failing { 0 } else { 42 },
             "lastProbeTime": "2026-03-01T12:00:05Z"},
            {"name": "web", "state": if failing { "Failing" } else { "Passing" },
             "since": "2026-03-01T11:58:00Z",
             "lastError": "503 Service Unavailable: body does not contain \"ok\"",
             "consecutiveFailures": if failing { 7 } else { 0 },
             "consecutiveSuccesses": if failing { 0 } else { 42 },
             "lastProbeTime": "2026-03-01T12:00:05Z"}
        ]
    })
}

fn beta_with_pods(pods: usize) -> Value {
    let published = (0..pods).filter(|i| !i.is_multiple_of(3)).count();
    json!({
        "apiVersion": API_VERSION_V1BETA1,
        "kind": "ServiceWithHealthchecks",
        "metadata": {"name": "db", "namespace": "prod", "uid": "u-1", "resourceVersion": "7",
                     "annotations": {"example.com/owner": "team-db"}},
        "spec": spec(),
        "status": {
            "observedGeneration": 3,
            "publishedEndpoints": published,
            "totalEndpoints": pods,
            "ready": format!("{published}/{pods}"),
            "endpointStatuses": (0..pods).map(endpoint).collect::<Vec<_>>()
        }
    })
}

/// Total annotation size as the API server counts it.
fn annotations_bytes(v: &Value) -> usize {
    v["metadata"]["annotations"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| k.len() + v.as_str().expect("string").len())
                .sum()
        })
        .unwrap_or(0)
}

fn beta_fields(v: &Value) -> Value {
    serde_json::from_str(
        v["metadata"]["annotations"][V1BETA1_FIELDS]
            .as_str()
            .expect("annotation"),
    )
    .expect("JSON")
}

/// Size of the per-pod status details alone (what the annotation used to carry regardless).
fn status_details_bytes(v: &Value) -> usize {
    let extras: Vec<Value> = v["status"]["endpointStatuses"]
        .as_array()
        .expect("endpoints")
        .iter()
        .map(|e| {
            json!({"podName": e["podName"], "podIP": e["podIP"],
                        "published": e["published"], "probes": e["probes"]})
        })
        .collect();
    serde_json::to_string(&extras).expect("json").len()
}

#[test]
fn two_thousand_pods_convert_within_the_annotation_limit() {
    let beta = beta_with_pods(2000);
    let details = status_details_bytes(&beta);
    eprintln!("2,000 pods: per-pod status details {details} bytes");
    assert!(
        details > MAX_ANNOTATIONS_BYTES,
        "the test must exercise the overflow"
    );

    let alpha = convert(beta.clone(), API_VERSION_V1ALPHA1).expect("down");
    let total = annotations_bytes(&alpha);
    eprintln!("2,000 pods: v1alpha1 annotations {total} bytes");
    assert!(total <= MAX_ANNOTATIONS_BYTES, "{total}");
    let x = beta_fields(&alpha);
    assert_eq!(x["statusOmitted"], true, "{x}");
    assert!(x.get("endpoints").is_none() && x.get("status").is_none());
    assert_eq!(x["failOpen"], json!({"minPassingPercent": 30}));
    // The v1alpha1 status itself is complete.
    assert_eq!(
        alpha["status"]["endpointStatuses"]
            .as_array()
            .expect("list")
            .len(),
        2000
    );
    assert_eq!(
        alpha["status"]["healthcheckCondition"],
        json!({"observedGeneration": 3, "endpoints": 2000, "readyEndpoints": 1333})
    );

    let back = convert(alpha, API_VERSION_V1BETA1).expect("up");
    assert_eq!(back["spec"], beta["spec"], "spec is exact");
    assert_eq!(
        back["metadata"], beta["metadata"],
        "annotation removed again"
    );
    // Status: everything v1alpha1 can say is kept; per-pod podIP/published/probes are gone.
    let (b0, o0) = (
        &back["status"]["endpointStatuses"][0],
        &beta["status"]["endpointStatuses"][0],
    );
    for k in [
        "podName",
        "nodeName",
        "ready",
        "probesSuccessful",
        "failedProbes",
        "lastProbeTime",
    ] {
        assert_eq!(b0[k], o0[k], "{k}");
    }
    assert!(b0.get("probes").is_none() && b0.get("podIP").is_none());
    for k in [
        "observedGeneration",
        "publishedEndpoints",
        "totalEndpoints",
        "ready",
    ] {
        assert_eq!(back["status"][k], beta["status"][k], "{k}");
    }
}

/// Normal sizes round-trip exactly; above the budget only status details are lost; the limit is
/// never exceeded.
#[test]
fn round_trip_by_pod_count() {
    let mut largest_exact = 0;
    for pods in [0, 1, 10, 40, 60, 80, 100, 200, 1000, 5000] {
        let beta = beta_with_pods(pods);
        let alpha = convert(beta.clone(), API_VERSION_V1ALPHA1).expect("down");
        let total = annotations_bytes(&alpha);
        assert!(total <= MAX_ANNOTATIONS_BYTES, "{pods} pods: {total}");
        let omitted = beta_fields(&alpha)
            .get("statusOmitted")
            .is_some_and(|v| v == true);
        assert_eq!(
            omitted,
            status_details_bytes(&beta) > STATUS_ANNOTATION_BUDGET,
            "{pods} pods"
        );
        let back = convert(alpha, API_VERSION_V1BETA1).expect("up");
        assert_eq!(back["spec"], beta["spec"], "{pods} pods");
        if !omitted {
            assert_eq!(back, beta, "{pods} pods: exact");
            largest_exact = pods;
        }
        eprintln!("{pods} pods: annotations {total} bytes, status details omitted: {omitted}");
    }
    assert!(largest_exact >= 40, "{largest_exact}");
}

#[test]
fn large_other_annotations_push_status_details_out_first() {
    // Small status details (3 pods, ~1.6 KB) that do not fit next to a 261,000-byte annotation.
    let mut beta = beta_with_pods(3);
    beta["metadata"]["annotations"]["example.com/blob"] = json!("x".repeat(261_000));
    let alpha = convert(beta.clone(), API_VERSION_V1ALPHA1).expect("down");
    assert!(annotations_bytes(&alpha) <= MAX_ANNOTATIONS_BYTES);
    assert_eq!(beta_fields(&alpha)["statusOmitted"], true);
    let back = convert(alpha, API_VERSION_V1BETA1).expect("up");
    assert_eq!(back["spec"], beta["spec"]);
    assert_eq!(back["metadata"], beta["metadata"]);
}

#[test]
fn spec_data_that_cannot_fit_is_an_error_not_invalid_metadata() {
    // Five PostgreSQL probes, each with a 60 KiB CA bundle (schema allows 64 KiB each).
    let ca = format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        "A".repeat(60 * 1024)
    );
    let mut beta = beta_with_pods(2);
    beta["spec"]["healthcheck"]["probes"] = (0..5)
        .map(|i| {
            json!({"name": format!("pg{i}"), "mode": "PostgreSQL",
                   "postgreSQL": {"port": 5432, "tls": {"mode": "VerifyCA", "caCert": ca}}})
        })
        .collect();
    let err = convert(beta.clone(), API_VERSION_V1ALPHA1).expect_err("too large");
    assert!(
        matches!(err, ConversionError::AnnotationsTooLarge { ref object, needed, .. }
            if object == "prod/db" && needed > MAX_ANNOTATIONS_BYTES),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("262144") && msg.contains(V1BETA1_FIELDS) && msg.contains("prod/db"),
        "{msg}"
    );

    // Spec data that fits alone, but not next to the object's other annotations.
    let mut beta = beta_with_pods(2);
    beta["metadata"]["annotations"]["example.com/blob"] =
        json!("x".repeat(MAX_ANNOTATIONS_BYTES - 100));
    let err = convert(beta, API_VERSION_V1ALPHA1).expect_err("too large");
    assert!(
        matches!(err, ConversionError::AnnotationsTooLarge { others, .. } if others > MAX_ANNOTATIONS_BYTES - 100)
    );
}

#[test]
fn exactly_full_annotations_are_accepted() {
    // No v1beta1-only data: nothing to add, whatever the other annotations weigh.
    let alpha = json!({
        "apiVersion": API_VERSION_V1ALPHA1, "kind": "ServiceWithHealthchecks",
        "metadata": {"name": "x", "annotations": {"a": "x".repeat(MAX_ANNOTATIONS_BYTES - 1)}},
        "spec": {"ports": [{"port": 80}],
                 "healthcheck": {"probes": [{"mode": "TCP", "tcp": {"targetPort": 80}}]}}
    });
    let beta = convert(alpha.clone(), API_VERSION_V1BETA1).expect("up");
    assert_eq!(convert(beta, API_VERSION_V1ALPHA1).expect("down"), alpha);
}

#[test]
fn defaulted_postgresql_connection_needs_no_annotation() {
    let alpha = json!({
        "apiVersion": API_VERSION_V1ALPHA1, "kind": "ServiceWithHealthchecks",
        "metadata": {"name": "db"},
        "spec": {"ports": [{"port": 5432}],
                 "healthcheck": {"probes": [{"mode": "PostgreSQL",
                                             "postgreSQL": {"targetPort": 5432, "authSecretName": "cred"}}]}}
    });
    let mut beta = convert(alpha.clone(), API_VERSION_V1BETA1).expect("up");
    let pg = &mut beta["spec"]["healthcheck"]["probes"][0]["postgreSQL"];
    assert_eq!(pg["connection"], "Persistent");
    // Even when the server default was applied on top, v1alpha1 readers get no annotation.
    pg["connection"] = json!("Persistent");
    let back = convert(beta.clone(), API_VERSION_V1ALPHA1).expect("down");
    assert!(back["metadata"].get("annotations").is_none(), "{back}");
    assert_eq!(back, alpha);

    // A v1beta1 probe without connection (not defaulted) still round-trips exactly.
    beta["spec"]["healthcheck"]["probes"][0]["postgreSQL"]
        .as_object_mut()
        .expect("object")
        .remove("connection");
    let down = convert(beta.clone(), API_VERSION_V1ALPHA1).expect("down");
    assert_eq!(
        beta_fields(&down)["probes"][0]["connectionUnset"],
        true,
        "{down}"
    );
    assert_eq!(convert(down, API_VERSION_V1BETA1).expect("up"), beta);

    // PerProbe is carried.
    beta["spec"]["healthcheck"]["probes"][0]["postgreSQL"]["connection"] = json!("PerProbe");
    let down = convert(beta.clone(), API_VERSION_V1ALPHA1).expect("down");
    assert_eq!(beta_fields(&down)["probes"][0]["connection"], "PerProbe");
    assert_eq!(convert(down, API_VERSION_V1BETA1).expect("up"), beta);
}

#[test]
fn v1alpha1_status_details_never_overflow_v1beta1_annotations() {
    let alpha = |blob: usize| {
        json!({
            "apiVersion": API_VERSION_V1ALPHA1, "kind": "ServiceWithHealthchecks",
            "metadata": {"name": "x", "annotations": {"a": "x".repeat(blob)}},
            "spec": {"ports": [{"port": 80}]},
            "status": {"healthcheckCondition": {"endpoints": 1, "activeNodeName": "node-1"}}
        })
    };
    // Room left: activeNodeName rides in the v1alpha1-fields annotation and comes back.
    let small = alpha(1000);
    let beta = convert(small.clone(), API_VERSION_V1BETA1).expect("up");
    assert!(annotations_bytes(&beta) > 1001);
    assert_eq!(convert(beta, API_VERSION_V1ALPHA1).expect("down"), small);
    // No room: the detail is dropped, the metadata stays valid.
    let full = alpha(MAX_ANNOTATIONS_BYTES - 1);
    let beta = convert(full, API_VERSION_V1BETA1).expect("up");
    assert_eq!(annotations_bytes(&beta), MAX_ANNOTATIONS_BYTES);
}
