//! `kubectl swh` end to end: the REAL kubectl finds the `kubectl-swh` plugin on PATH
//! (target/debug) and runs it against the shared local cluster with the whole stack (webhook,
//! controller, agents on node-a/node-b) that `swh-local up` starts.
//!
//! Golden files live in `tests/golden/`; ages, IPs, namespaces, uids and times are normalised.
//! `SWH_UPDATE_GOLDEN=1 cargo test -p swh-e2e --test plugin` rewrites them.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::ListParams;
use kube::{Api, Client};
use serde_json::Value;
use swh_e2e::backend::{Backend, BackendSpec};
use swh_e2e::controlplane::LocalCluster;
use swh_e2e::objects::{self, PodSpecLite};
use swh_e2e::{identity, slices, testenv};

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

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

/// The folder with `kubectl-swh` (built by `cargo build --workspace`).
fn plugin_dir() -> PathBuf {
    let exe = testenv::workspace_bin("kubectl-swh");
    assert!(
        exe.exists(),
        "{} is missing: run `cargo build -p kubectl-swh` first",
        exe.display()
    );
    exe.parent().map(Path::to_path_buf).unwrap_or_default()
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// `kubectl swh ARGS` through the real kubectl, with the plugin first on PATH.
fn swh(cluster: &LocalCluster, args: &[&str], stdin: Option<&str>) -> Run {
    use std::io::Write;
    let path = std::env::join_paths(
        std::iter::once(plugin_dir()).chain(
            std::env::var_os("PATH")
                .iter()
                .flat_map(std::env::split_paths),
        ),
    )
    .expect("PATH");
    let mut cmd: Command = cluster.kubectl();
    cmd.arg("swh")
        .args(args)
        .env("PATH", path)
        .env_remove("NO_COLOR")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("run kubectl swh");
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input.as_bytes()).expect("stdin");
    }
    let out = child.wait_with_output().expect("kubectl swh output");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// [`swh`] off the async runtime (for long runs next to async watchers).
async fn swh_async(args: &[&str]) -> Run {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let cluster = testenv::shared_cluster().expect("shared cluster");
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        swh(&cluster, &a, None)
    })
    .await
    .expect("join")
}

fn ok(r: &Run, what: &str) {
    assert_eq!(
        r.code, 0,
        "{what}: exit {}\nstdout:\n{}\nstderr:\n{}",
        r.code, r.stdout, r.stderr
    );
}

fn apply_yaml(cluster: &LocalCluster, ns: &str, yaml: &str) {
    identity::kubectl(
        cluster,
        &["apply", "--server-side", "-n", ns, "-f", "-"],
        Some(yaml),
    )
    .unwrap_or_else(|e| panic!("kubectl apply: {e}\n{yaml}"));
}

async fn pod(
    client: &Client,
    ns: &str,
    name: &str,
    node: &str,
    labels: &[(&str, &str)],
    ips: &[IpAddr],
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
            ports: vec![],
        },
    )
    .await
    .unwrap_or_else(|e| panic!("create pod {name}: {e}"));
    objects::set_pod_status(client, ns, name, ips, true)
        .await
        .unwrap_or_else(|e| panic!("pod status {name}: {e}"));
}

fn set(addrs: &[IpAddr]) -> BTreeSet<String> {
    addrs.iter().map(ToString::to_string).collect()
}

async fn wait_ready_set(client: &Client, ns: &str, svc: &str, want: &BTreeSet<String>) {
    testenv::wait_for(
        &format!("{svc} ready endpoints == {want:?}"),
        Duration::from_secs(120),
        || async {
            let got = slices::ready(client, ns, svc).await.ok()?;
            (&got == want).then_some(())
        },
    )
    .await;
}

/// The SWH as `kubectl swh status NAME -o json` prints it.
fn status_json(cluster: &LocalCluster, ns: &str, name: &str) -> Option<Value> {
    let r = swh(cluster, &["status", name, "-n", ns, "-o", "json"], None);
    (r.code == 0)
        .then(|| serde_json::from_str(&r.stdout).ok())
        .flatten()
}

/// Every probe of every pod entry is in `state` (and there is at least one entry).
fn all_probes(v: &Value, state: &str) -> bool {
    let Some(eps) = v
        .pointer("/status/endpointStatuses")
        .and_then(Value::as_array)
    else {
        return false;
    };
    !eps.is_empty()
        && eps.iter().all(|e| {
            e.get("probes").and_then(Value::as_array).is_some_and(|ps| {
                !ps.is_empty()
                    && ps
                        .iter()
                        .all(|p| p.get("state").and_then(Value::as_str) == Some(state))
            })
        })
}

