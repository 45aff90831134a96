//! The core loop end to end: the seed scenarios (a VM with two services, a PostgreSQL cluster
//! with read and write services), pod churn, agent restart, steady state and cleanup. The
//! controller, agents and webhook run as separate processes under their own ServiceAccounts,
//! started by `swh-local up` (see e2e/src/stack.rs).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, Client};
use swh_e2e::backend::{Backend, BackendSpec, Postgres};
use swh_e2e::controlplane::LocalCluster;
use swh_e2e::objects::{self, PodSpecLite};
use swh_e2e::{identity, seeds, slices, testenv};

async fn setup(prefix: &str) -> (LocalCluster, Client, String) {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cluster =
        testenv::shared_cluster().expect("shared local cluster (run `make test` or `make up`)");
    let client = testenv::admin_client(&cluster).await.expect("admin client");
    let ns = testenv::unique_name(prefix);
    objects::ensure_namespace(&client, &ns)
        .await
        .expect("namespace");
    (cluster, client, ns)
}

fn backend_exe() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_swh-backend"))
}

fn apply_yaml(cluster: &LocalCluster, ns: &str, yaml: &str) {
    identity::kubectl(cluster, &["apply", "-n", ns, "-f", "-"], Some(yaml))
        .unwrap_or_else(|e| panic!("kubectl apply: {e}\n{yaml}"));
}

async fn pod(
    client: &Client,
    ns: &str,
    name: &str,
    node: &str,
    labels: &[(&str, &str)],
    ips: &[IpAddr],
    ports: &[(&str, i32)],
) {
    objects::create_pod(
        client,
        &PodSpecLite {
            namespace: ns.into(),
            name: name.into(),
            node: node.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ports: ports.iter().map(|(n, p)| (n.to_string(), *p)).collect(),
        },
    )
    .await
    .unwrap_or_else(|e| panic!("create pod {name}: {e}"));
    objects::set_pod_status(client, ns, name, ips, true)
        .await
        .unwrap_or_else(|e| panic!("pod status {name}: {e}"));
}

fn set(addrs: &[IpAddr]) -> std::collections::BTreeSet<String> {
    addrs.iter().map(ToString::to_string).collect()
}

async fn wait_ready_set(
    client: &Client,
    ns: &str,
    svc: &str,
    want: &std::collections::BTreeSet<String>,
    limit: Duration,
) -> Duration {
    let start = Instant::now();
    testenv::wait_for(
        &format!("{svc} ready endpoints == {want:?}"),
        limit,
        || async {
            let got = slices::ready(client, ns, svc).await.ok()?;
            (&got == want).then_some(())
        },
    )
    .await;
    start.elapsed()
}

/// Seed scenario 1: one VM pod, `web` (HTTP) and `smtp` (TCP) fail independently.
#[tokio::test]
async fn vm_web_and_smtp_fail_independently() {
    let (cluster, client, ns) = setup("vm").await;
    let (ip, _) = cluster.pod_network.alloc_pod_ips().expect("ip");
    let mut http = Backend::start(
        backend_exe(),
        &cluster.pod_network,
        &BackendSpec {
            http: vec![SocketAddr::new(ip, 8080)],
            http_path: "/healthz".into(),
            http_status: 200,
            ..Default::default()
        },
        &cluster.work_dir,
    )
    .expect("http backend");
    let _smtp = Backend::start(
        backend_exe(),
        &cluster.pod_network,
        &BackendSpec {
            tcp: vec![SocketAddr::new(ip, 2525)],
            ..Default::default()
        },
        &cluster.work_dir,
    )
    .expect("tcp backend");
    pod(
        &client,
        &ns,
        "my-vm",
        "node-a",
        &[("vm", "my-vm")],
        &[ip],
        &[],
    )
    .await;
    apply_yaml(&cluster, &ns, seeds::WEB);
    apply_yaml(&cluster, &ns, seeds::SMTP);

    let both = set(&[ip]);
    // initialDelaySeconds 10 and periodSeconds 10 are the Deckhouse defaults.
    wait_ready_set(&client, &ns, "web", &both, Duration::from_secs(90)).await;
    wait_ready_set(&client, &ns, "smtp", &both, Duration::from_secs(90)).await;
    let svc = Api::<Service>::namespaced(client.clone(), &ns)
        .get("web")
        .await
        .expect("child service");
    assert!(
        svc.spec
            .as_ref()
            .and_then(|s| s.selector.as_ref())
            .is_none_or(BTreeMap::is_empty),
        "child Service must have no selector"
    );

    http.stop();
    wait_ready_set(
        &client,
        &ns,
        "web",
        &Default::default(),
        Duration::from_secs(90),
    )
    .await;
    let web = slices::endpoints(&client, &ns, "web")
        .await
        .expect("web slices");
    assert_eq!(
        web.get(&ip.to_string()).map(|e| e.0),
        Some(false),
        "a failing pod stays in the slice with ready=false: {web:?}"
    );
    assert_eq!(
        slices::ready(&client, &ns, "smtp").await.expect("smtp"),
        both,
        "smtp must not follow web"
    );

    http.restart().expect("restart http");
    wait_ready_set(&client, &ns, "web", &both, Duration::from_secs(90)).await;
    assert_eq!(
        slices::ready(&client, &ns, "smtp").await.expect("smtp"),
        both
    );
}

