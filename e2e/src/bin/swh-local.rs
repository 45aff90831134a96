//! `swh-local up|down|env`: the local control plane and pod network behind `make up`,
//! `make down` and `make test`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use swh_e2e::controlplane::{ClusterOptions, LocalCluster};

#[derive(Parser, Debug)]
#[command(
    name = "swh-local",
    about = "Run a real local Kubernetes control plane for swh"
)]
struct Args {
    /// Work directory for state, PKI, logs and the kubeconfig.
    #[arg(long, env = "SWH_LOCAL_DIR", default_value = "target/swh-local")]
    dir: PathBuf,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Start etcd, kube-apiserver, kube-controller-manager and the pod network.
    Up {
        /// Folder with the control-plane binaries (from e2e/controlplane/build.sh).
        #[arg(long, env = "SWH_K8S_BIN")]
        bin_dir: PathBuf,
        /// Short tag for the network namespace (`swh-TAG`) and veth names; ≤ 8 characters.
        #[arg(long, default_value = "local")]
        tag: String,
        /// Third octet of the 10.250.X.0/30 host↔pod transfer net.
        #[arg(long, default_value_t = 0)]
        link: u8,
        /// Pod range: 10.N.0.0/16 and fd00:10:N::/64.
        #[arg(long, default_value_t = 244)]
        pod_range: u8,
        /// Service range: 10.N.0.0/16 (and fd00:10:N::/112); two real-node clusters at once
        /// need different ones (each routes its range into its node-a).
        #[arg(long, default_value_t = 96)]
        service_range: u8,
        /// Real nodes node-a and node-b (containerd, kubelet, kube-proxy in network namespaces
        /// of their own), with the swh components installed from `config/` as pods.
        #[arg(long)]
        real_nodes: bool,
        /// Image archives to import into the real nodes (`make images` writes them).
        #[arg(long, default_value = "target/images")]
        images: PathBuf,
        /// Only the control plane (and the nodes): no CRDs, webhook, controller or agents.
        #[arg(long)]
        control_plane_only: bool,
    },
    /// One request through each seed ClusterIP (web, smtp, postgres-read, postgres-write)
    /// from inside a real node, printing who answered.
    Requests {
        #[arg(long, default_value = "node-a")]
        node: String,
    },
    /// Run a command inside a real node's network namespace (its kube-proxy translates
    /// ClusterIPs there), e.g. `swh-local run --node node-a -- curl -s http://CLUSTER-IP/`.
    Run {
        /// node-a or node-b.
        #[arg(long, default_value = "node-a")]
        node: String,
        /// The command and its arguments.
        #[arg(trailing_var_arg = true, required = true)]
        command: Vec<String>,
    },
    /// Stop everything `up` started and remove the work directory.
    Down,
    /// Print `export KUBECONFIG=...`.
    Env,
    /// Deploy the two seed scenarios (VM with web+smtp, PostgreSQL primary+replicas) into
    /// namespace my-ns and wait until they publish.
    Demo,
}

fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let args = Args::parse();
    match args.cmd {
        Cmd::Up {
            bin_dir,
            tag,
            link,
            pod_range,
            service_range,
            real_nodes,
            images,
            control_plane_only,
        } => {
            if tag.is_empty() || tag.len() > 8 || !tag.chars().all(|c| c.is_ascii_alphanumeric()) {
                anyhow::bail!("--tag {tag:?}: use 1-8 ASCII letters or digits (it names a veth)");
            }
            let bin_dir = std::fs::canonicalize(&bin_dir)?;
            let mut c = LocalCluster::start(&ClusterOptions {
                bin_dir,
                work_dir: args.dir.clone(),
                tag,
                link,
                pod_range,
                service_range,
                real_nodes: if real_nodes {
                    Some(std::fs::canonicalize(&images).map_err(|e| {
                        anyhow::anyhow!(
                            "--images {}: {e} (run `make images` first)",
                            images.display()
                        )
                    })?)
                } else {
                    None
                },
            })?;
            eprintln!(
                "local control plane ready in {:.1}s: {} (pods: {}, {})",
                c.startup_secs,
                c.api_url,
                c.pod_network.v4_cidr(),
                c.pod_network.v6_cidr()
            );
            if !control_plane_only {
                let started = std::time::Instant::now();
                let result = if c.real_nodes.is_some() {
                    swh_e2e::stack::install_in_cluster(&mut c)
                } else {
                    swh_e2e::stack::start(&mut c)
                };
                if let Err(e) = result {
                    let dir = c.work_dir.clone();
                    eprintln!(
                        "starting the swh components failed; logs in {}",
                        dir.display()
                    );
                    // Keep the logs for a look, stop everything else.
                    let keep = std::env::temp_dir().join("swh-local-failed-logs");
                    let _ = std::fs::remove_dir_all(&keep);
                    let _ = std::fs::create_dir_all(&keep);
                    if let Ok(entries) = std::fs::read_dir(&dir) {
                        for e in entries.flatten() {
                            if e.path().extension().is_some_and(|x| x == "log") {
                                let _ = std::fs::copy(e.path(), keep.join(e.file_name()));
                            }
                        }
                    }
                    c.stop();
                    eprintln!("logs copied to {}", keep.display());
                    return Err(e.into());
                }
                eprintln!(
                    "swh components ready in {:.1}s: webhook, controller, agents on {}",
                    started.elapsed().as_secs_f64(),
                    swh_e2e::stack::NODES.join(", ")
                );
            }
            println!("export KUBECONFIG={}", c.kubeconfig.display());
        }
        Cmd::Down => match LocalCluster::load(&args.dir) {
            Ok(c) => {
                c.stop();
                eprintln!("local control plane stopped");
            }
            Err(e) => eprintln!("nothing to stop: {e}"),
        },
        Cmd::Demo => {
            let mut c = LocalCluster::load(&args.dir)?;
            let backend = std::env::current_exe()?.with_file_name("swh-backend");
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(async {
                let client = swh_e2e::testenv::admin_client(&c).await?;
                if c.real_nodes.is_some() {
                    swh_e2e::demo::deploy_real(&c, &client).await?;
                } else {
                    swh_e2e::demo::deploy(&mut c, &client, &backend).await?;
                }
                anyhow::Ok(())
            })?;
            eprintln!(
                "seed scenarios deployed in namespace {}",
                swh_e2e::demo::NAMESPACE
            );
        }
        Cmd::Requests { node } => {
            let c = LocalCluster::load(&args.dir)?;
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(async {
                let client = swh_e2e::testenv::admin_client(&c).await?;
                swh_e2e::demo::requests_through_cluster_ips(&c, &client, &node).await?;
                anyhow::Ok(())
            })?;
        }
        Cmd::Run { node, command } => {
            let c = LocalCluster::load(&args.dir)?;
            let rn = c.real_nodes.as_ref().ok_or_else(|| {
                anyhow::anyhow!("this cluster has no real nodes (start it with `up --real-nodes`)")
            })?;
            let n = rn.node(&node).ok_or_else(|| {
                anyhow::anyhow!(
                    "--node {node:?}: not a node of this cluster (one of: {})",
                    swh_e2e::nodes::NODES.join(", ")
                )
            })?;
            let status = n.command(&command[0]).args(&command[1..]).status()?;
            std::process::exit(status.code().unwrap_or(1));
        }
        Cmd::Env => {
            let c = LocalCluster::load(&args.dir)?;
            println!("export KUBECONFIG={}", c.kubeconfig.display());
        }
    }
    Ok(())
}
