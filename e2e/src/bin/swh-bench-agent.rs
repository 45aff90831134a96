//! swh-bench-agent: the agent's quality bars measured on a private local cluster (not part of
//! `make test`). Prints figures; see e2e/BENCHMARKS.md for recorded runs.
//!
//! 1. Starts its own cluster (tag `bench`, transfer net 10.250.7.0/30, pods 10.251.0.0/16), the
//!    webhook with the CRDs, RBAC, optionally the controller, and ONE agent for `node-a` from
//!    the given (release) binary under the `swh-agent` ServiceAccount, with JSON logs.
//! 2. Floor: raw TCP connect+close per second on one pinned core (`taskset`, a current-thread
//!    Tokio runtime in a child process of this binary) against the same backend.
//! 3. Scale: N pods (default 2,000) on node-a, their IPv4 addresses added with one `ip -batch`,
//!    served by one `swh-backend` on 0.0.0.0 inside the pod namespace; one v1beta1 SWH with a
//!    TCP and an HTTP probe at 1 s. After all are published ready: agent CPU (utime+stime
//!    deltas), RSS, probes/s and scheduling lag from `/metrics` over a window.
//! 4. Detection latency: one pod, an HTTP probe (period 1 s, thresholds 1), backend stopped and
//!    started; a kube watch on the slices records each change's arrival time; the agent's JSON
//!    log line `probe state changed` gives the wall-clock time of the deciding result.
//!
//! `cargo run --release -p swh-e2e --bin swh-bench-agent -- --k8s-bin-dir DIR \
//!  --agent-bin target/release/swh-agent`

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, anyhow, bail};
use clap::{Parser, Subcommand};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::watcher;
use kube::{Api, Client};
use swh_e2e::backend::{Backend, BackendSpec};
use swh_e2e::controlplane::{ClusterOptions, LocalCluster};
use swh_e2e::objects::{self, PodSpecLite};
use swh_e2e::{identity, process, slices, stack, testenv};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const NODE: &str = "node-a";
const SCALE_NS: &str = "bench-scale";
const FLIP_NS: &str = "bench-flip";
const TCP_PORT: u16 = 7000;
const HTTP_PORT: u16 = 8080;
/// The flip pod's port: not served by the scale backend (which listens on 0.0.0.0).
const FLIP_PORT: u16 = 9090;

#[derive(Parser, Debug)]
#[command(
    name = "swh-bench-agent",
    about = "Agent benchmark: CPU/RSS at scale, probes/s vs the raw connect floor, detection latency"
)]
struct Args {
    #[command(subcommand)]
    cmd: Option<Sub>,
    /// Folder with kube-apiserver, kube-controller-manager, kubectl, etcd
    /// (the output of e2e/controlplane/build.sh).
    #[arg(long)]
    k8s_bin_dir: Option<PathBuf>,
    /// The agent binary to measure (build it with `cargo build --release -p swh-agent`).
    #[arg(long, default_value = "target/release/swh-agent")]
    agent_bin: PathBuf,
    /// swh-webhook binary (default: the workspace's debug build).
    #[arg(long)]
    webhook_bin: Option<PathBuf>,
    /// swh-controller binary (default: the workspace's debug build).
    #[arg(long)]
    controller_bin: Option<PathBuf>,
    /// Do not start the controller (the agent does not need it).
    #[arg(long)]
    no_controller: bool,
    /// swh-backend binary (default: next to this binary, else the debug build).
    #[arg(long)]
    backend_bin: Option<PathBuf>,
    /// Pods on node-a for the scale phase.
    #[arg(long, default_value_t = 2000)]
    pods: usize,
    /// Measurement window of the scale phase, seconds.
    #[arg(long, default_value_t = 60)]
    window: u64,
    /// Seconds of each floor measurement (sequential, then concurrent).
    #[arg(long, default_value_t = 5.0)]
    floor_secs: f64,
    /// CPU the floor loop is pinned to.
    #[arg(long, default_value_t = 1)]
    floor_cpu: u32,
    /// Connections in flight in the concurrent floor measurement.
    #[arg(long, default_value_t = 64)]
    floor_inflight: usize,
    /// Backend transitions (each stop or start is one) measured while the scale SWH runs.
    #[arg(long, default_value_t = 100)]
    flips: usize,
    /// Backend transitions measured after the scale SWH is deleted (agent otherwise idle).
    #[arg(long, default_value_t = 0)]
    idle_flips: usize,
    /// Extra environment for the agent, KEY=VALUE (repeatable), e.g. MALLOC_ARENA_MAX=2.
    #[arg(long, value_parser = parse_kv)]
    agent_env: Vec<(String, String)>,
    /// Skip the scale phase (detection latency only).
    #[arg(long)]
    skip_scale: bool,
    /// Copy the components' logs and the API audit log here before the cluster is removed.
    #[arg(long)]
    keep_logs: Option<PathBuf>,
    /// Work directory (default: a fresh folder under the system temp dir; removed at the end).
    #[arg(long)]
    work_dir: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum Sub {
    /// Internal: the raw connect floor, run pinned to one core by the parent.
    #[command(hide = true)]
    Floor {
        /// File with one socket address a line.
        #[arg(long)]
        targets: PathBuf,
        #[arg(long)]
        secs: f64,
        #[arg(long)]
        inflight: usize,
    },
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("{s}: expected KEY=VALUE"))
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(Sub::Floor {
        targets,
        secs,
        inflight,
    }) = &args.cmd
    {
        return floor_main(targets, *secs, *inflight);
    }
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("tokio runtime")?;
    rt.block_on(bench(args))
}

// -------------------------------------------------------------------------------------------
// Orchestration
// -------------------------------------------------------------------------------------------

struct Bins {
    agent: PathBuf,
    webhook: PathBuf,
    controller: Option<PathBuf>,
    backend: PathBuf,
}

