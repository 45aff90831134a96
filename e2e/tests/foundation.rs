//! Foundation e2e tests: the real control plane, the pod network and backends at pod IPs.
//! They run against the shared local cluster that `make test` starts (see e2e/README.md).

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Pod, Service, ServicePort, ServiceSpec};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ListParams, ObjectMeta, PostParams};
use kube::{Api, Client};
use swh_e2e::backend::{Backend, BackendSpec, Postgres};
use swh_e2e::controlplane::{ClusterOptions, LocalCluster};
use swh_e2e::objects::{self, PodSpecLite};
use swh_e2e::testenv;

async fn setup() -> (LocalCluster, Client) {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cluster =
        testenv::shared_cluster().expect("shared local cluster (run `make test` or `make up`)");
    let client = testenv::admin_client(&cluster).await.expect("admin client");
    (cluster, client)
}

async fn wait_for<T, F, Fut>(what: &str, limit: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn readyz_ok_and_server_is_v1_37_2() {
    let (cluster, client) = setup().await;
    let out = cluster
        .kubectl()
        .args(["get", "--raw", "/readyz"])
        .output()
        .expect("kubectl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");
    let v = client.apiserver_version().await.expect("version");
    assert_eq!(v.git_version, "v1.37.2");
}

#[tokio::test]
async fn crd_applied_with_kubectl_becomes_established() {
    let (cluster, client) = setup().await;
    let crd = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: gadgets.e2e.swh.test}
spec:
  group: e2e.swh.test
  scope: Namespaced
  names: {plural: gadgets, singular: gadget, kind: Gadget}
  versions:
  - name: v1
    served: true
    storage: true
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
"#;
    let mut child = cluster
        .kubectl()
        .args(["apply", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("kubectl apply");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(crd.as_bytes())
        .expect("write");
    assert!(child.wait().expect("wait").success());
    let api: Api<CustomResourceDefinition> = Api::all(client);
    wait_for("CRD Established", Duration::from_secs(30), || async {
        let c = api.get("gadgets.e2e.swh.test").await.ok()?;
        c.status?
            .conditions?
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True")
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn pod_status_subresource_sets_pod_ip() {
    let (cluster, client) = setup().await;
    let ns = testenv::unique_name("podip");
    objects::ensure_namespace(&client, &ns).await.expect("ns");
    objects::ensure_node(&client, "node-a").await.expect("node");
    let (v4, v6) = cluster.pod_network.alloc_pod_ips().expect("ips");
    objects::create_pod(
        &client,
        &PodSpecLite {
            namespace: ns.clone(),
            name: "p".into(),
            node: "node-a".into(),
            ..Default::default()
        },
    )
    .await
    .expect("pod");
    objects::set_pod_status(&client, &ns, "p", &[v4, v6], true)
        .await
        .expect("status");
    let pod = Api::<Pod>::namespaced(client, &ns)
        .get("p")
        .await
        .expect("get");
    let st = pod.status.expect("status");
    assert_eq!(st.pod_ip.as_deref(), Some(v4.to_string().as_str()));
    let ips: Vec<String> = st
        .pod_ips
        .unwrap_or_default()
        .into_iter()
        .map(|i| i.ip)
        .collect();
    assert_eq!(ips, vec![v4.to_string(), v6.to_string()]);
}

#[tokio::test]
async fn endpointslice_controller_publishes_ready_pod_of_plain_service() {
    let (cluster, client) = setup().await;
    let ns = testenv::unique_name("eps");
    objects::ensure_namespace(&client, &ns).await.expect("ns");
    objects::ensure_node(&client, "node-a").await.expect("node");
    let (v4, _) = cluster.pod_network.alloc_pod_ips().expect("ips");
    let labels = BTreeMap::from([("app".to_string(), "web".to_string())]);
    objects::create_pod(
        &client,
        &PodSpecLite {
            namespace: ns.clone(),
            name: "web-0".into(),
            node: "node-a".into(),
            labels: labels.clone(),
            ..Default::default()
        },
    )
    .await
    .expect("pod");
    objects::set_pod_status(&client, &ns, "web-0", &[v4], true)
        .await
        .expect("status");
    let svc = Service {
        metadata: ObjectMeta {
            name: Some("web".into()),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            selector: Some(labels),
            ports: Some(vec![ServicePort {
                port: 80,
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    };
    Api::<Service>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &svc)
        .await
        .expect("svc");
    let slices: Api<EndpointSlice> = Api::namespaced(client, &ns);
    let want = v4.to_string();
    wait_for(
        "a ready endpoint in the controller's slice",
        Duration::from_secs(60),
        || async {
            let l = slices
                .list(&ListParams::default().labels("kubernetes.io/service-name=web"))
                .await
                .ok()?;
            l.items
                .iter()
                .flat_map(|s| s.endpoints.iter())
                .any(|e| {
                    e.addresses.contains(&want)
                        && e.conditions.as_ref().and_then(|c| c.ready) == Some(true)
                })
                .then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn tcp_reaches_backend_at_pod_ip_over_ipv4_and_ipv6() {
    let (cluster, _client) = setup().await;
    let (v4, v6) = cluster.pod_network.alloc_pod_ips().expect("ips");
    let addrs = [SocketAddr::new(v4, 2525), SocketAddr::new(v6, 2525)];
    let mut b = Backend::start(
        std::path::Path::new(env!("CARGO_BIN_EXE_swh-backend")),
        &cluster.pod_network,
        &BackendSpec {
            tcp: addrs.to_vec(),
            ..Default::default()
        },
        &cluster.work_dir,
    )
    .expect("backend");
    for a in addrs {
        TcpStream::connect_timeout(&a, Duration::from_secs(2))
            .unwrap_or_else(|e| panic!("connect {a}: {e}"));
    }
    b.stop();
    for a in addrs {
        let r = TcpStream::connect_timeout(&a, Duration::from_secs(2));
        assert!(r.is_err(), "{a} still accepts after stop");
    }
    b.restart().expect("restart");
    for a in addrs {
        TcpStream::connect_timeout(&a, Duration::from_secs(2))
            .unwrap_or_else(|e| panic!("connect {a} after restart: {e}"));
    }
}

#[tokio::test]
async fn http_backend_at_pod_ip_answers_healthz() {
    let (cluster, _client) = setup().await;
    let (v4, _) = cluster.pod_network.alloc_pod_ips().expect("ips");
    let addr = SocketAddr::new(v4, 8080);
    let _b = Backend::start(
        std::path::Path::new(env!("CARGO_BIN_EXE_swh-backend")),
        &cluster.pod_network,
        &BackendSpec {
            http: vec![addr],
            http_path: "/healthz".into(),
            http_status: 200,
            ..Default::default()
        },
        &cluster.work_dir,
    )
    .expect("backend");
    use std::io::{Read, Write};
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).expect("connect");
    write!(
        s,
        "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut resp = String::new();
    s.read_to_string(&mut resp).expect("read");
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
}

#[tokio::test]
async fn postgres_at_pod_ip_answers_select_1() {
    let (cluster, _client) = setup().await;
    let (v4, _) = cluster.pod_network.alloc_pod_ips().expect("ips");
    let dir = cluster.work_dir.join(testenv::unique_name("pg"));
    let _pg =
        Postgres::start_primary(&cluster.pod_network, &dir, v4, 5432, "s3cret").expect("postgres");
    let conn = format!(
        "host={v4} port=5432 user=postgres password=s3cret dbname=postgres connect_timeout=5"
    );
    let (client, connection) = tokio_postgres::connect(&conn, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    let row = client.query_one("SELECT 1", &[]).await.expect("query");
    let one: i32 = row.get(0);
    assert_eq!(one, 1);
}

/// Starts a second, private cluster and checks that stopping it leaves no process, network
/// namespace, veth, route or directory behind.
#[tokio::test]
async fn teardown_leaves_nothing_behind() {
    let shared = testenv::shared_cluster().expect("shared cluster");
    let tag = format!("t{}", std::process::id() % 100_000);
    let work = std::env::temp_dir().join(format!("swh-teardown-{}", std::process::id()));
    let cluster = tokio::task::spawn_blocking({
        let (bin_dir, work, tag) = (shared.bin_dir.clone(), work.clone(), tag.clone());
        move || {
            LocalCluster::start(&ClusterOptions {
                bin_dir,
                work_dir: work,
                tag,
                link: 9,
                pod_range: 245,
                service_range: 96,
                real_nodes: None,
            })
        }
    })
    .await
    .expect("join")
    .expect("private cluster");
    let (v4, _) = cluster.pod_network.alloc_pod_ips().expect("ips");
    let backend_pid = {
        let b = Backend::start(
            std::path::Path::new(env!("CARGO_BIN_EXE_swh-backend")),
            &cluster.pod_network,
            &BackendSpec {
                tcp: vec![SocketAddr::new(v4, 1)],
                ..Default::default()
            },
            &cluster.work_dir,
        )
        .expect("backend");
        b.pid().expect("pid")
    };
    assert!(
        !swh_e2e::process::alive(backend_pid),
        "backend survived its drop"
    );
    let pids: Vec<u32> = cluster.processes.iter().map(|p| p.pid).collect();
    assert_eq!(
        pids.len(),
        3,
        "etcd, kube-apiserver, kube-controller-manager"
    );
    for &p in &pids {
        assert!(
            swh_e2e::process::alive(p),
            "process {p} not running before teardown"
        );
    }
    let net = cluster.pod_network.clone();
    assert_eq!(net.exists(), (true, true));
    tokio::task::spawn_blocking(move || cluster.stop())
        .await
        .expect("stop");
    for p in pids {
        assert!(!swh_e2e::process::alive(p), "process {p} left running");
    }
    assert_eq!(net.exists(), (false, false), "netns or veth left behind");
    let routes = Command::new("ip")
        .args(["route", "show", "10.245.0.0/16"])
        .output()
        .expect("ip route");
    assert!(
        routes.stdout.is_empty(),
        "route left: {}",
        String::from_utf8_lossy(&routes.stdout)
    );
    assert!(!work.exists(), "work dir {} left", work.display());
}
