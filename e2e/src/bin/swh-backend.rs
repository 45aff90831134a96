//! A test backend for pod IPs: TCP listeners that accept and hold connections, and HTTP
//! listeners answering a fixed status on one path. Runs inside the pod network namespace.

use std::net::SocketAddr;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::any;
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
    /// Path answered with --http-status; other paths get 404.
    #[arg(long, default_value = "/healthz")]
    http_path: String,
    /// Status code for --http-path.
    #[arg(long, default_value_t = 200)]
    http_status: u16,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let status = StatusCode::from_u16(args.http_status)?;
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
        let path = args.http_path.clone();
        let app = Router::new()
            .route(&path, any(move || async move { (status, "swh-backend\n") }))
            .fallback(|| async { (StatusCode::NOT_FOUND, "not found\n") });
        tasks.spawn(async move {
            let _ = axum::serve(l, app).await;
        });
    }
    eprintln!("swh-backend: serving");
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