/// Seed scenario 2: a primary and two streaming replicas on two nodes; `postgres-write`
/// follows the primary through a failover, `postgres-read` spans every healthy server.
#[tokio::test]
async fn postgres_write_follows_the_primary() {
    let (cluster, client, ns) = setup("pg").await;
    let ips: Vec<IpAddr> = (0..3)
        .map(|_| cluster.pod_network.alloc_pod_ips().expect("ip").0)
        .collect();
    let dir = cluster.work_dir.join(&ns);
    let mut primary = Postgres::start_primary(
        &cluster.pod_network,
        &dir.join("p0"),
        ips[0],
        5432,
        "example",
    )
    .expect("primary");
    let replica1 = Postgres::start_replica(&primary, &dir.join("p1"), ips[1], 5432, "example")
        .expect("replica 1");
    let _replica2 = Postgres::start_replica(&primary, &dir.join("p2"), ips[2], 5432, "example")
        .expect("replica 2");
    for (i, node) in ["node-a", "node-a", "node-b"].iter().enumerate() {
        pod(
            &client,
            &ns,
            &format!("postgres-{i}"),
            node,
            &[("app", "postgres")],
            &[ips[i]],
            &[],
        )
        .await;
    }
    // Exactly as the seeds create it: an Opaque Secret.
    identity::kubectl(
        &cluster,
        &[
            "-n",
            &ns,
            "create",
            "secret",
            "generic",
            "cred-secret",
            "--from-literal=user=postgres",
            "--from-literal=password=example",
        ],
        None,
    )
    .expect("secret");
    apply_yaml(&cluster, &ns, seeds::POSTGRES_READ);
    apply_yaml(&cluster, &ns, seeds::POSTGRES_WRITE);

    wait_ready_set(
        &client,
        &ns,
        "postgres-read",
        &set(&ips),
        Duration::from_secs(120),
    )
    .await;
    wait_ready_set(
        &client,
        &ns,
        "postgres-write",
        &set(&ips[..1]),
        Duration::from_secs(120),
    )
    .await;
    let write = slices::endpoints(&client, &ns, "postgres-write")
        .await
        .expect("slices");
    assert_eq!(
        write.len(),
        3,
        "replicas stay in the write slice with ready=false: {write:?}"
    );

    replica1.promote().expect("promote");
    let stopped = Instant::now();
    primary.stop().expect("stop primary");
    let failover = wait_ready_set(
        &client,
        &ns,
        "postgres-write",
        &set(&ips[1..2]),
        Duration::from_secs(120),
    )
    .await;
    let total = stopped.elapsed();
    println!(
        "postgres-write failover: {:.1}s from stopping the primary (bound: 10s × 3 + 2s)",
        total.as_secs_f64()
    );
    let _ = failover;
    assert!(
        total <= Duration::from_secs(32),
        "failover took {total:?}, more than periodSeconds × failureThreshold + 2 s"
    );
    wait_ready_set(
        &client,
        &ns,
        "postgres-read",
        &set(&ips[1..]),
        Duration::from_secs(60),
    )
    .await;
}

