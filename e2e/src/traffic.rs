//! Traffic on real nodes: clients inside a node's network namespace (where its kube-proxy
//! translates ClusterIPs), and real backend pods (the `swh-backend` image) whose health a test
//! flips over HTTP. Nothing here ever connects to a ClusterIP from the host namespace.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::PostParams;
use kube::{Api, Client};
use serde_json::json;

use crate::nodes::RealNode;

/// The backend image (`make images`).
pub const BACKEND_IMAGE: &str = "localhost/swh-backend:dev";
/// The PostgreSQL image (`make images`).
pub const POSTGRES_IMAGE: &str = "localhost/swh/postgres:15";

#[derive(Debug, thiserror::Error)]
pub enum TrafficError {
    #[error("entering the network namespace of {node}: {detail}")]
    Netns { node: String, detail: String },
    #[error(transparent)]
    Kube(#[from] kube::Error),
    #[error("{0}")]
    Failed(String),
}

/// Runs `f` on a thread of its own inside `node`'s network namespace (`setns` changes the
/// calling thread only) and returns its result.
pub fn in_node<T: Send + 'static>(
    node: &RealNode,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, TrafficError> {
    let path = node.netns_path();
    let name = node.name.clone();
    std::thread::spawn(move || {
        enter(&path, &name)?;
        Ok(f())
    })
    .join()
    .map_err(|_| TrafficError::Failed("a thread in the node namespace panicked".into()))?
}

fn enter(path: &str, node: &str) -> Result<(), TrafficError> {
    let err = |detail: String| TrafficError::Netns {
        node: node.to_string(),
        detail,
    };
    let f = std::fs::File::open(path).map_err(|e| err(format!("{path}: {e}")))?;
    nix::sched::setns(f.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
        .map_err(|e| err(format!("setns: {e}")))
}

/// One request of a [`ClientLoop`]: when it was sent, and who answered (the backend's name)
/// or why it failed.
#[derive(Debug, Clone)]
pub struct Sample {
    pub at: Instant,
    pub result: Result<String, String>,
}

/// A client that opens a new TCP connection and sends `GET /` every `interval` from inside a
/// node, recording who answered. New connections each time: kube-proxy picks an endpoint per
/// connection and does not cut established ones.
pub struct ClientLoop {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<Result<Vec<Sample>, TrafficError>>>,
}

impl ClientLoop {
    pub fn start(node: &RealNode, target: SocketAddr, interval: Duration) -> ClientLoop {
        let stop = Arc::new(AtomicBool::new(false));
        let (path, name) = (node.netns_path(), node.name.clone());
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            enter(&path, &name)?;
            let mut out = Vec::new();
            let mut next = Instant::now();
            while !flag.load(Ordering::Relaxed) {
                let at = Instant::now();
                out.push(Sample {
                    at,
                    result: http_get_name(target),
                });
                next += interval;
                let now = Instant::now();
                if next > now {
                    std::thread::sleep(next - now);
                } else {
                    next = now;
                }
            }
            Ok(out)
        });
        ClientLoop {
            stop,
            handle: Some(handle),
        }
    }

    /// Stops the loop and returns every sample.
    pub fn finish(mut self) -> Result<Vec<Sample>, TrafficError> {
        self.stop.store(true, Ordering::Relaxed);
        match self.handle.take() {
            Some(h) => h
                .join()
                .map_err(|_| TrafficError::Failed("client thread panicked".into()))?,
            None => Ok(Vec::new()),
        }
    }
}

impl Drop for ClientLoop {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// `GET /` over a new connection; the body's first line (the backend's name).
pub fn http_get_name(target: SocketAddr) -> Result<String, String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&target, Duration::from_secs(1))
        .map_err(|e| format!("connect: {e}"))?;
    // Generous: a loaded 2-core machine can stall a debug backend for a while; a stall is
    // not a refused or reset connection.
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    write!(
        s,
        "GET / HTTP/1.0\r\nHost: {target}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("write: {e}"))?;
    let mut buf = String::new();
    s.read_to_string(&mut buf)
        .map_err(|e| format!("read: {e}"))?;
    let (head, body) = buf
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("malformed response: {buf:?}"))?;
    if !(head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200")) {
        return Err(head.lines().next().unwrap_or("").to_string());
    }
    Ok(body.lines().next().unwrap_or("").trim().to_string())
}

/// Counts per answer (backend name or error text).
pub fn tally(samples: &[Sample]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for s in samples {
        let k = match &s.result {
            Ok(n) => n.clone(),
            Err(e) => format!("error: {e}"),
        };
        *m.entry(k).or_insert(0) += 1;
    }
    m
}

/// Creates a backend pod on `node` (HTTP on 8080 answering its name on `/` and 200 on
/// `/healthz`, TCP on 2525) with `labels`.
pub async fn create_backend_pod(
    client: &Client,
    ns: &str,
    name: &str,
    node: &str,
    labels: &BTreeMap<String, String>,
) -> Result<(), TrafficError> {
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": {
            "nodeSelector": {"kubernetes.io/hostname": node},
            "terminationGracePeriodSeconds": 2,
            "automountServiceAccountToken": false,
            "securityContext": {"runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532,
                                "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "backend",
                "image": BACKEND_IMAGE,
                "args": ["--http", "0.0.0.0:8080", "--tcp", "0.0.0.0:2525", "--name", name],
                "ports": [{"name": "http", "containerPort": 8080}, {"name": "smtp", "containerPort": 2525}],
                "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
                                    "capabilities": {"drop": ["ALL"]}},
            }],
        },
    }))
    .map_err(|e| TrafficError::Failed(format!("pod manifest: {e}")))?;
    Api::<Pod>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &pod)
        .await?;
    Ok(())
}

