//! Load generator for a running swh-webhook (starts nothing itself).
//!
//! `swh-webhook-bench --url https://127.0.0.1:9443 --ca ca.crt --rate 500 --duration 10
//!  --concurrency 8 [--pid PID]`
//!
//! For `/validate-swh` and `/convert` in turn: a steady-rate phase (`--rate` requests/s spread
//! over `--concurrency` keep-alive HTTP/1.1 connections over TLS; latency measured from the
//! scheduled send time, so queueing shows) printing p50/p90/p99/max, then a saturation phase
//! (closed loop, every connection back to back) printing throughput. With `--pid`, the
//! webhook's RSS (VmRSS, and peak VmHWM) from /proc.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::json;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

#[derive(Parser, Debug)]
#[command(
    name = "swh-webhook-bench",
    about = "Drive a running swh-webhook over loopback TLS"
)]
struct Args {
    /// Base URL of the webhook, e.g. https://127.0.0.1:9443
    #[arg(long)]
    url: String,
    /// CA certificate (PEM) that signed the webhook's certificate.
    #[arg(long)]
    ca: PathBuf,
    /// Requests per second in the steady phase (total over all connections).
    #[arg(long, default_value_t = 500)]
    rate: u32,
    /// Seconds per phase and endpoint.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Connections (each one request at a time).
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// PID of the webhook, to report its RSS.
    #[arg(long)]
    pid: Option<u32>,
    /// Skip the saturation phase.
    #[arg(long)]
    no_saturation: bool,
}

struct Target {
    addr: SocketAddr,
    host: String,
    connector: TlsConnector,
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(t: &Target) -> anyhow::Result<Sender> {
    let tcp = TcpStream::connect(t.addr).await?;
    tcp.set_nodelay(true)?;
    let name = ServerName::try_from(t.host.clone())?;
    let tls = t.connector.connect(name, tcp).await?;
    let (send, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls)).await?;
    tokio::spawn(conn);
    Ok(send)
}

async fn once(send: &mut Sender, t: &Target, path: &str, body: &Bytes) -> anyhow::Result<()> {
    send.ready().await?;
    let req = hyper::Request::post(path)
        .header("host", t.host.as_str())
        .header("content-type", "application/json")
        .body(Full::new(body.clone()))?;
    let resp = send.send_request(req).await?;
    let status = resp.status();
    let bytes = resp.into_body().collect().await?.to_bytes();
    if !status.is_success() {
        bail!("HTTP {status}: {}", String::from_utf8_lossy(&bytes));
    }
    Ok(())
}

fn admission_body() -> Bytes {
    Bytes::from(
        json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "bench",
                "kind": {"group": "network.deckhouse.io", "version": "v1alpha1", "kind": "ServiceWithHealthchecks"},
                "resource": {"group": "network.deckhouse.io", "version": "v1alpha1", "resource": "servicewithhealthchecks"},
                "name": "postgres-read", "namespace": "bench", "operation": "CREATE",
                "userInfo": {"username": "bench"},
                "object": {
                    "apiVersion": "network.deckhouse.io/v1alpha1", "kind": "ServiceWithHealthchecks",
                    "metadata": {"name": "postgres-read", "namespace": "bench"},
                    "spec": {
                        "ports": [{"port": 5432, "protocol": "TCP", "targetPort": 5432}],
                        "selector": {"app": "postgres"},
                        "healthcheck": {"probes": [
                            {"mode": "PostgreSQL", "postgreSQL": {"targetPort": 5432, "dbName": "postgres", "authSecretName": "cred-secret", "query": "SELECT 1"}},
                            {"mode": "HTTP", "http": {"targetPort": 8080, "method": "GET", "path": "/healthz"}}
                        ]}
                    }
                },
                "oldObject": null, "dryRun": false
            }
        })
        .to_string(),
    )
}

fn conversion_body() -> Bytes {
    Bytes::from(
        json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "ConversionReview",
            "request": {
                "uid": "bench",
                "desiredAPIVersion": "network.deckhouse.io/v1alpha1",
                "objects": [{
                    "apiVersion": "network.deckhouse.io/v1beta1", "kind": "ServiceWithHealthchecks",
                    "metadata": {"name": "rich", "namespace": "bench", "uid": "1", "resourceVersion": "5"},
                    "spec": {
                        "ports": [{"name": "http", "port": 80, "targetPort": "web"}],
                        "selector": {"app": "rich"},
                        "healthcheck": {"failOpen": {"minPassingPercent": 50}, "probes": [
                            {"name": "ready", "mode": "HTTP", "periodSeconds": 5, "http": {"port": "web", "path": "/ready", "expectedStatuses": ["200-299"]}},
                            {"name": "grpc", "mode": "GRPC", "grpc": {"port": 9090}}
                        ]}
                    }
                }]
            }
        })
        .to_string(),
    )
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