const CHURN: &str = r#"
apiVersion: network.deckhouse.io/v1beta1
kind: ServiceWithHealthchecks
metadata:
  name: churn
spec:
  ports:
  - name: web
    port: 80
    targetPort: web
  selector:
    app: churn
  healthcheck:
    initialDelaySeconds: 0
    periodSeconds: 1
    probes:
    - name: tcp
      mode: TCP
      tcp:
        port: web
"#;

/// Pod churn: deletion, IP change and relabelling are followed; a deleting pod is published as
/// terminating; a named targetPort resolves per pod.
#[tokio::test]
async fn slices_follow_pod_churn() {
    let (cluster, client, ns) = setup("churn").await;
    let (a, _) = cluster.pod_network.alloc_pod_ips().expect("ip");
    let (b, _) = cluster.pod_network.alloc_pod_ips().expect("ip");
    let (b2, _) = cluster.pod_network.alloc_pod_ips().expect("ip");
    let _ba = Backend::start(
        backend_exe(),
        &cluster.pod_network,
        &BackendSpec {
            tcp: vec![SocketAddr::new(a, 8081)],
            ..Default::default()
        },
        &cluster.work_dir,
    )
    .expect("a");
    let _bb = Backend::start(
        backend_exe(),
        &cluster.pod_network,
        &BackendSpec {
            tcp: vec![SocketAddr::new(b, 9091), SocketAddr::new(b2, 9091)],
            ..Default::default()
        },
        &cluster.work_dir,
    )
    .expect("b");
    pod(
        &client,
        &ns,
        "churn-a",
        "node-a",
        &[("app", "churn")],
        &[a],
        &[("web", 8081)],
    )
    .await;
    pod(
        &client,
        &ns,
        "churn-b",
        "node-b",
        &[("app", "churn")],
        &[b],
        &[("web", 9091)],
    )
    .await;
    apply_yaml(&cluster, &ns, CHURN);
    wait_ready_set(
        &client,
        &ns,
        "churn",
        &set(&[a, b]),
        Duration::from_secs(60),
    )
    .await;

    // Named targetPort resolved per pod: each pod's slice carries its own port number.
    let api: Api<k8s_openapi::api::discovery::v1::EndpointSlice> =
        Api::namespaced(client.clone(), &ns);
    let list = api
        .list(&kube::api::ListParams::default().labels("kubernetes.io/service-name=churn"))
        .await
        .expect("slices");
    let mut port_of = BTreeMap::new();
    for s in &list.items {
        for e in &s.endpoints {
            for addr in &e.addresses {
                let p = s
                    .ports
                    .as_ref()
                    .and_then(|p| p.first())
                    .and_then(|p| p.port);
                let name = s
                    .ports
                    .as_ref()
                    .and_then(|p| p.first())
                    .and_then(|p| p.name.clone());
                assert_eq!(
                    name.as_deref(),
                    Some("web"),
                    "port name equals the Service's port name"
                );
                port_of.insert(addr.clone(), p);
            }
        }
    }
    assert_eq!(port_of.get(&a.to_string()), Some(&Some(8081)));
    assert_eq!(port_of.get(&b.to_string()), Some(&Some(9091)));

    // IP change.
    objects::set_pod_status(&client, &ns, "churn-b", &[b2], true)
        .await
        .expect("new ip");
    wait_ready_set(
        &client,
        &ns,
        "churn",
        &set(&[a, b2]),
        Duration::from_secs(60),
    )
    .await;
    assert!(
        !slices::endpoints(&client, &ns, "churn")
            .await
            .expect("eps")
            .contains_key(&b.to_string())
    );

    // Relabel out of the selector.
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    pods.patch(
        "churn-b",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"metadata": {"labels": {"app": "other"}}})),
    )
    .await
    .expect("relabel");
    testenv::wait_for(
        "relabelled pod leaves the slices",
        Duration::from_secs(60),
        || async {
            let eps = slices::endpoints(&client, &ns, "churn").await.ok()?;
            (!eps.contains_key(&b2.to_string())).then_some(())
        },
    )
    .await;

    // A deleting pod (held by a finalizer) is published as terminating, not ready.
    pods.patch(
        "churn-a",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"metadata": {"finalizers": ["e2e.swh.test/hold"]}})),
    )
    .await
    .expect("finalizer");
    pods.delete("churn-a", &DeleteParams::default())
        .await
        .expect("delete");
    testenv::wait_for(
        "deleting pod published as terminating",
        Duration::from_secs(60),
        || async {
            let eps = slices::endpoints(&client, &ns, "churn").await.ok()?;
            let (ready, _serving, terminating) = *eps.get(&a.to_string())?;
            (!ready && terminating).then_some(())
        },
    )
    .await;
    pods.patch(
        "churn-a",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"metadata": {"finalizers": null}})),
    )
    .await
    .expect("drop finalizer");
    testenv::wait_for(
        "deleted pod leaves the slices",
        Duration::from_secs(60),
        || async {
            let eps = slices::endpoints(&client, &ns, "churn").await.ok()?;
            eps.is_empty().then_some(())
        },
    )
    .await;

    // Cleanup: deleting the SWH removes the Service and the slices (garbage collection).
    identity::kubectl(
        &cluster,
        &["-n", &ns, "delete", "swh", "churn", "--wait=false"],
        None,
    )
    .expect("delete swh");
    testenv::wait_for(
        "child Service and slices garbage-collected",
        Duration::from_secs(90),
        || async {
            let svc = Api::<Service>::namespaced(client.clone(), &ns)
                .get_opt("churn")
                .await
                .ok()?;
            let left = api
                .list(&kube::api::ListParams::default().labels("kubernetes.io/service-name=churn"))
                .await
                .ok()?;
            (svc.is_none() && left.items.is_empty()).then_some(())
        },
    )
    .await;
}

