//! `helm install` of the chart (`config/helm/swh`) on real nodes: a private real-node cluster
//! (kubelet + containerd + kube-proxy on node-a and node-b, nothing installed from kustomize),
//! the chart installed with the local images (`localhost/swh-*:dev`, IfNotPresent) and the
//! provided-certificate mode (a serving certificate for `swh-webhook.swh-system.svc` signed by
//! the cluster's CA, the chart creating the Secret and the three caBundles), into a namespace
//! that enforces Pod Security `restricted`. Then the Deckhouse VM example (`web` and `smtp`
//! over one backend pod) publishes 1/1 and a request through `web`'s ClusterIP from inside
//! node-a answers from the VM. Clients run only inside a node namespace.

mod tools;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::json;
use swh_e2e::controlplane::{ClusterOptions, LocalCluster};
use swh_e2e::{identity, objects, seeds, testenv, traffic};
use tools::{helm, k8s_bin, root, run, temp_dir};

const NS: &str = "swh-system";

/// Stops the private cluster (processes, nodes, namespaces, routes, work dir) however the
/// test ends.
struct Stop(Option<LocalCluster>);

impl Drop for Stop {
    fn drop(&mut self) {
        if let Some(c) = self.0.take() {
            c.stop();
        }
    }
}

fn kubectl(cluster: &LocalCluster, args: &[&str], stdin: Option<&str>) -> String {
    identity::kubectl(cluster, args, stdin).unwrap_or_else(|e| panic!("kubectl {args:?}: {e}"))
}

