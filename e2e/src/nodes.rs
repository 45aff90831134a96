//! Real nodes for the local cluster: per node a network namespace of its own with a CNI
//! bridge for its pods, containerd, a kubelet and kube-proxy (nftables), started with
//! `nsenter --net` (network only: they share the host's mounts and cgroup hierarchies, which
//! `ip netns exec` would hide). Everything made is recorded so [`RealNodes::destroy`] removes
//! it: processes, container processes (by cgroup), mounts, cgroups, namespaces, links, routes
//! and the kubelet's `/var/log/containers` links.
//!
//! ```text
//! host netns   etcd, kube-apiserver (127.0.0.1:API), KCM, kube-scheduler, socat (unix socket → API)
//!  │ veth swh<tag>n<i> 10.251.L.(4i+1) ↔ 10.251.L.(4i+2) = node IP     routes: pod /24s, service range
//! node netns   swh-<tag>-<node>: containerd, kubelet, kube-proxy, socat (127.0.0.1:API, GW:6443 → socket)
//!  │ bridge swhbr0 10.P.(128+i).1/24 (CNI bridge + host-local)        node-a ↔ node-b: 10.251.L.8/30
//! pod netns    one per pod (containerd's), 10.P.(128+i).10+
//! ```
//!
//! Containment: no namespace made here has a default route, the host's forwarding stays off,
//! the service range is routed from the host into node-a before anything can make the API
//! server dial a ClusterIP, and an nftables guard in every node drops whatever would leave the
//! harness's own ranges.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::podnet::{PodNetError, run};

/// Names of the real nodes, as the kubelets register them.
pub const NODES: [&str; 2] = ["node-a", "node-b"];
/// Local images are imported under these names (never pulled: `localhost/`, no `latest`).
pub const PAUSE_IMAGE: &str = "localhost/swh/pause:1";
const BRIDGE: &str = "swhbr0";

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Net(#[from] PodNetError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Setup(String),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> NodeError {
    let what = what.into();
    move |source| NodeError::Io { what, source }
}

/// One real node: its namespace, addresses, directories and cgroup.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RealNode {
    pub name: String,
    pub netns: String,
    pub host_if: String,
    pub host_ip: Ipv4Addr,
    /// The node's InternalIP (its end of the host link).
    pub node_ip: Ipv4Addr,
    /// The node's pod subnet (`10.P.(128+i).0/24`) and its bridge address.
    pub pod_cidr: String,
    pub gateway: Ipv4Addr,
    /// Work directory of this node (kubelet root, containerd root, configs, logs).
    pub dir: PathBuf,
    /// Runtime directory (containerd state and socket, runc root): short, under /run.
    pub run_dir: PathBuf,
    /// The kubelet's cgroup root, created in every cgroup v1 hierarchy (and v2 if unified).
    pub cgroup: String,
}

impl RealNode {
    pub fn netns_path(&self) -> String {
        format!("/var/run/netns/{}", self.netns)
    }
    pub fn containerd_sock(&self) -> PathBuf {
        self.run_dir.join("containerd/containerd.sock")
    }
    /// `program` run inside this node's network namespace (and nothing else).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net={}", self.netns_path()))
            .arg("--")
            .arg(program);
        c
    }
}

/// The real nodes of one cluster and what their network added to the host.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RealNodes {
    pub nodes: Vec<RealNode>,
    /// Service range routed from the host into node-a.
    pub service_cidr: String,
    /// Host routes this cluster added (removed by `destroy`).
    pub host_routes: Vec<String>,
    /// Unix socket the in-node API relays connect to.
    pub api_sock: PathBuf,
    /// Paths whose appearance in a process's command line marks it as ours (shims, relays).
    pub markers: Vec<String>,
}

/// Whether a process recorded in the cluster state belongs to a real node (stopped, with the
/// nodes' containers, before the control plane).
pub fn is_node_process(name: &str) -> bool {
    ["kube-proxy-", "kubelet-", "containerd-", "api-relay"]
        .iter()
        .any(|p| name.starts_with(p))
}

fn ip(args: &[&str]) -> Result<String, PodNetError> {
    run(Command::new("ip").args(args))
}

fn innode(netns: &str, args: &[&str]) -> Result<String, PodNetError> {
    let mut c = Command::new("nsenter");
    c.arg(format!("--net=/var/run/netns/{netns}"))
        .arg("--")
        .args(args);
    run(&mut c)
}