// ---------------------------------------------------------------------------------------------
// Normalising output for golden files
// ---------------------------------------------------------------------------------------------

/// `5m`, `4m10s`, `2d1h`, `40s`: a kubectl HumanDuration.
fn is_age(t: &str) -> bool {
    let mut digits = false;
    let mut any_unit = false;
    for c in t.chars() {
        if c.is_ascii_digit() {
            digits = true;
        } else if "smhdy".contains(c) && digits {
            digits = false;
            any_unit = true;
        } else {
            return false;
        }
    }
    any_unit && !digits
}

fn norm_token(t: &str, ns: &str, pod_ips: &BTreeSet<String>) -> String {
    let (core, trail) = match t.strip_suffix(',') {
        Some(c) => (c, ","),
        None => (t, ""),
    };
    let core = if core == ns {
        "NS".to_string()
    } else if pod_ips.contains(core) {
        "<pod-ip>".to_string()
    } else if core.parse::<IpAddr>().is_ok() {
        "<cluster-ip>".to_string()
    } else if is_age(core) {
        "<age>".to_string()
    } else {
        core.to_string()
    };
    format!("{core}{trail}")
}

/// Re-renders a kubectl-style table with normalised cells (so widths do not depend on ages or
/// addresses). Columns are split at runs of 3+ spaces.
fn normalise_table(text: &str, ns: &str, pod_ips: &BTreeSet<String>) -> String {
    let text = text.replace(ns, "NS");
    let rows: Vec<Vec<String>> = text
        .lines()
        .map(|l| {
            l.split("   ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(|c| {
                    c.split(' ')
                        .map(|t| norm_token(t, ns, pod_ips))
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .collect()
        })
        .collect();
    // Widths per column over the lines that look like table rows (more than one cell).
    let mut widths: Vec<usize> = Vec::new();
    for r in rows.iter().filter(|r| r.len() > 1) {
        for (i, c) in r.iter().enumerate() {
            let w = c.chars().count();
            if widths.len() <= i {
                widths.push(w);
            } else {
                widths[i] = widths[i].max(w);
            }
        }
    }
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            line.push_str(c);
            if i + 1 < r.len() {
                let pad = widths.get(i).copied().unwrap_or(0) - c.chars().count() + 3;
                line.push_str(&" ".repeat(pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn normalise_json(v: &mut Value, ns: &str, pod_ips: &BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            for (k, val) in m.iter_mut() {
                match k.as_str() {
                    "creationTimestamp" | "lastTransitionTime" | "since" | "lastProbeTime" => {
                        *val = Value::String("<time>".into())
                    }
                    "uid" => *val = Value::String("<uid>".into()),
                    "resourceVersion" => *val = Value::String("<rv>".into()),
                    "consecutiveSuccesses" | "consecutiveFailures" => {
                        *val = Value::String("<n>".into())
                    }
                    _ => normalise_json(val, ns, pod_ips),
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| normalise_json(x, ns, pod_ips)),
        Value::String(s) => {
            if s == ns {
                *s = "NS".into();
            } else if pod_ips.contains(s.as_str()) {
                *s = "<pod-ip>".into();
            } else if s.parse::<IpAddr>().is_ok() {
                *s = "<cluster-ip>".into();
            }
        }
        _ => {}
    }
}

fn golden(name: &str, got: &str) {
    let path = testenv::workspace_root()
        .join("e2e/tests/golden")
        .join(name);
    if std::env::var_os("SWH_UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().expect("dir")).expect("mkdir golden");
        std::fs::write(&path, got).expect("write golden");
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (SWH_UPDATE_GOLDEN=1 writes it)\ngot:\n{got}",
            path.display()
        )
    });
    assert_eq!(
        got,
        want,
        "output differs from {} (SWH_UPDATE_GOLDEN=1 rewrites it)",
        path.display()
    );
}

#[test]
fn normalising_helpers() {
    assert!(is_age("5m") && is_age("4m10s") && is_age("2d1h") && is_age("0s"));
    assert!(!is_age("80/TCP") && !is_age("m5") && !is_age("5") && !is_age("smtp"));
    let ips = BTreeSet::from(["10.1.0.5".to_string()]);
    let t = "NAME   IP          AGE\nweb    10.1.0.5    5m\nlonger-name   10.96.0.1   4m10s\n";
    assert_eq!(
        normalise_table(t, "ns-1", &ips),
        "NAME          IP             AGE\nweb           <pod-ip>       <age>\nlonger-name   <cluster-ip>   <age>\n"
    );
}

// ---------------------------------------------------------------------------------------------
// status
// ---------------------------------------------------------------------------------------------

const VM_WEB: &str = r#"
apiVersion: network.deckhouse.io/v1alpha1
kind: ServiceWithHealthchecks
metadata:
  name: web
spec:
  ports:
  - port: 80
    protocol: TCP
    targetPort: 8080
  selector:
    vm: my-vm
  healthcheck:
    probes:
    - mode: HTTP
      http:
        targetPort: 8080
        method: GET
        path: /healthz
"#;

const VM_SMTP: &str = r#"
apiVersion: network.deckhouse.io/v1alpha1
kind: ServiceWithHealthchecks
metadata:
  name: smtp
spec:
  ports:
  - port: 25
    protocol: TCP
    targetPort: 2525
  selector:
    vm: my-vm
  healthcheck:
    probes:
    - mode: TCP
      tcp:
        targetPort: 2525
"#;

/// The VM scenario (one pod, `web` over HTTP and `smtp` over TCP): list and detail views and
/// JSON, against golden files.
#[tokio::test]
async fn status_of_the_vm_scenario() {
    let (cluster, client, ns) = setup("plvm").await;
    let (ip, _) = cluster.pod_network.alloc_pod_ips().expect("ip");
    let _http = Backend::start(
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

    // Before anything exists: kubectl's note on stderr, exit 0.
    let r = swh(&cluster, &["status", "-n", &ns], None);
    ok(&r, "status in an empty namespace");
    assert_eq!(r.stdout, "");
    assert_eq!(r.stderr, format!("No resources found in {ns} namespace.\n"));

    pod(&client, &ns, "my-vm", "node-a", &[("vm", "my-vm")], &[ip]).await;
    apply_yaml(&cluster, &ns, VM_WEB);
    apply_yaml(&cluster, &ns, VM_SMTP);
    let both = set(&[ip]);
    wait_ready_set(&client, &ns, "web", &both).await;
    wait_ready_set(&client, &ns, "smtp", &both).await;
    for name in ["web", "smtp"] {
        testenv::wait_for(
            &format!("{name}: every probe Passing and ready 1/1 in status"),
            Duration::from_secs(90),
            || async {
                let v = status_json(&cluster, &ns, name)?;
                (all_probes(&v, "Passing")
                    && v.pointer("/status/ready").and_then(Value::as_str) == Some("1/1"))
                .then_some(())
            },
        )
        .await;
    }
    let ips = set(&[ip]);

    let list = swh(&cluster, &["status", "-n", &ns], None);
    ok(&list, "status list");
    println!("$ kubectl swh status -n {ns}\n{}", list.stdout);
    golden(
        "status_vm_list.txt",
        &normalise_table(&list.stdout, &ns, &ips),
    );

    let all = swh(&cluster, &["status", "-A"], None);
    ok(&all, "status -A");
    println!("$ kubectl swh status -A\n{}", all.stdout);
    assert!(all.stdout.starts_with("NAMESPACE "), "{}", all.stdout);
    assert!(
        all.stdout
            .lines()
            .any(|l| l.starts_with(&ns) && l.contains(" web ")),
        "{}",
        all.stdout
    );

    let detail = swh(&cluster, &["status", "web", "-n", &ns], None);
    ok(&detail, "status web");
    println!("$ kubectl swh status web -n {ns}\n{}", detail.stdout);
    assert!(detail.stdout.contains("✓"), "{}", detail.stdout);
    golden(
        "status_vm_web_detail.txt",
        &normalise_table(&detail.stdout, &ns, &ips),
    );

    let wide = swh(&cluster, &["status", "smtp", "-n", &ns, "-o", "wide"], None);
    ok(&wide, "status smtp -o wide");
    println!("$ kubectl swh status smtp -n {ns} -o wide\n{}", wide.stdout);
    assert!(
        wide.stdout.contains("LAST-PROBE") && wide.stdout.contains("fail 0/3"),
        "{}",
        wide.stdout
    );

    let mut json: Value = serde_json::from_str(
        &swh(&cluster, &["status", "web", "-n", &ns, "-o", "json"], None).stdout,
    )
    .expect("json");
    assert!(json.pointer("/metadata/managedFields").is_none());
    normalise_json(&mut json, &ns, &ips);
    golden(
        "status_vm_web.json",
        &(serde_json::to_string_pretty(&json).expect("json") + "\n"),
    );

    let list_json: Value =
        serde_json::from_str(&swh(&cluster, &["status", "-n", &ns, "-o", "json"], None).stdout)
            .expect("list json");
    assert_eq!(list_json["kind"], "List");
    assert_eq!(list_json["items"].as_array().map(Vec::len), Some(2));
    let yaml = swh(&cluster, &["status", "-n", &ns, "-o", "yaml"], None);
    ok(&yaml, "-o yaml");
    assert!(!yaml.stdout.contains("managedFields"));
    let names = swh(&cluster, &["status", "-n", &ns, "-o", "name"], None);
    assert_eq!(
        names.stdout,
        "servicewithhealthchecks.network.deckhouse.io/smtp\nservicewithhealthchecks.network.deckhouse.io/web\n"
    );
    let missing = swh(&cluster, &["status", "nope", "-n", &ns], None);
    assert_eq!(missing.code, 1);
    assert_eq!(
        missing.stderr,
        "Error from server (NotFound): servicewithhealthchecks.network.deckhouse.io \"nope\" not found\n"
    );
}

const FAILING: &str = r#"
apiVersion: network.deckhouse.io/v1beta1
kind: ServiceWithHealthchecks
metadata:
  name: shaky
spec:
  ports:
  - name: http
    port: 80
    targetPort: 8080
  selector:
    app: shaky
  healthcheck:
    initialDelaySeconds: 0
    periodSeconds: 1
    probes:
    - name: web
      mode: HTTP
      http:
        port: 8080
        path: /healthz
    - name: tcp
      mode: TCP
      tcp:
        port: 8080
"#;

/// A backend answering 503: the probe cell shows the error in words, the pod is not published.
#[tokio::test]
async fn status_shows_the_error_of_a_failing_probe() {
    let (cluster, client, ns) = setup("plfail").await;
    let (ip, _) = cluster.pod_network.alloc_pod_ips().expect("ip");
    let _b = Backend::start(
        backend_exe(),
        &cluster.pod_network,
        &BackendSpec {
            http: vec![SocketAddr::new(ip, 8080)],
            http_path: "/healthz".into(),
            http_status: 503,
            ..Default::default()
        },
        &cluster.work_dir,
    )
    .expect("503 backend");
    pod(
        &client,
        &ns,
        "shaky-0",
        "node-b",
        &[("app", "shaky")],
        &[ip],
    )
    .await;
    apply_yaml(&cluster, &ns, FAILING);
    let detail = testenv::wait_for(
        "web probe Failing with its error in the status view",
        Duration::from_secs(90),
        || async {
            let r = swh(&cluster, &["status", "shaky", "-n", &ns], None);
            (r.code == 0 && r.stdout.contains("✗")).then_some(r.stdout)
        },
    )
    .await;
    println!("$ kubectl swh status shaky -n {ns}\n{detail}");
    let row = detail
        .lines()
        .find(|l| l.starts_with("shaky-0"))
        .unwrap_or_else(|| panic!("no row for shaky-0:\n{detail}"));
    assert!(row.contains("✗ "), "{row}");
    assert!(row.contains("503"), "the error in words: {row}");
    assert!(row.contains("false"), "not published: {row}");
    assert!(row.contains("✓"), "the TCP probe passes: {row}");
    let header = detail.lines().next().unwrap_or_default();
    assert!(header.contains("0/1 published"), "{header}");
}

// ---------------------------------------------------------------------------------------------
// migrate
// ---------------------------------------------------------------------------------------------

fn plain_service(name: &str, app: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Service
metadata:
  name: {name}
  labels: {{team: payments}}
  annotations: {{owner: "team-a"}}
spec:
  selector:
    app: {app}
  ports:
  - name: tcp
    port: 80
    targetPort: 8080
"#
    )
}

async fn builtin_slices(client: &Client, ns: &str, svc: &str) -> Vec<EndpointSlice> {
    Api::<EndpointSlice>::namespaced(client.clone(), ns)
        .list(&ListParams::default().labels(&format!(
            "kubernetes.io/service-name={svc},endpointslice.kubernetes.io/managed-by=endpointslice-controller.k8s.io"
        )))
        .await
        .map(|l| l.items)
        .unwrap_or_default()
}

/// (ready addresses over all slices of `svc`, a one-line view of each slice and its endpoints).
async fn slice_view(client: &Client, ns: &str, svc: &str) -> Result<(usize, String), kube::Error> {
    let list = Api::<EndpointSlice>::namespaced(client.clone(), ns)
        .list(&ListParams::default().labels(&format!("kubernetes.io/service-name={svc}")))
        .await?;
    let mut ready = BTreeSet::new();
    let mut parts = Vec::new();
    for s in &list.items {
        let by = s
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("endpointslice.kubernetes.io/managed-by"))
            .cloned()
            .unwrap_or_default();
        let eps: Vec<String> = s
            .endpoints
            .iter()
            .map(|e| {
                let r = e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(false);
                if r {
                    ready.extend(e.addresses.iter().cloned());
                }
                format!("{}{}", e.addresses.join(","), if r { "+" } else { "-" })
            })
            .collect();
        parts.push(format!("[{by}: {}]", eps.join(" ")));
    }
    parts.sort();
    Ok((ready.len(), parts.join(" ")))
}

/// Three ready pods with TCP backends behind a plain Service; `migrate --apply` hands it over
/// while a watcher polling its EndpointSlices every 50 ms never sees zero ready endpoints.
#[tokio::test]
async fn live_migration_drops_no_traffic() {
    let (cluster, client, ns) = setup("plmig").await;
    let ips: Vec<IpAddr> = (0..3)
        .map(|_| cluster.pod_network.alloc_pod_ips().expect("ip").0)
        .collect();
    let _backends: Vec<Backend> = ips
        .iter()
        .map(|ip| {
            Backend::start(
                backend_exe(),
                &cluster.pod_network,
                &BackendSpec {
                    tcp: vec![SocketAddr::new(*ip, 8080)],
                    ..Default::default()
                },
                &cluster.work_dir,
            )
            .expect("tcp backend")
        })
        .collect();
    for (i, ip) in ips.iter().enumerate() {
        let node = if i % 2 == 0 { "node-a" } else { "node-b" };
        pod(
            &client,
            &ns,
            &format!("shop-{i}"),
            node,
            &[("app", "shop")],
            &[*ip],
        )
        .await;
    }
    apply_yaml(&cluster, &ns, &plain_service("shop", "shop"));
    wait_ready_set(&client, &ns, "shop", &set(&ips)).await;
    let services: Api<Service> = Api::namespaced(client.clone(), &ns);
    let before = services.get("shop").await.expect("service");
    let cluster_ip = before.spec.as_ref().and_then(|s| s.cluster_ip.clone());

    // The proposal (printed) and the dry run (would change: exit 1).
    let printed = swh(&cluster, &["migrate", "svc/shop", "-n", &ns], None);
    ok(&printed, "migrate (print)");
    assert!(
        printed.stdout.contains("# TCP connect to targetPort 8080"),
        "{}",
        printed.stdout
    );
    let dry = swh(
        &cluster,
        &["migrate", "service", "shop", "-n", &ns, "--dry-run"],
        None,
    );
    assert_eq!(
        dry.code, 1,
        "dry run would change things:\n{}{}",
        dry.stdout, dry.stderr
    );
    assert!(dry.stdout.contains("-  selector:"), "{}", dry.stdout);

    // Watcher: every 50 ms, the ready endpoints over all slices named for the Service.
    let stop = Arc::new(AtomicBool::new(false));
    let polls = Arc::new(AtomicUsize::new(0));
    let zero = Arc::new(AtomicUsize::new(0));
    let timeline = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let watcher = {
        let (client, ns, stop, polls, zero, timeline) = (
            client.clone(),
            ns.clone(),
            stop.clone(),
            polls.clone(),
            zero.clone(),
            timeline.clone(),
        );
        tokio::spawn(async move {
            let start = std::time::Instant::now();
            let mut last = String::new();
            while !stop.load(Ordering::Relaxed) {
                if let Ok(view) = slice_view(&client, &ns, "shop").await {
                    polls.fetch_add(1, Ordering::Relaxed);
                    if view.0 == 0 {
                        zero.fetch_add(1, Ordering::Relaxed);
                    }
                    if view.1 != last {
                        if let Ok(mut t) = timeline.lock() {
                            t.push(format!(
                                "{:>6}ms ready={} {}",
                                start.elapsed().as_millis(),
                                view.0,
                                view.1
                            ));
                        }
                        last = view.1;
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let r = swh_async(&["migrate", "svc/shop", "-n", &ns, "--apply"]).await;
    println!(
        "$ kubectl swh migrate svc/shop --apply\n{}{}",
        r.stdout, r.stderr
    );
    ok(&r, "migrate --apply");
    assert!(
        r.stdout
            .contains("servicewithhealthchecks.network.deckhouse.io/shop created"),
        "{}",
        r.stdout
    );
    // Keep watching while the built-in controller removes its slices.
    testenv::wait_for(
        "the built-in EndpointSlices of shop are gone",
        Duration::from_secs(60),
        || async {
            builtin_slices(&client, &ns, "shop")
                .await
                .is_empty()
                .then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    watcher.await.expect("watcher");
    let polls = polls.load(Ordering::Relaxed);
    assert!(polls > 20, "the watcher ran ({polls} polls)");
    let timeline = timeline.lock().map(|t| t.join("\n")).unwrap_or_default();
    println!("EndpointSlices of shop during the migration:\n{timeline}");
    assert_eq!(
        zero.load(Ordering::Relaxed),
        0,
        "a poll saw zero ready endpoints ({polls} polls); slices over time:\n{timeline}"
    );

    let after = services.get("shop").await.expect("service");
    let spec = after.spec.clone().unwrap_or_default();
    assert_eq!(spec.cluster_ip, cluster_ip, "ClusterIP unchanged");
    assert!(
        spec.selector.as_ref().is_none_or(BTreeMap::is_empty),
        "no selector: {:?}",
        spec.selector
    );
    assert!(
        after
            .metadata
            .owner_references
            .as_deref()
            .unwrap_or_default()
            .iter()
            .any(|o| o.kind == "ServiceWithHealthchecks" && o.name == "shop"),
        "owned by the SWH: {:?}",
        after.metadata.owner_references
    );
    assert_eq!(
        slices::ready(&client, &ns, "shop").await.expect("ready"),
        set(&ips)
    );
    // Migrating again is a no-op and the dry run says nothing would change.
    let again = swh(
        &cluster,
        &["migrate", "svc/shop", "-n", &ns, "--dry-run"],
        None,
    );
    assert_eq!(again.code, 0, "{}{}", again.stdout, again.stderr);
    let status = swh(&cluster, &["status", "shop", "-n", &ns], None);
    ok(&status, "status after migration");
    println!("$ kubectl swh status shop -n {ns}\n{}", status.stdout);
}

/// Pods that never pass: the handover cannot finish, `--apply` times out, rolls back and the
/// Service is exactly as it was.
#[tokio::test]
async fn migration_that_cannot_finish_rolls_back() {
    let (cluster, client, ns) = setup("plrb").await;
    let ips: Vec<IpAddr> = (0..2)
        .map(|_| cluster.pod_network.alloc_pod_ips().expect("ip").0)
        .collect();
    // Ready by the kubelet, but nothing listens: the proposed TCP probes never pass.
    for (i, ip) in ips.iter().enumerate() {
        pod(
            &client,
            &ns,
            &format!("stuck-{i}"),
            "node-a",
            &[("app", "stuck")],
            &[*ip],
        )
        .await;
    }
    apply_yaml(&cluster, &ns, &plain_service("stuck", "stuck"));
    wait_ready_set(&client, &ns, "stuck", &set(&ips)).await;
    let services: Api<Service> = Api::namespaced(client.clone(), &ns);
    let before = services.get("stuck").await.expect("service");

    let r = swh_async(&[
        "migrate",
        "svc/stuck",
        "-n",
        &ns,
        "--apply",
        "--timeout",
        "20s",
    ])
    .await;
    println!(
        "$ kubectl swh migrate svc/stuck --apply --timeout 20s\n{}{}",
        r.stdout, r.stderr
    );
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("rolled back"), "{}", r.stderr);

    let swhs = identity::kubectl(&cluster, &["get", "swh", "-n", &ns, "-o", "name"], None)
        .expect("get swh");
    assert_eq!(swhs.trim(), "", "the SWH is gone");
    let after = services.get("stuck").await.expect("the Service survived");
    assert_eq!(after.spec, before.spec, "spec exactly as it was");
    assert_eq!(after.metadata.labels, before.metadata.labels);
    assert_eq!(after.metadata.annotations, before.metadata.annotations);
    assert_eq!(
        after.metadata.owner_references.unwrap_or_default(),
        before.metadata.owner_references.unwrap_or_default()
    );
    assert_eq!(
        slices::ready(&client, &ns, "stuck").await.expect("ready"),
        set(&ips)
    );
    let agent_slices = Api::<EndpointSlice>::namespaced(client.clone(), &ns)
        .list(&ListParams::default().labels(
            "kubernetes.io/service-name=stuck,endpointslice.kubernetes.io/managed-by=swh-agent.network.deckhouse.io",
        ))
        .await
        .expect("slices");
    assert!(agent_slices.items.is_empty(), "no agent slices left");
}

const MANIFESTS: &str = r#"# the shop, as deployed today
apiVersion: v1
kind: ConfigMap
metadata:
  name: shop-config
data:
  mode: "fast"   # kept as written
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: shop
spec:
  selector:
    matchLabels: {app: shop}
  template:
    metadata:
      labels: {app: shop}
    spec:
      containers:
      - name: app
        image: registry.invalid/shop:1
        ports:
        - {name: http, containerPort: 8080}
        - {name: grpc, containerPort: 9090}
        readinessProbe:
          httpGet: {path: /ready, port: http}
          periodSeconds: 5
---
apiVersion: v1
kind: Service
metadata:
  name: shop
  labels: {app: shop}
spec:
  selector: {app: shop}
  sessionAffinity: ClientIP
  ports:
  - {name: http, port: 80, targetPort: http}
  - {name: grpc, port: 9090, targetPort: 9090}
---
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Service
  metadata: {name: shop-admin}
  spec:
    selector: {app: shop-admin}
    ports: [{name: admin, port: 8443}]
"#;

/// `migrate -f` works offline; its output is accepted by the real API server and webhook
/// (`kubectl apply --dry-run=server`), in both versions.
#[tokio::test]
async fn offline_file_round_trip_is_accepted_by_the_server() {
    let (cluster, _client, ns) = setup("plfile").await;
    let dir = cluster.work_dir.join(&ns);
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("shop.yaml");
    std::fs::write(&file, MANIFESTS).expect("write manifests");
    for version in ["v1beta1", "v1alpha1"] {
        let out = swh(
            &cluster,
            &[
                "migrate",
                "-f",
                &file.display().to_string(),
                "--api-version",
                version,
            ],
            None,
        );
        ok(&out, "migrate -f");
        assert!(
            out.stdout
                .starts_with("# the shop, as deployed today\napiVersion: v1\nkind: ConfigMap")
        );
        assert!(
            out.stdout
                .contains("  mode: \"fast\"   # kept as written\n")
        );
        assert_eq!(
            out.stdout.matches("kind: ServiceWithHealthchecks").count(),
            2
        );
        assert!(
            out.stdout
                .contains("# from readinessProbe.httpGet of container app in Deployment/shop"),
            "{}",
            out.stdout
        );
        let applied = identity::kubectl(
            &cluster,
            &["apply", "--dry-run=server", "-n", &ns, "-f", "-"],
            Some(&out.stdout),
        )
        .unwrap_or_else(|e| panic!("server rejected the {version} output: {e}\n{}", out.stdout));
        println!("{version}:\n{applied}");
        assert!(
            applied.contains(
                "servicewithhealthchecks.network.deckhouse.io/shop created (server dry run)"
            ),
            "{applied}"
        );
        assert!(
            applied.contains(
                "servicewithhealthchecks.network.deckhouse.io/shop-admin created (server dry run)"
            ),
            "{applied}"
        );
    }
    // stdin works too; an ExternalName Service is an error naming it and nothing is printed.
    let bad = format!(
        "{MANIFESTS}---\napiVersion: v1\nkind: Service\nmetadata: {{name: legacy}}\nspec: {{type: ExternalName, externalName: db.example.com}}\n"
    );
    let r = swh(&cluster, &["migrate", "-f", "-"], Some(&bad));
    assert_eq!(r.code, 1);
    assert_eq!(r.stdout, "", "nothing half-written");
    assert!(
        r.stderr.contains("document 5") && r.stderr.contains("legacy is of type ExternalName"),
        "{}",
        r.stderr
    );
}
