//! `make demo`: the two seed scenarios on the local cluster, left running until `make down`.
//! A VM pod with a web server (8080) and an SMTP server (2525) behind SWHs `web` and `smtp`,
//! and a PostgreSQL primary with two streaming replicas behind `postgres-read` and
//! `postgres-write`, all in namespace `my-ns`, with the manifests from Deckhouse's docs.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use kube::Client;

use crate::backend::{Backend, BackendSpec, Postgres};
use crate::controlplane::LocalCluster;
use crate::identity;
use crate::objects::{self, PodSpecLite};

pub const NAMESPACE: &str = "my-ns";

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("{0}")]
    Step(String),
}

fn step<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> DemoError + '_ {
    move |e| DemoError::Step(format!("{what}: {e}"))
}

/// Deploys both scenarios; backends and PostgreSQL servers are recorded in the cluster state
/// so `make down` stops them.
pub async fn deploy(
    cluster: &mut LocalCluster,
    client: &Client,
    backend_exe: &std::path::Path,
) -> Result<(), DemoError> {
    objects::ensure_namespace(client, NAMESPACE)
        .await
        .map_err(step("namespace"))?;

    // The VM: one pod, a web server and an SMTP server at its IP.
    let (vm_ip, _) = cluster
        .pod_network
        .alloc_pod_ips()
        .map_err(step("pod IP"))?;
    let vm = Backend::start(
        backend_exe,
        &cluster.pod_network,
        &BackendSpec {
            tcp: vec![SocketAddr::new(vm_ip, 2525)],
            http: vec![SocketAddr::new(vm_ip, 8080)],
            http_path: "/healthz".into(),
            http_status: 200,
        },
        &cluster.work_dir,
    )
    .map_err(step("VM backends"))?;
    if let Some((pid, log)) = vm.detach() {
        cluster
            .adopt_pid("demo-vm-backends", pid, log, false)
            .map_err(step("record backend"))?;
    }
    let pod = |name: &str, node: &str, labels: &[(&str, &str)]| PodSpecLite {
        namespace: NAMESPACE.into(),
        name: name.into(),
        node: node.into(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ports: vec![],
    };
    objects::create_pod(client, &pod("my-vm", "node-a", &[("vm", "my-vm")]))
        .await
        .map_err(step("pod my-vm"))?;
    objects::set_pod_status(client, NAMESPACE, "my-vm", &[vm_ip], true)
        .await
        .map_err(step("pod my-vm status"))?;

    // PostgreSQL: a primary and two streaming replicas on two nodes.
    let ips: Vec<IpAddr> = (0..3)
        .map(|_| cluster.pod_network.alloc_pod_ips().map(|p| p.0))
        .collect::<Result<_, _>>()
        .map_err(step("pod IPs"))?;
    let dir = cluster.work_dir.join("demo-postgres");
    let primary = Postgres::start_primary(
        &cluster.pod_network,
        &dir.join("p0"),
        ips[0],
        5432,
        "example",
    )
    .map_err(step("PostgreSQL primary"))?;
    let r1 = Postgres::start_replica(&primary, &dir.join("p1"), ips[1], 5432, "example")
        .map_err(step("PostgreSQL replica 1"))?;
    let r2 = Postgres::start_replica(&primary, &dir.join("p2"), ips[2], 5432, "example")
        .map_err(step("PostgreSQL replica 2"))?;
    for (i, server) in [primary, r1, r2].into_iter().enumerate() {
        if let Some((pid, log)) = server.detach() {
            cluster
                .adopt_pid(&format!("demo-postgres-{i}"), pid, log, true)
                .map_err(step("record postgres"))?;
        }
    }
    for (i, node) in ["node-a", "node-a", "node-b"].iter().enumerate() {
        let name = format!("postgres-{i}");
        objects::create_pod(client, &pod(&name, node, &[("app", "postgres")]))
            .await
            .map_err(step("postgres pod"))?;
        objects::set_pod_status(client, NAMESPACE, &name, &[ips[i]], true)
            .await
            .map_err(step("postgres pod status"))?;
    }
    identity::kubectl(
        cluster,
        &[
            "-n",
            NAMESPACE,
            "create",
            "secret",
            "generic",
            "cred-secret",
            "--from-literal=user=postgres",
            "--from-literal=password=example",
        ],
        None,
    )
    .map_err(step("secret"))?;
    identity::kubectl(
        cluster,
        &["apply", "-n", NAMESPACE, "-f", "-"],
        Some(&crate::seeds::all()),
    )
    .map_err(step("SWH manifests"))?;

    // Defaults: initialDelaySeconds 10, periodSeconds 10.
    let want = [
        ("web", 1usize),
        ("smtp", 1),
        ("postgres-read", 3),
        ("postgres-write", 1),
    ];
    let start = std::time::Instant::now();
    loop {
        let mut done = true;
        for (svc, n) in want {
            let ready = crate::slices::ready(client, NAMESPACE, svc)
                .await
                .map_err(step("slices"))?;
            done &= ready.len() == n;
        }
        if done && status_caught_up(cluster, &want)? {
            return Ok(());
        }
        if start.elapsed() > Duration::from_secs(120) {
            return Err(DemoError::Step(
                "the seed services did not publish their endpoints within 120 s".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Whether the controller's aggregate status (`status.ready`, "published/total") shows the
/// published counts for every seed SWH.
fn status_caught_up(cluster: &LocalCluster, want: &[(&str, usize)]) -> Result<bool, DemoError> {
    let out = identity::kubectl(
        cluster,
        &[
            "get",
            "swh",
            "-n",
            NAMESPACE,
            "-o",
            "jsonpath={range .items[*]}{.metadata.name}={.status.ready}{\"\\n\"}{end}",
        ],
        None,
    )
    .map_err(step("reading SWH status"))?;
    Ok(want.iter().all(|(name, n)| {
        out.lines().any(|l| {
            l.split_once('=')
                .is_some_and(|(k, v)| k == *name && v.split('/').next() == Some(&n.to_string()))
        })
    }))
}
