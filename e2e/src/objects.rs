//! Kubernetes objects the e2e tests need but no kubelet makes here: Nodes, and Pods bound to a
//! node whose status (phase, IPs, Ready) is set through the status subresource.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Container, ContainerPort, Namespace, Node, Pod, PodSpec};
use kube::api::{DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

/// Creates a Node (no taints) if it does not exist.
pub async fn ensure_node(client: &Client, name: &str) -> Result<(), kube::Error> {
    let api: Api<Node> = Api::all(client.clone());
    if api.get_opt(name).await?.is_some() {
        return Ok(());
    }
    let node = Node {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(BTreeMap::from([(
                "kubernetes.io/hostname".to_string(),
                name.to_string(),
            )])),
            ..Default::default()
        },
        ..Default::default()
    };
    match api.create(&PostParams::default(), &node).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.is_already_exists() => {}
        Err(e) => return Err(e),
    }
    let status = json!({"status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "e2e node"}]}});
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await?;
    Ok(())
}

/// Creates a namespace (idempotent).
pub async fn ensure_namespace(client: &Client, name: &str) -> Result<(), kube::Error> {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        ..Default::default()
    };
    match api.create(&PostParams::default(), &ns).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.is_already_exists() => Ok(()),
        Err(e) => Err(e),
    }
}

/// A pod to create with [`create_pod`].
#[derive(Debug, Clone, Default)]
pub struct PodSpecLite {
    pub namespace: String,
    pub name: String,
    pub node: String,
    pub labels: BTreeMap<String, String>,
    /// Named container ports (name, port).
    pub ports: Vec<(String, i32)>,
}

/// Creates a pod bound to `node` (no status yet).
pub async fn create_pod(client: &Client, p: &PodSpecLite) -> Result<Pod, kube::Error> {
    let api: Api<Pod> = Api::namespaced(client.clone(), &p.namespace);
    let pod = Pod {
        metadata: ObjectMeta {
            name: Some(p.name.clone()),
            labels: Some(p.labels.clone()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            node_name: Some(p.node.clone()),
            containers: vec![Container {
                name: "main".into(),
                image: Some("registry.invalid/swh-e2e:never-pulled".into()),
                ports: (!p.ports.is_empty()).then(|| {
                    p.ports
                        .iter()
                        .map(|(n, port)| ContainerPort {
                            name: Some(n.clone()),
                            container_port: *port,
                            ..Default::default()
                        })
                        .collect()
                }),
                ..Default::default()
            }],
            termination_grace_period_seconds: Some(0),
            ..Default::default()
        }),
        ..Default::default()
    };
    api.create(&PostParams::default(), &pod).await
}

/// Sets phase Running, the pod IPs and the Ready condition through the status subresource,
/// as a kubelet would.
pub async fn set_pod_status(
    client: &Client,
    ns: &str,
    name: &str,
    ips: &[IpAddr],
    ready: bool,
) -> Result<Pod, kube::Error> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let status = if ready { "True" } else { "False" };
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let body = json!({"status": {
        "phase": "Running",
        "podIP": ips.first().map(|i| i.to_string()),
        "podIPs": ips.iter().map(|i| json!({"ip": i.to_string()})).collect::<Vec<_>>(),
        "startTime": now,
        "conditions": [
            {"type": "Ready", "status": status, "lastTransitionTime": now},
            {"type": "ContainersReady", "status": status, "lastTransitionTime": now},
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
        ],
    }});
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&body))
        .await
}

/// Deletes a pod immediately (no kubelet will finish a graceful deletion here).
pub async fn force_delete_pod(client: &Client, ns: &str, name: &str) -> Result<(), kube::Error> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    match api
        .delete(
            name,
            &DeleteParams {
                grace_period_seconds: Some(0),
                ..Default::default()
            },
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.is_not_found() => Ok(()),
        Err(e) => Err(e),
    }
}