fn resolve_bins(args: &Args) -> anyhow::Result<Bins> {
    let abs = |p: &Path| -> anyhow::Result<PathBuf> {
        std::fs::canonicalize(p).with_context(|| format!("{} not found", p.display()))
    };
    let agent = abs(&args.agent_bin)
        .context("the agent binary (build it: cargo build --release -p swh-agent)")?;
    let debug = stack::component_bin_dir();
    let webhook = abs(&args
        .webhook_bin
        .clone()
        .unwrap_or_else(|| debug.join("swh-webhook")))
    .context("the webhook binary (cargo build -p swh-webhook)")?;
    let controller = if args.no_controller {
        None
    } else {
        Some(
            abs(&args
                .controller_bin
                .clone()
                .unwrap_or_else(|| debug.join("swh-controller")))
            .context("the controller binary (cargo build -p swh-controller, or --no-controller)")?,
        )
    };
    let backend = match &args.backend_bin {
        Some(p) => abs(p)?,
        None => {
            let sibling = std::env::current_exe()
                .ok()
                .and_then(|e| e.parent().map(|d| d.join("swh-backend")))
                .filter(|p| p.exists());
            match sibling {
                Some(p) => p,
                None => abs(&debug.join("swh-backend")).context(
                    "swh-backend (cargo build --release -p swh-e2e, or pass --backend-bin)",
                )?,
            }
        }
    };
    Ok(Bins {
        agent,
        webhook,
        controller,
        backend,
    })
}

async fn bench(args: Args) -> anyhow::Result<()> {
    let k8s = args.k8s_bin_dir.clone().ok_or_else(|| {
        anyhow!("--k8s-bin-dir is required (e2e/controlplane/build.sh prints it)")
    })?;
    let bins = resolve_bins(&args)?;
    let work_dir = args.work_dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("swh-bench-agent-{}", std::process::id()))
    });
    let opts = ClusterOptions {
        bin_dir: std::fs::canonicalize(&k8s).with_context(|| format!("{}", k8s.display()))?,
        work_dir,
        tag: "bench".into(),
        link: 7,
        pod_range: 251,
        service_range: 96,
        real_nodes: None,
    };
    eprintln!(
        "== starting a private cluster in {}",
        opts.work_dir.display()
    );
    let mut cluster = tokio::task::spawn_blocking(move || LocalCluster::start(&opts))
        .await
        .context("cluster start task")?
        .context("starting the local cluster")?;
    eprintln!("   ready in {:.1}s", cluster.startup_secs);
    let result = tokio::select! {
        r = run(&mut cluster, &args, &bins) => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
    };
    if let Some(dir) = &args.keep_logs
        && let Err(e) = keep_logs(&cluster.work_dir, dir)
    {
        eprintln!("   keeping logs: {e:#}");
    }
    eprintln!("== stopping the cluster");
    tokio::task::block_in_place(|| cluster.stop());
    result
}

fn keep_logs(work: &Path, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    for e in std::fs::read_dir(work)? {
        let p = e?.path();
        if p.extension().is_some_and(|x| x == "log")
            && let Some(name) = p.file_name()
        {
            std::fs::copy(&p, dir.join(name))?;
        }
    }
    eprintln!("   logs kept in {}", dir.display());
    Ok(())
}

/// Everything measured; printed at the end.
#[derive(Default, Debug)]
struct Report {
    conditions: Vec<(String, String)>,
    floor: Option<FloorResult>,
    scale: Option<ScaleResult>,
    flips_load: Option<FlipResult>,
    flips_idle: Option<FlipResult>,
}

async fn run(cluster: &mut LocalCluster, args: &Args, bins: &Bins) -> anyhow::Result<()> {
    let mut report = Report::default();
    let result = phases(cluster, args, bins, &mut report).await;
    if let Err(e) = &result {
        report
            .conditions
            .push(("ERROR (figures below are partial)".into(), format!("{e:#}")));
    }
    report.conditions.push(("loadavg at end".into(), loadavg()));
    print_report(&report, args);
    result
}