/// Cgroup v1 hierarchies (and the v2 mount) of this machine.
fn cgroup_mounts() -> Vec<PathBuf> {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    info.lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let fstype = post.split_whitespace().next()?;
            (fstype == "cgroup" || fstype == "cgroup2")
                .then(|| pre.split_whitespace().nth(4).map(PathBuf::from))
                .flatten()
        })
        .collect()
}

impl RealNodes {
    /// Builds the node network: namespaces, links, bridges, routes, guards, cgroups. Nothing
    /// else runs yet. On error everything made so far is removed.
    pub fn create(
        tag: &str,
        link: u8,
        pod_range: u8,
        service_range: u8,
        work: &Path,
    ) -> Result<RealNodes, NodeError> {
        let nodes = NODES
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let i = i as u8;
                RealNode {
                    name: name.to_string(),
                    netns: format!("swh-{tag}-{name}"),
                    host_if: format!("swh{tag}n{i}"),
                    host_ip: Ipv4Addr::new(10, 251, link, 4 * i + 1),
                    node_ip: Ipv4Addr::new(10, 251, link, 4 * i + 2),
                    pod_cidr: format!("10.{pod_range}.{}.0/24", 128 + i),
                    gateway: Ipv4Addr::new(10, pod_range, 128 + i, 1),
                    dir: work.join("nodes").join(name),
                    run_dir: PathBuf::from(format!("/run/swh-{tag}-{name}")),
                    cgroup: format!("swh-{tag}-{name}"),
                }
            })
            .collect::<Vec<_>>();
        // Only what our own leftovers carry: a shim names its containerd socket under the
        // node's run dir, a relay fork the API socket. (Not the work dir: a shell that merely
        // mentions it, such as `make demo`'s, must survive.)
        let mut markers: Vec<String> = nodes
            .iter()
            .map(|n| format!("{}/", n.run_dir.display()))
            .collect();
        markers.push(work.join("api.sock").display().to_string());
        let rn = RealNodes {
            nodes,
            service_cidr: format!("10.{service_range}.0.0/16"),
            host_routes: Vec::new(),
            api_sock: work.join("api.sock"),
            markers,
        };
        // Leftovers of a crashed run with the same tag go first.
        rn.destroy();
        let mut rn = rn;
        match rn.build(tag, link, pod_range) {
            Ok(()) => Ok(rn),
            Err(e) => {
                rn.destroy();
                Err(e)
            }
        }
    }

    fn build(&mut self, tag: &str, link: u8, pod_range: u8) -> Result<(), NodeError> {
        for (i, n) in self.nodes.iter().enumerate() {
            std::fs::create_dir_all(&n.dir).map_err(io(format!("creating {}", n.dir.display())))?;
            std::fs::create_dir_all(&n.run_dir)
                .map_err(io(format!("creating {}", n.run_dir.display())))?;
            let peer = format!("swh{tag}m{i}");
            ip(&["netns", "add", &n.netns])?;
            ip(&[
                "link", "add", &n.host_if, "type", "veth", "peer", "name", &peer,
            ])?;
            ip(&["link", "set", &peer, "netns", &n.netns])?;
            ip(&[
                "addr",
                "add",
                &format!("{}/30", n.host_ip),
                "dev",
                &n.host_if,
            ])?;
            ip(&["link", "set", &n.host_if, "up"])?;
            let gw = format!("{}/24", n.gateway);
            let node_ip = format!("{}/30", n.node_ip);
            let steps: [&[&str]; 7] = [
                &["ip", "link", "set", "lo", "up"],
                &["ip", "addr", "add", &node_ip, "dev", &peer],
                &["ip", "link", "set", &peer, "up"],
                &["ip", "link", "add", BRIDGE, "type", "bridge"],
                &["ip", "addr", "add", &gw, "dev", BRIDGE],
                &["ip", "link", "set", BRIDGE, "up"],
                // Per namespace: bridge → pods and ClusterIP DNAT. The host stays at 0.
                &["sysctl", "-qw", "net.ipv4.ip_forward=1"],
            ];
            for s in steps {
                innode(&n.netns, s)?;
            }
        }
        // node-a ↔ node-b, so that a ClusterIP translated on one node reaches a pod on the other
        // without the host forwarding anything.
        let (a, b) = (&self.nodes[0], &self.nodes[1]);
        let (xa, xb) = (format!("swh{tag}x0"), format!("swh{tag}x1"));
        let (ia, ib) = (
            Ipv4Addr::new(10, 251, link, 9),
            Ipv4Addr::new(10, 251, link, 10),
        );
        ip(&["link", "add", &xa, "type", "veth", "peer", "name", &xb])?;
        ip(&["link", "set", &xa, "netns", &a.netns])?;
        ip(&["link", "set", &xb, "netns", &b.netns])?;
        for (n, x, addr) in [(a, &xa, ia), (b, &xb, ib)] {
            innode(
                &n.netns,
                &["ip", "addr", "add", &format!("{addr}/30"), "dev", x],
            )?;
            innode(&n.netns, &["ip", "link", "set", x, "up"])?;
        }
        let link_net = |n: &RealNode| format!("{}/30", Ipv4Addr::from(u32::from(n.host_ip) - 1));
        for (n, other, via) in [(a, b, ib), (b, a, ia)] {
            let via = via.to_string();
            innode(
                &n.netns,
                &["ip", "route", "add", &other.pod_cidr, "via", &via],
            )?;
            innode(
                &n.netns,
                &["ip", "route", "add", &link_net(other), "via", &via],
            )?;
            // connect() to a ClusterIP needs a route; kube-proxy translates before it is used.
            innode(
                &n.netns,
                &["ip", "route", "add", &self.service_cidr, "dev", BRIDGE],
            )?;
            self.guard(n, pod_range, link)?;
        }
        // Host routes: each node's pods, and the service range into node-a (the API server
        // dials the webhook's ClusterIP; from the host it would otherwise leave by the default
        // route). Recorded before they are added, so a failure half-way still removes them.
        let mut routes: Vec<(String, String)> = self
            .nodes
            .iter()
            .map(|n| (n.pod_cidr.clone(), n.node_ip.to_string()))
            .collect();
        routes.push((self.service_cidr.clone(), a.node_ip.to_string()));
        for (dst, via) in routes {
            self.host_routes.push(dst.clone());
            ip(&["route", "add", &dst, "via", &via])?;
        }
        for n in &self.nodes {
            create_cgroup(&n.cgroup)?;
        }
        // Fixed host paths the kubelet (device-plugin socket) and the CNI library (result
        // cache) use whatever their configuration says: marked when we create them, so the
        // last cluster down removes them.
        for d in HOST_DIRS {
            let d = Path::new(d);
            if !d.exists() {
                std::fs::create_dir_all(d).map_err(io(format!("creating {}", d.display())))?;
                std::fs::write(d.join(HOST_DIR_MARKER), "created by swh-local\n")
                    .map_err(io(format!("marking {}", d.display())))?;
            }
        }
        Ok(())
    }

    /// The nftables guard of one node: nothing forwarded or sent outside loopback, the pod
    /// range and the harness's links; IPv6 only link-local and multicast.
    fn guard(&self, n: &RealNode, pod_range: u8, link: u8) -> Result<(), NodeError> {
        let rules = format!(
            "table inet swh_guard {{\n\
             \x20 set allowed4 {{ type ipv4_addr; flags interval; elements = {{ 127.0.0.0/8, 10.{pod_range}.0.0/16, 10.251.{link}.0/24 }} }}\n\
             \x20 chain forward_guard {{ type filter hook forward priority -10; policy accept;\n\
             \x20   meta nfproto ipv4 ip daddr != @allowed4 counter drop\n\
             \x20   meta nfproto ipv6 ip6 daddr != {{ ::1, fe80::/10, ff00::/8 }} counter drop\n\
             \x20 }}\n\
             \x20 chain output_guard {{ type filter hook output priority 10; policy accept;\n\
             \x20   meta nfproto ipv4 ip daddr != @allowed4 counter drop\n\
             \x20   meta nfproto ipv6 ip6 daddr != {{ ::1, fe80::/10, ff00::/8 }} counter drop\n\
             \x20 }}\n\
             }}\n"
        );
        let path = n.dir.join("guard.nft");
        std::fs::write(&path, rules).map_err(io("writing the nftables guard"))?;
        innode(&n.netns, &["nft", "-f", &path.display().to_string()])?;
        Ok(())
    }

    pub fn node(&self, name: &str) -> Option<&RealNode> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// Removes everything `create` and the node processes made. Processes recorded in the
    /// cluster state are stopped before this runs; here go what they leave behind: shims,
    /// relay forks, container processes, mounts, cgroups, log links, namespaces, routes.
    pub fn destroy(&self) {
        // 1. Stray processes of ours (containerd shims, socat forks), found by command line.
        kill_matching(&self.markers);
        // 2. Container processes, by cgroup; then the cgroups.
        for n in &self.nodes {
            remove_cgroup(&n.cgroup);
        }
        // 3. Mounts (overlay rootfs, shm, pod netns, kubelet volumes), deepest first.
        let mut prefixes: Vec<PathBuf> = self.nodes.iter().map(|n| n.run_dir.clone()).collect();
        prefixes.extend(self.nodes.iter().map(|n| n.dir.clone()));
        unmount_under(&prefixes);
        // 4. The kubelet's links in /var/log/containers into our pod logs.
        if let Ok(entries) = std::fs::read_dir("/var/log/containers") {
            for e in entries.flatten() {
                if let Ok(target) = std::fs::read_link(e.path())
                    && self.nodes.iter().any(|n| target.starts_with(&n.dir))
                {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        // 5. The CNI result cache entries of our pods (they name their netns under our run
        // dirs), and the fixed host dirs once no cluster of ours uses them.
        remove_cni_cache(&self.nodes);
        remove_host_dirs_if_unused();
        // 6. Network: host routes, namespaces (their links, bridges and nft tables go along).
        for r in &self.host_routes {
            let _ = ip(&["route", "del", r]);
        }
        for n in &self.nodes {
            let _ = ip(&["link", "del", &n.host_if]);
            let _ = ip(&["netns", "del", &n.netns]);
            let _ = std::fs::remove_dir_all(&n.run_dir);
        }
    }

    /// What is still there of this cluster's nodes (empty when `destroy` left nothing).
    pub fn leftovers(&self) -> Vec<String> {
        let mut left = Vec::new();
        let netns = ip(&["netns", "list"]).unwrap_or_default();
        for n in &self.nodes {
            if netns
                .lines()
                .any(|l| l.split_whitespace().next() == Some(&n.netns))
            {
                left.push(format!("netns {}", n.netns));
            }
            if ip(&["link", "show", &n.host_if]).is_ok() {
                left.push(format!("link {}", n.host_if));
            }
            if n.run_dir.exists() {
                left.push(format!("dir {}", n.run_dir.display()));
            }
            for m in cgroup_mounts() {
                let p = m.join(&n.cgroup);
                if p.exists() {
                    left.push(format!("cgroup {}", p.display()));
                }
            }
        }
        let routes = ip(&["route", "show"]).unwrap_or_default();
        for r in &self.host_routes {
            if routes.lines().any(|l| l.starts_with(r.as_str())) {
                left.push(format!("route {r}"));
            }
        }
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        for l in mounts.lines() {
            if let Some(mp) = l.split_whitespace().nth(4)
                && self.nodes.iter().any(|n| {
                    Path::new(mp).starts_with(&n.run_dir) || Path::new(mp).starts_with(&n.dir)
                })
            {
                left.push(format!("mount {mp}"));
            }
        }
        left.extend(
            matching_pids(&self.markers)
                .into_iter()
                .map(|p| format!("process {p}")),
        );
        if let Ok(entries) = std::fs::read_dir(CNI_CACHE) {
            for e in entries.flatten() {
                let c = std::fs::read_to_string(e.path()).unwrap_or_default();
                if self
                    .nodes
                    .iter()
                    .any(|n| c.contains(&format!("{}/", n.run_dir.display())))
                {
                    left.push(format!("CNI cache {}", e.path().display()));
                }
            }
        }
        left
    }
}

/// Host directories the kubelet and the CNI library use at fixed paths.
const HOST_DIRS: [&str; 2] = ["/var/lib/kubelet", "/var/lib/cni"];
const HOST_DIR_MARKER: &str = ".created-by-swh-local";
const CNI_CACHE: &str = "/var/lib/cni/results";

fn remove_cni_cache(nodes: &[RealNode]) {
    let Ok(entries) = std::fs::read_dir(CNI_CACHE) else {
        return;
    };
    let ours: Vec<String> = nodes
        .iter()
        .map(|n| format!("{}/", n.run_dir.display()))
        .collect();
    for e in entries.flatten() {
        let mine = std::fs::read_to_string(e.path())
            .is_ok_and(|c| ours.iter().any(|o| c.contains(o.as_str())));
        if mine {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Removes the fixed host dirs this harness created once no kubelet runs on the host and
/// the CNI cache holds nothing (another cluster may still be up).
fn remove_host_dirs_if_unused() {
    let kubelet_running = std::fs::read_dir("/proc").is_ok_and(|entries| {
        entries.flatten().any(|e| {
            std::fs::read_link(e.path().join("exe"))
                .is_ok_and(|exe| exe.file_name().is_some_and(|f| f == "kubelet"))
        })
    });
    if kubelet_running {
        return;
    }
    let cache_empty = std::fs::read_dir(CNI_CACHE).map_or(true, |mut d| d.next().is_none());
    for d in HOST_DIRS {
        let d = Path::new(d);
        if !d.join(HOST_DIR_MARKER).exists() {
            continue;
        }
        if d == Path::new("/var/lib/cni") && !cache_empty {
            continue;
        }
        let _ = std::fs::remove_dir_all(d);
    }
}

fn create_cgroup(name: &str) -> Result<(), NodeError> {
    for m in cgroup_mounts() {
        let p = m.join(name);
        std::fs::create_dir_all(&p).map_err(io(format!("creating cgroup {}", p.display())))?;
        if m.ends_with("cpuset") {
            for f in ["cpuset.cpus", "cpuset.mems"] {
                let v = std::fs::read_to_string(m.join(f))
                    .map_err(io(format!("reading {}/{f}", m.display())))?;
                std::fs::write(p.join(f), v.trim())
                    .map_err(io(format!("writing {}/{f}", p.display())))?;
            }
        }
    }
    Ok(())
}

/// Kills every process in the cgroup tree `name` (all hierarchies), then removes the tree,
/// deepest first. Retries for a few seconds while processes exit.
fn remove_cgroup(name: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut left = false;
        for m in cgroup_mounts() {
            let root = m.join(name);
            if !root.exists() {
                continue;
            }
            let mut dirs = Vec::new();
            collect_dirs(&root, &mut dirs);
            for d in &dirs {
                if let Ok(procs) = std::fs::read_to_string(d.join("cgroup.procs")) {
                    for pid in procs.lines().filter_map(|p| p.trim().parse::<i32>().ok()) {
                        let _ = nix::sys::signal::kill(
                            nix::unistd::Pid::from_raw(pid),
                            nix::sys::signal::Signal::SIGKILL,
                        );
                    }
                }
            }
            // Deepest first.
            dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
            for d in &dirs {
                let _ = std::fs::remove_dir(d);
            }
            left |= root.exists();
        }
        if !left || Instant::now() > deadline {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn collect_dirs(dir: &Path, out: &mut Vec<PathBuf>) {
    out.push(dir.to_path_buf());
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                collect_dirs(&e.path(), out);
            }
        }
    }
}

/// This process and its ancestors (never killed, whatever their command lines say).
fn self_and_ancestors() -> Vec<i32> {
    let mut out = vec![std::process::id() as i32];
    let mut pid = out[0];
    for _ in 0..64 {
        let parent = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("PPid:"))
                    .and_then(|v| v.trim().parse::<i32>().ok())
            });
        match parent {
            Some(p) if p > 1 => {
                out.push(p);
                pid = p;
            }
            _ => break,
        }
    }
    out
}

fn matching_pids(markers: &[String]) -> Vec<i32> {
    let spared = self_and_ancestors();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| !spared.contains(pid))
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                let c = String::from_utf8_lossy(&c).replace('\0', " ");
                markers
                    .iter()
                    .any(|m| !m.is_empty() && c.contains(m.as_str()))
            })
        })
        .collect()
}

