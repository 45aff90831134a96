//! Service → ServiceWithHealthchecks (what `kubectl swh migrate` builds).

use k8s_openapi::api::core::v1::Service;
use serde_json::json;
use swh_api::annotations::{ADOPT_SERVICE, LAST_APPLIED};
use swh_api::service_to_swh::{FromServiceError, from_service};
use swh_api::v1beta1::{Probe, ProbeMode, TcpProbe};
use swh_api::validation::validate;

fn service() -> Service {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {
            "name": "web", "namespace": "shop", "uid": "abc", "resourceVersion": "12",
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "labels": {"app": "web", "tier": "front"},
            "annotations": {LAST_APPLIED: "{...}", "example.com/owner": "team-a"},
            "managedFields": [{"manager": "kubectl", "operation": "Apply"}]
        },
        "spec": {
            "type": "LoadBalancer",
            "selector": {"app": "web"},
            "clusterIP": "10.96.0.42", "clusterIPs": ["10.96.0.42"],
            "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
            "ports": [
                {"name": "http", "port": 80, "protocol": "TCP", "targetPort": "http", "nodePort": 31080},
                {"name": "https", "port": 443, "protocol": "TCP", "targetPort": 8443, "nodePort": 31443, "appProtocol": "https"}
            ],
            "sessionAffinity": "ClientIP",
            "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 600}},
            "externalTrafficPolicy": "Local", "healthCheckNodePort": 32000,
            "internalTrafficPolicy": "Cluster",
            "externalIPs": ["192.0.2.10"],
            "loadBalancerClass": "example.com/lb", "loadBalancerSourceRanges": ["10.0.0.0/8"],
            "loadBalancerIP": "192.0.2.20",
            "allocateLoadBalancerNodePorts": true,
            "publishNotReadyAddresses": false,
            "trafficDistribution": "PreferClose"
        },
        "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.20"}]}}
    }))
    .expect("service")
}

fn tcp_probe() -> Probe {
    Probe {
        name: "tcp".into(),
        mode: ProbeMode::Tcp,
        tcp: Some(TcpProbe {
            port: k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String("http".into()),
        }),
        ..Default::default()
    }
}

#[test]
fn keeps_every_service_spec_field() {
    let svc = service();
    let swh = from_service(&svc, vec![tcp_probe()]).expect("convert");
    let want = serde_json::to_value(svc.spec.as_ref().expect("spec")).expect("json");
    let mut got = serde_json::to_value(&swh.spec).expect("json");
    let got_obj = got.as_object_mut().expect("object");
    assert!(got_obj.remove("healthcheck").is_some());
    assert_eq!(
        got, want,
        "every ServiceSpec field, selector and clusterIP included"
    );
    assert_eq!(swh.spec.probes().len(), 1);
    assert!(swh.status.is_none());
}

#[test]
fn keeps_identity_labels_and_annotations_but_not_bookkeeping() {
    let swh = from_service(&service(), vec![]).expect("convert");
    let m = &swh.metadata;
    assert_eq!(m.name.as_deref(), Some("web"));
    assert_eq!(m.namespace.as_deref(), Some("shop"));
    assert_eq!(m.labels.as_ref().map(|l| l.len()), Some(2));
    let ann = m.annotations.as_ref().expect("annotations");
    assert!(!ann.contains_key(LAST_APPLIED));
    assert_eq!(
        ann.get("example.com/owner").map(String::as_str),
        Some("team-a")
    );
    assert_eq!(ann.get(ADOPT_SERVICE).map(String::as_str), Some("true"));
    assert!(m.uid.is_none() && m.resource_version.is_none() && m.managed_fields.is_none());
    assert!(m.creation_timestamp.is_none());
    assert!(
        swh.spec.healthcheck.is_none(),
        "no probes: no healthcheck section"
    );
}

#[test]
fn result_is_a_valid_swh() {
    let swh = from_service(&service(), vec![tcp_probe()]).expect("convert");
    let errs = validate(&swh, None);
    assert!(errs.is_empty(), "{errs:#?}");
    let v = serde_json::to_value(&swh).expect("json");
    assert_eq!(v["apiVersion"], "network.deckhouse.io/v1beta1");
    assert_eq!(v["kind"], "ServiceWithHealthchecks");
}

#[test]
fn external_name_is_refused() {
    let mut svc = service();
    if let Some(spec) = svc.spec.as_mut() {
        spec.type_ = Some("ExternalName".into());
        spec.external_name = Some("db.example.com".into());
    }
    let err = from_service(&svc, vec![]).expect_err("ExternalName");
    assert_eq!(err, FromServiceError::ExternalName("web".into()));
    assert!(err.to_string().contains("ExternalName"));
}

#[test]
fn missing_name_or_spec_is_an_error() {
    let mut svc = service();
    svc.spec = None;
    assert_eq!(
        from_service(&svc, vec![]).expect_err("no spec"),
        FromServiceError::NoSpec("web".into())
    );
    let mut svc = service();
    svc.metadata.name = None;
    assert_eq!(
        from_service(&svc, vec![]).expect_err("no name"),
        FromServiceError::NoName
    );
}
