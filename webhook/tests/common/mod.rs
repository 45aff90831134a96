//! Shared helpers of the webhook's integration tests.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use serde_json::{Value, json};
use swh_webhook::admission::{Context, SecretLookup};
use swh_webhook::metrics::Metrics;
use swh_webhook::server::AppState;
use swh_webhook::tls::CertStore;

pub const CONTROLLER: &str = "system:serviceaccount:swh-system:swh-controller";

/// Secrets that "exist" for the fake lookup.
pub struct FakeSecrets(pub BTreeSet<(String, String)>);

impl SecretLookup for FakeSecrets {
    fn exists<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<bool, String>> + Send + 'a>> {
        let found = self.0.contains(&(namespace.to_string(), name.to_string()));
        Box::pin(async move { Ok(found) })
    }
}

pub fn provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

pub fn state_with(secrets: Option<Arc<dyn SecretLookup>>, certs: Arc<CertStore>) -> AppState {
    AppState {
        ctx: Arc::new(Context {
            controller_username: CONTROLLER.into(),
            secrets,
        }),
        metrics: Arc::new(Metrics::new()),
        certs,
        shutting_down: Arc::new(AtomicBool::new(false)),
    }
}

pub fn state() -> AppState {
    state_with(
        None,
        Arc::new(CertStore::new(
            "/nonexistent/c".into(),
            "/nonexistent/k".into(),
        )),
    )
}

/// A CA and a way to issue leaves for 127.0.0.1/localhost.
pub struct TestCa {
    pub pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl TestCa {
    pub fn new() -> TestCa {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params
            .distinguished_name
            .push(DnType::CommonName, "swh-webhook-test-ca");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).expect("self-signed");
        TestCa {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// Writes a fresh leaf (new key, new serial) to `cert`/`key`; returns its DER.
    pub fn issue(&self, cert: &Path, key: &Path) -> Vec<u8> {
        let k = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).expect("params");
        params
            .subject_alt_names
            .push(SanType::IpAddress([127, 0, 0, 1].into()));
        params
            .distinguished_name
            .push(DnType::CommonName, "swh-webhook");
        let c = params.signed_by(&k, &self.issuer).expect("sign");
        // Key first, then the certificate: a reader in between sees a mismatched pair and keeps
        // the old one.
        std::fs::write(key, k.serialize_pem()).expect("write key");
        std::fs::write(cert, c.pem()).expect("write cert");
        c.der().to_vec()
    }
}

// ---------------------------------------------------------------------------------------------
// Review builders
// ---------------------------------------------------------------------------------------------

pub fn admission_review(
    uid: &str,
    kind: (&str, &str, &str),
    op: &str,
    user: &str,
    object: Option<Value>,
    old: Option<Value>,
) -> Value {
    let (group, version, k) = kind;
    let ns = object
        .as_ref()
        .or(old.as_ref())
        .and_then(|o| o.pointer("/metadata/namespace"))
        .cloned()
        .unwrap_or(json!("default"));
    let name = object
        .as_ref()
        .or(old.as_ref())
        .and_then(|o| o.pointer("/metadata/name"))
        .cloned()
        .unwrap_or(json!(""));
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": group, "version": version, "kind": k},
            "resource": {"group": group, "version": version, "resource": if k == "Service" { "services" } else { "servicewithhealthchecks" }},
            "name": name,
            "namespace": ns,
            "operation": op,
            "userInfo": {"username": user, "groups": ["system:authenticated"]},
            "object": object,
            "oldObject": old,
            "dryRun": false
        }
    })
}

pub fn swh_review(uid: &str, op: &str, object: Value, old: Option<Value>) -> Value {
    let version = object
        .get("apiVersion")
        .and_then(Value::as_str)
        .and_then(|v| v.split_once('/'))
        .map(|(_, v)| v.to_string())
        .unwrap_or_else(|| "v1beta1".into());
    admission_review(
        uid,
        ("network.deckhouse.io", &version, "ServiceWithHealthchecks"),
        op,
        "alice",
        Some(object),
        old,
    )
}

/// The Deckhouse web example (v1alpha1).
pub fn alpha_web() -> Value {
    json!({
        "apiVersion": "network.deckhouse.io/v1alpha1",
        "kind": "ServiceWithHealthchecks",
        "metadata": {"name": "web", "namespace": "my-ns", "uid": "u-1", "labels": {"a": "b"}},
        "spec": {
            "ports": [{"port": 80, "protocol": "TCP", "targetPort": 8080}],
            "selector": {"vm": "my-vm"},
            "healthcheck": {"probes": [{"mode": "HTTP", "http": {"targetPort": 8080, "method": "GET", "path": "/healthz"}}]}
        }
    })
}

/// The Deckhouse postgres-read example (v1alpha1).
pub fn alpha_pg(secret: &str) -> Value {
    json!({
        "apiVersion": "network.deckhouse.io/v1alpha1",
        "kind": "ServiceWithHealthchecks",
        "metadata": {"name": "postgres-read", "namespace": "my-ns"},
        "spec": {
            "ports": [{"port": 5432, "protocol": "TCP", "targetPort": 5432}],
            "selector": {"app": "postgres"},
            "healthcheck": {"probes": [{"mode": "PostgreSQL", "postgreSQL": {
                "targetPort": 5432, "dbName": "postgres", "authSecretName": secret, "query": "SELECT 1"}}]}
        }
    })
}

/// A v1beta1 object using v1beta1-only fields.
pub fn beta_rich() -> Value {
    json!({
        "apiVersion": "network.deckhouse.io/v1beta1",
        "kind": "ServiceWithHealthchecks",
        "metadata": {"name": "rich", "namespace": "my-ns", "resourceVersion": "7", "generation": 3},
        "spec": {
            "ports": [{"name": "http", "port": 80, "targetPort": "web"}, {"name": "grpc", "port": 9090, "targetPort": 9090}],
            "selector": {"app": "rich"},
            "healthcheck": {
                "failOpen": {"minPassingPercent": 50},
                "probes": [
                    {"name": "ready", "mode": "HTTP", "periodSeconds": 5, "http": {"port": "web", "path": "/ready", "expectedStatuses": ["200-299"], "bodyContains": "ok"}},
                    {"name": "grpc-health", "mode": "GRPC", "grpc": {"port": 9090, "service": "x.Health"}}
                ]
            }
        }
    })
}

pub fn service(name: &str, owner: Option<&str>, selector: Option<Value>, type_: &str) -> Value {
    let mut meta = json!({"name": name, "namespace": "my-ns"});
    if let Some(o) = owner {
        meta["ownerReferences"] = json!([{
            "apiVersion": "network.deckhouse.io/v1beta1",
            "kind": "ServiceWithHealthchecks",
            "name": o,
            "uid": "0000-1111",
            "controller": true
        }]);
    }
    let mut spec =
        json!({"type": type_, "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}]});
    if let Some(s) = selector {
        spec["selector"] = s;
    }
    json!({"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": spec})
}

pub fn service_review(uid: &str, user: &str, new: Value, old: Value) -> Value {
    admission_review(
        uid,
        ("", "v1", "Service"),
        "UPDATE",
        user,
        Some(new),
        Some(old),
    )
}

pub fn conversion_review(uid: &str, desired: &str, objects: Vec<Value>) -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "ConversionReview",
        "request": {"uid": uid, "desiredAPIVersion": desired, "objects": objects}
    })
}