fn kill_matching(markers: &[String]) {
    for _ in 0..3 {
        let pids = matching_pids(markers);
        if pids.is_empty() {
            return;
        }
        for pid in pids {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn unmount_under(prefixes: &[PathBuf]) {
    for _ in 0..3 {
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut mps: Vec<String> = info
            .lines()
            .filter_map(|l| l.split_whitespace().nth(4))
            .map(|mp| mp.replace("\\040", " "))
            .filter(|mp| prefixes.iter().any(|p| Path::new(mp).starts_with(p)))
            .collect();
        if mps.is_empty() {
            return;
        }
        mps.sort_by_key(|m| std::cmp::Reverse(m.matches('/').count()));
        mps.dedup();
        for mp in mps {
            let _ = Command::new("umount").arg("-l").arg(&mp).output();
        }
    }
}

// ---- Processes: relays, containerd, kubelet, kube-proxy -------------------------------------

use crate::controlplane::{ClusterError, LocalCluster};

fn kubeconfig_file(
    path: &Path,
    server: &str,
    ca: &Path,
    cert: &Path,
    key: &Path,
) -> Result<(), NodeError> {
    let doc = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: local\n  cluster:\n    server: {server}\n    certificate-authority: {}\nusers:\n- name: me\n  user:\n    client-certificate: {}\n    client-key: {}\ncontexts:\n- name: local\n  context: {{cluster: local, user: me}}\ncurrent-context: local\n",
        ca.display(),
        cert.display(),
        key.display()
    );
    std::fs::write(path, doc).map_err(io(format!("writing {}", path.display())))
}

fn containerd_config(n: &RealNode) -> String {
    format!(
        r#"version = 2
root = "{root}"
state = "{state}"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "{sock}"
[plugins."io.containerd.internal.v1.opt"]
  path = "{root}/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause}"
  netns_mounts_under_state_dir = true
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{dir}/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "{state}/runc"
"#,
        root = n.dir.join("containerd").display(),
        state = n.run_dir.join("containerd").display(),
        sock = n.containerd_sock().display(),
        pause = PAUSE_IMAGE,
        dir = n.dir.display(),
    )
}

fn cni_config(n: &RealNode) -> String {
    let start = Ipv4Addr::from(u32::from(n.gateway) + 9);
    format!(
        r#"{{"cniVersion": "1.0.0", "name": "swh", "plugins": [{{"type": "bridge", "bridge": "{BRIDGE}",
  "isGateway": true, "ipMasq": false, "hairpinMode": true,
  "ipam": {{"type": "host-local", "dataDir": "{dir}/cni/ipam", "routes": [{{"dst": "0.0.0.0/0"}}],
    "ranges": [[{{"subnet": "{cidr}", "rangeStart": "{start}", "gateway": "{gw}"}}]]}}}}]}}
