//! Bounded API calls: the API server of a private cluster is paused (SIGSTOP) for longer than
//! the agents' and controller's request timeout (`--api-timeout-seconds`, default 5 s) while a
//! probe flips, then resumed (SIGCONT).
//!
//! - During the pause the agent's slice write fails by its timeout (the error counter rises
//!   before SIGCONT: without a timeout the write would hang until the server resumes).
//! - After SIGCONT the flip made during the pause is published, the controller's aggregate
//!   status follows, no write is left in flight (`swh_agent_writes_in_flight` is 0: no permit
//!   lost) and a second flip is published promptly.
//!
//! The cluster is private (its own etcd, API server, webhook, controller and agents) so that
//! pausing it disturbs no other test.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use kube::{Api, Client};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use swh_e2e::backend::{Backend, BackendSpec};
use swh_e2e::controlplane::{ClusterOptions, LocalCluster};
use swh_e2e::objects::{self, PodSpecLite};
use swh_e2e::{identity, slices, stack, testenv, traffic};

/// The components' default request timeout.
const API_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the API server stays paused (longer than the timeout).
const PAUSE: Duration = Duration::from_secs(9);

/// Stops the private cluster (and everything recorded in it) however the test ends; resumes
/// a paused API server first.
struct Private {
    cluster: Option<LocalCluster>,
    paused: Option<u32>,
}

impl Private {
    fn cluster(&self) -> &LocalCluster {
        self.cluster.as_ref().expect("cluster present until drop")
    }

    fn pause(&mut self, pid: u32) {
        kill(Pid::from_raw(pid as i32), Signal::SIGSTOP).expect("SIGSTOP kube-apiserver");
        self.paused = Some(pid);
    }

    fn resume(&mut self) {
        if let Some(pid) = self.paused.take() {
            kill(Pid::from_raw(pid as i32), Signal::SIGCONT).expect("SIGCONT kube-apiserver");
        }
    }
}

impl Drop for Private {
    fn drop(&mut self) {
        if let Some(pid) = self.paused.take() {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGCONT);
        }
        if let Some(c) = self.cluster.take() {
            c.stop();
        }
    }
}

/// The agent's `/metrics` text.
fn metrics(port: u16) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_secs(2),
    )
    .expect("connect agent admin port");
    s.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("read timeout");
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .expect("request metrics");
    let mut buf = String::new();
    s.read_to_string(&mut buf).expect("read metrics");
    buf
}

/// The value of the sample `name` (with its labels, exactly as exposed), 0 when absent.
fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .filter_map(|l| l.strip_prefix(name))
        .filter_map(|rest| rest.strip_prefix(' '))
        .filter_map(|v| v.trim().parse::<f64>().ok())
        .next()
        .unwrap_or(0.0)
}

const APPLY_ERRORS: &str = r#"swh_agent_slice_writes_total{op="apply",result="error"}"#;
const IN_FLIGHT: &str = "swh_agent_writes_in_flight";

fn swh_yaml(name: &str) -> String {
    format!(
        r#"apiVersion: network.deckhouse.io/v1beta1
kind: ServiceWithHealthchecks
metadata:
  name: {name}
spec:
  selector: {{app: {name}}}
  ports: [{{name: http, port: 80, targetPort: 8080}}]
  healthcheck:
    initialDelaySeconds: 0
    periodSeconds: 1
    probes:
      - name: web
        mode: HTTP
        successThreshold: 1
        failureThreshold: 1
        http: {{port: 8080, path: /healthz}}
"#
    )
}

async fn ready_set(client: &Client, ns: &str, svc: &str) -> Option<Vec<String>> {
    slices::ready(client, ns, svc)
        .await
        .ok()
        .map(|s| s.into_iter().collect())
}

/// The SWH's aggregate `status.ready` (e.g. `1/1`), written by the controller.
async fn status_ready(client: &Client, ns: &str, name: &str) -> Option<String> {
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("network.deckhouse.io", "v1beta1", "ServiceWithHealthchecks"),
        "servicewithhealthchecks",
    );
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
    let o = api.get(name).await.ok()?;
    o.data["status"]["ready"].as_str().map(str::to_string)
}

