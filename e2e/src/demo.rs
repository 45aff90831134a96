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
    apply_seeds_and_wait(cluster, client, Duration::from_secs(120)).await
}

/// Applies the Deckhouse seed manifests in [`NAMESPACE`] and waits until every seed SWH
/// publishes its endpoints and the controller's status shows the counts (Deckhouse's
/// defaults: initialDelaySeconds 10, periodSeconds 10).
async fn apply_seeds_and_wait(
    cluster: &LocalCluster,
    client: &Client,
    limit: Duration,
) -> Result<(), DemoError> {
    identity::kubectl(
        cluster,
        &["apply", "-n", NAMESPACE, "-f", "-"],
        Some(&crate::seeds::all()),
    )
    .map_err(step("SWH manifests"))?;
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
        if start.elapsed() > limit {
            return Err(DemoError::Step(format!(
                "the seed services did not publish their endpoints within {} s",
                limit.as_secs()
            )));
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

/// The script of the PostgreSQL pods: a primary initialises its data directory, a replica
/// clones the primary (`$PRIMARY`) and streams from it; both then run `postgres` as PID 1.
const POSTGRES_SCRIPT: &str = r#"set -e
D=/var/lib/postgresql/data
if [ "$ROLE" = primary ]; then
  echo "$PGPASSWORD" > /tmp/pw
  initdb -D "$D" -U postgres --pwfile=/tmp/pw --auth-local=trust --auth-host=scram-sha-256 >/tmp/initdb.log
  rm /tmp/pw
  echo "host all all 0.0.0.0/0 scram-sha-256" >> "$D/pg_hba.conf"
  echo "host replication all 0.0.0.0/0 scram-sha-256" >> "$D/pg_hba.conf"
else
  until pg_basebackup -h "$PRIMARY" -U postgres -D "$D" -R -X stream >/tmp/basebackup.log 2>&1; do
    rm -rf "$D"; sleep 1
  done
fi
exec postgres -D "$D" -c listen_addresses='*' -k /tmp -c hot_standby=on -c wal_level=replica
"#;

/// A PostgreSQL pod (the Debian-packaged server in `localhost/swh/postgres`) on `node`.
pub fn postgres_pod(
    ns: &str,
    name: &str,
    node: &str,
    primary: Option<IpAddr>,
) -> serde_json::Value {
    let role = if primary.is_some() {
        "replica"
    } else {
        "primary"
    };
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": "postgres", "role": role}},
        "spec": {
            "nodeSelector": {"kubernetes.io/hostname": node},
            // A stopped server ends its pod; it is not restarted into a second primary.
            "restartPolicy": "OnFailure",
            "terminationGracePeriodSeconds": 5,
            "automountServiceAccountToken": false,
            "securityContext": {"runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532,
                                "fsGroup": 65532, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "postgres",
                "image": crate::traffic::POSTGRES_IMAGE,
                "command": ["/bin/sh", "-c", POSTGRES_SCRIPT],
                "env": [
                    {"name": "ROLE", "value": role},
                    {"name": "PRIMARY", "value": primary.map(|p| p.to_string()).unwrap_or_default()},
                    {"name": "PGPASSWORD", "valueFrom": {"secretKeyRef": {"name": "cred-secret", "key": "password"}}},
                ],
                "ports": [{"name": "postgres", "containerPort": 5432}],
                "readinessProbe": {"tcpSocket": {"port": 5432}, "periodSeconds": 1},
                "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}},
                "volumeMounts": [{"name": "data", "mountPath": "/var/lib/postgresql"}],
            }],
            "volumes": [{"name": "data", "emptyDir": {}}],
        },
    })
}

/// Creates a pod from a JSON manifest.
pub async fn create_pod_json(
    client: &Client,
    ns: &str,
    v: serde_json::Value,
) -> Result<(), DemoError> {
    let pod: k8s_openapi::api::core::v1::Pod =
        serde_json::from_value(v).map_err(step("pod manifest"))?;
    kube::Api::<k8s_openapi::api::core::v1::Pod>::namespaced(client.clone(), ns)
        .create(&kube::api::PostParams::default(), &pod)
        .await
        .map_err(step("creating pod"))?;
    Ok(())
}