"#,
        dir = n.dir.display(),
        cidr = n.pod_cidr,
        gw = n.gateway,
    )
}

/// The kubelet's configuration. Eviction thresholds are absolute and small: the nodes share
/// the host's disk, whose 1 % can be gigabytes a developer's disk does not have free (pods
/// were evicted at 166 MiB free of 2.5 GiB wanted).
fn kubelet_config(n: &RealNode, ca: &Path) -> String {
    format!(
        r#"apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: /{cgroup}
containerRuntimeEndpoint: unix://{sock}
address: {ip}
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
authentication: {{anonymous: {{enabled: false}}, webhook: {{enabled: true}}, x509: {{clientCAFile: {ca}}}}}
authorization: {{mode: Webhook}}
clusterDomain: cluster.local
resolvConf: {dir}/resolv.conf
failSwapOn: false
podLogsDir: {dir}/pod-logs
evictionHard: {{memory.available: 100Mi, nodefs.available: 200Mi, imagefs.available: 200Mi, nodefs.inodesFree: 1%}}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
maxPods: 60
shutdownGracePeriod: 0s
syncFrequency: 10s
fileCheckFrequency: 10s
"#,
        cgroup = n.cgroup,
        sock = n.containerd_sock().display(),
        ip = n.node_ip,
        ca = ca.display(),
        dir = n.dir.display(),
    )
}

