//! Fixtures for the Kubernetes-side unit tests: pods and SWHs built from JSON.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};
use swh_agent::targets::PodInfo;
use swh_api::v1beta1::ServiceWithHealthchecks;

pub fn t(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
}

pub struct PodB {
    v: Value,
}

pub fn pod(ns: &str, name: &str) -> PodB {
    PodB {
        v: json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"namespace": ns, "name": name, "uid": format!("uid-{name}"),
                         "creationTimestamp": "2023-11-14T22:13:20Z", "labels": {}},
            "spec": {"nodeName": "node-a", "containers": [{"name": "main"}]},
            "status": {"phase": "Running",
                       "conditions": [{"type": "Ready", "status": "True"}]},
        }),
    }
}

impl PodB {
    pub fn label(mut self, k: &str, v: &str) -> Self {
        self.v["metadata"]["labels"][k] = json!(v);
        self
    }
    pub fn ips(mut self, ips: &[&str]) -> Self {
        self.v["status"]["podIP"] = json!(ips.first());
        self.v["status"]["podIPs"] =
            json!(ips.iter().map(|i| json!({"ip": i})).collect::<Vec<_>>());
        self
    }
    pub fn port(mut self, name: &str, port: i32) -> Self {
        let c = &mut self.v["spec"]["containers"][0];
        if c.get("ports").is_none() {
            c["ports"] = json!([]);
        }
        if let Some(a) = c["ports"].as_array_mut() {
            a.push(json!({"name": name, "containerPort": port}));
        }
        self
    }
    pub fn not_ready(mut self) -> Self {
        self.v["status"]["conditions"] = json!([{"type": "Ready", "status": "False"}]);
        self
    }
    pub fn phase(mut self, p: &str) -> Self {
        self.v["status"]["phase"] = json!(p);
        self
    }
    pub fn terminating(mut self) -> Self {
        self.v["metadata"]["deletionTimestamp"] = json!("2023-11-14T22:20:00Z");
        self
    }
    pub fn uid(mut self, uid: &str) -> Self {
        self.v["metadata"]["uid"] = json!(uid);
        self
    }
    pub fn pod(&self) -> Pod {
        serde_json::from_value(self.v.clone()).expect("pod json")
    }
    pub fn info(&self) -> PodInfo {
        PodInfo::from_pod(&self.pod()).expect("pod info")
    }
}

/// An SWH from a spec JSON.
pub fn swh(ns: &str, name: &str, spec: Value) -> Arc<ServiceWithHealthchecks> {
    Arc::new(
        serde_json::from_value(json!({
            "apiVersion": "network.deckhouse.io/v1beta1",
            "kind": "ServiceWithHealthchecks",
            "metadata": {"namespace": ns, "name": name, "uid": format!("swh-uid-{name}")},
            "spec": spec,
        }))
        .expect("swh json"),
    )
}

/// An SWH with one TCP probe on `port` and a Service port 80 → `target`.
pub fn tcp_swh(
    ns: &str,
    name: &str,
    selector: Value,
    port: Value,
    target: Value,
) -> Arc<ServiceWithHealthchecks> {
    swh(
        ns,
        name,
        json!({
            "ports": [{"name": "web", "port": 80, "targetPort": target}],
            "selector": selector,
            "healthcheck": {"initialDelaySeconds": 0, "periodSeconds": 1,
                "probes": [{"name": "tcp", "mode": "TCP", "tcp": {"port": port}}]},
        }),
    )
}