fn rss(pid: u32) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |k: &str| {
        status
            .lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .map(|kb| format!("{:.1} MiB", kb as f64 / 1024.0))
            .unwrap_or_else(|| "?".into())
    };
    format!("RSS {} (peak {})", field("VmRSS:"), field("VmHWM:"))
}

/// Steady phase: each worker sends at rate/concurrency; latency from the scheduled time.
async fn steady(t: Arc<Target>, a: &Args, path: &'static str, body: Bytes) -> anyhow::Result<()> {
    let per_worker = f64::from(a.rate.max(1)) / a.concurrency as f64;
    let interval = Duration::from_secs_f64(1.0 / per_worker);
    let deadline = Instant::now() + Duration::from_secs(a.duration);
    let mut tasks = Vec::new();
    let a_conc = a.concurrency.max(1);
    for w in 0..a.concurrency {
        let t = t.clone();
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            let mut send = connect(&t).await?;
            let mut lat = Vec::new();
            let mut errors = 0u64;
            // Stagger the workers over one interval.
            let mut next = Instant::now() + interval.mul_f64(w as f64 / a_conc as f64);
            while next < deadline {
                tokio::time::sleep_until(next.into()).await;
                match once(&mut send, &t, path, &body).await {
                    Ok(()) => lat.push(next.elapsed()),
                    Err(_) => {
                        errors += 1;
                        send = connect(&t).await?;
                    }
                }
                next += interval;
            }
            anyhow::Ok((lat, errors))
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (lat, e) = task.await??;
        all.extend(lat);
        errors += e;
    }
    all.sort();
    println!(
        "{path:18} steady {:>6} req/s x {}s over {} conns: n={} errors={} p50={} p90={} p99={} max={}",
        a.rate,
        a.duration,
        a.concurrency,
        all.len(),
        errors,
        ms(pct(&all, 0.50)),
        ms(pct(&all, 0.90)),
        ms(pct(&all, 0.99)),
        ms(all.last().copied().unwrap_or_default()),
    );
    Ok(())
}

/// Saturation phase: closed loop on every connection.
async fn saturate(t: Arc<Target>, a: &Args, path: &'static str, body: Bytes) -> anyhow::Result<()> {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(a.duration);
    let mut tasks = Vec::new();
    for _ in 0..a.concurrency {
        let t = t.clone();
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            let mut send = connect(&t).await?;
            let mut lat = Vec::new();
            while Instant::now() < deadline {
                let s = Instant::now();
                once(&mut send, &t, path, &body).await?;
                lat.push(s.elapsed());
            }
            anyhow::Ok(lat)
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await??);
    }
    let secs = started.elapsed().as_secs_f64();
    all.sort();
    println!(
        "{path:18} saturation {} conns x {}s: {:.0} req/s (n={}) p50={} p99={}",
        a.concurrency,
        a.duration,
        all.len() as f64 / secs,
        all.len(),
        ms(pct(&all, 0.50)),
        ms(pct(&all, 0.99)),
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let a = Args::parse();
    let rest = a
        .url
        .strip_prefix("https://")
        .context("--url must start with https://")?;
    let hostport = rest.split('/').next().unwrap_or(rest);
    let addr: SocketAddr = tokio::net::lookup_host(hostport)
        .await?
        .next()
        .context("--url host does not resolve")?;
    let host = hostport
        .rsplit_once(':')
        .map(|(h, _)| h.trim_matches(['[', ']']).to_string())
        .unwrap_or_else(|| hostport.to_string());
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(&a.ca).with_context(|| format!("reading {}", a.ca.display()))?;
    for c in CertificateDer::pem_slice_iter(&pem) {
        roots.add(c?)?;
    }
    let mut cfg = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let t = Arc::new(Target {
        addr,
        host,
        connector: TlsConnector::from(Arc::new(cfg)),
    });
    if let Some(pid) = a.pid {
        println!("webhook pid {pid} before: {}", rss(pid));
    }
    for (path, body) in [
        ("/validate-swh", admission_body()),
        ("/convert", conversion_body()),
    ] {
        // Warm-up: connections, allocator, caches.
        let mut send = connect(&t).await?;
        for _ in 0..200 {
            once(&mut send, &t, path, &body).await?;
        }
        steady(t.clone(), &a, path, body.clone()).await?;
        if !a.no_saturation {
            saturate(t.clone(), &a, path, body).await?;
        }
        if let Some(pid) = a.pid {
            println!("webhook pid {pid} after {path}: {}", rss(pid));
        }
    }
    Ok(())
}
