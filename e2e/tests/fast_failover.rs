//! Fast transitions and immediate signals on the process-mode cluster: the seed's
//! `postgres-write` as v1beta1 with Deckhouse's timing (period 10 s, failure threshold 3) plus
//! `transitionPeriodSeconds: 1`, next to the same SWH without it, over one primary and one
//! streaming replica. The primary is stopped and the replica promoted, as a failover manager
//! does; both SWHs' write slices must follow, the fast one in seconds.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use kube::Client;
use swh_e2e::backend::Postgres;
use swh_e2e::controlplane::LocalCluster;
use swh_e2e::objects::{self, PodSpecLite};
use swh_e2e::{identity, slices, testenv};

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

fn apply_yaml(cluster: &LocalCluster, ns: &str, yaml: &str) {
    identity::kubectl(cluster, &["apply", "-n", ns, "-f", "-"], Some(yaml))
        .unwrap_or_else(|e| panic!("kubectl apply: {e}\n{yaml}"));
}

async fn pod(client: &Client, ns: &str, name: &str, node: &str, ip: IpAddr) {
    objects::create_pod(
        client,
        &PodSpecLite {
            namespace: ns.into(),
            name: name.into(),
            node: node.into(),
            labels: [("app".to_string(), "postgres".to_string())]
                .into_iter()
                .collect(),
            ports: Default::default(),
        },
    )
    .await
    .unwrap_or_else(|e| panic!("create pod {name}: {e}"));
    objects::set_pod_status(client, ns, name, &[ip], true)
        .await
        .unwrap_or_else(|e| panic!("pod status {name}: {e}"));
}

/// The seed's `postgres-write` in v1beta1, with Deckhouse's timing made explicit and an
/// optional `transitionPeriodSeconds`.
fn postgres_write(name: &str, transition: Option<u32>) -> String {
    let transition = transition
        .map(|t| format!("      transitionPeriodSeconds: {t}\n"))
        .unwrap_or_default();
    format!(
        r#"apiVersion: network.deckhouse.io/v1beta1
kind: ServiceWithHealthchecks
metadata:
  name: {name}
spec:
  ports:
  - port: 5432
    protocol: TCP
    targetPort: 5432
  selector:
    app: postgres
  healthcheck:
    initialDelaySeconds: 0
    periodSeconds: 10
    probes:
    - name: primary
      mode: PostgreSQL
      failureThreshold: 3
      successThreshold: 1
{transition}      postgreSQL:
        port: 5432
        dbName: postgres
        authSecretName: cred-secret
        query: "SELECT NOT pg_is_in_recovery()"
"#
    )
}

fn set(addrs: &[IpAddr]) -> BTreeSet<String> {
    addrs.iter().map(ToString::to_string).collect()
}

async fn ready(client: &Client, ns: &str, svc: &str) -> Option<BTreeSet<String>> {
    slices::ready(client, ns, svc).await.ok()
}

#[tokio::test]
async fn postgres_write_fails_over_in_seconds_with_transition_period() {
    let (cluster, client, ns) = setup("ff").await;
    let ips: Vec<IpAddr> = (0..2)
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
    let replica = Postgres::start_replica(&primary, &dir.join("p1"), ips[1], 5432, "example")
        .expect("replica");
    pod(&client, &ns, "postgres-0", "node-a", ips[0]).await;
    pod(&client, &ns, "postgres-1", "node-b", ips[1]).await;
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
    // The API server accepts the new field (schema and CEL) and the webhook admits it.
    apply_yaml(&cluster, &ns, &postgres_write("postgres-write", Some(1)));
    apply_yaml(
        &cluster,
        &ns,
        &postgres_write("postgres-write-default", None),
    );
    for svc in ["postgres-write", "postgres-write-default"] {
        testenv::wait_for(
            &format!("{svc} publishes the primary only"),
            Duration::from_secs(120),
            || async { (ready(&client, &ns, svc).await? == set(&ips[..1])).then_some(()) },
        )
        .await;
    }
    // Both replicas' probes have settled (failing: in recovery), so the measurement starts from
    // the steady state: the next regular probes are anywhere within the 10 s period.
    tokio::time::sleep(Duration::from_secs(3)).await;

    // Failover as a manager does it: the primary goes down, then the replica is promoted.
    let stopped = Instant::now();
    primary.stop().expect("stop primary");
    replica.promote().expect("promote");
    let promoted = stopped.elapsed();

    let (mut fast_out, mut fast_follows, mut default_out, mut default_follows) =
        (None, None, None, None);
    let limit = Duration::from_secs(60);
    while default_follows.is_none() || fast_follows.is_none() {
        assert!(
            stopped.elapsed() < limit,
            "no failover within {limit:?}: fast {fast_out:?}/{fast_follows:?}, default \
             {default_out:?}/{default_follows:?}"
        );
        let now = stopped.elapsed();
        if let Some(got) = ready(&client, &ns, "postgres-write").await {
            if fast_out.is_none() && !got.contains(&ips[0].to_string()) {
                fast_out = Some(now);
            }
            if fast_follows.is_none() && got == set(&ips[1..]) {
                fast_follows = Some(now);
            }
        }
        if let Some(got) = ready(&client, &ns, "postgres-write-default").await {
            if default_out.is_none() && !got.contains(&ips[0].to_string()) {
                default_out = Some(now);
            }
            if default_follows.is_none() && got == set(&ips[1..]) {
                default_follows = Some(now);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let secs = |d: Option<Duration>| d.map_or(f64::NAN, |d| d.as_secs_f64());
    println!(
        "postgres-write failover (period 10 s, failureThreshold 3), from stopping the primary \
         (replica promoted after {:.1}s):\n  transitionPeriodSeconds 1: primary out of the slice \
         {:.1}s, slice = promoted replica {:.1}s\n  without it (Deckhouse timing): primary out \
         {:.1}s, slice = promoted replica {:.1}s",
        promoted.as_secs_f64(),
        secs(fast_out),
        secs(fast_follows),
        secs(default_out),
        secs(default_follows),
    );
    let (Some(fast_out), Some(fast_follows), Some(default_out)) =
        (fast_out, fast_follows, default_out)
    else {
        panic!("the loop ends only when both slices followed");
    };
    // The session closed by the server probes at once, then 2 more failures 1 s apart decide:
    // about 2 s. Without the feature 3 failures 10 s apart need at least 20 s.
    assert!(
        fast_out < Duration::from_secs(10),
        "with transitionPeriodSeconds 1 the primary left the write slice after {fast_out:?}"
    );
    // The promoted replica passes at its next regular probe (success threshold 1: no streak
    // to speed up), at most one period after the promotion.
    assert!(
        fast_follows < promoted + Duration::from_secs(10) + Duration::from_secs(3),
        "the write slice showed the promoted replica only after {fast_follows:?}"
    );
    // Opt-in: without the field the timing is exactly as before (3 results 10 s apart).
    assert!(
        default_out >= Duration::from_secs(18),
        "without transitionPeriodSeconds the primary left after {default_out:?}: the default \
         timing changed"
    );
}
