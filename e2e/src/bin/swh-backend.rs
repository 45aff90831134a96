//! A test backend for pod IPs: TCP listeners that accept and hold connections, and HTTP
//! listeners answering a status on one path. Runs inside the pod network namespace, or as a
//! real pod (image `localhost/swh-backend:dev`).
//!
//! HTTP, on every listener:
//! - the health path (`--http-path`, any method): the current health status (`--http-status`
//!   at start), body `swh-backend`;
//! - `GET /`: `NAME` (`--name`, else `POD_NAME`, else the host name), 200;
//! - `PUT /control/health/<code>`: the health path answers `<code>` from now on (e.g. 503 to
//!   fail, 200 to recover), 204; `GET /control/health`: the current code;
//! - anything else: 404.
//!
//! Every response but the health path's carries `x-served-by: NAME`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use clap::Parser;
use tokio::io::AsyncReadExt;

#[derive(Parser, Debug)]
#[command(
    name = "swh-backend",
    about = "TCP/HTTP test backend for swh e2e tests"
)]
struct Args {
    /// TCP listen address (repeatable); connections are accepted and held until closed.
    #[arg(long)]
    tcp: Vec<SocketAddr>,
    /// HTTP listen address (repeatable).
    #[arg(long)]
    http: Vec<SocketAddr>,
    /// Path answered with the health status (--http-status at start, then what
    /// `PUT /control/health/<code>` sets); other paths get 404.
    #[arg(long, default_value = "/healthz")]
    http_path: String,
    /// Status code for --http-path at start.
    #[arg(long, default_value_t = 200)]
    http_status: u16,
    /// Name answered on `GET /` and sent as `x-served-by` (default: POD_NAME, else the host
    /// name).
    #[arg(long, env = "POD_NAME")]
    name: Option<String>,
}

/// Header naming the backend on every response but the health path's.
const SERVED_BY: HeaderName = HeaderName::from_static("x-served-by");
const CONTROL_HEALTH: &str = "/control/health";

/// State shared by every HTTP listener.
struct Backend {
    name: String,
    served_by: HeaderValue,
    health_path: String,
    /// The health path's status code (a valid one: checked when set).
    health: AtomicU16,
}

impl Backend {
    fn new(name: String, health_path: String, status: StatusCode) -> anyhow::Result<Backend> {
        let served_by = HeaderValue::from_str(&name)
            .map_err(|_| anyhow::anyhow!("--name {name:?} is not a valid header value"))?;
        Ok(Backend {
            name,
            served_by,
            health_path,
            health: AtomicU16::new(status.as_u16()),
        })
    }