const QUICK_TCP: &str = r#"
apiVersion: network.deckhouse.io/v1beta1
kind: ServiceWithHealthchecks
metadata:
  name: NAME
spec:
  ports:
  - name: tcp
    port: 7000
    targetPort: 7000
  selector:
    app: NAME
  healthcheck:
    initialDelaySeconds: 0
    periodSeconds: 1
    probes:
    - name: tcp
      mode: TCP
      tcp:
        port: 7000
"#;

/// Agent restart: a watcher sampling the slices every 50 ms never sees a healthy endpoint drop
/// while the agent of its node restarts.
#[tokio::test]
async fn agent_restart_never_drops_a_healthy_endpoint() {
    let (cluster, client, ns) = setup("restart").await;
    let node = format!("node-r{}", std::process::id());
    swh_e2e::stack::ensure_node(&cluster, &node).expect("node");
    let mut agent = swh_e2e::stack::start_agent(&cluster, &node).expect("agent");
    let ips: Vec<IpAddr> = (0..2)
        .map(|_| cluster.pod_network.alloc_pod_ips().expect("ip").0)
        .collect();
    let _b = Backend::start(
        backend_exe(),
        &cluster.pod_network,
        &BackendSpec {
            tcp: ips.iter().map(|i| SocketAddr::new(*i, 7000)).collect(),
            ..Default::default()
        },
        &cluster.work_dir,
    )
    .expect("backend");
    for (i, ip) in ips.iter().enumerate() {
        pod(
            &client,
            &ns,
            &format!("r-{i}"),
            &node,
            &[("app", "restart")],
            &[*ip],
            &[],
        )
        .await;
    }
    apply_yaml(&cluster, &ns, &QUICK_TCP.replace("NAME", "restart"));
    let want = set(&ips);
    wait_ready_set(&client, &ns, "restart", &want, Duration::from_secs(60)).await;

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = tokio::spawn({
        let (client, ns, want, stop) = (client.clone(), ns.clone(), want.clone(), stop.clone());
        async move {
            let (mut samples, mut drops) = (0u32, Vec::new());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(got) = slices::ready(&client, &ns, "restart").await {
                    samples += 1;
                    if got != want {
                        drops.push(got);
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            (samples, drops)
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    swh_e2e::process::stop(
        agent.child.id(),
        Some(&mut agent.child),
        Duration::from_secs(10),
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut agent = tokio::task::spawn_blocking({
        let node = node.clone();
        let cluster = testenv::shared_cluster().expect("cluster");
        move || swh_e2e::stack::start_agent(&cluster, &node)
    })
    .await
    .expect("join")
    .expect("agent restart");
    // Let the new agent probe and decide for a few periods.
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (samples, drops) = watcher.await.expect("watcher");
    swh_e2e::process::stop(
        agent.child.id(),
        Some(&mut agent.child),
        Duration::from_secs(10),
    );
    println!(
        "agent restart: {samples} samples at 50 ms, {} without every healthy endpoint",
        drops.len()
    );
    assert!(samples > 50, "too few samples ({samples})");
    assert!(
        drops.is_empty(),
        "healthy endpoints dropped during the agent restart: {drops:?}"
    );
    let _ = identity::kubectl(&cluster, &["delete", "node", &node, "--wait=false"], None);
}

/// Steady state: with nothing changing, the components write nothing for 60 s (counted in the
/// API server's audit log, for this test's namespace).
#[tokio::test]
async fn steady_state_makes_no_api_writes() {
    let (cluster, client, ns) = setup("steady").await;
    let ips: Vec<IpAddr> = (0..2)
        .map(|_| cluster.pod_network.alloc_pod_ips().expect("ip").0)
        .collect();
    let _b = Backend::start(
        backend_exe(),
        &cluster.pod_network,
        &BackendSpec {
            tcp: ips.iter().map(|i| SocketAddr::new(*i, 7000)).collect(),
            ..Default::default()
        },
        &cluster.work_dir,
    )
    .expect("backend");
    pod(
        &client,
        &ns,
        "s-0",
        "node-a",
        &[("app", "steady")],
        &[ips[0]],
        &[],
    )
    .await;
    pod(
        &client,
        &ns,
        "s-1",
        "node-b",
        &[("app", "steady")],
        &[ips[1]],
        &[],
    )
    .await;
    apply_yaml(&cluster, &ns, &QUICK_TCP.replace("NAME", "steady"));
    wait_ready_set(&client, &ns, "steady", &set(&ips), Duration::from_secs(60)).await;
    // Let status and counts settle.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let count = |from: &str, to: &str| -> (usize, Vec<String>) {
        let log = std::fs::read_to_string(cluster.work_dir.join("audit.log")).unwrap_or_default();
        let mut hits = Vec::new();
        for line in log.lines() {
            let Ok(ev) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            let user = ev["user"]["username"].as_str().unwrap_or("");
            let at = ev["requestReceivedTimestamp"].as_str().unwrap_or("");
            if user.starts_with("system:serviceaccount:swh-system:")
                && ev["objectRef"]["namespace"] == ns.as_str()
                && at >= from
                && at < to
            {
                hits.push(format!(
                    "{} {} {} {}",
                    user, ev["verb"], ev["objectRef"]["resource"], ev["objectRef"]["subresource"]
                ));
            }
        }
        (hits.len(), hits)
    };
    let t0 = k8s_openapi::jiff::Timestamp::now().to_string();
    tokio::time::sleep(Duration::from_secs(60)).await;
    let t1 = k8s_openapi::jiff::Timestamp::now().to_string();
    tokio::time::sleep(Duration::from_secs(3)).await; // audit batches flush within ~1 s
    let (writes, which) = count(&t0, &t1);
    let (setup_writes, _) = count("", &t0);
    println!("steady state: {writes} component writes in 60 s (setup took {setup_writes})");
    assert!(
        setup_writes > 0,
        "the audit log saw no component writes at all: the count would prove nothing"
    );
    assert_eq!(writes, 0, "writes in steady state: {which:?}");
    assert_eq!(
        slices::ready(&client, &ns, "steady").await.expect("slices"),
        set(&ips)
    );
}
