//! The local control plane: etcd, kube-apiserver and kube-controller-manager as plain processes
//! on loopback (the envtest approach), plus the pod network. `LocalCluster::start` brings it all
//! up and writes `state.json` and an admin kubeconfig into the work directory; `stop` (also from
//! another process via the state file) removes every process, the network and the directory.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::nodes::RealNodes;
use crate::pki::{Pki, PkiError};
use crate::podnet::{PodNetError, PodNetwork};
use crate::process::{self, ProcessError};

pub const KUBERNETES_VERSION: &str = "v1.37.2";

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(transparent)]
    Pki(#[from] PkiError),
    #[error(transparent)]
    PodNet(#[from] PodNetError),
    #[error(transparent)]
    Process(#[from] ProcessError),
    #[error(transparent)]
    Nodes(#[from] crate::nodes::NodeError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{name} did not become ready within {secs}s; last lines of {log}:\n{tail}")]
    NotReady {
        name: String,
        secs: u64,
        log: String,
        tail: String,
    },
    #[error("{name} exited during start-up; last lines of {log}:\n{tail}")]
    Exited {
        name: String,
        log: String,
        tail: String,
    },
    #[error("reading cluster state {path}: {message}")]
    State { path: PathBuf, message: String },
}

/// What to start.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Folder with kube-apiserver, kube-controller-manager, kubectl and etcd.
    pub bin_dir: PathBuf,
    /// Work directory (created; removed by `stop`).
    pub work_dir: PathBuf,
    /// Short unique tag for the network namespace and veth names (≤ 8 chars).
    pub tag: String,
    /// Third octet of the 10.250.X.0/30 transfer net.
    pub link: u8,
    /// Second octet of the 10.X.0.0/16 pod range.
    pub pod_range: u8,
    /// Second octet of the 10.X.0.0/16 service range (`kubernetes` is 10.X.0.1).
    pub service_range: u8,
    /// Real nodes (kubelet, containerd, kube-proxy in node namespaces), with the image
    /// archives to import into them; `None` for the process-mode cluster.
    pub real_nodes: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProcessInfo {
    pub name: String,
    pub pid: u32,
    pub log: PathBuf,
    /// Stop with SIGINT instead of SIGTERM (PostgreSQL's fast shutdown).
    #[serde(default)]
    pub interrupt: bool,
}

/// A running local cluster; serialised to `<work_dir>/state.json`.
#[derive(Debug, Serialize, Deserialize)]
pub struct LocalCluster {
    pub work_dir: PathBuf,
    pub bin_dir: PathBuf,
    pub kubeconfig: PathBuf,
    pub api_url: String,
    pub pki_dir: PathBuf,
    pub pod_network: PodNetwork,
    /// Second octet of the service range.
    #[serde(default = "default_service_range")]
    pub service_range: u8,
    /// The real nodes, when the cluster has them.
    #[serde(default)]
    pub real_nodes: Option<RealNodes>,
    pub processes: Vec<ProcessInfo>,
    /// Seconds from start to a ready API server and controller manager.
    pub startup_secs: f64,
    #[serde(skip)]
    children: Vec<Child>,
}

fn default_service_range() -> u8 {
    96
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ClusterError {
    let what = what.into();
    move |source| ClusterError::Io { what, source }
}

fn tail(path: &Path, lines: usize) -> String {
    let s = std::fs::read_to_string(path).unwrap_or_default();
    let v: Vec<&str> = s.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

impl LocalCluster {
    pub fn state_file(work_dir: &Path) -> PathBuf {
        work_dir.join("state.json")
    }

    /// Loads the state written by `start` (for tests and `make down`).
    pub fn load(work_dir: &Path) -> Result<LocalCluster, ClusterError> {
        let path = Self::state_file(work_dir);
        let s = std::fs::read_to_string(&path).map_err(|e| ClusterError::State {
            path: path.clone(),
            message: format!("{e} (is the local cluster up? run `make up`)"),
        })?;
        serde_json::from_str(&s).map_err(|e| ClusterError::State {
            path,
            message: e.to_string(),
        })
    }

    pub fn kubectl(&self) -> Command {
        let mut c = Command::new(self.bin_dir.join("kubectl"));
        c.env("KUBECONFIG", &self.kubeconfig);
        c
    }

    pub fn pki(&self) -> Pki {
        Pki {
            dir: self.pki_dir.clone(),
        }
    }

    /// Starts etcd, kube-apiserver and kube-controller-manager and waits until they are ready.
    pub fn start(opts: &ClusterOptions) -> Result<LocalCluster, ClusterError> {
        let started = Instant::now();
        let work = &opts.work_dir;
        if work.exists() {
            // A stale state from a crashed run: stop what it recorded first.
            if let Ok(old) = LocalCluster::load(work) {
                old.stop();
            }
            // `stop` removes the directory itself; whatever is left goes now.
            match std::fs::remove_dir_all(work) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(io(format!("removing {}", work.display()))(e));
                }
                _ => {}
            }
        }
        std::fs::create_dir_all(work).map_err(io(format!("creating {}", work.display())))?;
        let work = std::fs::canonicalize(work).map_err(io("canonicalising work dir"))?;
        let service_ip = std::net::IpAddr::from([10, opts.service_range, 0, 1]);
        let pki = Pki::create(&work.join("pki"), service_ip, &crate::nodes::NODES)?;
        let pod_network = PodNetwork::create(&opts.tag, opts.link, opts.pod_range, &work)?;
        // The node network (and the service range's route into it) exists before the API
        // server does, so nothing can make it dial a ClusterIP out of the machine.
        let real_nodes = match &opts.real_nodes {
            Some(_) => match RealNodes::create(
                &opts.tag,
                opts.link,
                opts.pod_range,
                opts.service_range,
                &work,
            ) {
                Ok(rn) => Some(rn),
                Err(e) => {
                    pod_network.destroy();
                    return Err(e.into());
                }
            },
            None => None,
        };
        let mut cluster = LocalCluster {
            work_dir: work.clone(),
            bin_dir: opts.bin_dir.clone(),
            kubeconfig: work.join("kubeconfig"),
            api_url: String::new(),
            pki_dir: pki.dir.clone(),
            pod_network,
            service_range: opts.service_range,
            real_nodes,
            processes: Vec::new(),
            startup_secs: 0.0,
            children: Vec::new(),
        };
        match cluster.launch(&pki, started, opts.real_nodes.as_deref()) {
            Ok(()) => Ok(cluster),
            Err(e) => {
                cluster.stop_mut();
                Err(e)
            }
        }
    }

    fn launch(
        &mut self,
        pki: &Pki,
        started: Instant,
        images: Option<&Path>,
    ) -> Result<(), ClusterError> {
        let real = images.is_some();
        let sr = self.service_range;
        let work = self.work_dir.clone();
        let bin = self.bin_dir.clone();
        let (etcd_port, peer_port, api_port) = (
            process::free_port().map_err(io("free port"))?,
            process::free_port().map_err(io("free port"))?,
            process::free_port().map_err(io("free port"))?,
        );

        // etcd
        let mut etcd = Command::new(bin.join("etcd"));
        etcd.args([
            "--name=swh-e2e".to_string(),
            format!("--data-dir={}", work.join("etcd").display()),
            format!("--listen-client-urls=http://127.0.0.1:{etcd_port}"),
            format!("--advertise-client-urls=http://127.0.0.1:{etcd_port}"),
            format!("--listen-peer-urls=http://127.0.0.1:{peer_port}"),
            format!("--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}"),
            format!("--initial-cluster=swh-e2e=http://127.0.0.1:{peer_port}"),
            "--unsafe-no-fsync".into(),
            "--log-level=warn".into(),
        ]);
        self.spawn("etcd", etcd)?;
        self.wait_ready("etcd", Duration::from_secs(30), || {
            http_get_plain(etcd_port, "/health").is_some_and(|b| b.contains("\"health\":\"true\""))
        })?;

        // kube-apiserver
        let p = |f: PathBuf| f.display().to_string();
        let mut api = Command::new(bin.join("kube-apiserver"));
        api.args([
            format!("--etcd-servers=http://127.0.0.1:{etcd_port}"),
            "--bind-address=127.0.0.1".into(),
            format!("--advertise-address={}", self.pod_network.host_v4),
            format!("--secure-port={api_port}"),
            format!("--tls-cert-file={}", p(pki.cert("apiserver"))),
            format!("--tls-private-key-file={}", p(pki.key("apiserver"))),
            format!("--client-ca-file={}", p(pki.ca_cert())),
            format!("--service-account-issuer=https://127.0.0.1:{api_port}"),
            format!("--service-account-key-file={}", p(pki.sa_pub())),
            format!("--service-account-signing-key-file={}", p(pki.sa_key())),
            format!("--service-cluster-ip-range=10.{sr}.0.0/16,fd00:10:{sr}::/112"),
            "--authorization-mode=RBAC".into(),
            "--allow-privileged=true".into(),
            "--endpoint-reconciler-type=none".into(),
            "--enable-priority-and-fairness=false".into(),
            "--profiling=false".into(),
            format!("--audit-log-path={}", work.join("audit.log").display()),
            format!("--audit-policy-file={}", p(write_audit_policy(&work)?)),
            "--audit-log-format=json".into(),
            "--audit-log-mode=batch".into(),
            "--audit-log-batch-max-wait=1s".into(),
            "--v=1".into(),
        ]);
        if real {
            // Real pods: ServiceAccount token volumes, and `kubectl logs/exec` to kubelets.
            api.args([
                format!("--kubelet-client-certificate={}", p(pki.cert("admin"))),
                format!("--kubelet-client-key={}", p(pki.key("admin"))),
                "--kubelet-preferred-address-types=InternalIP".into(),
            ]);
        } else {
            // Pods here are API objects only; nothing mounts their tokens.
            api.arg("--disable-admission-plugins=ServiceAccount");
        }
        self.spawn("kube-apiserver", api)?;
        self.api_url = format!("https://127.0.0.1:{api_port}");
        self.write_kubeconfig(pki)?;
        let kc = self.kubeconfig.clone();
        let kubectl = bin.join("kubectl");
        self.wait_ready("kube-apiserver", Duration::from_secs(120), || {
            Command::new(&kubectl)
                .env("KUBECONFIG", &kc)
                .args(["get", "--raw", "/readyz"])
                .output()
                .is_ok_and(|o| o.status.success() && o.stdout.starts_with(b"ok"))
        })?;

        // kube-controller-manager
        let mut kcm = Command::new(bin.join("kube-controller-manager"));
        kcm.args([
            format!("--kubeconfig={}", kc.display()),
            format!("--authentication-kubeconfig={}", kc.display()),
            format!("--authorization-kubeconfig={}", kc.display()),
            "--leader-elect=false".into(),
            "--bind-address=127.0.0.1".into(),
            format!(
                "--secure-port={}",
                process::free_port().map_err(io("free port"))?
            ),
            format!("--cert-dir={}", work.join("kcm-certs").display()),
            format!("--root-ca-file={}", p(pki.ca_cert())),
            format!("--service-account-private-key-file={}", p(pki.sa_key())),
            "--use-service-account-credentials=false".into(),
            format!("--controllers={}", kcm_controllers(real)),
            "--v=1".into(),
        ]);
        self.spawn("kube-controller-manager", kcm)?;
        self.wait_ready("kube-controller-manager", Duration::from_secs(120), || {
            Command::new(&kubectl)
                .env("KUBECONFIG", &kc)
                .args([
                    "get",
                    "serviceaccount",
                    "default",
                    "-n",
                    "default",
                    "-o",
                    "name",
                ])
                .output()
                .is_ok_and(|o| o.status.success())
        })?;
        if let Some(images) = images {
            let mut sched = Command::new(bin.join("kube-scheduler"));
            sched.args([
                format!("--kubeconfig={}", kc.display()),
                format!("--authentication-kubeconfig={}", kc.display()),
                format!("--authorization-kubeconfig={}", kc.display()),
                "--leader-elect=false".into(),
                "--bind-address=127.0.0.1".into(),
                "--secure-port=0".into(),
                "--v=1".into(),
            ]);
            self.spawn("kube-scheduler", sched)?;
            crate::nodes::start(self, images)?;
        }
        self.startup_secs = started.elapsed().as_secs_f64();
        self.save()
    }

    pub(crate) fn spawn(&mut self, name: &str, cmd: Command) -> Result<(), ClusterError> {
        let log = self.work_dir.join(format!("{name}.log"));
        let child = process::spawn_logged(name, cmd, &log)?;
        self.processes.push(ProcessInfo {
            name: name.to_string(),
            pid: child.id(),
            log,
            interrupt: false,
        });
        self.children.push(child);
        self.save()
    }

    pub(crate) fn wait_ready(
        &mut self,
        name: &str,
        limit: Duration,
        mut ready: impl FnMut() -> bool,
    ) -> Result<(), ClusterError> {
        let start = Instant::now();
        let info = self
            .processes
            .iter()
            .find(|p| p.name == name)
            .cloned()
            .ok_or_else(|| ClusterError::State {
                path: self.work_dir.clone(),
                message: format!("{name} was not started"),
            })?;
        loop {
            if ready() {
                return Ok(());
            }
            if !process::alive(info.pid) {
                return Err(ClusterError::Exited {
                    name: name.into(),
                    log: info.log.display().to_string(),
                    tail: tail(&info.log, 40),
                });
            }
            if start.elapsed() > limit {
                return Err(ClusterError::NotReady {
                    name: name.into(),
                    secs: limit.as_secs(),
                    log: info.log.display().to_string(),
                    tail: tail(&info.log, 40),
                });
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn write_kubeconfig(&self, pki: &Pki) -> Result<(), ClusterError> {
        let b64 = |path: PathBuf| -> Result<String, ClusterError> {
            let bytes = std::fs::read(&path).map_err(io(format!("reading {}", path.display())))?;
            Ok(base64_encode(&bytes))
        };
        let doc = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "swh-local", "cluster": {
                "server": self.api_url,
                "certificate-authority-data": b64(pki.ca_cert())?,
            }}],
            "users": [{"name": "swh-admin", "user": {
                "client-certificate-data": b64(pki.cert("admin"))?,
                "client-key-data": b64(pki.key("admin"))?,
            }}],
            "contexts": [{"name": "swh-local", "context": {"cluster": "swh-local", "user": "swh-admin", "namespace": "default"}}],
            "current-context": "swh-local",
        });
        let yaml = serde_yaml::to_string(&doc).map_err(|e| ClusterError::State {
            path: self.kubeconfig.clone(),
            message: e.to_string(),
        })?;
        std::fs::write(&self.kubeconfig, yaml).map_err(io("writing kubeconfig"))
    }

    fn save(&self) -> Result<(), ClusterError> {
        let s = serde_json::to_string_pretty(self).map_err(|e| ClusterError::State {
            path: Self::state_file(&self.work_dir),
            message: e.to_string(),
        })?;
        std::fs::write(Self::state_file(&self.work_dir), s).map_err(io("writing state.json"))
    }

    /// Records a process started outside `start` (webhook, controller, agents) so `stop`
    /// removes it too.
    pub fn adopt_process(
        &mut self,
        name: &str,
        child: Child,
        log: PathBuf,
    ) -> Result<(), ClusterError> {
        self.processes.push(ProcessInfo {
            name: name.into(),
            pid: child.id(),
            log,
            interrupt: false,
        });
        self.children.push(child);
        self.save()
    }

    /// Records a process this cluster did not spawn (a detached backend, a PostgreSQL
    /// postmaster) so `stop` ends it too.
    pub fn adopt_pid(
        &mut self,
        name: &str,
        pid: u32,
        log: PathBuf,
        interrupt: bool,
    ) -> Result<(), ClusterError> {
        self.processes.push(ProcessInfo {
            name: name.into(),
            pid,
            log,
            interrupt,
        });
        self.save()
    }

    /// Stops every process (last started first), removes the pod network and the work dir.
    pub fn stop(mut self) {
        self.stop_mut();
    }

    fn stop_mut(&mut self) {
        let mut children = std::mem::take(&mut self.children);
        let stop = |info: &ProcessInfo, children: &mut Vec<Child>| {
            let child = children.iter_mut().find(|c| c.id() == info.pid);
            let signal = if info.interrupt {
                nix::sys::signal::Signal::SIGINT
            } else {
                nix::sys::signal::Signal::SIGTERM
            };
            let started = Instant::now();
            process::stop_with(info.pid, child, signal, Duration::from_secs(20));
            let took = started.elapsed();
            if took > Duration::from_secs(3) {
                eprintln!("stopping {} took {:.1}s", info.name, took.as_secs_f64());
            }
        };
        // Real nodes first (their processes, then containers, relay forks, mounts, network):
        // pods keep watches open on the API server, which would wait for them on shutdown.
        let processes = self.processes.clone();
        if let Some(rn) = &self.real_nodes {
            for info in processes
                .iter()
                .rev()
                .filter(|p| crate::nodes::is_node_process(&p.name))
            {
                stop(info, &mut children);
            }
            rn.destroy();
        }
        for info in processes
            .iter()
            .rev()
            .filter(|p| self.real_nodes.is_none() || !crate::nodes::is_node_process(&p.name))
        {
            stop(info, &mut children);
        }
        if let Some(rn) = &self.real_nodes {
            // Again: whatever a late process left.
            rn.destroy();
        }
        self.pod_network.destroy();
        let _ = std::fs::remove_dir_all(&self.work_dir);
    }
}

/// KCM's controllers: the process-mode set, plus the workload and node-lifecycle controllers
/// real pods need.
fn kcm_controllers(real: bool) -> String {
    let mut c = vec![
        "namespace-controller",
        "garbage-collector-controller",
        "serviceaccount-controller",
        "endpointslice-controller",
        "root-ca-certificate-publisher-controller",
    ];
    if real {
        c.extend([
            "deployment-controller",
            "replicaset-controller",
            "daemonset-controller",
            "node-lifecycle-controller",
            "pod-garbage-collector-controller",
            "disruption-controller",
        ]);
    }
    c.join(",")
}

fn write_audit_policy(work: &Path) -> Result<PathBuf, ClusterError> {
    // Writes only (no reads), metadata level: enough to count each component's API writes.
    let policy = "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n- level: Metadata\n  verbs: [create, update, patch, delete, deletecollection]\n- level: None\n";
    let path = work.join("audit-policy.yaml");
    std::fs::write(&path, policy).map_err(io("writing audit policy"))?;
    Ok(path)
}

/// GET on a plain-HTTP loopback port; the body on a 200, else None.
fn http_get_plain(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_secs(1),
    )
    .ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let (head, body) = buf.split_once("\r\n\r\n")?;
    (head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200")).then(|| body.to_string())
}

pub fn base64_encode(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(super::base64_encode(i.as_bytes()), o);
        }
    }
}
