//! Status keeps flowing while the webhook is down, for an SWH created with `kubectl apply` in
//! v1alpha1 (issue: its `kubectl-client-side-apply` managedFields entry in v1alpha1 made every
//! write convert the object through the webhook; the controller now drops such entries while
//! the webhook is up). Runs on a private cluster of its own: it kills the webhook.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::Value;
use swh_e2e::backend::{Backend, BackendSpec};
use swh_e2e::controlplane::{ClusterOptions, LocalCluster};
use swh_e2e::objects::{self, PodSpecLite};
use swh_e2e::{identity, slices, testenv, traffic, webhook_install};

const SWH: &str = r#"apiVersion: network.deckhouse.io/v1alpha1
kind: ServiceWithHealthchecks
metadata:
  name: web
spec:
  ports:
  - port: 80
    protocol: TCP
    targetPort: 8080
  selector:
    app: outage
  healthcheck:
    initialDelaySeconds: 0
    periodSeconds: 1
    probes:
    - mode: HTTP
      successThreshold: 1
      failureThreshold: 1
      http:
        targetPort: 8080
        method: GET
        path: /healthz
"#;

/// The SWH read in v1beta1, the storage version (no conversion needed).
fn get_v1beta1(cluster: &LocalCluster, ns: &str) -> Option<Value> {
    let out = identity::kubectl(
        cluster,
        &[
            "get",
            "servicewithhealthchecks.v1beta1.network.deckhouse.io",
            "web",
            "-n",
            ns,
            "-o",
            "json",
            "--show-managed-fields",
        ],
        None,
    )
    .ok()?;
    serde_json::from_str(&out).ok()
}

fn v1alpha1_update_managers(swh: &Value) -> Vec<String> {
    swh["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| {
            e["operation"] == "Update" && e["apiVersion"] == "network.deckhouse.io/v1alpha1"
        })
        .filter_map(|e| e["manager"].as_str().map(String::from))
        .collect()
}

fn probes_successful(swh: &Value, pod: &str) -> Option<bool> {
    swh["status"]["endpointStatuses"]
        .as_array()?
        .iter()
        .find(|e| e["podName"] == pod)?["probesSuccessful"]
        .as_bool()
}

/// Stops the private cluster however the test ends (a failed assertion included).
struct StopOnDrop(Option<LocalCluster>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        if let Some(c) = self.0.take() {
            c.stop();
        }
    }
}

#[tokio::test]
async fn status_keeps_flowing_while_the_webhook_is_down() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let shared = testenv::shared_cluster().expect("shared cluster (for the binaries)");
    let work = std::env::temp_dir().join(format!("swh-outage-{}", std::process::id()));
    let cluster = tokio::task::spawn_blocking({
        let (bin_dir, work) = (shared.bin_dir.clone(), work.clone());
        move || {
            let mut c = LocalCluster::start(&ClusterOptions {
                bin_dir,
                work_dir: work,
                tag: format!("wo{}", std::process::id() % 10_000),
                link: 12,
                pod_range: 242,
                service_range: 96,
                real_nodes: None,
            })?;
            if let Err(e) = swh_e2e::stack::start(&mut c) {
                c.stop();
                return Err(swh_e2e::controlplane::ClusterError::State {
                    path: std::path::PathBuf::new(),
                    message: e.to_string(),
                });
            }
            Ok(c)
        }
    })
    .await
    .expect("join")
    .expect("private cluster with the components");
    let guard = StopOnDrop(Some(cluster));
    let Some(cluster) = guard.0.as_ref() else {
        return;
    };
    let client = testenv::admin_client(cluster).await.expect("client");
    let ns = "outage";
    objects::ensure_namespace(&client, ns).await.expect("ns");
    let (ip, _) = cluster.pod_network.alloc_pod_ips().expect("pod IP");
    let _backend = Backend::start(
        std::path::Path::new(env!("CARGO_BIN_EXE_swh-backend")),
        &cluster.pod_network,
        &BackendSpec {
            http: vec![SocketAddr::new(ip, 8080)],
            http_path: "/healthz".into(),
            http_status: 200,
            ..Default::default()
        },
        &cluster.work_dir,
    )
    .expect("backend");
    objects::create_pod(
        &client,
        &PodSpecLite {
            namespace: ns.into(),
            name: "web-0".into(),
            node: "node-a".into(),
            labels: BTreeMap::from([("app".to_string(), "outage".to_string())]),
            ports: vec![],
        },
    )
    .await
    .expect("pod");
    objects::set_pod_status(&client, ns, "web-0", &[ip], true)
        .await
        .expect("pod status");
    // As a Deckhouse user would: client-side kubectl apply of the v1alpha1 manifest.
    identity::kubectl(cluster, &["apply", "-n", ns, "-f", "-"], Some(SWH)).expect("apply");
    let c = cluster;
    testenv::wait_for(
        "published with a passing status",
        Duration::from_secs(60),
        || {
            let client = client.clone();
            async move {
                let ready = slices::ready(&client, ns, "web").await.ok()?;
                let swh = get_v1beta1(c, ns)?;
                (ready.len() == 1 && probes_successful(&swh, "web-0") == Some(true)).then_some(())
            }
        },
    )
    .await;
    // The controller releases the v1alpha1 Update entry while the webhook is up.
    testenv::wait_for(
        "no v1alpha1 Update entry left in managedFields",
        Duration::from_secs(30),
        || async move {
            let swh = get_v1beta1(c, ns)?;
            v1alpha1_update_managers(&swh).is_empty().then_some(())
        },
    )
    .await;

    // The outage: the webhook process is killed (and proven gone: v1alpha1 reads fail).
    let hook = cluster
        .processes
        .iter()
        .find(|p| p.name == webhook_install::PROCESS_NAME)
        .cloned()
        .expect("webhook process");
    swh_e2e::process::stop_with(
        hook.pid,
        None,
        nix::sys::signal::Signal::SIGKILL,
        Duration::from_secs(5),
    );
    let read_v1alpha1 = identity::kubectl(
        cluster,
        &[
            "get",
            "servicewithhealthchecks.v1alpha1.network.deckhouse.io",
            "web",
            "-n",
            ns,
        ],
        None,
    );
    assert!(
        read_v1alpha1.is_err(),
        "a v1alpha1 read must need the (dead) conversion webhook: {read_v1alpha1:?}"
    );
    let flipped = Instant::now();
    traffic::set_health(ip, 503).expect("fail the backend");
    testenv::wait_for(
        "the failing probe in the status and the slice while the webhook is down",
        Duration::from_secs(30),
        || {
            let client = client.clone();
            async move {
                let ready = slices::ready(&client, ns, "web").await.ok()?;
                let swh = get_v1beta1(c, ns)?;
                (ready.is_empty() && probes_successful(&swh, "web-0") == Some(false)).then_some(())
            }
        },
    )
    .await;
    let took = flipped.elapsed();
    // Back: passing again, still without the webhook.
    traffic::set_health(ip, 200).expect("recover the backend");
    testenv::wait_for(
        "the passing probe back in the status",
        Duration::from_secs(30),
        || async move {
            let swh = get_v1beta1(c, ns)?;
            (probes_successful(&swh, "web-0") == Some(true)).then_some(())
        },
    )
    .await;
    eprintln!(
        "webhook down: probe failure in status and slice {:.1}s after the flip, recovery {:.1}s after that",
        took.as_secs_f64(),
        flipped.elapsed().as_secs_f64() - took.as_secs_f64()
    );
    drop(guard);
}
