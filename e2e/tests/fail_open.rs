//! Fail-open (`healthcheck.failOpen.minPassingPercent`, v1beta1) end to end on the shared
//! process-mode cluster: the controller decides across nodes from the agents' per-pod entries
//! and sets the condition `FailOpen`; the agents then publish every probed pod that is Ready
//! and not terminating. A pod the kubelet does not call Ready is never published.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use k8s_openapi::api::events::v1::Event;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams};
use kube::{Api, Client};
use swh_e2e::backend::{Backend, BackendSpec};
use swh_e2e::objects::{self, PodSpecLite};
use swh_e2e::{identity, slices, testenv, traffic};

const LIMIT: Duration = Duration::from_secs(30);

const SWH: &str = r#"apiVersion: network.deckhouse.io/v1beta1
kind: ServiceWithHealthchecks
metadata:
  name: web
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080}]
  healthcheck:
    initialDelaySeconds: 0
    periodSeconds: 1
    failOpen: {minPassingPercent: 50}
    probes:
      - name: web
        mode: HTTP
        successThreshold: 1
        failureThreshold: 1
        http: {port: 8080, path: /healthz}
"#;

fn set(ips: &[IpAddr]) -> BTreeSet<String> {
    ips.iter().map(ToString::to_string).collect()
}

/// The SWH's `FailOpen` condition: (status, reason, message).
async fn fail_open_condition(client: &Client, ns: &str) -> Option<(String, String, String)> {
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("network.deckhouse.io", "v1beta1", "ServiceWithHealthchecks"),
        "servicewithhealthchecks",
    );
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
    let o = api.get("web").await.ok()?;
    let c = o.data["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "FailOpen")?
        .clone();
    Some((
        c["status"].as_str()?.to_string(),
        c["reason"].as_str()?.to_string(),
        c["message"].as_str()?.to_string(),
    ))
}

/// Reasons of the events regarding the SWH.
async fn event_reasons(client: &Client, ns: &str) -> Vec<String> {
    let api: Api<Event> = Api::namespaced(client.clone(), ns);
    api.list(&ListParams::default())
        .await
        .map(|l| {
            l.items
                .into_iter()
                .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("web"))
                .filter_map(|e| e.reason)
                .collect()
        })
        .unwrap_or_default()
}

async fn wait_ready(client: &Client, ns: &str, want: &BTreeSet<String>, what: &str) -> Duration {
    let start = Instant::now();
    testenv::wait_for(what, LIMIT, || async {
        (slices::ready(client, ns, "web").await.ok()? == *want).then_some(())
    })
    .await;
    start.elapsed()
}

#[tokio::test]
async fn fail_open_publishes_ready_pods_below_min_passing_percent_and_ends() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cluster =
        testenv::shared_cluster().expect("shared local cluster (run `make test` or `make up`)");
    let client = testenv::admin_client(&cluster).await.expect("admin client");
    let ns = testenv::unique_name("failopen");
    objects::ensure_namespace(&client, &ns)
        .await
        .expect("namespace");

    // web-0..2 are Ready (two on node-a, one on node-b); web-3 is not Ready in the kubelet
    // sense and its probe fails: it must never be published, fail-open or not.
    let mut ips = Vec::new();
    let mut backends = Vec::new();
    for (i, node) in ["node-a", "node-a", "node-b", "node-b"].iter().enumerate() {
        let (ip, _) = cluster.pod_network.alloc_pod_ips().expect("pod ip");
        backends.push(
            Backend::start(
                Path::new(env!("CARGO_BIN_EXE_swh-backend")),
                &cluster.pod_network,
                &BackendSpec {
                    http: vec![SocketAddr::new(ip, 8080)],
                    http_path: "/healthz".into(),
                    http_status: if i == 3 { 503 } else { 200 },
                    ..Default::default()
                },
                &cluster.work_dir,
            )
            .expect("backend"),
        );
        let name = format!("web-{i}");
        objects::create_pod(
            &client,
            &PodSpecLite {
                namespace: ns.clone(),
                name: name.clone(),
                node: node.to_string(),
                labels: [("app".to_string(), "web".to_string())].into(),
                ports: vec![],
            },
        )
        .await
        .expect("pod");
        objects::set_pod_status(&client, &ns, &name, &[ip], i != 3)
            .await
            .expect("pod status");
        ips.push(ip);
    }
    identity::kubectl(&cluster, &["apply", "-n", &ns, "-f", "-"], Some(SWH)).expect("apply SWH");

    let three = set(&ips[..3]);
    wait_ready(&client, &ns, &three, "web-0..2 published").await;
    testenv::wait_for("FailOpen False", LIMIT, || async {
        (fail_open_condition(&client, &ns).await?.0 == "False").then_some(())
    })
    .await;

    // Fail web-1 and web-2: 1 of 4 decided pods passes (25% < 50%): fail-open.
    traffic::set_health(ips[1], 503).expect("fail web-1");
    traffic::set_health(ips[2], 503).expect("fail web-2");
    let failed = Instant::now();
    let (_, reason, message) = testenv::wait_for("FailOpen True", LIMIT, || async {
        let c = fail_open_condition(&client, &ns).await?;
        (c.0 == "True").then_some(c)
    })
    .await;
    let entered = failed.elapsed();
    assert_eq!(reason, "FewerPodsPassThanMinPassingPercent");
    assert!(message.contains("1 of 4"), "condition message: {message}");
    wait_ready(&client, &ns, &three, "all Ready pods published fail-open").await;
    // Still fail-open a moment later (not a transient), and web-3 (not Ready) never published.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let view = slices::endpoints(&client, &ns, "web")
        .await
        .expect("slices");
    let ready: BTreeSet<String> = view
        .iter()
        .filter(|(_, c)| c.0)
        .map(|(a, _)| a.clone())
        .collect();
    assert_eq!(ready, three, "fail-open publishes web-0..2 only: {view:?}");
    assert_eq!(
        fail_open_condition(&client, &ns)
            .await
            .map(|c| c.0)
            .as_deref(),
        Some("True")
    );
    testenv::wait_for("event FailOpenEntered", LIMIT, || async {
        event_reasons(&client, &ns)
            .await
            .iter()
            .any(|r| r == "FailOpenEntered")
            .then_some(())
    })
    .await;

    // Fix web-1: 2 of 4 pass (50%, not below): only the passing pods are published.
    traffic::set_health(ips[1], 200).expect("fix web-1");
    let fixed = Instant::now();
    let two = set(&ips[..2]);
    let exited = wait_ready(&client, &ns, &two, "only passing pods published").await;
    testenv::wait_for("FailOpen False again", LIMIT, || async {
        let c = fail_open_condition(&client, &ns).await?;
        (c.0 == "False" && c.1 == "EnoughPodsPass").then_some(())
    })
    .await;
    testenv::wait_for("event FailOpenExited", LIMIT, || async {
        event_reasons(&client, &ns)
            .await
            .iter()
            .any(|r| r == "FailOpenExited")
            .then_some(())
    })
    .await;
    eprintln!(
        "fail_open: entered {entered:?} after failing 2 of 3, exited (slices) {exited:?} after fixing 1 (total {:?})",
        fixed.elapsed()
    );
    drop(backends);
}