#[tokio::test]
async fn a_paused_api_server_delays_but_never_wedges_writes() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let shared = testenv::shared_cluster().expect("shared cluster (for its binaries)");
    let pid = std::process::id();
    let work = std::env::temp_dir().join(format!("swh-api-timeouts-{pid}"));
    let cluster = tokio::task::spawn_blocking({
        let (bin_dir, work) = (shared.bin_dir.clone(), work.clone());
        move || {
            LocalCluster::start(&ClusterOptions {
                bin_dir,
                work_dir: work,
                tag: format!("at{}", pid % 100_000),
                link: 11,
                pod_range: 243,
                service_range: 97,
                real_nodes: None,
            })
        }
    })
    .await
    .expect("join")
    .expect("private cluster");
    let mut private = Private {
        cluster: Some(cluster),
        paused: None,
    };

    // The stack: webhook + CRDs, RBAC, controller, one agent (its admin port kept). Both
    // run with the default --api-timeout-seconds.
    let (cluster, started) = tokio::task::spawn_blocking({
        let mut cluster = private.cluster.take().expect("cluster");
        move || {
            let r = start_stack(&mut cluster);
            (cluster, r)
        }
    })
    .await
    .expect("join");
    private.cluster = Some(cluster);
    let agent_port = started.expect("webhook, controller and agent");

    let cluster = private.cluster();
    let client = testenv::admin_client(cluster).await.expect("admin client");
    let ns = testenv::unique_name("apitimeout");
    objects::ensure_namespace(&client, &ns)
        .await
        .expect("namespace");
    let (ip, _) = cluster.pod_network.alloc_pod_ips().expect("pod ip");
    let _web = Backend::start(
        Path::new(env!("CARGO_BIN_EXE_swh-backend")),
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
            namespace: ns.clone(),
            name: "web-0".into(),
            node: "node-a".into(),
            labels: [("app".to_string(), "web".to_string())].into(),
            ports: vec![],
        },
    )
    .await
    .expect("pod");
    objects::set_pod_status(&client, &ns, "web-0", &[ip], true)
        .await
        .expect("pod status");
    identity::kubectl(
        cluster,
        &["apply", "-n", &ns, "-f", "-"],
        Some(&swh_yaml("web")),
    )
    .expect("apply SWH");
    let one = vec![ip.to_string()];
    testenv::wait_for("web published", Duration::from_secs(30), || async {
        (ready_set(&client, &ns, "web").await? == one).then_some(())
    })
    .await;
    testenv::wait_for("status 1/1", Duration::from_secs(30), || async {
        (status_ready(&client, &ns, "web").await?.as_str() == "1/1").then_some(())
    })
    .await;
    let errors_before = sample(&metrics(agent_port), APPLY_ERRORS);

    // Pause the API server, then fail the probe: the agent's apply must time out while the
    // server is still paused.
    let apiserver = cluster
        .processes
        .iter()
        .find(|p| p.name == "kube-apiserver")
        .map(|p| p.pid)
        .expect("kube-apiserver pid");
    private.pause(apiserver);
    let paused_at = Instant::now();
    traffic::set_health(ip, 503).expect("fail the probe");
    let mut timed_out_after = None;
    while paused_at.elapsed() < PAUSE {
        if timed_out_after.is_none() && sample(&metrics(agent_port), APPLY_ERRORS) > errors_before {
            timed_out_after = Some(paused_at.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let in_flight_paused = sample(&metrics(agent_port), IN_FLIGHT);
    private.resume();
    let resumed_at = Instant::now();
    let timed_out_after = timed_out_after.unwrap_or_else(|| {
        panic!(
            "no slice apply failed during a {PAUSE:?} pause: the write is not bounded by a timeout"
        )
    });
    assert!(
        timed_out_after <= API_TIMEOUT + Duration::from_secs(3),
        "the first apply failed {timed_out_after:?} into the pause (timeout {API_TIMEOUT:?})"
    );

    // Everything converges: the flip made during the pause is published, the controller's
    // status follows, no write is left in flight.
    let cluster = private.cluster();
    let client = testenv::admin_client(cluster).await.expect("admin client");
    testenv::wait_for(
        "the paused flip published",
        Duration::from_secs(30),
        || async {
            ready_set(&client, &ns, "web")
                .await?
                .is_empty()
                .then_some(())
        },
    )
    .await;
    let published = resumed_at.elapsed();
    testenv::wait_for("status 0/1", Duration::from_secs(30), || async {
        (status_ready(&client, &ns, "web").await?.as_str() == "0/1").then_some(())
    })
    .await;
    let status_followed = resumed_at.elapsed();
    testenv::wait_for("no write in flight", Duration::from_secs(10), || async {
        (sample(&metrics(agent_port), IN_FLIGHT) == 0.0).then_some(())
    })
    .await;

    // A later flip goes out promptly: every permit came back.
    traffic::set_health(ip, 200).expect("pass the probe");
    let flipped = Instant::now();
    testenv::wait_for(
        "the next flip published",
        Duration::from_secs(10),
        || async { (ready_set(&client, &ns, "web").await? == one).then_some(()) },
    )
    .await;
    let next_flip = flipped.elapsed();
    eprintln!(
        "api_timeouts: first apply failed {timed_out_after:?} into a {PAUSE:?} pause \
         ({in_flight_paused} writes in flight then); after SIGCONT: slice {published:?}, \
         status {status_followed:?}; next flip published in {next_flip:?}"
    );
    assert!(
        next_flip < Duration::from_secs(5),
        "a flip after recovery took {next_flip:?}"
    );
}

/// Installs the webhook and CRDs, applies RBAC, starts the controller and node-a's agent and
/// records them in the cluster; returns the agent's admin port.
fn start_stack(cluster: &mut LocalCluster) -> Result<u16, String> {
    swh_e2e::webhook_install::install(cluster, &stack::component_bin_dir().join("swh-webhook"))
        .map_err(|e| format!("webhook: {e}"))?;
    identity::apply(cluster, &testenv::workspace_root().join("config/rbac"))
        .map_err(|e| format!("rbac: {e}"))?;
    let c = stack::start_controller(cluster, 0).map_err(|e| format!("controller: {e}"))?;
    cluster
        .adopt_process(&c.name, c.child, c.log)
        .map_err(|e| e.to_string())?;
    stack::ensure_node(cluster, "node-a").map_err(|e| format!("node: {e}"))?;
    let a = stack::start_agent(cluster, "node-a").map_err(|e| format!("agent: {e}"))?;
    let port = a.admin_port;
    cluster
        .adopt_process(&a.name, a.child, a.log)
        .map_err(|e| e.to_string())?;
    Ok(port)
}
