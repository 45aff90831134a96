//! The TLS router and the admin router driven with `tower::ServiceExt::oneshot`: one test per
//! endpoint and failure path.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use serde_json::{Value, json};
use swh_webhook::server::{admin_router, router};
use swh_webhook::tls::CertStore;
use tower::ServiceExt;

async fn post(app: axum::Router, path: &str, body: impl Into<Body>) -> (StatusCode, Value, String) {
    let resp = app
        .oneshot(
            Request::post(path)
                .header("content-type", "application/json")
                .body(body.into())
                .expect("request"),
        )
        .await
        .expect("infallible");
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .expect("body");
    let text = String::from_utf8_lossy(&bytes).to_string();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        text,
    )
}

async fn post_json(app: axum::Router, path: &str, v: &Value) -> (StatusCode, Value) {
    let (s, v, _) = post(app, path, serde_json::to_vec(v).expect("json")).await;
    (s, v)
}

async fn get(app: axum::Router, path: &str) -> (StatusCode, String) {
    let resp = app
        .oneshot(Request::get(path).body(Body::empty()).expect("request"))
        .await
        .expect("infallible");
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .expect("body");
    (status, String::from_utf8_lossy(&bytes).to_string())
}

fn response(v: &Value) -> &Value {
    &v["response"]
}

// ---------------------------------------------------------------------------------------------
// /validate-swh
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn swh_malformed_json_is_400() {
    for path in ["/validate-swh", "/validate-service", "/convert"] {
        let (s, v, text) = post(router(state()), path, "{not json").await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{path}: {text}");
        assert!(
            v["message"].as_str().unwrap_or("").contains("not JSON"),
            "{path}: {text}"
        );
    }
}

#[tokio::test]
async fn json_without_uid_is_400() {
    for path in ["/validate-swh", "/validate-service", "/convert"] {
        let (s, v, text) = post(router(state()), path, r#"{"request":{}}"#).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{path}: {text}");
        assert!(
            v["message"].as_str().unwrap_or("").contains("request.uid"),
            "{text}"
        );
    }
}

#[tokio::test]
async fn oversized_body_is_413() {
    let big = vec![b' '; swh_webhook::MAX_BODY_BYTES + 1];
    for path in ["/validate-swh", "/validate-service", "/convert"] {
        let (s, _, _) = post(router(state()), path, big.clone()).await;
        assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{path}");
    }
}

#[tokio::test]
async fn uid_readable_but_bad_review_is_denied_with_200() {
    // operation is not a valid enum value, object is a string.
    let review = json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {"uid": "abc-1", "operation": "EXPLODE", "object": "x"}
    });
    for path in ["/validate-swh", "/validate-service"] {
        let (s, v) = post_json(router(state()), path, &review).await;
        assert_eq!(s, StatusCode::OK, "{path}");
        assert_eq!(response(&v)["uid"], "abc-1");
        assert_eq!(response(&v)["allowed"], false);
        assert!(
            response(&v)["status"]["message"]
                .as_str()
                .unwrap_or("")
                .contains("malformed AdmissionReview"),
            "{v}"
        );
        assert_eq!(v["apiVersion"], "admission.k8s.io/v1");
        assert_eq!(v["kind"], "AdmissionReview");
    }
}

#[tokio::test]
async fn wrong_review_version_is_denied_with_200() {
    let mut review = swh_review("u-v1b1", "CREATE", alpha_web(), None);
    review["apiVersion"] = json!("admission.k8s.io/v1beta1");
    let (s, v) = post_json(router(state()), "/validate-swh", &review).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(response(&v)["allowed"], false);
    assert_eq!(response(&v)["uid"], "u-v1b1");
}