/// A primary and two streaming replicas as real pods in `ns` (postgres-0 primary and
/// postgres-1 on node-a, postgres-2 on node-b), with Secret `cred-secret`; returns their IPs.
pub async fn deploy_postgres(
    cluster: &LocalCluster,
    client: &Client,
    ns: &str,
) -> Result<Vec<IpAddr>, DemoError> {
    identity::kubectl(
        cluster,
        &[
            "-n",
            ns,
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
    create_pod_json(client, ns, postgres_pod(ns, "postgres-0", "node-a", None)).await?;
    let limit = Duration::from_secs(120);
    let p0 = crate::traffic::wait_pod_ready(client, ns, "postgres-0", limit)
        .await
        .map_err(step("PostgreSQL primary"))?;
    for (name, node) in [("postgres-1", "node-a"), ("postgres-2", "node-b")] {
        create_pod_json(client, ns, postgres_pod(ns, name, node, Some(p0))).await?;
    }
    let mut ips = vec![p0];
    for name in ["postgres-1", "postgres-2"] {
        ips.push(
            crate::traffic::wait_pod_ready(client, ns, name, limit)
                .await
                .map_err(step("PostgreSQL replica"))?,
        );
    }
    Ok(ips)
}

/// `make demo` on real nodes: the VM pod (web on 8080, SMTP-like TCP on 2525) and PostgreSQL
/// primary + two replicas as real containers, the Deckhouse manifests unchanged, then one
/// request through each ClusterIP from inside node-a.
pub async fn deploy_real(cluster: &LocalCluster, client: &Client) -> Result<(), DemoError> {
    let started = std::time::Instant::now();
    objects::ensure_namespace(client, NAMESPACE)
        .await
        .map_err(step("namespace"))?;
    let labels = [("vm".to_string(), "my-vm".to_string())]
        .into_iter()
        .collect();
    crate::traffic::create_backend_pod(client, NAMESPACE, "my-vm", "node-a", &labels)
        .await
        .map_err(step("pod my-vm"))?;
    deploy_postgres(cluster, client, NAMESPACE).await?;
    crate::traffic::wait_pod_ready(client, NAMESPACE, "my-vm", Duration::from_secs(120))
        .await
        .map_err(step("pod my-vm"))?;
    apply_seeds_and_wait(cluster, client, Duration::from_secs(180)).await?;
    eprintln!(
        "seed SWHs published {:.1}s after the demo started",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// One request through each seed ClusterIP from inside `node`, printed as it goes.
pub async fn requests_through_cluster_ips(
    cluster: &LocalCluster,
    client: &Client,
    node: &str,
) -> Result<(), DemoError> {
    let rn = cluster
        .real_nodes
        .as_ref()
        .ok_or_else(|| DemoError::Step("this cluster has no real nodes".into()))?;
    let n = rn
        .node(node)
        .ok_or_else(|| DemoError::Step(format!("no node {node}")))?
        .clone();
    let ip = |svc: &'static str| async move {
        crate::traffic::cluster_ip(client, NAMESPACE, svc)
            .await
            .map_err(step(svc))
    };
    let (web, smtp, read, write) = (
        ip("web").await?,
        ip("smtp").await?,
        ip("postgres-read").await?,
        ip("postgres-write").await?,
    );
    let answers = crate::traffic::in_node(&n, move || {
        let mut out = Vec::new();
        let web_answer = crate::traffic::http_get_name(SocketAddr::new(web, 80));
        out.push(format!(
            "web            http://{web}:80/  -> {web_answer:?}"
        ));
        let smtp_answer = std::net::TcpStream::connect_timeout(
            &SocketAddr::new(smtp, 25),
            Duration::from_secs(2),
        )
        .map(|_| "connected".to_string())
        .map_err(|e| e.to_string());
        out.push(format!(
            "smtp           tcp://{smtp}:25     -> {smtp_answer:?}"
        ));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build();
        for (svc, addr) in [("postgres-read", read), ("postgres-write", write)] {
            let answer = match &rt {
                Ok(rt) => rt.block_on(pg_who(addr)),
                Err(e) => Err(e.to_string()),
            };
            out.push(format!("{svc:<14} postgres://{addr}:5432 -> {answer:?}"));
        }
        out
    })
    .map_err(step("client in node"))?;
    println!("requests through the ClusterIPs, from inside {node}:");
    for a in answers {
        println!("  {a}");
    }
    Ok(())
}

/// Connects as the seed's user and asks who answered: the server's address and role.
pub async fn pg_who(addr: IpAddr) -> Result<String, String> {
    let cfg = format!(
        "host={addr} port=5432 user=postgres password=example dbname=postgres connect_timeout=3"
    );
    let (c, conn) = tokio_postgres::connect(&cfg, tokio_postgres::NoTls)
        .await
        .map_err(|e| e.to_string())?;
    let task = tokio::spawn(conn);
    let row = c
        .query_one(
            "SELECT host(inet_server_addr()), CASE WHEN pg_is_in_recovery() THEN 'replica' ELSE 'primary' END",
            &[],
        )
        .await
        .map_err(|e| e.to_string())?;
    let (server, role): (String, String) = (row.get(0), row.get(1));
    drop(c);
    task.abort();
    Ok(format!("{server} ({role})"))
}
