//! The swh components on the local cluster, each a separate process under its own
//! ServiceAccount (bound to the RBAC in `config/rbac/`): the webhook (with the CRDs), one
//! controller, and one agent per Node the harness creates.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::controlplane::LocalCluster;
use crate::identity::{self, IdentityError};
use crate::process::{self, ProcessError};

/// Nodes `swh-local up` creates, each with its own agent.
pub const NODES: [&str; 2] = ["node-a", "node-b"];
/// Namespace of the components' ServiceAccounts and Lease.
pub const SYSTEM_NAMESPACE: &str = "swh-system";

#[derive(Debug, thiserror::Error)]
pub enum StackError {
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error(transparent)]
    Process(#[from] ProcessError),
    #[error("{what}: {detail}")]
    Failed { what: String, detail: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

/// Folder of the workspace's debug binaries.
pub fn component_bin_dir() -> PathBuf {
    crate::testenv::workspace_bin("swh-agent")
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Creates a Node object with a Ready condition (idempotent).
pub fn ensure_node(cluster: &LocalCluster, name: &str) -> Result<(), StackError> {
    let yaml = format!(
        "apiVersion: v1\nkind: Node\nmetadata:\n  name: {name}\n  labels: {{kubernetes.io/hostname: {name}}}\n"
    );
    identity::kubectl(cluster, &["apply", "-f", "-"], Some(&yaml))?;
    let status = r#"{"status":{"conditions":[{"type":"Ready","status":"True","reason":"KubeletReady","message":"swh e2e node"}]}}"#;
    identity::kubectl(
        cluster,
        &[
            "patch",
            "node",
            name,
            "--subresource=status",
            "--type=merge",
            "-p",
            status,
        ],
        None,
    )?;
    Ok(())
}

/// Waits until `http://127.0.0.1:<port>/readyz` answers 200 or the process dies.
fn wait_admin_ready(
    name: &str,
    pid: u32,
    port: u16,
    log: &Path,
    limit: Duration,
) -> Result<(), StackError> {
    use std::io::{Read, Write};
    let start = Instant::now();
    loop {
        let ok = std::net::TcpStream::connect_timeout(
            &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
            Duration::from_millis(500),
        )
        .ok()
        .and_then(|mut s| {
            s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
            write!(
                s,
                "GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
            )
            .ok()?;
            let mut buf = String::new();
            s.read_to_string(&mut buf).ok()?;
            Some(buf.starts_with("HTTP/1.1 200") || buf.starts_with("HTTP/1.0 200"))
        })
        .unwrap_or(false);
        if ok {
            return Ok(());
        }
        let tail = || {
            std::fs::read_to_string(log)
                .unwrap_or_default()
                .lines()
                .rev()
                .take(30)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n")
        };
        if !process::alive(pid) {
            return Err(StackError::Failed {
                what: format!("{name} exited during start-up"),
                detail: tail(),
            });
        }
        if start.elapsed() > limit {
            return Err(StackError::Failed {
                what: format!("{name} not ready within {limit:?}"),
                detail: tail(),
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A started component: the child, its log and admin port.
pub struct Component {
    pub name: String,
    pub child: Child,
    pub log: PathBuf,
    pub admin_port: u16,
}

/// Starts `swh-agent` for `node` under the `swh-agent` ServiceAccount and waits for /readyz.
pub fn start_agent(cluster: &LocalCluster, node: &str) -> Result<Component, StackError> {
    let kubeconfig = identity::service_account_kubeconfig(cluster, SYSTEM_NAMESPACE, "swh-agent")?;
    let port = process::free_port().map_err(|source| StackError::Io {
        what: "free port".into(),
        source,
    })?;
    let name = format!("swh-agent-{node}");
    let log = cluster.work_dir.join(format!("{name}.log"));
    let mut cmd = Command::new(component_bin_dir().join("swh-agent"));
    cmd.arg(format!("--admin-listen=127.0.0.1:{port}"))
        .env("KUBECONFIG", &kubeconfig)
        .env("NODE_NAME", node)
        .env(
            "RUST_LOG",
            std::env::var("SWH_COMPONENT_LOG").unwrap_or_else(|_| "info".into()),
        );
    let mut child = process::spawn_logged(&name, cmd, &log)?;
    if let Err(e) = wait_admin_ready(&name, child.id(), port, &log, Duration::from_secs(60)) {
        // Not recorded in the cluster state yet: stop it here, or it outlives the cluster.
        process::stop(child.id(), Some(&mut child), Duration::from_secs(5));
        return Err(e);
    }
    Ok(Component {
        name,
        child,
        log,
        admin_port: port,
    })
}

/// Starts `swh-controller` under the `swh-controller` ServiceAccount and waits for /readyz.
pub fn start_controller(cluster: &LocalCluster, replica: u32) -> Result<Component, StackError> {
    let kubeconfig =
        identity::service_account_kubeconfig(cluster, SYSTEM_NAMESPACE, "swh-controller")?;
    let port = process::free_port().map_err(|source| StackError::Io {
        what: "free port".into(),
        source,
    })?;
    let name = format!("swh-controller-{replica}");
    let log = cluster.work_dir.join(format!("{name}.log"));
    let mut cmd = Command::new(component_bin_dir().join("swh-controller"));
    cmd.arg(format!("--admin-listen=127.0.0.1:{port}"))
        .env("KUBECONFIG", &kubeconfig)
        .env("POD_NAME", &name)
        .env("POD_NAMESPACE", SYSTEM_NAMESPACE)
        .env(
            "RUST_LOG",
            std::env::var("SWH_COMPONENT_LOG").unwrap_or_else(|_| "info".into()),
        );
    let mut child = process::spawn_logged(&name, cmd, &log)?;
    if let Err(e) = wait_admin_ready(&name, child.id(), port, &log, Duration::from_secs(60)) {
        // Not recorded in the cluster state yet: stop it here, or it outlives the cluster.
        process::stop(child.id(), Some(&mut child), Duration::from_secs(5));
        return Err(e);
    }
    Ok(Component {
        name,
        child,
        log,
        admin_port: port,
    })
}

/// Installs CRDs and webhook, applies RBAC, starts the controller and one agent per node.
pub fn start(cluster: &mut LocalCluster) -> Result<(), StackError> {
    crate::webhook_install::install(cluster, &component_bin_dir().join("swh-webhook")).map_err(
        |e| StackError::Failed {
            what: "installing the webhook and CRDs".into(),
            detail: e.to_string(),
        },
    )?;
    let rbac = crate::testenv::workspace_root().join("config/rbac");
    identity::apply(cluster, &rbac)?;
    let c = start_controller(cluster, 0)?;
    cluster
        .adopt_process(&c.name, c.child, c.log)
        .map_err(|e| StackError::Failed {
            what: "recording controller".into(),
            detail: e.to_string(),
        })?;
    for node in NODES {
        ensure_node(cluster, node)?;
        let a = start_agent(cluster, node)?;
        cluster
            .adopt_process(&a.name, a.child, a.log)
            .map_err(|e| StackError::Failed {
                what: format!("recording agent for {node}"),
                detail: e.to_string(),
            })?;
    }
    Ok(())
}

/// Real nodes: installs the project as users do, from `config/` through the test overlay
/// (local images, a generated serving certificate for the webhook Service and its CA in the
/// caBundles), with server-side apply, and waits until the webhook (2/2), the controller (2/2,
/// one leader) and the agent DaemonSet (every node) are rolled out.
pub fn install_in_cluster(cluster: &mut LocalCluster) -> Result<(), StackError> {
    let failed = |what: &str| {
        let what = what.to_string();
        move |e: crate::install::InstallError| StackError::Failed {
            what,
            detail: e.to_string(),
        }
    };
    let read = |p: PathBuf| {
        std::fs::read_to_string(&p).map_err(|source| StackError::Io {
            what: format!("reading {}", p.display()),
            source,
        })
    };
    let pki = cluster.pki();
    let overlay_dir = cluster.work_dir.join("install-overlay");
    let overlay = crate::install::write_overlay(
        &overlay_dir,
        &read(pki.ca_cert())?,
        &read(pki.cert("webhook-svc"))?,
        &read(pki.key("webhook-svc"))?,
    )
    .map_err(failed("writing the install overlay"))?;
    let started = Instant::now();
    let rendered = crate::install::render(&cluster.bin_dir.join("kubectl"), &overlay)
        .map_err(failed("rendering the install overlay"))?;
    identity::kubectl(
        cluster,
        &[
            "apply",
            "--server-side",
            "--field-manager=swh-install",
            "-f",
            "-",
        ],
        Some(&rendered),
    )?;
    for what in [
        "deployment/swh-webhook",
        "deployment/swh-controller",
        "daemonset/swh-agent",
    ] {
        identity::kubectl(
            cluster,
            &[
                "-n",
                SYSTEM_NAMESPACE,
                "rollout",
                "status",
                what,
                "--timeout=180s",
            ],
            None,
        )?;
    }
    eprintln!(
        "installed from config/ in {:.1}s: webhook, controller, agent DaemonSet rolled out",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
