//! Fail-open in the pure index: the agent follows the controller's `FailOpen` condition, and
//! only for probed pods that are Ready and not terminating.

mod common_k8s;

use std::collections::BTreeMap;
use std::sync::Arc;

use common_k8s::{pod, swh, t};
use serde_json::json;
use swh_agent::index::{Index, ObjectKey, TargetKey};
use swh_agent::slices::Conditions;
use swh_agent::threshold::Threshold;
use swh_api::v1beta1::ServiceWithHealthchecks;

fn key() -> ObjectKey {
    ("ns".to_string(), "web".to_string())
}

fn tk(pod: &str) -> TargetKey {
    TargetKey {
        namespace: "ns".into(),
        swh: "web".into(),
        pod_uid: format!("uid-{pod}"),
        probe: "tcp".into(),
    }
}

fn decided(ok: bool) -> Threshold {
    let mut th = Threshold::new(t(0));
    for i in 0..3 {
        th.record(ok, if ok { "ok" } else { "refused" }, t(1 + i), 1, 3);
    }
    th
}

/// An SWH with one TCP probe, `failOpen` when `min` is set, the condition `FailOpen` as given.
fn fail_open_swh(min: Option<i32>, condition: Option<&str>) -> Arc<ServiceWithHealthchecks> {
    let mut hc = json!({"initialDelaySeconds": 0, "periodSeconds": 1,
        "probes": [{"name": "tcp", "mode": "TCP", "tcp": {"port": 8080}}]});
    if let Some(m) = min {
        hc["failOpen"] = json!({"minPassingPercent": m});
    }
    let s = swh(
        "ns",
        "web",
        json!({"ports": [{"name": "web", "port": 80, "targetPort": 8080}],
               "selector": {}, "healthcheck": hc}),
    );
    let mut s = (*s).clone();
    if let Some(status) = condition {
        s.status = Some(
            serde_json::from_value(json!({"conditions": [{"type": "FailOpen", "status": status,
                "reason": "R", "message": "m", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}))
            .expect("status"),
        );
    }
    Arc::new(s)
}

fn ready_pods(ix: &Index) -> Vec<String> {
    ix.endpoints(&key())
        .into_iter()
        .filter(|e| e.conditions.ready)
        .map(|e| e.pod_name)
        .collect()
}

fn index(swh: Arc<ServiceWithHealthchecks>) -> Index {
    let mut ix = Index::new("node-a");
    ix.upsert_swh(swh);
    ix.upsert_pod(pod("ns", "a").ips(&["10.0.0.1"]).info());
    ix.upsert_pod(pod("ns", "b").ips(&["10.0.0.2"]).info());
    ix.upsert_pod(pod("ns", "c").ips(&["10.0.0.3"]).not_ready().info());
    ix.upsert_pod(pod("ns", "d").ips(&["10.0.0.4"]).terminating().info());
    ix.targets(&key(), t(0));
    ix.record(tk("a"), decided(true));
    for p in ["b", "c", "d"] {
        ix.record(tk(p), decided(false));
    }
    ix
}

#[test]
fn fail_open_publishes_ready_probed_pods_only_while_the_condition_is_true() {
    // Without the condition, or with it False, or without failOpen in the spec: probes decide.
    for swh in [
        fail_open_swh(Some(50), None),
        fail_open_swh(Some(50), Some("False")),
        fail_open_swh(None, Some("True")),
    ] {
        let ix = index(swh);
        assert_eq!(ready_pods(&ix), vec!["a"]);
        assert!(!ix.fail_open(&key()));
    }
    // Active: the failing Ready pod is published; a not-Ready or terminating one never is.
    let mut ix = index(fail_open_swh(Some(50), Some("True")));
    assert!(ix.fail_open(&key()));
    assert_eq!(ready_pods(&ix), vec!["a", "b"]);
    let c: BTreeMap<String, Conditions> = ix
        .endpoints(&key())
        .into_iter()
        .map(|e| (e.pod_name, e.conditions))
        .collect();
    assert_eq!(
        c["d"],
        Conditions {
            ready: false,
            serving: false,
            terminating: true
        }
    );
    // Status entries: published follows fail-open, the probes' verdict does not.
    let entries = ix.statuses(&key(), t(10));
    let b = entries.iter().find(|e| e.pod_name == "b").expect("entry b");
    assert_eq!(b.published, Some(true));
    assert_eq!(b.probes_successful, Some(false));
    assert_eq!(b.ready, Some(false));
    // The condition goes False: back to passing pods only.
    ix.upsert_swh(fail_open_swh(Some(50), Some("False")));
    assert_eq!(ready_pods(&ix), vec!["a"]);
}