#[tokio::test]
async fn deckhouse_v1alpha1_example_is_allowed() {
    let (s, v) = post_json(
        router(state()),
        "/validate-swh",
        &swh_review("u1", "CREATE", alpha_web(), None),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(response(&v)["uid"], "u1");
    assert_eq!(response(&v)["allowed"], true, "{v}");
}

#[tokio::test]
async fn v1beta1_object_with_beta_fields_is_allowed() {
    let (s, v) = post_json(
        router(state()),
        "/validate-swh",
        &swh_review("u2", "CREATE", beta_rich(), None),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(response(&v)["allowed"], true, "{v}");
}

#[tokio::test]
async fn empty_selector_is_allowed_with_a_warning() {
    let mut obj = alpha_web();
    obj["spec"]
        .as_object_mut()
        .expect("spec")
        .remove("selector");
    let (_, v) = post_json(
        router(state()),
        "/validate-swh",
        &swh_review("u3", "CREATE", obj, None),
    )
    .await;
    assert_eq!(response(&v)["allowed"], true, "{v}");
    let warnings = response(&v)["warnings"].to_string();
    assert!(warnings.contains("spec.selector"), "{warnings}");
}

#[tokio::test]
async fn invalid_object_is_denied_with_every_field_path() {
    let mut obj = alpha_web();
    obj["spec"]["ports"] = json!([
        {"name": "web", "port": 80, "targetPort": 8080},
        {"name": "web", "port": 80, "targetPort": 8081}
    ]);
    // Deckhouse accepts a path without a leading '/' (its agent adds it): a v1alpha1 warning,
    // sent along with the denial.
    obj["spec"]["healthcheck"]["probes"][0]["http"]["path"] = json!("healthz");
    let (s, v) = post_json(
        router(state()),
        "/validate-swh",
        &swh_review("u4", "CREATE", obj, None),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let r = response(&v);
    assert_eq!(r["uid"], "u4");
    assert_eq!(r["allowed"], false);
    let msg = r["status"]["message"].as_str().unwrap_or("");
    for path in ["spec.ports[1].name", "spec.ports[1]:"] {
        assert!(msg.contains(path), "{path} missing from {msg}");
    }
    assert!(msg.contains("2 problems"), "{msg}");
    assert!(msg.contains("(the Service would be invalid)"), "{msg}");
    assert!(msg.contains("(Deckhouse's schema rejects it too)"), "{msg}");
    assert!(!msg.contains("http.path"), "{msg}");
    let warnings = r["warnings"].to_string();
    assert!(
        warnings.contains("spec.healthcheck.probes[0].http.path: \\\"healthz\\\" does not start"),
        "{warnings}"
    );
}

#[tokio::test]
async fn v1alpha1_timeout_longer_than_the_period_is_allowed_with_a_warning() {
    // The reported case: Deckhouse accepts it, so v1alpha1 does too.
    let mut obj = alpha_pg("cred-secret");
    obj["spec"]["healthcheck"]["periodSeconds"] = json!(1);
    obj["spec"]["healthcheck"]["probes"][0]["timeoutSeconds"] = json!(3);
    let (_, v) = post_json(
        router(state()),
        "/validate-swh",
        &swh_review("t1", "CREATE", obj.clone(), None),
    )
    .await;
    let r = response(&v);
    assert_eq!(r["allowed"], true, "{v}");
    let w = r["warnings"][0].as_str().unwrap_or("");
    assert!(
        w.starts_with(
            "spec.healthcheck.probes[0].timeoutSeconds: 3 > periodSeconds 1: a slow target is \
             probed at most every 3 s"
        ),
        "{v}"
    );
    // The same object written as v1beta1 is denied: v1beta1 is stricter.
    let beta = swh_api::conversion::convert(obj, swh_api::API_VERSION_V1BETA1).expect("convert");
    let (_, v) = post_json(
        router(state()),
        "/validate-swh",
        &swh_review("t2", "CREATE", beta, None),
    )
    .await;
    let r = response(&v);
    assert_eq!(r["allowed"], false, "{v}");
    let msg = r["status"]["message"].as_str().unwrap_or("");
    assert!(
        msg.contains("spec.healthcheck.probes[0].timeoutSeconds: 3 > periodSeconds 1")
            && msg.contains("(v1beta1 only: v1alpha1 accepts it with a warning)"),
        "{msg}"
    );
}

#[test]
fn warnings_are_kept_within_what_the_api_server_passes_on() {
    use swh_webhook::admission::{MAX_WARNING_CHARS, MAX_WARNINGS_CHARS, bounded_warnings};
    let long = "ü".repeat(300);
    let out = bounded_warnings(vec![long, "short".into()]);
    assert_eq!(out[0].chars().count(), MAX_WARNING_CHARS);
    assert!(out[0].ends_with('…'));
    assert_eq!(out[1], "short");
    let many: Vec<String> = (0..100)
        .map(|i| format!("w{i}: {}", "x".repeat(100)))
        .collect();
    let out = bounded_warnings(many);
    let total: usize = out.iter().map(String::len).sum();
    assert!(total <= MAX_WARNINGS_CHARS, "{total}");
    assert!(
        out.last()
            .is_some_and(|w| w.ends_with("more warning(s) left out")),
        "{out:?}"
    );
}

#[tokio::test]
async fn undecodable_object_is_denied() {
    let mut obj = alpha_web();
    obj["spec"]["ports"] = json!("eighty");
    let (s, v) = post_json(
        router(state()),
        "/validate-swh",
        &swh_review("u5", "CREATE", obj, None),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(response(&v)["allowed"], false);
    assert!(
        response(&v)["status"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("cannot decode"),
        "{v}"
    );
}

#[tokio::test]
async fn update_that_does_not_touch_the_spec_is_allowed_even_if_spec_is_invalid() {
    let mut old = alpha_web();
    old["spec"]["ports"] = json!([]);
    let mut new = old.clone();
    new["metadata"]["finalizers"] = json!(["x/y"]);
    let (_, v) = post_json(
        router(state()),
        "/validate-swh",
        &swh_review("u6", "UPDATE", new.clone(), Some(old.clone())),
    )
    .await;
    assert_eq!(response(&v)["allowed"], true, "{v}");
    // Touching the spec validates it.
    new["spec"]["selector"] = json!({"vm": "other"});
    let (_, v) = post_json(
        router(state()),
        "/validate-swh",
        &swh_review("u7", "UPDATE", new, Some(old)),
    )
    .await;
    assert_eq!(response(&v)["allowed"], false, "{v}");
}

#[tokio::test]
async fn changing_cluster_ip_on_update_is_a_v1alpha1_warning_and_a_v1beta1_denial() {
    // Deckhouse accepts the update and reports ChildServiceClusterIPImmutable: so does v1alpha1
    // (with a warning); v1beta1 denies it.
    let mut old = alpha_web();
    old["spec"]["clusterIP"] = json!("10.96.0.10");
    let mut new = old.clone();
    new["spec"]["clusterIP"] = json!("10.96.0.11");
    let (_, v) = post_json(
        router(state()),
        "/validate-swh",
        &swh_review("u8", "UPDATE", new.clone(), Some(old.clone())),
    )
    .await;
    assert_eq!(response(&v)["allowed"], true, "{v}");
    let w = response(&v)["warnings"].to_string();
    assert!(
        w.contains("spec.clusterIP") && w.contains("10.96.0.10"),
        "{w}"
    );

    let beta =
        |o: Value| swh_api::conversion::convert(o, swh_api::API_VERSION_V1BETA1).expect("convert");
    let (_, v) = post_json(
        router(state()),
        "/validate-swh",
        &swh_review("u8b", "UPDATE", beta(new), Some(beta(old))),
    )
    .await;
    assert_eq!(response(&v)["allowed"], false, "{v}");
    assert!(v.to_string().contains("spec.clusterIP"), "{v}");
}

#[tokio::test]
async fn delete_is_allowed() {
    let review = admission_review(
        "u9",
        ("network.deckhouse.io", "v1beta1", "ServiceWithHealthchecks"),
        "DELETE",
        "alice",
        None,
        Some(alpha_web()),
    );
    let (_, v) = post_json(router(state()), "/validate-swh", &review).await;
    assert_eq!(response(&v)["allowed"], true, "{v}");
}

#[tokio::test]
async fn wrong_kind_on_validate_swh_is_denied() {
    let review = admission_review(
        "u10",
        ("", "v1", "Service"),
        "CREATE",
        "alice",
        Some(service("web", None, None, "ClusterIP")),
        None,
    );
    let (_, v) = post_json(router(state()), "/validate-swh", &review).await;
    assert_eq!(response(&v)["allowed"], false, "{v}");
}

#[tokio::test]
async fn missing_auth_secret_is_a_warning_when_api_access_is_configured() {
    let secrets = FakeSecrets(BTreeSet::from([(
        "my-ns".to_string(),
        "present".to_string(),
    )]));
    let st = state_with(
        Some(Arc::new(secrets)),
        Arc::new(CertStore::new("/x".into(), "/y".into())),
    );
    let (_, v) = post_json(
        router(st.clone()),
        "/validate-swh",
        &swh_review("s1", "CREATE", alpha_pg("absent"), None),
    )
    .await;
    assert_eq!(response(&v)["allowed"], true, "{v}");
    let w = response(&v)["warnings"].to_string();
    assert!(
        w.contains("my-ns/absent") && w.contains("authSecretName"),
        "{w}"
    );

    let (_, v) = post_json(
        router(st),
        "/validate-swh",
        &swh_review("s2", "CREATE", alpha_pg("present"), None),
    )
    .await;
    assert_eq!(response(&v)["allowed"], true, "{v}");
    assert!(
        !response(&v)["warnings"]
            .to_string()
            .contains("does not exist"),
        "{v}"
    );
}

#[tokio::test]
async fn without_api_access_the_secret_check_is_skipped() {
    let (_, v) = post_json(
        router(state()),
        "/validate-swh",
        &swh_review("s3", "CREATE", alpha_pg("absent"), None),
    )
    .await;
    assert_eq!(response(&v)["allowed"], true, "{v}");
    assert!(
        !response(&v)["warnings"]
            .to_string()
            .contains("does not exist"),
        "{v}"
    );
}

// ---------------------------------------------------------------------------------------------
// /validate-service
// ---------------------------------------------------------------------------------------------

async fn service_decision(user: &str, new: Value, old: Value) -> Value {
    let (s, v) = post_json(
        router(state()),
        "/validate-service",
        &service_review("svc-1", user, new, old),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(response(&v)["uid"], "svc-1");
    v
}

#[tokio::test]
async fn adding_a_selector_to_a_child_service_is_denied_for_others() {
    let old = service("web", Some("web"), None, "ClusterIP");
    let new = service("web", Some("web"), Some(json!({"app": "web"})), "ClusterIP");
    let v = service_decision("mallory", new, old).await;
    assert_eq!(response(&v)["allowed"], false, "{v}");
    let msg = response(&v)["status"]["message"].as_str().unwrap_or("");
    assert!(
        msg.contains("spec.selector") && msg.contains("\"web\""),
        "{msg}"
    );
}

#[tokio::test]
async fn the_controller_may_change_a_child_service() {
    let old = service("web", Some("web"), None, "ClusterIP");
    let new = service(
        "web",
        Some("web"),
        Some(json!({"app": "web"})),
        "ExternalName",
    );
    let v = service_decision(CONTROLLER, new, old).await;
    assert_eq!(response(&v)["allowed"], true, "{v}");
}

#[tokio::test]
async fn external_name_on_a_child_service_is_denied() {
    let old = service("web", Some("web"), None, "ClusterIP");
    let new = service("web", Some("web"), None, "ExternalName");
    let v = service_decision("mallory", new, old).await;
    assert_eq!(response(&v)["allowed"], false, "{v}");
    assert!(v.to_string().contains("spec.type"), "{v}");
}

#[tokio::test]
async fn removing_the_owner_and_adding_a_selector_at_once_is_denied() {
    let old = service("web", Some("web"), None, "ClusterIP");
    let new = service("web", None, Some(json!({"app": "web"})), "ClusterIP");
    let v = service_decision("mallory", new, old).await;
    assert_eq!(response(&v)["allowed"], false, "{v}");
}

#[tokio::test]
async fn harmless_child_changes_and_plain_services_are_allowed() {
    // Label change on a child Service.
    let old = service("web", Some("web"), None, "ClusterIP");
    let mut new = old.clone();
    new["metadata"]["labels"] = json!({"x": "y"});
    let v = service_decision("mallory", new, old).await;
    assert_eq!(response(&v)["allowed"], true, "{v}");
    // Selector kept as it was (adoption handover: the controller clears it later).
    let old = service("web", Some("web"), Some(json!({"app": "web"})), "ClusterIP");
    let v = service_decision("mallory", old.clone(), old).await;
    assert_eq!(response(&v)["allowed"], true, "{v}");
    // Removing a selector.
    let old = service("web", Some("web"), Some(json!({"app": "web"})), "ClusterIP");
    let new = service("web", Some("web"), None, "ClusterIP");
    let v = service_decision("mallory", new, old).await;
    assert_eq!(response(&v)["allowed"], true, "{v}");
    // A Service owned by something else.
    let old = service("other", None, None, "ClusterIP");
    let new = service("other", None, Some(json!({"app": "x"})), "ExternalName");
    let v = service_decision("mallory", new, old).await;
    assert_eq!(response(&v)["allowed"], true, "{v}");
}

// ---------------------------------------------------------------------------------------------
// /convert
// ---------------------------------------------------------------------------------------------

fn converted(v: &Value) -> Vec<Value> {
    response(v)["convertedObjects"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test]
async fn conversion_both_directions_keeps_order_count_and_metadata() {
    let objects = vec![alpha_web(), beta_rich(), alpha_pg("cred"), beta_rich()];
    for desired in [
        "network.deckhouse.io/v1beta1",
        "network.deckhouse.io/v1alpha1",
    ] {
        let (s, v) = post_json(
            router(state()),
            "/convert",
            &conversion_review("c1", desired, objects.clone()),
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v["apiVersion"], "apiextensions.k8s.io/v1");
        assert_eq!(v["kind"], "ConversionReview");
        assert_eq!(response(&v)["uid"], "c1");
        assert_eq!(response(&v)["result"]["status"], "Success", "{v}");
        let out = converted(&v);
        assert_eq!(out.len(), objects.len());
        for (i, (o, inp)) in out.iter().zip(&objects).enumerate() {
            assert_eq!(o["apiVersion"], desired, "object {i}");
            for key in ["name", "namespace", "uid", "resourceVersion", "generation"] {
                assert_eq!(o["metadata"][key], inp["metadata"][key], "object {i} {key}");
            }
            assert_eq!(
                o["metadata"]["labels"], inp["metadata"]["labels"],
                "object {i}"
            );
        }
    }
}

#[tokio::test]
async fn conversion_round_trip_is_lossless() {
    let (_, down) = post_json(
        router(state()),
        "/convert",
        &conversion_review("c2", "network.deckhouse.io/v1alpha1", vec![beta_rich()]),
    )
    .await;
    let alpha = converted(&down);
    assert!(
        alpha[0]["metadata"]["annotations"]["network.deckhouse.io/v1beta1-fields"].is_string(),
        "{down}"
    );
    let (_, up) = post_json(
        router(state()),
        "/convert",
        &conversion_review("c3", "network.deckhouse.io/v1beta1", alpha),
    )
    .await;
    let beta = converted(&up);
    assert_eq!(beta[0]["spec"], beta_rich()["spec"]);
    assert_eq!(beta[0]["metadata"], beta_rich()["metadata"]);
}

#[tokio::test]
async fn conversion_failure_is_a_failed_response_with_the_uid() {
    let mut bad = alpha_web();
    bad["apiVersion"] = json!("network.deckhouse.io/v9");
    let (s, v) = post_json(
        router(state()),
        "/convert",
        &conversion_review("c4", "network.deckhouse.io/v1beta1", vec![alpha_web(), bad]),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(response(&v)["uid"], "c4");
    assert_eq!(response(&v)["result"]["status"], "Failure");
    let msg = response(&v)["result"]["message"].as_str().unwrap_or("");
    assert!(
        msg.contains("object 1") && msg.contains("my-ns/web"),
        "{msg}"
    );
    assert!(converted(&v).is_empty());
}

#[tokio::test]
async fn conversion_to_an_unknown_version_fails() {
    let (_, v) = post_json(
        router(state()),
        "/convert",
        &conversion_review("c5", "network.deckhouse.io/v2", vec![alpha_web()]),
    )
    .await;
    assert_eq!(response(&v)["result"]["status"], "Failure", "{v}");
    assert_eq!(response(&v)["uid"], "c5");
}

#[tokio::test]
async fn malformed_conversion_review_with_uid_fails_with_200() {
    let review = json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "ConversionReview",
        "request": {"uid": "c6", "objects": "not-a-list"}
    });
    let (s, v) = post_json(router(state()), "/convert", &review).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(response(&v)["uid"], "c6");
    assert_eq!(response(&v)["result"]["status"], "Failure");
}

#[tokio::test]
async fn unknown_path_is_404() {
    let (s, _, _) = post(router(state()), "/nope", "{}").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

// ---------------------------------------------------------------------------------------------
// Admin port
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn admin_livez_readyz_and_metrics() {
    provider();
    let dir = std::env::temp_dir().join(format!("swh-webhook-admin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let (cert, key) = (dir.join("tls.crt"), dir.join("tls.key"));
    let certs = Arc::new(CertStore::new(cert.clone(), key.clone()));
    let st = state_with(None, certs.clone());

    assert_eq!(
        get(admin_router(st.clone()), "/livez").await.0,
        StatusCode::OK
    );
    certs.refresh();
    assert_eq!(
        get(admin_router(st.clone()), "/readyz").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    TestCa::new().issue(&cert, &key);
    certs.refresh();
    assert_eq!(
        get(admin_router(st.clone()), "/readyz").await.0,
        StatusCode::OK
    );

    let _ = post_json(
        router(st.clone()),
        "/validate-swh",
        &swh_review("m1", "CREATE", alpha_web(), None),
    )
    .await;
    let _ = post(router(st.clone()), "/convert", "nope").await;
    let (s, text) = get(admin_router(st.clone()), "/metrics").await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        text.contains(r#"swh_webhook_requests_total{endpoint="validate-swh",result="allowed"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"swh_webhook_requests_total{endpoint="convert",result="bad_request"} 1"#),
        "{text}"
    );
    assert!(
        text.contains("swh_webhook_request_duration_seconds_bucket"),
        "{text}"
    );

    st.shutting_down
        .store(true, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        get(admin_router(st), "/readyz").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let _ = std::fs::remove_dir_all(&dir);
}