/// Starts the API relays, containerd (importing every image archive in `images`), the kubelet
/// and kube-proxy on every real node, publishes the `kubernetes` Service's endpoints, and
/// waits until both Nodes are Ready and both kube-proxies healthy.
pub fn start(cluster: &mut LocalCluster, images: &Path) -> Result<(), ClusterError> {
    let work_dir = cluster.work_dir.clone();
    let setup = |m: String| ClusterError::State {
        path: work_dir.clone(),
        message: m,
    };
    let Some(rn) = cluster.real_nodes.clone() else {
        return Err(setup("no real nodes in this cluster".into()));
    };
    let archives: Vec<PathBuf> = std::fs::read_dir(images)
        .map_err(|e| {
            setup(format!(
                "reading image archives in {}: {e} (run `make images`)",
                images.display()
            ))
        })?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "tar"))
        .collect();
    if archives.is_empty() {
        return Err(setup(format!(
            "no image archives (*.tar) in {}: run `make images`",
            images.display()
        )));
    }
    let api_port = cluster
        .api_url
        .rsplit(':')
        .next()
        .and_then(|p| p.parse::<u16>().ok())
        .ok_or_else(|| setup(format!("API URL {} has no port", cluster.api_url)))?;
    let pki = cluster.pki();
    let bin = cluster.bin_dir.clone();
    let sock = rn.api_sock.display().to_string();

    // The API server through a unix socket: 127.0.0.1:API in every node for the kubelet and
    // kube-proxy (the serving certificate's 127.0.0.1 SAN stays valid), GW:6443 for pods
    // (Service `kubernetes`).
    let mut relay = Command::new("socat");
    relay.args([
        format!("UNIX-LISTEN:{sock},fork,mode=600"),
        format!("TCP:127.0.0.1:{api_port}"),
    ]);
    cluster.spawn("api-relay", relay)?;
    let until = Instant::now() + Duration::from_secs(10);
    while !rn.api_sock.exists() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    for n in &rn.nodes {
        for (suffix, listen) in [
            (
                "lo",
                format!("TCP-LISTEN:{api_port},bind=127.0.0.1,reuseaddr,fork"),
            ),
            (
                "gw",
                format!("TCP-LISTEN:6443,bind={},reuseaddr,fork", n.gateway),
            ),
        ] {
            let mut c = n.command("socat");
            c.args([listen, format!("UNIX-CONNECT:{sock}")]);
            cluster.spawn(&format!("api-relay-{}-{suffix}", n.name), c)?;
        }
    }

    // Identities: nodes in system:nodes bound to system:node (no Node authorizer here);
    // kube-proxy's user system:kube-proxy has system:node-proxier by default.
    let endpoints: Vec<String> = rn
        .nodes
        .iter()
        .map(|n| format!("\"{}\"", n.gateway))
        .collect();
    let objects = format!(
        r#"apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{name: swh-local-nodes}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: system:node}}
subjects: [{{apiGroup: rbac.authorization.k8s.io, kind: Group, name: system:nodes}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: kubernetes-swh-local
  namespace: default
  labels: {{kubernetes.io/service-name: kubernetes, endpointslice.kubernetes.io/managed-by: swh-local}}
addressType: IPv4
endpoints: [{{addresses: [{}], conditions: {{ready: true}}}}]
ports: [{{name: https, port: 6443, protocol: TCP}}]
"#,
        endpoints.join(", ")
    );
    kubectl_apply(cluster, &objects)?;

    let server = format!("https://127.0.0.1:{api_port}");
    for n in &rn.nodes {
        let w = |f: &str, s: String| {
            let p = n.dir.join(f);
            if let Some(d) = p.parent() {
                std::fs::create_dir_all(d).map_err(|e| setup(format!("{}: {e}", d.display())))?;
            }
            std::fs::write(&p, s).map_err(|e| setup(format!("writing {}: {e}", p.display())))?;
            Ok::<PathBuf, ClusterError>(p)
        };
        w("containerd.toml", containerd_config(n))?;
        w("cni/net.d/10-swh.conflist", cni_config(n))?;
        // A pod's DNS query stays in the pod (no cluster DNS here).
        w("resolv.conf", "nameserver 127.0.0.1\n".into())?;
        w("kubelet.yaml", kubelet_config(n, &pki.ca_cert()))?;
        let kc = |file: &str, ident: &str| {
            kubeconfig_file(
                &n.dir.join(file),
                &server,
                &pki.ca_cert(),
                &pki.cert(ident),
                &pki.key(ident),
            )
            .map_err(|e| setup(e.to_string()))
        };
        kc("kubelet.kubeconfig", &format!("kubelet-{}", n.name))?;
        kc("kube-proxy.kubeconfig", "kube-proxy")?;

        let mut c = n.command("containerd");
        c.arg("--config").arg(n.dir.join("containerd.toml"));
        cluster.spawn(&format!("containerd-{}", n.name), c)?;
    }
    for n in &rn.nodes {
        let sock = n.containerd_sock();
        cluster.wait_ready(
            &format!("containerd-{}", n.name),
            Duration::from_secs(30),
            || {
                Command::new("ctr")
                    .arg("-a")
                    .arg(&sock)
                    .arg("version")
                    .output()
                    .is_ok_and(|o| o.status.success())
            },
        )?;
    }
    // Image archives into every node, the nodes in parallel.
    let started = Instant::now();
    let results: Vec<Result<(), String>> = std::thread::scope(|s| {
        let handles: Vec<_> = rn
            .nodes
            .iter()
            .map(|n| {
                let archives = &archives;
                s.spawn(move || {
                    for a in archives {
                        let out = Command::new("ctr")
                            .arg("-a")
                            .arg(n.containerd_sock())
                            .args(["-n", "k8s.io", "images", "import"])
                            .arg(a)
                            .output()
                            .map_err(|e| format!("ctr import {}: {e}", a.display()))?;
                        if !out.status.success() {
                            return Err(format!(
                                "ctr import {} on {}: {}",
                                a.display(),
                                n.name,
                                String::from_utf8_lossy(&out.stderr).trim()
                            ));
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("image import panicked".into()))
            })
            .collect()
    });
    for r in results {
        r.map_err(setup)?;
    }
    eprintln!(
        "imported {} images into {} nodes in {:.1}s",
        archives.len(),
        rn.nodes.len(),
        started.elapsed().as_secs_f64()
    );

    for n in &rn.nodes {
        let mut k = n.command(bin.join("kubelet"));
        k.arg(format!("--config={}", n.dir.join("kubelet.yaml").display()))
            .arg(format!(
                "--kubeconfig={}",
                n.dir.join("kubelet.kubeconfig").display()
            ))
            .arg(format!("--hostname-override={}", n.name))
            .arg(format!("--node-ip={}", n.node_ip))
            .arg(format!("--root-dir={}", n.dir.join("kubelet").display()))
            // Its serving certificate; the default is the host's /var/lib/kubelet/pki.
            .arg(format!(
                "--cert-dir={}",
                n.dir.join("kubelet-pki").display()
            ))
            .arg("--v=1");
        cluster.spawn(&format!("kubelet-{}", n.name), k)?;
        // One at a time: every kubelet opens its device-plugin socket at the fixed path
        // /var/lib/kubelet/device-plugins/kubelet.sock, and two starting at once race on it
        // ("address already in use").
        let kc = cluster.kubeconfig.clone();
        let kubectl = bin.join("kubectl");
        let name = n.name.clone();
        cluster.wait_ready(&format!("kubelet-{name}"), Duration::from_secs(120), || {
            Command::new(&kubectl)
                .env("KUBECONFIG", &kc)
                .args([
                    "get",
                    "node",
                    &name,
                    "-o",
                    "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
                ])
                .output()
                .is_ok_and(|o| o.status.success() && o.stdout == b"True")
        })?;
    }
    // kube-proxy after its Node has addresses (it waits 30 s otherwise, and exits if they
    // change later).
    for n in &rn.nodes {
        let mut p = n.command(bin.join("kube-proxy"));
        p.args([
            "--proxy-mode=nftables".to_string(),
            format!(
                "--kubeconfig={}",
                n.dir.join("kube-proxy.kubeconfig").display()
            ),
            format!("--hostname-override={}", n.name),
            format!("--cluster-cidr={}", cluster_pod_cidr(&rn)),
            format!("--bind-address={}", n.node_ip),
            format!("--healthz-bind-address={}:10256", n.node_ip),
            format!("--metrics-bind-address={}:10249", n.node_ip),
            "--conntrack-max-per-core=0".into(),
            "--conntrack-tcp-timeout-established=0".into(),
            "--conntrack-tcp-timeout-close-wait=0".into(),
            "--oom-score-adj=0".into(),
            "--v=1".into(),
        ]);
        cluster.spawn(&format!("kube-proxy-{}", n.name), p)?;
    }
    for n in &rn.nodes {
        let ip = n.node_ip;
        cluster.wait_ready(
            &format!("kube-proxy-{}", n.name),
            Duration::from_secs(60),
            || {
                http_get(ip, 10256, "/healthz")
                    .is_some_and(|b| b.contains("\"healthy\":true") || b.contains("healthy"))
            },
        )?;
    }
    Ok(())
}

/// The pods of all nodes: 10.P.128.0/17.
fn cluster_pod_cidr(rn: &RealNodes) -> String {
    let first = rn
        .nodes
        .first()
        .map(|n| n.gateway)
        .unwrap_or(Ipv4Addr::UNSPECIFIED);
    let o = first.octets();
    format!("{}.{}.128.0/17", o[0], o[1])
}

fn kubectl_apply(cluster: &LocalCluster, yaml: &str) -> Result<(), ClusterError> {
    crate::identity::kubectl(cluster, &["apply", "-f", "-"], Some(yaml))
        .map(|_| ())
        .map_err(|e| ClusterError::State {
            path: cluster.work_dir.clone(),
            message: e.to_string(),
        })
}

/// GET on a plain-HTTP port at a node address (inside the harness's own namespaces).
pub fn http_get(ip: Ipv4Addr, port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from((ip, port)),
        Duration::from_secs(1),
    )
    .ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {ip}\r\n\r\n").ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let (head, body) = buf.split_once("\r\n\r\n")?;
    (head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200")).then(|| body.to_string())
}