fn read(p: std::path::PathBuf) -> String {
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn helm_install_on_real_nodes_publishes_the_vm_example() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let images = root().join("target/images");
    assert!(
        images.join("swh-agent.tar").exists(),
        "{} has no images (make images)",
        images.display()
    );
    let started = Instant::now();
    let work = std::env::temp_dir().join(format!("swh-helm-rn-{}", std::process::id()));
    let opts = ClusterOptions {
        bin_dir: k8s_bin(),
        work_dir: work.clone(),
        tag: format!("hr{}", std::process::id() % 1000),
        link: 4,
        pod_range: 240,
        service_range: 94,
        real_nodes: Some(images),
    };
    // A failed start removes what it made. Retried once: the two kubelets share the fixed
    // /var/lib/kubelet/device-plugins/kubelet.sock, and one started right after the other
    // can lose the bind ("address already in use") and exit.
    let cluster = match LocalCluster::start(&opts) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("real-node cluster start failed, once more: {e}");
            LocalCluster::start(&opts).expect("private real-node cluster")
        }
    };
    let guard = Stop(Some(cluster));
    let Some(cluster) = guard.0.as_ref() else {
        unreachable!("set above")
    };
    eprintln!(
        "cluster with real nodes up in {:.1}s",
        started.elapsed().as_secs_f64()
    );

    // The release namespace, enforcing Pod Security restricted (the README's label).
    kubectl(
        cluster,
        &["apply", "-f", "-"],
        Some(
            &json!({
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": NS, "labels": {
                    "pod-security.kubernetes.io/enforce": "restricted",
                    "pod-security.kubernetes.io/enforce-version": "latest",
                }},
            })
            .to_string(),
        ),
    );

    // helm install: local images, the provided certificate (the chart writes the Secret and
    // the caBundles from these values).
    let pki = cluster.pki();
    let values = json!({
        "image": {"registry": "localhost", "tag": "dev", "pullPolicy": "IfNotPresent"},
        "webhook": {"certificate": {
            "mode": "provided",
            "provided": {
                "caBundle": read(pki.ca_cert()),
                "tlsCrt": read(pki.cert("webhook-svc")),
                "tlsKey": read(pki.key("webhook-svc")),
            },
        }},
    });
    let home = temp_dir("swh-helm-rn");
    let vf = home.join("values.yaml");
    std::fs::write(&vf, values.to_string()).expect("write values");
    let install = Instant::now();
    let mut c = helm(&home);
    c.args(["install", "swh"])
        .arg(root().join("config/helm/swh"))
        .args(["--namespace", NS, "--kubeconfig"])
        .arg(&cluster.kubeconfig)
        .arg("--values")
        .arg(&vf);
    let out = run(c, None);
    let _ = std::fs::remove_dir_all(&home);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "helm install: {text}");
    assert!(text.contains("STATUS: deployed"), "helm install: {text}");
    eprintln!(
        "helm install: {}",
        text.lines()
            .filter(|l| l.starts_with("STATUS") || l.starts_with("NAME"))
            .collect::<Vec<_>>()
            .join("; ")
    );
    for what in [
        "deployment/swh-webhook",
        "deployment/swh-controller",
        "daemonset/swh-agent",
    ] {
        kubectl(
            cluster,
            &["-n", NS, "rollout", "status", what, "--timeout=120s"],
            None,
        );
    }
    let ready = |kind: &str, name: &str, path: &str| {
        kubectl(
            cluster,
            &[
                "-n",
                NS,
                "get",
                kind,
                name,
                "-o",
                &format!("jsonpath={path}"),
            ],
            None,
        )
    };
    assert_eq!(
        ready("deployment", "swh-webhook", "{.status.readyReplicas}"),
        "2"
    );
    assert_eq!(
        ready("deployment", "swh-controller", "{.status.readyReplicas}"),
        "2"
    );
    assert_eq!(
        ready("daemonset", "swh-agent", "{.status.numberReady}"),
        "2",
        "an agent on each node"
    );
    let agent_nodes = kubectl(
        cluster,
        &[
            "-n",
            NS,
            "get",
            "pods",
            "-l",
            "app.kubernetes.io/name=swh-agent",
            "-o",
            "jsonpath={range .items[*]}{.spec.nodeName}{\"\\n\"}{end}",
        ],
        None,
    );
    let mut agent_nodes: Vec<&str> = agent_nodes.lines().collect();
    agent_nodes.sort_unstable();
    assert_eq!(agent_nodes, ["node-a", "node-b"]);
    // The images the chart named, not a pull from somewhere.
    let images = kubectl(
        cluster,
        &[
            "-n",
            NS,
            "get",
            "pods",
            "-o",
            "jsonpath={range .items[*]}{.spec.containers[0].image} {.spec.containers[0].imagePullPolicy}{\"\\n\"}{end}",
        ],
        None,
    );
    for l in images.lines() {
        assert!(
            l.starts_with("localhost/swh-") && l.ends_with(":dev IfNotPresent"),
            "pod image: {l}"
        );
    }
    eprintln!(
        "chart installed and rolled out in {:.1}s",
        install.elapsed().as_secs_f64()
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let client = testenv::admin_client(cluster).await.expect("client");
        let ns = "vm";
        objects::ensure_namespace(&client, ns)
            .await
            .expect("namespace");
        let labels: BTreeMap<String, String> = [("vm".to_string(), "my-vm".to_string())].into();
        traffic::create_backend_pod(&client, ns, "my-vm", "node-a", &labels)
            .await
            .expect("backend pod");
        traffic::wait_pod_ready(&client, ns, "my-vm", Duration::from_secs(60))
            .await
            .expect("backend Ready");
        // The webhook validates and converts the v1alpha1 manifests: retry while its Service's
        // endpoints settle right after the rollout.
        let manifests = format!("{}---\n{}", seeds::WEB, seeds::SMTP);
        let accepted = Instant::now();
        loop {
            match identity::kubectl(
                cluster,
                &["apply", "--server-side", "-n", ns, "-f", "-"],
                Some(&manifests),
            ) {
                Ok(_) => break,
                Err(e) if accepted.elapsed() > Duration::from_secs(30) => {
                    let diag = |args: &[&str]| {
                        identity::kubectl(cluster, args, None).unwrap_or_else(|e| e.to_string())
                    };
                    panic!(
                        "the VM example not accepted within 30 s: {e}\n{}\n{}",
                        diag(&["-n", NS, "get", "pods,endpointslices", "-o", "wide"]),
                        diag(&[
                            "-n",
                            NS,
                            "logs",
                            "-l",
                            "app.kubernetes.io/name=swh-webhook",
                            "--tail=20"
                        ]),
                    )
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        }
        let statuses = || {
            identity::kubectl(
                cluster,
                &[
                    "get",
                    "swh",
                    "-n",
                    ns,
                    "-o",
                    "jsonpath={range .items[*]}{.metadata.name}={.status.ready}{\"\\n\"}{end}",
                ],
                None,
            )
            .unwrap_or_default()
        };
        let published = Instant::now();
        loop {
            let out = statuses();
            let mut got: Vec<&str> = out.lines().collect();
            got.sort_unstable();
            if got == ["smtp=1/1", "web=1/1"] {
                break;
            }
            if published.elapsed() > Duration::from_secs(60) {
                let diag = |args: &[&str]| {
                    identity::kubectl(cluster, args, None).unwrap_or_else(|e| e.to_string())
                };
                panic!(
                    "web and smtp not at 1/1 after 60 s: {got:?}\n{}\n{}\n{}",
                    diag(&["get", "swh", "-n", ns, "-o", "yaml"]),
                    diag(&["get", "pods,endpointslices", "-A", "-o", "wide"]),
                    diag(&[
                        "-n",
                        NS,
                        "logs",
                        "-l",
                        "app.kubernetes.io/name=swh-agent",
                        "--tail=30"
                    ]),
                );
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        eprintln!(
            "web and smtp at 1/1 {:.1}s after the example was applied",
            published.elapsed().as_secs_f64()
        );
        let ip = traffic::cluster_ip(&client, ns, "web")
            .await
            .expect("web's ClusterIP");
        let addr = SocketAddr::new(ip, 80);
        let node = cluster
            .real_nodes
            .as_ref()
            .and_then(|rn| rn.node("node-a"))
            .cloned()
            .expect("real node node-a");
        // kube-proxy programs the ClusterIP shortly after the slice: retry until it does.
        let start = Instant::now();
        let answer = loop {
            let r = traffic::in_node(&node, move || traffic::http_get_name(addr))
                .expect("a client in node-a");
            match r {
                Ok(name) => break name,
                Err(e) if start.elapsed() > Duration::from_secs(20) => {
                    panic!("no answer through {addr} from node-a: {e}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(300)).await,
            }
        };
        assert_eq!(answer, "my-vm", "who answered through web's ClusterIP");
    });
    drop(rt);
    let kept_work = work.clone();
    drop(guard);
    assert!(
        !kept_work.exists(),
        "work dir {} left after stop",
        kept_work.display()
    );
    eprintln!(
        "helm on real nodes: {:.1}s",
        started.elapsed().as_secs_f64()
    );
}