/// Waits until the pod is Ready (kubelet) and returns its IP.
pub async fn wait_pod_ready(
    client: &Client,
    ns: &str,
    name: &str,
    limit: Duration,
) -> Result<IpAddr, TrafficError> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let start = Instant::now();
    loop {
        if let Some(p) = api.get_opt(name).await? {
            let st = p.status.unwrap_or_default();
            let ready = st
                .conditions
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            if ready && let Some(ip) = st.pod_ip.as_deref().and_then(|s| s.parse().ok()) {
                return Ok(ip);
            }
        }
        if start.elapsed() > limit {
            return Err(TrafficError::Failed(format!(
                "pod {ns}/{name} not Ready within {limit:?}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Sets the status a backend pod's `/healthz` answers (`PUT /control/health/<code>` at the
/// pod IP, reached from the host over the harness's route to the node's pods).
pub fn set_health(pod_ip: IpAddr, code: u16) -> Result<(), String> {
    use std::io::{Read, Write};
    let target = SocketAddr::new(pod_ip, 8080);
    let mut s = std::net::TcpStream::connect_timeout(&target, Duration::from_secs(2))
        .map_err(|e| format!("connect {target}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(|e| e.to_string())?;
    write!(
        s,
        "PUT /control/health/{code} HTTP/1.0\r\nHost: {target}\r\nContent-Length: 0\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).map_err(|e| e.to_string())?;
    if buf.starts_with("HTTP/1.1 2") || buf.starts_with("HTTP/1.0 2") {
        Ok(())
    } else {
        Err(format!(
            "setting health {code} at {target}: {}",
            buf.lines().next().unwrap_or("")
        ))
    }
}

/// The ClusterIP of a Service, waiting up to 60 s for the Service to exist (an SWH's child
/// Service is created by the controller, possibly after the agents' slices).
pub async fn cluster_ip(client: &Client, ns: &str, svc: &str) -> Result<IpAddr, TrafficError> {
    let api = Api::<k8s_openapi::api::core::v1::Service>::namespaced(client.clone(), ns);
    let start = Instant::now();
    loop {
        if let Some(s) = api.get_opt(svc).await?
            && let Some(ip) = s
                .spec
                .and_then(|s| s.cluster_ip)
                .and_then(|ip| ip.parse().ok())
        {
            return Ok(ip);
        }
        if start.elapsed() > Duration::from_secs(60) {
            return Err(TrafficError::Failed(format!(
                "service {ns}/{svc} has no ClusterIP after 60 s"
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Percentile (0..=100) of `v` (sorted in place); `None` when empty.
pub fn percentile(v: &mut [f64], p: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let idx = ((p / 100.0) * (v.len() - 1) as f64).round() as usize;
    v.get(idx.min(v.len() - 1)).copied()
}

/// A quantile (0..1) of a Prometheus histogram in text exposition format, by linear
/// interpolation inside the bucket (as PromQL's `histogram_quantile`), summed over every label
/// set of `name`; with the observation count. `None` when the histogram is absent or empty.
pub fn histogram_quantile(metrics: &str, name: &str, q: f64) -> Option<(f64, u64)> {
    let mut buckets: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
    let prefix = format!("{name}_bucket{{");
    for line in metrics.lines() {
        let Some(rest) = line.strip_prefix(&prefix) else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once('}') else {
            continue;
        };
        let le = labels
            .split(',')
            .find_map(|kv| kv.trim().strip_prefix("le=\""))
            .map(|v| v.trim_end_matches('"'));
        let (Some(le), Ok(count)) = (le, value.trim().parse::<f64>()) else {
            continue;
        };
        let bound = if le == "+Inf" {
            f64::INFINITY
        } else {
            match le.parse::<f64>() {
                Ok(b) => b,
                Err(_) => continue,
            }
        };
        let e = buckets.entry(bound.to_bits()).or_insert((bound, 0.0));
        e.1 += count;
    }
    let mut v: Vec<(f64, f64)> = buckets.into_values().collect();
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = v.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let (mut lo, mut below) = (0.0, 0.0);
    for (bound, count) in &v {
        if *count >= rank {
            if bound.is_infinite() {
                return Some((lo, total as u64));
            }
            let in_bucket = count - below;
            let frac = if in_bucket > 0.0 {
                (rank - below) / in_bucket
            } else {
                0.0
            };
            return Some((lo + (bound - lo) * frac, total as u64));
        }
        lo = *bound;
        below = *count;
    }
    None
}

#[cfg(test)]
mod tests {
    #[test]
    fn histogram_quantile_interpolates_inside_the_bucket() {
        let m = "x_bucket{le=\"0.1\"} 0\nx_bucket{le=\"0.2\"} 50\nx_bucket{le=\"0.4\"} 100\nx_bucket{le=\"+Inf\"} 100\nx_count 100\n";
        let (p50, n) = super::histogram_quantile(m, "x", 0.5).expect("p50");
        assert_eq!(n, 100);
        assert!((p50 - 0.2).abs() < 1e-9, "{p50}");
        let (p99, _) = super::histogram_quantile(m, "x", 0.99).expect("p99");
        assert!((p99 - 0.396).abs() < 1e-9, "{p99}");
        assert!(super::histogram_quantile(m, "y", 0.5).is_none());
    }
}