    fn health(&self) -> StatusCode {
        StatusCode::from_u16(self.health.load(Ordering::Relaxed))
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

fn router(backend: Arc<Backend>) -> Router {
    Router::new().fallback(handle).with_state(backend)
}

async fn handle(State(b): State<Arc<Backend>>, method: Method, uri: Uri) -> Response {
    let path = uri.path();
    if path == b.health_path {
        return (b.health(), "swh-backend\n").into_response();
    }
    let mut resp = match (&method, path) {
        (&Method::GET, "/") => (StatusCode::OK, format!("{}\n", b.name)).into_response(),
        (&Method::GET, CONTROL_HEALTH) => {
            (StatusCode::OK, format!("{}\n", b.health().as_u16())).into_response()
        }
        (&Method::PUT, p) if p.starts_with("/control/health/") => {
            let code = p.trim_start_matches("/control/health/");
            match code.parse::<u16>().ok().map(StatusCode::from_u16) {
                Some(Ok(s)) if s.as_u16() <= 599 => {
                    b.health.store(s.as_u16(), Ordering::Relaxed);
                    eprintln!("swh-backend: health status now {}", s.as_u16());
                    StatusCode::NO_CONTENT.into_response()
                }
                _ => (
                    StatusCode::BAD_REQUEST,
                    format!("not a status code (100-599): {code:?}\n"),
                )
                    .into_response(),
            }
        }
        _ => (StatusCode::NOT_FOUND, "not found\n").into_response(),
    };
    resp.headers_mut().insert(SERVED_BY, b.served_by.clone());
    resp
}

/// The default name: the host name (a pod's name in Kubernetes, unless `hostname` is set).
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "swh-backend".to_string())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let status = StatusCode::from_u16(args.http_status)?;
    let name = args
        .name
        .filter(|n| !n.is_empty())
        .unwrap_or_else(host_name);
    let backend = Arc::new(Backend::new(name, args.http_path, status)?);
    let mut tasks = tokio::task::JoinSet::new();
    for addr in args.tcp {
        let l = tokio::net::TcpListener::bind(addr).await?;
        tasks.spawn(async move {
            loop {
                let Ok((mut s, _)) = l.accept().await else {
                    continue;
                };
                tokio::spawn(async move {
                    let mut buf = [0u8; 512];
                    while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {}
                });
            }
        });
    }
    for addr in args.http {
        let l = tokio::net::TcpListener::bind(addr).await?;
        let app = router(backend.clone());
        tasks.spawn(async move {
            let _ = axum::serve(l, app).await;
        });
    }
    eprintln!("swh-backend: serving as {}", backend.name);
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await }
        } => {}
        _ = tasks.join_next() => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::*;

    /// One request over loopback to a fresh listener serving `app`: (status, x-served-by,
    /// body).
    async fn request(app: Router, method: &str, path: &str) -> (u16, Option<String>, String) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let server = tokio::spawn(async move { axum::serve(l, app).await });
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let req = format!(
            "{method} {path} HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        );
        s.write_all(req.as_bytes()).await.unwrap();
        let mut raw = String::new();
        s.read_to_string(&mut raw).await.unwrap();
        server.abort();
        let (head, body) = raw.split_once("\r\n\r\n").unwrap();
        let mut lines = head.lines();
        let status = lines.next().unwrap().split(' ').nth(1).unwrap();
        let served_by = lines
            .filter_map(|l| l.split_once(": "))
            .find(|(k, _)| k.eq_ignore_ascii_case("x-served-by"))
            .map(|(_, v)| v.to_string());
        (status.parse().unwrap(), served_by, body.to_string())
    }

    #[tokio::test]
    async fn name_health_and_control() {
        let b = Arc::new(Backend::new("pod-a".into(), "/healthz".into(), StatusCode::OK).unwrap());
        let app = router(b);
        let name = Some("pod-a".to_string());
        assert_eq!(
            request(app.clone(), "GET", "/").await,
            (200, name.clone(), "pod-a\n".into())
        );
        assert_eq!(
            request(app.clone(), "GET", "/healthz").await,
            (200, None, "swh-backend\n".into())
        );
        assert_eq!(
            request(app.clone(), "GET", "/control/health").await,
            (200, name.clone(), "200\n".into())
        );
        // Fail, then recover.
        assert_eq!(
            request(app.clone(), "PUT", "/control/health/503").await.0,
            204
        );
        assert_eq!(request(app.clone(), "GET", "/healthz").await.0, 503);
        assert_eq!(
            request(app.clone(), "GET", "/control/health").await.2,
            "503\n"
        );
        assert_eq!(
            request(app.clone(), "PUT", "/control/health/200").await.0,
            204
        );
        assert_eq!(request(app.clone(), "HEAD", "/healthz").await.0, 200);
        // Bad codes change nothing; other paths are 404 with the header.
        for bad in ["abc", "99", "600", ""] {
            let r = request(app.clone(), "PUT", &format!("/control/health/{bad}")).await;
            assert_eq!((r.0, r.1.as_deref()), (400, Some("pod-a")), "{bad}");
        }
        assert_eq!(request(app.clone(), "GET", "/healthz").await.0, 200);
        assert_eq!(
            request(app.clone(), "GET", "/nope").await,
            (404, name.clone(), "not found\n".into())
        );
        assert_eq!(request(app, "POST", "/").await.0, 404);
    }

    #[test]
    fn names_must_be_header_values() {
        assert!(Backend::new("a\nb".into(), "/healthz".into(), StatusCode::OK).is_err());
        assert!(!host_name().is_empty());
    }
}
