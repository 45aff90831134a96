//! Real nodes: the project installed from `config/` as pods (locally built images) on two
//! kubelet + containerd + kube-proxy nodes, and traffic through the child Services'
//! ClusterIPs from inside a node, asserting on requests, not only on slices.
//!
//! Runs against the real-node cluster `make test` starts at `$SWH_REAL_DIR`. The tests share
//! it and one of them rolls the agent DaemonSet, so they run one at a time (a lock below).
//! Clients run only inside node namespaces; the host talks to pod IPs only (routed into the
//! harness's own namespaces).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use kube::Client;
use swh_e2e::controlplane::LocalCluster;
use swh_e2e::nodes::RealNode;
use swh_e2e::traffic::{self, ClientLoop, Sample};
use swh_e2e::{identity, objects, slices, testenv};

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn real_cluster() -> LocalCluster {
    let dir = std::env::var_os("SWH_REAL_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| testenv::workspace_root().join("target/swh-real"));
    LocalCluster::load(&dir).expect("real-node cluster (make test starts it at $SWH_REAL_DIR)")
}

async fn setup(prefix: &str) -> (LocalCluster, Client, String) {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cluster = real_cluster();
    let client = testenv::admin_client(&cluster).await.expect("admin client");
    let ns = testenv::unique_name(prefix);
    objects::ensure_namespace(&client, &ns)
        .await
        .expect("namespace");
    (cluster, client, ns)
}

fn node(cluster: &LocalCluster, name: &str) -> RealNode {
    cluster
        .real_nodes
        .as_ref()
        .and_then(|rn| rn.node(name))
        .cloned()
        .unwrap_or_else(|| panic!("no real node {name}"))
}

fn kubectl(cluster: &LocalCluster, args: &[&str], stdin: Option<&str>) -> String {
    identity::kubectl(cluster, args, stdin).unwrap_or_else(|e| panic!("kubectl {args:?}: {e}"))
}

/// Creates backend pods `(name, node)` labelled `app=<app>` and returns their IPs.
async fn backends(
    client: &Client,
    ns: &str,
    app: &str,
    pods: &[(&str, &str)],
) -> BTreeMap<String, IpAddr> {
    let labels: BTreeMap<String, String> = [("app".to_string(), app.to_string())].into();
    for (name, node) in pods {
        traffic::create_backend_pod(client, ns, name, node, &labels)
            .await
            .expect("backend pod");
    }
    let mut ips = BTreeMap::new();
    for (name, _) in pods {
        let ip = traffic::wait_pod_ready(client, ns, name, Duration::from_secs(120))
            .await
            .expect("backend Ready");
        ips.insert(name.to_string(), ip);
    }
    ips
}

fn swh_http(name: &str, app: &str, extra_spec: &str) -> String {
    format!(
        r#"apiVersion: network.deckhouse.io/v1alpha1
kind: ServiceWithHealthchecks
metadata:
  name: {name}
spec:
  ports:
  - port: 80
    protocol: TCP
    targetPort: 8080
  selector:
    app: {app}
{extra_spec}  healthcheck:
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
"#
    )
}

async fn wait_ready_count(client: &Client, ns: &str, svc: &str, n: usize) {
    testenv::wait_for(
        &format!("{n} ready endpoints of {svc}"),
        Duration::from_secs(90),
        || async {
            let r = slices::ready(client, ns, svc).await.ok()?;
            (r.len() == n).then_some(())
        },
    )
    .await;
}

/// Waits until kube-proxy on `node` sends new connections to every one of `names` (so a
/// test starts from a programmed data path).
fn wait_answers(node: &RealNode, target: SocketAddr, names: &[&str]) {
    let want: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    let start = Instant::now();
    loop {
        let seen = traffic::in_node(node, move || {
            let mut seen = std::collections::BTreeSet::new();
            for _ in 0..60 {
                if let Ok(n) = traffic::http_get_name(target) {
                    seen.insert(n);
                }
            }
            seen
        })
        .expect("client in node");
        if want.iter().all(|w| seen.contains(w)) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{target} from {} never answered by all of {want:?} (saw {seen:?})",
            node.name
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn failures(samples: &[Sample]) -> Vec<&Sample> {
    samples.iter().filter(|s| s.result.is_err()).collect()
}

#[tokio::test]
async fn components_run_as_pods_from_config_under_pod_security_restricted() {
    let _serial = SERIAL.lock().await;
    let (cluster, _client, ns) = setup("rn-install").await;
    let label = kubectl(
        &cluster,
        &[
            "get",
            "namespace",
            "swh-system",
            "-o",
            "jsonpath={.metadata.labels.pod-security\\.kubernetes\\.io/enforce}",
        ],
        None,
    );
    assert_eq!(label, "restricted", "swh-system must enforce restricted");
    let ready = |kind: &str, name: &str, field: &str| {
        kubectl(
            &cluster,
            &[
                "-n",
                "swh-system",
                "get",
                kind,
                name,
                "-o",
                &format!("jsonpath={{.status.{field}}}"),
            ],
            None,
        )
    };
    assert_eq!(ready("deployment", "swh-webhook", "readyReplicas"), "2");
    assert_eq!(ready("deployment", "swh-controller", "readyReplicas"), "2");
    assert_eq!(ready("daemonset", "swh-agent", "numberReady"), "2");
    let holder = kubectl(
        &cluster,
        &[
            "-n",
            "swh-system",
            "get",
            "lease",
            "swh-controller",
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ],
        None,
    );
    assert!(
        holder.starts_with("swh-controller-"),
        "one controller pod holds the Lease, got {holder:?}"
    );
    // Every component runs from the locally built images on real nodes.
    let pods = kubectl(
        &cluster,
        &[
            "-n",
            "swh-system",
            "get",
            "pods",
            "-o",
            "jsonpath={range .items[*]}{.spec.nodeName} {.spec.containers[0].image} {.status.phase}{\"\\n\"}{end}",
        ],
        None,
    );
    let lines: Vec<&str> = pods.lines().collect();
    assert_eq!(
        lines.len(),
        6,
        "2 webhooks, 2 controllers, 2 agents:\n{pods}"
    );
    for l in &lines {
        let f: Vec<&str> = l.split_whitespace().collect();
        assert!(
            f.len() == 3
                && f[0].starts_with("node-")
                && f[1].starts_with("localhost/swh-")
                && f[2] == "Running",
            "unexpected pod line {l:?}"
        );
    }
    let agents_on: std::collections::BTreeSet<&str> = lines
        .iter()
        .filter(|l| l.contains("swh-agent"))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(agents_on.len(), 2, "an agent on each node: {agents_on:?}");
    // The restricted policy is enforced: a privileged pod is refused there.
    let denied = identity::kubectl(
        &cluster,
        &[
            "-n",
            "swh-system",
            "run",
            "priv",
            "--image=localhost/swh/pause:1",
            "--privileged",
            "--dry-run=server",
        ],
        None,
    );
    assert!(
        denied
            .as_ref()
            .is_err_and(|e| e.to_string().contains("violates PodSecurity")),
        "a privileged pod must be refused in swh-system: {denied:?}"
    );
    kubectl(
        &cluster,
        &["delete", "namespace", &ns, "--wait=false"],
        None,
    );
}

/// A backend's /healthz turns 503 while it still serves: once the slice drops it, no new
/// request reaches it. Counts failed requests per flip and the delay from the slice change to
/// the last request the pod answered.
#[tokio::test]
async fn http_flap_traffic_leaves_the_failing_pod_after_the_slice_change() {
    let _serial = SERIAL.lock().await;
    let (cluster, client, ns) = setup("rn-flap").await;
    let ips = backends(
        &client,
        &ns,
        "flap",
        &[
            ("flap-a1", "node-a"),
            ("flap-a2", "node-a"),
            ("flap-b1", "node-b"),
        ],
    )
    .await;
    kubectl(
        &cluster,
        &["apply", "-n", &ns, "-f", "-"],
        Some(&swh_http("web", "flap", "")),
    );
    wait_ready_count(&client, &ns, "web", 3).await;
    let vip = traffic::cluster_ip(&client, &ns, "web")
        .await
        .expect("ClusterIP");
    let target = SocketAddr::new(vip, 80);
    let a = node(&cluster, "node-a");
    wait_answers(&a, target, &["flap-a1", "flap-a2", "flap-b1"]);

    let mut report = Vec::new();
    // SWH_FLAPS (default 3) flips, round robin over the three pods; `make bench-traffic` runs
    // more.
    let flips: usize = std::env::var("SWH_FLAPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let order = ["flap-a2", "flap-b1", "flap-a1"];
    for (flip, victim) in (0..flips).map(|i| (i, &order[i % order.len()])) {
        let ip = ips[*victim];
        let client_loop = ClientLoop::start(&a, target, Duration::from_millis(10));
        tokio::time::sleep(Duration::from_millis(300)).await;
        let flipped = Instant::now();
        traffic::set_health(ip, 503).expect("fail health");
        // The slice change, seen by polling the API every 20 ms.
        let removed = loop {
            let r = slices::ready(&client, &ns, "web").await.expect("slices");
            if !r.contains(&ip.to_string()) {
                break Instant::now();
            }
            assert!(
                flipped.elapsed() < Duration::from_secs(30),
                "slice never dropped {victim}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let samples = client_loop.finish().expect("client loop");
        let last_by_victim = samples
            .iter()
            .filter(|s| s.result.as_deref() == Ok(*victim))
            .map(|s| s.at)
            .max();
        let after = last_by_victim
            .map(|t| t.saturating_duration_since(removed))
            .unwrap_or_default();
        let failed = failures(&samples).len();
        report.push(format!(
            "flip {flip} ({victim}): slice {:.0} ms after the flip, last request to it {:.0} ms after the slice change, {failed} failed of {}",
            removed.duration_since(flipped).as_secs_f64() * 1000.0,
            after.as_secs_f64() * 1000.0,
            samples.len()
        ));
        // Bound against a broken data path, not a timing goal: kube-proxy follows in ~0.1 s
        // (its minimum sync period is 1 s when changes come in bursts).
        assert!(
            after < Duration::from_secs(3),
            "{victim} still answered {after:?} after its slice changed: {report:?}"
        );
        assert_eq!(
            failed,
            0,
            "a pod that still serves but fails its probe must not cost requests: {:?}",
            failures(&samples).iter().take(5).collect::<Vec<_>>()
        );
        traffic::set_health(ip, 200).expect("recover health");
        wait_ready_count(&client, &ns, "web", 3).await;
    }
    // kube-proxy's own network-programming latency for the SWH's slices (the agent sets
    // endpoints.kubernetes.io/last-change-trigger-time).
    let metrics = swh_e2e::nodes::http_get(a.node_ip, 10249, "/metrics").unwrap_or_default();
    let name = "kubeproxy_network_programming_duration_seconds";
    let count = match (
        traffic::histogram_quantile(&metrics, name, 0.5),
        traffic::histogram_quantile(&metrics, name, 0.99),
    ) {
        (Some((p50, n)), Some((p99, _))) => format!(
            "kube-proxy on node-a, {name}: p50 {:.0} ms, p99 {:.0} ms over {n} changes",
            p50 * 1000.0,
            p99 * 1000.0
        ),
        _ => format!("kube-proxy on node-a: {name} empty"),
    };
    eprintln!(
        "HTTP flap through the ClusterIP from node-a:\n  {}\n  {count}",
        report.join("\n  ")
    );
    kubectl(
        &cluster,
        &["delete", "namespace", &ns, "--wait=false"],
        None,
    );
}

/// `internalTrafficPolicy: Local`: a node's connections go to its own pods only.
#[tokio::test]
async fn internal_traffic_policy_local_keeps_traffic_on_the_node() {
    let _serial = SERIAL.lock().await;
    let (cluster, client, ns) = setup("rn-local").await;
    backends(
        &client,
        &ns,
        "local",
        &[
            ("local-a1", "node-a"),
            ("local-a2", "node-a"),
            ("local-b1", "node-b"),
        ],
    )
    .await;
    kubectl(
        &cluster,
        &["apply", "-n", &ns, "-f", "-"],
        Some(&swh_http(
            "local",
            "local",
            "  internalTrafficPolicy: Local\n",
        )),
    );
    wait_ready_count(&client, &ns, "local", 3).await;
    let vip = traffic::cluster_ip(&client, &ns, "local")
        .await
        .expect("ClusterIP");
    let target = SocketAddr::new(vip, 80);
    for (n, own) in [
        ("node-a", vec!["local-a1", "local-a2"]),
        ("node-b", vec!["local-b1"]),
    ] {
        let rn = node(&cluster, n);
        wait_answers(&rn, target, &own);
        let answers = traffic::in_node(&rn, move || {
            (0..60)
                .map(|_| traffic::http_get_name(target))
                .collect::<Vec<_>>()
        })
        .expect("client");
        let mut tally: BTreeMap<String, usize> = BTreeMap::new();
        for a in answers {
            *tally
                .entry(a.unwrap_or_else(|e| format!("error: {e}")))
                .or_insert(0) += 1;
        }
        eprintln!("internalTrafficPolicy Local, 60 requests from {n}: {tally:?}");
        assert!(
            tally.keys().all(|k| own.contains(&k.as_str())),
            "{n} sent traffic outside its own pods {own:?}: {tally:?}"
        );
    }
    kubectl(
        &cluster,
        &["delete", "namespace", &ns, "--wait=false"],
        None,
    );
}

/// `kubectl swh migrate svc/NAME --apply` on a live Service: no request fails.
#[tokio::test]
async fn migrate_under_traffic_fails_no_request() {
    let _serial = SERIAL.lock().await;
    let (cluster, client, ns) = setup("rn-migrate").await;
    backends(
        &client,
        &ns,
        "mig",
        &[("mig-a1", "node-a"), ("mig-b1", "node-b")],
    )
    .await;
    let svc = r#"apiVersion: v1
kind: Service
metadata:
  name: shop
spec:
  selector: {app: mig}
  ports:
  - {name: http, port: 80, targetPort: 8080, protocol: TCP}
"#;
    kubectl(&cluster, &["apply", "-n", &ns, "-f", "-"], Some(svc));
    let vip = traffic::cluster_ip(&client, &ns, "shop")
        .await
        .expect("ClusterIP");
    let target = SocketAddr::new(vip, 80);
    let a = node(&cluster, "node-a");
    wait_answers(&a, target, &["mig-a1", "mig-b1"]);
    let client_loop = ClientLoop::start(&a, target, Duration::from_millis(10));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let started = Instant::now();
    let out = std::process::Command::new(testenv::workspace_bin("kubectl-swh"))
        .env("KUBECONFIG", &cluster.kubeconfig)
        .args([
            "migrate",
            "svc/shop",
            "-n",
            &ns,
            "--apply",
            "--timeout",
            "120s",
        ])
        .output()
        .expect("kubectl-swh");
    let took = started.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let samples = client_loop.finish().expect("client loop");
    assert!(
        out.status.success(),
        "migrate failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let failed = failures(&samples);
    eprintln!(
        "migrate svc/shop --apply under traffic: {:.1}s, {} requests, {} failed, answers {:?}",
        took.as_secs_f64(),
        samples.len(),
        failed.len(),
        traffic::tally(&samples)
    );
    assert!(
        failed.is_empty(),
        "requests failed during migration: {:?}",
        &failed[..failed.len().min(5)]
    );
    // The Service is now the SWH's child: no selector, same ClusterIP.
    let sel = kubectl(
        &cluster,
        &[
            "-n",
            &ns,
            "get",
            "svc",
            "shop",
            "-o",
            "jsonpath={.spec.selector}",
        ],
        None,
    );
    assert!(sel.is_empty(), "selector still set after migration: {sel}");
    assert_eq!(
        traffic::cluster_ip(&client, &ns, "shop")
            .await
            .expect("ClusterIP"),
        vip
    );
    kubectl(
        &cluster,
        &["delete", "namespace", &ns, "--wait=false"],
        None,
    );
}

/// The agent DaemonSet rolled (a new pod per node) under traffic: no request fails, the
/// published endpoints stay.
#[tokio::test]
async fn agent_daemonset_roll_fails_no_request() {
    let _serial = SERIAL.lock().await;
    let (cluster, client, ns) = setup("rn-roll").await;
    backends(
        &client,
        &ns,
        "roll",
        &[("roll-a1", "node-a"), ("roll-b1", "node-b")],
    )
    .await;
    kubectl(
        &cluster,
        &["apply", "-n", &ns, "-f", "-"],
        Some(&swh_http("roll", "roll", "")),
    );
    wait_ready_count(&client, &ns, "roll", 2).await;
    let vip = traffic::cluster_ip(&client, &ns, "roll")
        .await
        .expect("ClusterIP");
    let target = SocketAddr::new(vip, 80);
    let a = node(&cluster, "node-a");
    wait_answers(&a, target, &["roll-a1", "roll-b1"]);
    let before = kubectl(
        &cluster,
        &[
            "-n",
            "swh-system",
            "get",
            "pods",
            "-l",
            "app.kubernetes.io/name=swh-agent",
            "-o",
            "jsonpath={.items[*].metadata.uid}",
        ],
        None,
    );
    let client_loop = ClientLoop::start(&a, target, Duration::from_millis(10));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let started = Instant::now();
    kubectl(
        &cluster,
        &[
            "-n",
            "swh-system",
            "rollout",
            "restart",
            "daemonset/swh-agent",
        ],
        None,
    );
    kubectl(
        &cluster,
        &[
            "-n",
            "swh-system",
            "rollout",
            "status",
            "daemonset/swh-agent",
            "--timeout=180s",
        ],
        None,
    );
    let took = started.elapsed();
    // Past the new agents' first probe rounds.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let samples = client_loop.finish().expect("client loop");
    let after = kubectl(
        &cluster,
        &[
            "-n",
            "swh-system",
            "get",
            "pods",
            "-l",
            "app.kubernetes.io/name=swh-agent",
            "-o",
            "jsonpath={.items[*].metadata.uid}",
        ],
        None,
    );
    assert!(
        before.split_whitespace().all(|u| !after.contains(u)),
        "every agent pod was replaced: before {before}, after {after}"
    );
    let failed = failures(&samples);
    eprintln!(
        "agent DaemonSet roll under traffic: rolled in {:.1}s, {} requests, {} failed, answers {:?}",
        took.as_secs_f64(),
        samples.len(),
        failed.len(),
        traffic::tally(&samples)
    );
    assert!(
        failed.is_empty(),
        "requests failed during the roll: {:?}",
        &failed[..failed.len().min(5)]
    );
    kubectl(
        &cluster,
        &["delete", "namespace", &ns, "--wait=false"],
        None,
    );
}

/// PostgreSQL failover through `postgres-write`'s ClusterIP: a replica is promoted and the
/// primary stopped; writes resume on the new primary. Reports the write gap.
#[tokio::test]
async fn postgres_failover_writes_resume_on_the_new_primary() {
    let _serial = SERIAL.lock().await;
    let (cluster, client, ns) = setup("rn-pg").await;
    let ips = swh_e2e::demo::deploy_postgres(&cluster, &client, &ns)
        .await
        .expect("PostgreSQL pods");
    // The seed's postgres-write with 1 s probes (Deckhouse's defaults are 10 s × 3).
    let write = swh_e2e::seeds::POSTGRES_WRITE
        .replace(
            "  healthcheck:\n",
            "  healthcheck:\n    initialDelaySeconds: 0\n    periodSeconds: 1\n",
        )
        .replace(
            "    - mode: PostgreSQL\n",
            "    - mode: PostgreSQL\n      failureThreshold: 1\n      successThreshold: 1\n",
        );
    kubectl(&cluster, &["apply", "-n", &ns, "-f", "-"], Some(&write));
    wait_ready_count(&client, &ns, "postgres-write", 1).await;
    let vip = traffic::cluster_ip(&client, &ns, "postgres-write")
        .await
        .expect("ClusterIP");
    let a = node(&cluster, "node-a");
    // A table on the primary (replicated to both replicas), once kube-proxy on node-a sends
    // connections to the published endpoint (it follows the slice by up to a second or so).
    let setup_sql = traffic::in_node(&a, move || {
        let start = Instant::now();
        loop {
            let r = pg_exec(
                vip,
                "CREATE TABLE IF NOT EXISTS w (at timestamptz DEFAULT now(), n int)",
            );
            if r.is_ok() || start.elapsed() > Duration::from_secs(30) {
                return r;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    })
    .expect("client");
    setup_sql.expect("create table through postgres-write");

    // A writer in node-a: a new connection per write, every 20 ms, recording who took it.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    let writer = {
        let a = a.clone();
        std::thread::spawn(move || {
            traffic::in_node(&a, move || {
                let mut out: Vec<(Instant, Result<String, String>)> = Vec::new();
                let mut n = 0;
                while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                    n += 1;
                    let r = pg_exec(
                        vip,
                        &format!(
                            "INSERT INTO w (n) VALUES ({n}) RETURNING host(inet_server_addr())"
                        ),
                    );
                    out.push((Instant::now(), r));
                    std::thread::sleep(Duration::from_millis(20));
                }
                out
            })
        })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pg_data = "/var/lib/postgresql/data";
    let failover = Instant::now();
    kubectl(
        &cluster,
        &[
            "-n",
            &ns,
            "exec",
            "postgres-1",
            "--",
            "pg_ctl",
            "promote",
            "-w",
            "-D",
            pg_data,
        ],
        None,
    );
    kubectl(
        &cluster,
        &[
            "-n",
            &ns,
            "exec",
            "postgres-0",
            "--",
            "pg_ctl",
            "stop",
            "-m",
            "fast",
            // No wait: the server is the container's PID 1, so its exit ends the exec session.
            "-W",
            "-D",
            pg_data,
        ],
        None,
    );
    // Writes must reach the new primary.
    let new_primary = ips[1].to_string();
    testenv::wait_for(
        "postgres-write to publish only the new primary",
        Duration::from_secs(60),
        || {
            let (client, ns, want) = (client.clone(), ns.clone(), new_primary.clone());
            async move {
                let r = slices::ready(&client, &ns, "postgres-write").await.ok()?;
                (r.len() == 1 && r.contains(&want)).then_some(())
            }
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let writes = writer.join().expect("writer").expect("writer in node");
    let old = ips[0].to_string();
    let last_old = writes
        .iter()
        .filter(|(_, r)| r.as_deref() == Ok(old.as_str()))
        .map(|(t, _)| *t)
        .max();
    let first_new = writes
        .iter()
        .filter(|(_, r)| r.as_deref() == Ok(new_primary.as_str()))
        .map(|(t, _)| *t)
        .min();
    let failed = writes.iter().filter(|(_, r)| r.is_err()).count();
    let (Some(last_old), Some(first_new)) = (last_old, first_new) else {
        panic!(
            "writes never moved from {old} to {new_primary}: {:?}",
            writes.iter().map(|(_, r)| r.clone()).collect::<Vec<_>>()
        );
    };
    let gap = first_new.saturating_duration_since(last_old);
    eprintln!(
        "PostgreSQL failover through postgres-write: write gap {:.2} s (last write on the old primary → first on the new), {failed} failed writes of {}, {:.1} s from promote to the new primary taking writes",
        gap.as_secs_f64(),
        writes.len(),
        first_new.saturating_duration_since(failover).as_secs_f64()
    );
    let tail: Vec<&Result<String, String>> = writes.iter().rev().take(10).map(|(_, r)| r).collect();
    assert!(
        tail.iter()
            .all(|r| r.as_deref() == Ok(new_primary.as_str())),
        "the last writes must land on the new primary {new_primary}: {tail:?}"
    );
    kubectl(
        &cluster,
        &["delete", "namespace", &ns, "--wait=false"],
        None,
    );
}

/// One statement over a new connection (as the seed's user); the first column of the first
/// row, if any.
fn pg_exec(addr: IpAddr, sql: &str) -> Result<String, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let sql = sql.to_string();
    rt.block_on(async move {
        let cfg = format!(
            "host={addr} port=5432 user=postgres password=example dbname=postgres connect_timeout=2"
        );
        let (c, conn) = tokio_postgres::connect(&cfg, tokio_postgres::NoTls)
            .await
            .map_err(|e| e.to_string())?;
        let task = tokio::spawn(conn);
        let rows = tokio::time::timeout(Duration::from_secs(3), c.query(sql.as_str(), &[]))
            .await
            .map_err(|_| "query timed out".to_string())?
            .map_err(|e| e.to_string())?;
        drop(c);
        task.abort();
        Ok(rows
            .first()
            .and_then(|r| r.try_get::<_, String>(0).ok())
            .unwrap_or_default())
    })
}

/// A private real-node cluster (nodes only, no install) stops without leaving a process,
/// mount, cgroup, namespace, link, route or directory behind.
#[tokio::test]
async fn real_node_teardown_leaves_nothing_behind() {
    let _serial = SERIAL.lock().await;
    let shared = real_cluster();
    let images = testenv::workspace_root().join("target/images");
    let work = std::env::temp_dir().join(format!("swh-rn-teardown-{}", std::process::id()));
    let forwarding =
        || std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap_or_default();
    let forwarding_before = forwarding();
    let cluster = tokio::task::spawn_blocking({
        let (bin_dir, work) = (shared.bin_dir.clone(), work.clone());
        move || {
            LocalCluster::start(&swh_e2e::controlplane::ClusterOptions {
                bin_dir,
                work_dir: work,
                tag: format!("rd{}", std::process::id() % 10_000),
                link: 8,
                pod_range: 248,
                service_range: 99,
                real_nodes: Some(images),
            })
        }
    })
    .await
    .expect("join")
    .expect("private real-node cluster");
    // A running pod, so there are containers, mounts and pod netns to remove.
    let client = testenv::admin_client(&cluster).await.expect("client");
    objects::ensure_namespace(&client, "td").await.expect("ns");
    let labels: BTreeMap<String, String> = [("app".to_string(), "td".to_string())].into();
    traffic::create_backend_pod(&client, "td", "td-b1", "node-b", &labels)
        .await
        .expect("pod");
    let ip = traffic::wait_pod_ready(&client, "td", "td-b1", Duration::from_secs(120))
        .await
        .expect("pod Ready");
    assert!(
        traffic::set_health(ip, 200).is_ok(),
        "the pod answers from the host over the node route"
    );
    let rn = cluster.real_nodes.clone().expect("real nodes");
    assert!(
        !rn.leftovers().is_empty(),
        "the nodes exist before teardown"
    );
    let pids: Vec<u32> = cluster.processes.iter().map(|p| p.pid).collect();
    tokio::task::spawn_blocking(move || cluster.stop())
        .await
        .expect("stop");
    for p in pids {
        assert!(!swh_e2e::process::alive(p), "process {p} left running");
    }
    assert_eq!(rn.leftovers(), Vec::<String>::new(), "left behind");
    assert_eq!(
        forwarding(),
        forwarding_before,
        "the host's IPv4 forwarding changed"
    );
    assert!(!work.exists(), "work dir {} left", work.display());
}