async fn phases(
    cluster: &mut LocalCluster,
    args: &Args,
    bins: &Bins,
    report: &mut Report,
) -> anyhow::Result<()> {
    report.conditions.push(("date".into(), utc_now()));
    report.conditions.push((
        "cpus".into(),
        std::thread::available_parallelism()?.to_string(),
    ));
    report
        .conditions
        .push(("loadavg at start".into(), loadavg()));
    report
        .conditions
        .push(("agent binary".into(), bins.agent.display().to_string()));

    // --- components
    eprintln!("== webhook + CRDs");
    let webhook = bins.webhook.clone();
    let installed = tokio::task::block_in_place(|| {
        swh_e2e::webhook_install::install(cluster, &webhook).map_err(|e| anyhow!("{e}"))
    });
    if let Err(e) = installed {
        eprintln!("   webhook install failed ({e}); applying the CRD without conversion webhook");
        tokio::task::block_in_place(|| install_crd_plain(cluster))?;
    }
    tokio::task::block_in_place(|| -> anyhow::Result<()> {
        identity::apply(cluster, &testenv::workspace_root().join("config/rbac"))?;
        stack::ensure_node(cluster, NODE)?;
        Ok(())
    })?;
    if let Some(exe) = &bins.controller {
        eprintln!("== controller");
        let env = [
            ("POD_NAME", "swh-controller-0".to_string()),
            ("POD_NAMESPACE", stack::SYSTEM_NAMESPACE.to_string()),
        ];
        match start_component(
            cluster,
            "swh-controller-0",
            exe,
            "swh-controller",
            &env,
            &[],
            Duration::from_secs(30),
        )
        .await
        {
            Ok(_) => report
                .conditions
                .push(("controller".into(), exe.display().to_string())),
            Err(e) => {
                eprintln!("   controller did not start ({e:#}); going on without it");
                report.conditions.push((
                    "controller".into(),
                    format!(
                        "{} (started, /readyz not 200 within 30 s; left running)",
                        exe.display()
                    ),
                ));
            }
        }
    } else {
        report
            .conditions
            .push(("controller".into(), "not started".into()));
    }
    eprintln!("== agent for {NODE}: {}", bins.agent.display());
    let mut env = vec![("NODE_NAME", NODE.to_string()), ("RUST_LOG", "info".into())];
    for (k, v) in &args.agent_env {
        env.push((k.as_str(), v.clone()));
        report
            .conditions
            .push(("agent env".into(), format!("{k}={v}")));
    }
    let agent = start_component(
        cluster,
        "swh-agent-node-a",
        &bins.agent,
        "swh-agent",
        &env,
        &["--log-format".into(), "json".into()],
        Duration::from_secs(90),
    )
    .await?;
    let client = testenv::admin_client(cluster).await?;

    if !args.skip_scale {
        let (floor, scale) = scale_phase(cluster, &client, args, bins, &agent).await?;
        report.floor = floor;
        report.scale = Some(scale);
    }
    let mut flip = FlipSetup::new(cluster, &client, bins).await?;
    if args.flips > 0 {
        let label = if args.skip_scale {
            "agent otherwise idle"
        } else {
            "while the scale SWH runs"
        };
        eprintln!("== detection latency: {} transitions ({label})", args.flips);
        report.flips_load = Some(flip.measure(&client, &agent, args.flips, label).await?);
    }
    if args.idle_flips > 0 {
        if !args.skip_scale {
            eprintln!("== deleting the scale SWH");
            tokio::task::block_in_place(|| {
                identity::kubectl(
                    cluster,
                    &["delete", "-n", SCALE_NS, "servicewithhealthchecks", "scale"],
                    None,
                )
            })?;
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
        eprintln!(
            "== detection latency: {} transitions (idle)",
            args.idle_flips
        );
        report.flips_idle = Some(
            flip.measure(&client, &agent, args.idle_flips, "agent otherwise idle")
                .await?,
        );
    }
    Ok(())
}

/// A component under a ServiceAccount, recorded in the cluster (so `stop` ends it).
struct Started {
    pid: u32,
    admin_port: u16,
    log: PathBuf,
}

async fn start_component(
    cluster: &mut LocalCluster,
    name: &str,
    exe: &Path,
    sa: &str,
    env: &[(&str, String)],
    extra: &[String],
    limit: Duration,
) -> anyhow::Result<Started> {
    let kubeconfig = tokio::task::block_in_place(|| {
        identity::service_account_kubeconfig(cluster, stack::SYSTEM_NAMESPACE, sa)
    })?;
    let port = process::free_port()?;
    let log = cluster.work_dir.join(format!("{name}.log"));
    let mut cmd = Command::new(exe);
    cmd.arg(format!("--admin-listen=127.0.0.1:{port}"))
        .args(extra)
        .env("KUBECONFIG", &kubeconfig);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = process::spawn_logged(name, cmd, &log)?;
    let pid = child.id();
    cluster.adopt_process(name, child, log.clone())?;
    let start = Instant::now();
    loop {
        if let Ok((200, _)) = http_get(port, "/readyz").await {
            break;
        }
        if !process::alive(pid) {
            bail!("{name} exited during start-up:\n{}", tail(&log, 30));
        }
        if start.elapsed() > limit {
            bail!("{name} not ready within {limit:?}:\n{}", tail(&log, 30));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(Started {
        pid,
        admin_port: port,
        log,
    })
}

/// The CRD as in config/crd, with conversion `None` (v1beta1 objects need no conversion).
fn install_crd_plain(cluster: &LocalCluster) -> anyhow::Result<()> {
    let path = testenv::workspace_root().join("config/crd/servicewithhealthchecks.yaml");
    let text = std::fs::read_to_string(&path).with_context(|| format!("{}", path.display()))?;
    let mut crd: serde_json::Value = serde_yaml::from_str(&text)?;
    crd["spec"]["conversion"] = serde_json::json!({"strategy": "None"});
    let json = serde_json::to_string(&crd)?;
    identity::kubectl(
        cluster,
        &["apply", "--server-side", "--force-conflicts", "-f", "-"],
        Some(&json),
    )?;
    identity::kubectl(
        cluster,
        &[
            "wait",
            "--for=condition=Established",
            "crd/servicewithhealthchecks.network.deckhouse.io",
            "--timeout=60s",
        ],
        None,
    )?;
    Ok(())
}

// -------------------------------------------------------------------------------------------
// Scale phase
// -------------------------------------------------------------------------------------------

#[derive(Debug)]
struct ScaleResult {
    pods: usize,
    setup_addrs_secs: f64,
    setup_pods_secs: f64,
    ready_secs: f64,
    window_secs: f64,
    agent_cores: f64,
    agent_rss_max_kib: u64,
    agent_rss_end_kib: u64,
    probes_per_sec: f64,
    probe_failures: f64,
    by_mode: BTreeMap<String, f64>,
    lag_p50: Option<f64>,
    lag_p99: Option<f64>,
    lag_max_bucket: Option<f64>,
    probe_p99: BTreeMap<String, f64>,
    slice_writes: f64,
    status_writes: f64,
    transitions: f64,
    backend_cores: f64,
    others: Vec<(String, f64)>,
    machine_busy_cores: f64,
}

fn scale_ips(pod_range: u8, n: usize) -> Vec<Ipv4Addr> {
    // Third octet from 10 up: the shared allocator (alloc_pod_ips) uses 0.. and stays far below.
    (0..n)
        .map(|i| {
            let hi = u8::try_from(10 + i / 250).unwrap_or(255);
            let lo = u8::try_from(i % 250 + 2).unwrap_or(255);
            Ipv4Addr::new(10, pod_range, hi, lo)
        })
        .collect()
}

async fn scale_phase(
    cluster: &mut LocalCluster,
    client: &Client,
    args: &Args,
    bins: &Bins,
    agent: &Started,
) -> anyhow::Result<(Option<FloorResult>, ScaleResult)> {
    let n = args.pods;
    if n > 250 * 200 {
        bail!("--pods {n}: at most 50000");
    }
    let ips = scale_ips(cluster.pod_network.pod_range, n);

    // Addresses: one `ip -batch` inside the namespace.
    eprintln!("== scale: adding {n} addresses with ip -batch");
    let t = Instant::now();
    let batch = cluster.work_dir.join("scale-addrs.batch");
    let text: String = ips
        .iter()
        .map(|ip| format!("address add {ip}/32 dev lo\n"))
        .collect();
    std::fs::write(&batch, text)?;
    let out = cluster
        .pod_network
        .command("ip")
        .arg("-batch")
        .arg(&batch)
        .output()?;
    if !out.status.success() {
        bail!("ip -batch: {}", String::from_utf8_lossy(&out.stderr));
    }
    let setup_addrs_secs = t.elapsed().as_secs_f64();

    // One backend on 0.0.0.0 inside the namespace answers on every pod address.
    let log = cluster.work_dir.join("backend-scale.log");
    let mut cmd = cluster.pod_network.command(&bins.backend);
    cmd.args([
        "--tcp",
        &format!("0.0.0.0:{TCP_PORT}"),
        "--http",
        &format!("0.0.0.0:{HTTP_PORT}"),
    ]);
    let child = process::spawn_logged("swh-backend-scale", cmd, &log)?;
    let backend_pid = child.id();
    cluster.adopt_process("swh-backend-scale", child, log.clone())?;
    let probe_addrs = [
        SocketAddr::new(IpAddr::V4(ips[0]), TCP_PORT),
        SocketAddr::new(IpAddr::V4(ips[n - 1]), HTTP_PORT),
    ];
    let t = Instant::now();
    for a in probe_addrs {
        while tokio::net::TcpStream::connect(a).await.is_err() {
            if t.elapsed() > Duration::from_secs(20) || !process::alive(backend_pid) {
                bail!("scale backend not listening on {a}:\n{}", tail(&log, 20));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    // Floor first, while the agent is idle.
    let targets: Vec<SocketAddr> = ips
        .iter()
        .map(|ip| SocketAddr::new(IpAddr::V4(*ip), TCP_PORT))
        .collect();
    let floor = match run_floor(cluster, args, &targets).await {
        Ok(f) => Some(f),
        Err(e) => {
            eprintln!("   floor measurement failed: {e:#}");
            None
        }
    };

    // Pods, bounded concurrency.
    eprintln!("== scale: creating {n} pods on {NODE}");
    objects::ensure_namespace(client, SCALE_NS).await?;
    let t = Instant::now();
    futures::stream::iter(ips.iter().enumerate())
        .map(|(i, ip)| {
            let client = client.clone();
            let ip = IpAddr::V4(*ip);
            async move {
                let name = format!("p{i:05}");
                let spec = PodSpecLite {
                    namespace: SCALE_NS.into(),
                    name: name.clone(),
                    node: NODE.into(),
                    labels: BTreeMap::from([("app".to_string(), "bench-scale".to_string())]),
                    ports: vec![],
                };
                objects::create_pod(&client, &spec)
                    .await
                    .with_context(|| format!("create pod {name}"))?;
                objects::set_pod_status(&client, SCALE_NS, &name, &[ip], true)
                    .await
                    .with_context(|| format!("status of pod {name}"))?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<()>>()
        .await?;
    let setup_pods_secs = t.elapsed().as_secs_f64();
    eprintln!("   {setup_pods_secs:.1}s");

    eprintln!("== scale: SWH with a TCP and an HTTP probe, period 1 s");
    let swh = format!(
        r#"apiVersion: network.deckhouse.io/v1beta1
kind: ServiceWithHealthchecks
metadata:
  name: scale
  namespace: {SCALE_NS}
spec:
  ports:
  - name: http
    port: 80
    protocol: TCP
    targetPort: {HTTP_PORT}
  selector:
    app: bench-scale
  healthcheck:
    periodSeconds: 1
    initialDelaySeconds: 0
    probes:
    - name: tcp
      mode: TCP
      tcp:
        port: {TCP_PORT}
    - name: http
      mode: HTTP
      http:
        port: {HTTP_PORT}
        path: /healthz
"#
    );
    let t = Instant::now();
    tokio::task::block_in_place(|| identity::kubectl(cluster, &["apply", "-f", "-"], Some(&swh)))?;
    let mut last = 0;
    loop {
        let ready = slices::ready(client, SCALE_NS, "scale")
            .await
            .map(|s| s.len())
            .unwrap_or(0);
        if ready != last {
            eprintln!(
                "   {ready}/{n} ready after {:.1}s",
                t.elapsed().as_secs_f64()
            );
            last = ready;
        }
        if ready >= n {
            break;
        }
        if !process::alive(agent.pid) {
            bail!("the agent exited:\n{}", tail(&agent.log, 30));
        }
        if t.elapsed() > Duration::from_secs(300) {
            bail!("only {ready}/{n} ready after 300 s");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let ready_secs = t.elapsed().as_secs_f64();
    // Let start-up writes (status of 2,000 entries) settle before the window.
    tokio::time::sleep(Duration::from_secs(5)).await;

    eprintln!("== scale: measuring for {} s", args.window);
    let pids: Vec<(String, u32)> = cluster
        .processes
        .iter()
        .map(|p| (p.name.clone(), p.pid))
        .collect();
    let m0 = metrics(agent.admin_port).await?;
    let cpu0: HashMap<u32, u64> = pids
        .iter()
        .filter_map(|(_, p)| cpu_ticks(*p).map(|t| (*p, t)))
        .collect();
    let machine0 = machine_ticks();
    let t0 = Instant::now();
    let mut rss_max = 0;
    while t0.elapsed() < Duration::from_secs(args.window) {
        rss_max = rss_max.max(rss_kib(agent.pid).unwrap_or(0));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let cpu1: HashMap<u32, u64> = pids
        .iter()
        .filter_map(|(_, p)| cpu_ticks(*p).map(|t| (*p, t)))
        .collect();
    let machine1 = machine_ticks();
    let wall = t0.elapsed().as_secs_f64();
    let m1 = metrics(agent.admin_port).await?;
    let rss_end = rss_kib(agent.pid).unwrap_or(0);
    rss_max = rss_max.max(rss_end);
    let hz = clock_ticks();
    let cores = |pid: u32| -> f64 {
        match (cpu0.get(&pid), cpu1.get(&pid)) {
            (Some(a), Some(b)) => b.saturating_sub(*a) as f64 / hz / wall,
            _ => f64::NAN,
        }
    };
    let d = |name: &str| delta(&m0, &m1, name);
    let mut by_mode = BTreeMap::new();
    let mut failures = 0.0;
    let mut total = 0.0;
    for (k, v) in &m1 {
        if let Some(labels) = k.strip_prefix("swh_agent_probe_results_total{") {
            let dv = v - m0.get(k).copied().unwrap_or(0.0);
            total += dv;
            let mode = label(labels, "mode").unwrap_or_default();
            *by_mode.entry(mode).or_insert(0.0) += dv / wall;
            if label(labels, "result").as_deref() == Some("failure") {
                failures += dv;
            }
        }
    }
    let lag = histogram_delta(&m0, &m1, "swh_agent_scheduling_lag_seconds", None);
    let mut probe_p99 = BTreeMap::new();
    for mode in by_mode.keys() {
        let h = histogram_delta(
            &m0,
            &m1,
            "swh_agent_probe_duration_seconds",
            Some(&format!("mode=\"{mode}\",result=\"success\"")),
        );
        if let Some(q) = quantile(&h, 0.99) {
            probe_p99.insert(mode.clone(), q);
        }
    }
    let others = pids
        .iter()
        .filter(|(_, p)| *p != agent.pid && *p != backend_pid)
        .map(|(name, p)| (name.clone(), cores(*p)))
        .collect();
    let machine_busy_cores = match (machine0, machine1) {
        (Some((b0, _)), Some((b1, _))) => b1.saturating_sub(b0) as f64 / hz / wall,
        _ => f64::NAN,
    };
    Ok((
        floor,
        ScaleResult {
            pods: n,
            setup_addrs_secs,
            setup_pods_secs,
            ready_secs,
            window_secs: wall,
            agent_cores: cores(agent.pid),
            agent_rss_max_kib: rss_max,
            agent_rss_end_kib: rss_end,
            probes_per_sec: total / wall,
            probe_failures: failures,
            by_mode,
            lag_p50: quantile(&lag, 0.50),
            lag_p99: quantile(&lag, 0.99),
            lag_max_bucket: max_bucket(&lag),
            probe_p99,
            slice_writes: d("swh_agent_slice_writes_total"),
            status_writes: d("swh_agent_status_writes_total"),
            transitions: d("swh_agent_probe_transitions_total"),
            backend_cores: cores(backend_pid),
            others,
            machine_busy_cores,
        },
    ))
}

// -------------------------------------------------------------------------------------------
// Floor: raw connect+close on one core
// -------------------------------------------------------------------------------------------

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct FloorResult {
    cpu: u32,
    sequential_per_sec: f64,
    sequential_cores: f64,
    sequential_errors: u64,
    concurrent_per_sec: f64,
    concurrent_cores: f64,
    concurrent_errors: u64,
    inflight: usize,
}

async fn run_floor(
    cluster: &LocalCluster,
    args: &Args,
    targets: &[SocketAddr],
) -> anyhow::Result<FloorResult> {
    eprintln!(
        "== floor: connect+close, one core (cpu {}), {} s sequential + {} s with {} in flight",
        args.floor_cpu, args.floor_secs, args.floor_secs, args.floor_inflight
    );
    let file = cluster.work_dir.join("floor-targets");
    let text: String = targets.iter().map(|t| format!("{t}\n")).collect();
    std::fs::write(&file, text)?;
    let exe = std::env::current_exe()?;
    let out = tokio::process::Command::new("taskset")
        .args(["-c", &args.floor_cpu.to_string()])
        .arg(exe)
        .arg("floor")
        .arg("--targets")
        .arg(&file)
        .args([
            "--secs",
            &args.floor_secs.to_string(),
            "--inflight",
            &args.floor_inflight.to_string(),
        ])
        .output()
        .await?;
    if !out.status.success() {
        bail!("floor: {}", String::from_utf8_lossy(&out.stderr));
    }
    let mut r: FloorResult = serde_json::from_slice(&out.stdout).context("floor output")?;
    r.cpu = args.floor_cpu;
    Ok(r)
}

/// The child side: a current-thread runtime on the core `taskset` pinned us to.
fn floor_main(targets: &Path, secs: f64, inflight: usize) -> anyhow::Result<()> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    let targets: Arc<Vec<SocketAddr>> = Arc::new(
        std::fs::read_to_string(targets)?
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect(),
    );
    if targets.is_empty() {
        bail!("no targets");
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let hz = clock_ticks();
    let me = std::process::id();
    let dur = Duration::from_secs_f64(secs);
    let r = rt.block_on(async move {
        let mut r = FloorResult::default();
        // Sequential: one connection at a time.
        let c0 = cpu_ticks(me).unwrap_or(0);
        let t0 = Instant::now();
        let (mut ok, mut err, mut i) = (0u64, 0u64, 0usize);
        while t0.elapsed() < dur {
            match tokio::net::TcpStream::connect(targets[i % targets.len()]).await {
                Ok(s) => {
                    drop(s);
                    ok += 1;
                }
                Err(_) => err += 1,
            }
            i += 1;
        }
        let wall = t0.elapsed().as_secs_f64();
        r.sequential_per_sec = ok as f64 / wall;
        r.sequential_errors = err;
        r.sequential_cores = cpu_ticks(me).unwrap_or(0).saturating_sub(c0) as f64 / hz / wall;

        // Concurrent: `inflight` loops on the same thread.
        let ok = Arc::new(AtomicU64::new(0));
        let err = Arc::new(AtomicU64::new(0));
        let next = Arc::new(AtomicU64::new(0));
        let c0 = cpu_ticks(me).unwrap_or(0);
        let t0 = Instant::now();
        let deadline = t0 + dur;
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..inflight.max(1) {
            let (ok, err, next, targets) = (ok.clone(), err.clone(), next.clone(), targets.clone());
            set.spawn(async move {
                while Instant::now() < deadline {
                    let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                    match tokio::net::TcpStream::connect(targets[i % targets.len()]).await {
                        Ok(s) => {
                            drop(s);
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(_) => {
                            err.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            });
        }
        while set.join_next().await.is_some() {}
        let wall = t0.elapsed().as_secs_f64();
        r.concurrent_per_sec = ok.load(Ordering::Relaxed) as f64 / wall;
        r.concurrent_errors = err.load(Ordering::Relaxed);
        r.concurrent_cores = cpu_ticks(me).unwrap_or(0).saturating_sub(c0) as f64 / hz / wall;
        r.inflight = inflight.max(1);
        r
    });
    println!("{}", serde_json::to_string(&r)?);
    Ok(())
}

// -------------------------------------------------------------------------------------------
// Detection latency
// -------------------------------------------------------------------------------------------

#[derive(Debug)]
struct FlipResult {
    label: String,
    /// Deciding probe (agent log) → slice change at the watcher.
    decision_to_watch: Vec<f64>,
    /// Backend stopped/started → slice change at the watcher.
    action_to_watch: Vec<f64>,
    unmatched: usize,
    transitions: usize,
}

/// One ready-state change of the flip pod's address, as the watcher saw it.
#[derive(Debug, Clone, Copy)]
struct SliceChange {
    at: SystemTime,
    ready: bool,
}

struct FlipSetup {
    backend: Backend,
    rx: tokio::sync::mpsc::UnboundedReceiver<SliceChange>,
    ready: bool,
    rng: u64,
    _watch: tokio::task::JoinHandle<()>,
}

impl Drop for FlipSetup {
    fn drop(&mut self) {
        self._watch.abort();
    }
}

impl FlipSetup {
    async fn new(cluster: &LocalCluster, client: &Client, bins: &Bins) -> anyhow::Result<Self> {
        objects::ensure_namespace(client, FLIP_NS).await?;
        let (ip, _) = cluster.pod_network.alloc_pod_ips()?;
        let backend = tokio::task::block_in_place(|| {
            Backend::start(
                &bins.backend,
                &cluster.pod_network,
                &BackendSpec {
                    http: vec![SocketAddr::new(ip, FLIP_PORT)],
                    http_path: "/healthz".into(),
                    http_status: 200,
                    ..Default::default()
                },
                &cluster.work_dir,
            )
        })?;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let watch = tokio::spawn(watch_address(client.clone(), ip.to_string(), tx));
        objects::create_pod(
            client,
            &PodSpecLite {
                namespace: FLIP_NS.into(),
                name: "flip-0".into(),
                node: NODE.into(),
                labels: BTreeMap::from([("app".to_string(), "bench-flip".to_string())]),
                ports: vec![],
            },
        )
        .await?;
        objects::set_pod_status(client, FLIP_NS, "flip-0", &[ip], true).await?;
        let swh = format!(
            r#"apiVersion: network.deckhouse.io/v1beta1
kind: ServiceWithHealthchecks
metadata:
  name: flip
  namespace: {FLIP_NS}
spec:
  ports:
  - name: http
    port: 80
    protocol: TCP
    targetPort: {FLIP_PORT}
  selector:
    app: bench-flip
  healthcheck:
    periodSeconds: 1
    initialDelaySeconds: 0
    probes:
    - name: http
      mode: HTTP
      timeoutSeconds: 1
      successThreshold: 1
      failureThreshold: 1
      http:
        port: {FLIP_PORT}
        path: /healthz
"#
        );
        tokio::task::block_in_place(|| {
            identity::kubectl(cluster, &["apply", "-f", "-"], Some(&swh))
        })?;
        // Initially published ready.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, rx.recv()).await {
                Ok(Some(c)) if c.ready => break,
                Ok(Some(_)) => {}
                Ok(None) => bail!("slice watcher ended"),
                Err(_) => bail!("flip pod not published ready within 60 s"),
            }
        }
        let rng = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
            | 1;
        Ok(FlipSetup {
            backend,
            rx,
            ready: true,
            rng,
            _watch: watch,
        })
    }

    fn jitter(&mut self, max_ms: u64) -> Duration {
        // xorshift64
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        Duration::from_millis(self.rng % max_ms.max(1))
    }

    async fn measure(
        &mut self,
        _client: &Client,
        agent: &Started,
        n: usize,
        label: &str,
    ) -> anyhow::Result<FlipResult> {
        let mut changes: Vec<(SystemTime, SliceChange)> = Vec::new();
        for i in 0..n {
            // Random phase against the 1 s probe period.
            tokio::time::sleep(Duration::from_millis(300) + self.jitter(1000)).await;
            while self.rx.try_recv().is_ok() {}
            let want = !self.ready;
            let acted = SystemTime::now();
            if want {
                tokio::task::block_in_place(|| self.backend.restart())?;
            } else {
                tokio::task::block_in_place(|| self.backend.stop());
            }
            let deadline = Instant::now() + Duration::from_secs(20);
            let change = loop {
                let left = deadline.saturating_duration_since(Instant::now());
                match tokio::time::timeout(left, self.rx.recv()).await {
                    Ok(Some(c)) if c.ready == want => break c,
                    Ok(Some(_)) => {}
                    Ok(None) => bail!("slice watcher ended"),
                    Err(_) => bail!(
                        "transition {i}: slice not {} within 20 s",
                        if want { "ready" } else { "not ready" }
                    ),
                }
            };
            self.ready = want;
            changes.push((acted, change));
            if (i + 1) % 10 == 0 {
                eprintln!("   {}/{n}", i + 1);
            }
        }
        // Give the log writer a moment, then match.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let log = std::fs::read_to_string(&agent.log).unwrap_or_default();
        let decisions = agent_transitions(&log, FLIP_NS, "flip");
        let mut r = FlipResult {
            label: label.into(),
            decision_to_watch: Vec::new(),
            action_to_watch: Vec::new(),
            unmatched: 0,
            transitions: n,
        };
        for (acted, c) in &changes {
            if let Ok(d) = c.at.duration_since(*acted) {
                r.action_to_watch.push(d.as_secs_f64());
            }
            let to = if c.ready { "passing" } else { "failing" };
            // The last decision of the right direction after the action and before the slice.
            let found = decisions
                .iter()
                .filter(|(t, dir)| dir == to && *t >= *acted && *t <= c.at)
                .map(|(t, _)| *t)
                .max();
            match found.and_then(|t| c.at.duration_since(t).ok()) {
                Some(d) => r.decision_to_watch.push(d.as_secs_f64()),
                None => r.unmatched += 1,
            }
        }
        Ok(r)
    }
}

/// Sends each change of `addr`'s ready state over all slices of service `flip`, timestamped
/// on arrival.
async fn watch_address(
    client: Client,
    addr: String,
    tx: tokio::sync::mpsc::UnboundedSender<SliceChange>,
) {
    let api: Api<EndpointSlice> = Api::namespaced(client, FLIP_NS);
    let cfg = watcher::Config::default().labels("kubernetes.io/service-name=flip");
    let mut stream = std::pin::pin!(watcher(api, cfg));
    let mut per_slice: BTreeMap<String, bool> = BTreeMap::new();
    let mut last: Option<bool> = None;
    loop {
        let ev = match stream.next().await {
            Some(Ok(ev)) => ev,
            Some(Err(e)) => {
                eprintln!("   slice watch error (retrying): {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            None => return,
        };
        let at = SystemTime::now();
        let ready_in = |s: &EndpointSlice| {
            s.endpoints.iter().any(|e| {
                e.addresses.contains(&addr)
                    && e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(false)
            })
        };
        match ev {
            watcher::Event::Apply(s) | watcher::Event::InitApply(s) => {
                let name = s.metadata.name.clone().unwrap_or_default();
                per_slice.insert(name, ready_in(&s));
            }
            watcher::Event::Delete(s) => {
                per_slice.remove(&s.metadata.name.clone().unwrap_or_default());
            }
            watcher::Event::Init => per_slice.clear(),
            watcher::Event::InitDone => {}
        }
        let now = per_slice.values().any(|r| *r);
        if last != Some(now) {
            last = Some(now);
            if tx.send(SliceChange { at, ready: now }).is_err() {
                return;
            }
        }
    }
}

/// `(wall-clock time, new state)` of each `probe state changed` line of the agent's JSON log
/// for SWH `ns/name`.
fn agent_transitions(log: &str, ns: &str, name: &str) -> Vec<(SystemTime, String)> {
    let mut out = Vec::new();
    for line in log.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let f = &v["fields"];
        if f["message"] != "probe state changed" || f["ns"] != ns || f["swh"] != name {
            continue;
        }
        let (Some(ts), Some(to)) = (v["timestamp"].as_str(), f["to"].as_str()) else {
            continue;
        };
        if let Some(t) = parse_rfc3339(ts) {
            out.push((t, to.to_string()));
        }
    }
    out
}

fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let ts: k8s_openapi::jiff::Timestamp = s.parse().ok()?;
    let nanos = ts.as_nanosecond();
    let d = Duration::from_nanos(u64::try_from(nanos).ok()?);
    Some(SystemTime::UNIX_EPOCH + d)
}

// -------------------------------------------------------------------------------------------
// Metrics, /proc, helpers
// -------------------------------------------------------------------------------------------

/// GET on 127.0.0.1:port; (status, body).
async fn http_get(port: u16, path: &str) -> anyhow::Result<(u16, String)> {
    let fut = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await?;
        anyhow::Ok(buf)
    };
    let buf = tokio::time::timeout(Duration::from_secs(5), fut)
        .await
        .map_err(|_| anyhow!("GET {path}: timed out"))??;
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow!("GET {path}: no header end"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("GET {path}: bad status line"))?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok((status, body))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// `name{labels}` → value, from the OpenMetrics text.
async fn metrics(port: u16) -> anyhow::Result<BTreeMap<String, f64>> {
    let (status, body) = http_get(port, "/metrics").await?;
    if status != 200 {
        bail!("/metrics: HTTP {status}");
    }
    Ok(parse_metrics(&body))
}

fn parse_metrics(text: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (key, rest) = match line.rfind('}') {
            Some(i) => (&line[..=i], &line[i + 1..]),
            None => match line.split_once(' ') {
                Some((k, r)) => (k, r),
                None => continue,
            },
        };
        if let Some(v) = rest.split_whitespace().next().and_then(|v| v.parse().ok()) {
            out.insert(key.to_string(), v);
        }
    }
    out
}

fn label(labels: &str, name: &str) -> Option<String> {
    let start = labels.find(&format!("{name}=\""))? + name.len() + 2;
    let end = labels[start..].find('"')? + start;
    Some(labels[start..end].to_string())
}

/// Sum over all label sets of `name` (counters: tries `name` and `name{...}`).
fn delta(m0: &BTreeMap<String, f64>, m1: &BTreeMap<String, f64>, name: &str) -> f64 {
    m1.iter()
        .filter(|(k, _)| *k == name || k.starts_with(&format!("{name}{{")))
        .map(|(k, v)| v - m0.get(k).copied().unwrap_or(0.0))
        .sum()
}

/// Cumulative bucket deltas `(le, count)`, sorted by le, summed over label sets matching
/// `filter` (a substring of the label set).
fn histogram_delta(
    m0: &BTreeMap<String, f64>,
    m1: &BTreeMap<String, f64>,
    name: &str,
    filter: Option<&str>,
) -> Vec<(f64, f64)> {
    let prefix = format!("{name}_bucket{{");
    let mut acc: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
    for (k, v) in m1 {
        let Some(labels) = k.strip_prefix(&prefix) else {
            continue;
        };
        if filter.is_some_and(|f| !labels.contains(f)) {
            continue;
        }
        let Some(le) = label(labels, "le") else {
            continue;
        };
        let le: f64 = if le == "+Inf" {
            f64::INFINITY
        } else {
            match le.parse() {
                Ok(x) => x,
                Err(_) => continue,
            }
        };
        let dv = v - m0.get(k).copied().unwrap_or(0.0);
        let e = acc.entry(le.to_bits()).or_insert((le, 0.0));
        e.1 += dv;
    }
    let mut v: Vec<(f64, f64)> = acc.into_values().collect();
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    v
}

/// Prometheus-style histogram_quantile (linear within the bucket).
fn quantile(buckets: &[(f64, f64)], q: f64) -> Option<f64> {
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut prev = (0.0, 0.0);
    for &(le, c) in buckets {
        if c >= rank {
            if le.is_infinite() {
                return Some(prev.0);
            }
            let span = c - prev.1;
            let frac = if span > 0.0 {
                (rank - prev.1) / span
            } else {
                1.0
            };
            return Some(prev.0 + (le - prev.0) * frac);
        }
        prev = (le, c);
    }
    None
}

/// Upper bound of the highest non-empty bucket.
fn max_bucket(buckets: &[(f64, f64)]) -> Option<f64> {
    let total = buckets.last()?.1;
    buckets.iter().find(|(_, c)| *c >= total).map(|(le, _)| *le)
}

/// utime + stime of a process (all threads), in clock ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); utime is field 14, stime 15.
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// (busy, total) ticks of the whole machine from /proc/stat.
fn machine_ticks() -> Option<(u64, u64)> {
    let s = std::fs::read_to_string("/proc/stat").ok()?;
    let line = s.lines().next()?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3)? + v.get(4)?;
    Some((total - idle, total))
}

fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn utc_now() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%d %H:%M UTC")
        .to_string()
}

fn tail(path: &Path, n: usize) -> String {
    let s = std::fs::read_to_string(path).unwrap_or_default();
    let v: Vec<&str> = s.lines().collect();
    v[v.len().saturating_sub(n)..].join("\n")
}

/// Nearest-rank percentile of seconds, in ms.
fn pct_ms(v: &[f64], p: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * s.len() as f64).ceil().max(1.0) as usize;
    s.get(rank.min(s.len()) - 1).map(|x| x * 1000.0)
}

// -------------------------------------------------------------------------------------------
// Report
// -------------------------------------------------------------------------------------------

fn fmt_opt(v: Option<f64>, unit: &str, digits: usize) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{x:.digits$} {unit}"),
        _ => "n/a".into(),
    }
}

fn verdict(ok: Option<bool>) -> &'static str {
    match ok {
        Some(true) => "PASS",
        Some(false) => "FAIL",
        None => "-",
    }
}

fn print_report(r: &Report, args: &Args) {
    println!();
    println!("# swh-bench-agent");
    println!();
    for (k, v) in &r.conditions {
        println!("- {k}: {v}");
    }
    if let Some(f) = &r.floor {
        println!();
        println!(
            "## Raw connect+close floor (one core: cpu {}, current-thread runtime)",
            f.cpu
        );
        println!(
            "- sequential: {:.0}/s ({:.2} cores used, {} errors)",
            f.sequential_per_sec, f.sequential_cores, f.sequential_errors
        );
        println!(
            "- {} in flight: {:.0}/s ({:.2} cores used, {} errors) = {:.1} µs CPU per connect",
            f.inflight,
            f.concurrent_per_sec,
            f.concurrent_cores,
            f.concurrent_errors,
            if f.concurrent_per_sec > 0.0 {
                f.concurrent_cores / f.concurrent_per_sec * 1e6
            } else {
                f64::NAN
            }
        );
    }
    if let Some(s) = &r.scale {
        println!();
        println!(
            "## Scale: {} pods on {NODE} × (TCP + HTTP) at 1 s, window {:.0} s",
            s.pods, s.window_secs
        );
        println!(
            "- setup: addresses {:.1} s (ip -batch), pods {:.1} s, SWH applied → all ready {:.1} s",
            s.setup_addrs_secs, s.setup_pods_secs, s.ready_secs
        );
        println!(
            "- agent: {:.3} cores, RSS max {:.1} MiB (end {:.1} MiB)",
            s.agent_cores,
            s.agent_rss_max_kib as f64 / 1024.0,
            s.agent_rss_end_kib as f64 / 1024.0
        );
        let modes: Vec<String> = s
            .by_mode
            .iter()
            .map(|(m, v)| format!("{m} {v:.0}/s"))
            .collect();
        println!(
            "- probes: {:.0}/s ({}), failures in window {:.0}",
            s.probes_per_sec,
            modes.join(", "),
            s.probe_failures
        );
        let p99s: Vec<String> = s
            .probe_p99
            .iter()
            .map(|(m, v)| format!("{m} {:.2} ms", v * 1000.0))
            .collect();
        println!("- probe duration p99 (histogram): {}", p99s.join(", "));
        println!(
            "- scheduling lag (histogram): p50 {}, p99 {}, max bucket ≤ {}",
            fmt_opt(s.lag_p50.map(|x| x * 1000.0), "ms", 2),
            fmt_opt(s.lag_p99.map(|x| x * 1000.0), "ms", 2),
            fmt_opt(s.lag_max_bucket.map(|x| x * 1000.0), "ms", 1)
        );
        println!(
            "- API writes in window: slices {:.0}, status {:.0}; probe transitions {:.0}",
            s.slice_writes, s.status_writes, s.transitions
        );
        println!(
            "- machine busy {:.2} cores; backend {:.3} cores; {}",
            s.machine_busy_cores,
            s.backend_cores,
            s.others
                .iter()
                .map(|(n, c)| format!("{n} {c:.3}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    for f in [&r.flips_load, &r.flips_idle].into_iter().flatten() {
        println!();
        println!(
            "## Detection latency ({} transitions, {})",
            f.transitions, f.label
        );
        println!(
            "- deciding probe (agent log time) → slice change at a watcher: p50 {}, p99 {}, max {} ({} matched, {} unmatched)",
            fmt_opt(pct_ms(&f.decision_to_watch, 50.0), "ms", 1),
            fmt_opt(pct_ms(&f.decision_to_watch, 99.0), "ms", 1),
            fmt_opt(pct_ms(&f.decision_to_watch, 100.0), "ms", 1),
            f.decision_to_watch.len(),
            f.unmatched
        );
        println!(
            "- backend stopped/started → slice change at a watcher (includes up to one 1 s period): p50 {}, p99 {}",
            fmt_opt(pct_ms(&f.action_to_watch, 50.0), "ms", 0),
            fmt_opt(pct_ms(&f.action_to_watch, 99.0), "ms", 0)
        );
    }

    // Summary
    println!();
    println!("## Summary against the quality bars");
    println!();
    println!("| bar | goal | measured | |");
    println!("|---|---|---|---|");
    for f in [&r.flips_load, &r.flips_idle].into_iter().flatten() {
        let p99 = pct_ms(&f.decision_to_watch, 99.0);
        println!(
            "| extra latency, deciding probe → slice at watcher, p99 ({}) | ≤ 50 ms | {} | {} |",
            f.label,
            fmt_opt(p99, "ms", 1),
            verdict(p99.map(|x| x <= 50.0))
        );
    }
    if let Some(s) = &r.scale {
        let want = s.pods as f64 * 2.0;
        println!(
            "| agent CPU at {} pods × 2 probes/s | ≤ 0.25 core | {:.3} core | {} |",
            s.pods,
            s.agent_cores,
            verdict(s.agent_cores.is_finite().then_some(s.agent_cores <= 0.25))
        );
        let mib = s.agent_rss_max_kib as f64 / 1024.0;
        println!(
            "| agent RSS (max in window) | ≤ 64 MiB | {mib:.1} MiB | {} |",
            verdict(Some(mib <= 64.0))
        );
        println!(
            "| probes/s achieved | {want:.0}/s | {:.0}/s | {} |",
            s.probes_per_sec,
            verdict(Some(s.probes_per_sec >= want * 0.98))
        );
        println!(
            "| scheduling lag p99 | (info) | {} | |",
            fmt_opt(s.lag_p99.map(|x| x * 1000.0), "ms", 2)
        );
        println!(
            "| API writes in steady state ({:.0} s) | 0 | {:.0} | {} |",
            s.window_secs,
            s.slice_writes + s.status_writes,
            verdict(Some(s.slice_writes + s.status_writes == 0.0))
        );
        if let Some(f) = &r.floor {
            println!(
                "| probes/s ÷ raw connect floor on one core ({} in flight: {:.0}/s) | (info) | {:.3} | |",
                f.inflight,
                f.concurrent_per_sec,
                s.probes_per_sec / f.concurrent_per_sec
            );
            let agent_us = s.agent_cores / s.probes_per_sec * 1e6;
            let floor_us = f.concurrent_cores / f.concurrent_per_sec * 1e6;
            println!(
                "| agent CPU per probe ÷ floor CPU per connect | (info) | {agent_us:.1} µs ÷ {floor_us:.1} µs = {:.2}× | |",
                agent_us / floor_us
            );
        }
    }
    let _ = args;
}
