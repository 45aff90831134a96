//! swh-webhook: validating admission for ServiceWithHealthchecks and their child Services, and
//! the CRD conversion webhook, over TLS; plus a plain-HTTP admin port (`/livez`, `/readyz`,
//! `/metrics`).
//!
//! The request logic is pure and lives in [`admission`] and [`conversion`]; [`server`] only
//! (de)serialises, limits bodies and counts. [`tls`] re-reads the certificate files when they
//! change (checked on every handshake and by a poller), so rotation needs no restart.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::{Parser, ValueEnum};
use tracing::{info, warn};

pub mod admission;
pub mod conversion;
pub mod metrics;
pub mod server;
pub mod tls;

/// Default identity allowed to change child Services (the controller's service account).
pub const DEFAULT_CONTROLLER_USERNAME: &str = "system:serviceaccount:swh-system:swh-controller";

/// Largest request body accepted (larger gets HTTP 413).
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Plain,
    Json,
}

/// Command line of `swh-webhook`.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "swh-webhook",
    version,
    about = "ServiceWithHealthchecks webhook: validating admission and CRD conversion over TLS"
)]
pub struct Args {
    /// TLS listen address for /validate-swh, /validate-service and /convert.
    #[arg(long, env = "SWH_WEBHOOK_LISTEN", default_value = "0.0.0.0:9443")]
    pub listen: SocketAddr,
    /// Serving certificate chain (PEM); re-read when the file changes.
    #[arg(long, env = "SWH_WEBHOOK_TLS_CERT_FILE")]
    pub tls_cert_file: PathBuf,
    /// Private key of the serving certificate (PEM); re-read when the file changes.
    #[arg(long, env = "SWH_WEBHOOK_TLS_KEY_FILE")]
    pub tls_key_file: PathBuf,
    /// Plain-HTTP admin address for /livez, /readyz and /metrics.
    #[arg(long, env = "SWH_WEBHOOK_ADMIN_LISTEN", default_value = "0.0.0.0:9444")]
    pub admin_listen: SocketAddr,
    /// Log format on stderr (level from RUST_LOG, default info).
    #[arg(long, value_enum, default_value = "plain")]
    pub log_format: LogFormat,
    /// User name allowed to change child Services of a ServiceWithHealthchecks.
    #[arg(long, env = "SWH_CONTROLLER_USERNAME", default_value = DEFAULT_CONTROLLER_USERNAME)]
    pub controller_username: String,
    /// How often the certificate files are checked for changes in the background (they are
    /// also checked on every TLS handshake).
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub cert_poll_interval: Duration,
    /// Do not look up Secrets in the API even when a kubeconfig or in-cluster config exists.
    #[arg(long)]
    pub no_api: bool,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map(|i| s.split_at(i))
        .unwrap_or((s, "s"));
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 2s or 500ms"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(format!("{s:?}: unit must be ms, s or m")),
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{s:?}: {e}"))
}

/// Errors that stop the webhook.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("binding {what} {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    #[error("{what} server: {source}")]
    Serve {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
}

/// Sets up tracing on stderr (`RUST_LOG`, default `info`).
pub fn init_tracing(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Plain => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// A bound (not yet serving) webhook: both listeners are open, so their addresses are known.
pub struct Bound {
    tls_listener: std::net::TcpListener,
    admin_listener: tokio::net::TcpListener,
    state: server::AppState,
    certs: Arc<tls::CertStore>,
    poll: Duration,
}

impl Bound {
    /// Address of the TLS listener.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.tls_listener.local_addr()
    }

    /// Address of the admin listener.
    pub fn admin_addr(&self) -> std::io::Result<SocketAddr> {
        self.admin_listener.local_addr()
    }

    /// Serves until `shutdown` completes, then drains in-flight requests (up to 10 s).
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), Error> {
        let Bound {
            tls_listener,
            admin_listener,
            state,
            certs,
            poll,
        } = self;
        let shutting_down = state.shutting_down.clone();

        let tls_config = tls::server_config(certs.clone())?;
        let handle = axum_server::Handle::new();
        let tls_server = axum_server::from_tcp_rustls(
            tls_listener,
            axum_server::tls_rustls::RustlsConfig::from_config(tls_config),
        )
        .map_err(|source| Error::Serve {
            what: "webhook",
            source,
        })?
        .handle(handle.clone())
        .serve(server::router(state.clone()).into_make_service());

        let (admin_stop_tx, admin_stop_rx) = tokio::sync::oneshot::channel::<()>();
        let admin_server = axum::serve(admin_listener, server::admin_router(state))
            .with_graceful_shutdown(async move {
                let _ = admin_stop_rx.await;
            });

        let poller = tokio::spawn(async move {
            let mut tick = tokio::time::interval(poll);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let certs = certs.clone();
                // File I/O off the async threads.
                let _ = tokio::task::spawn_blocking(move || certs.refresh()).await;
            }
        });

        let stopper = async move {
            shutdown.await;
            info!("shutting down: draining in-flight requests");
            shutting_down.store(true, Ordering::SeqCst);
            handle.graceful_shutdown(Some(Duration::from_secs(10)));
            let _ = admin_stop_tx.send(());
        };

        let (tls_res, admin_res, ()) = tokio::join!(tls_server, admin_server, stopper);
        poller.abort();
        tls_res.map_err(|source| Error::Serve {
            what: "webhook",
            source,
        })?;
        admin_res.map_err(|source| Error::Serve {
            what: "admin",
            source,
        })?;
        info!("stopped");
        Ok(())
    }
}

/// Opens both listeners, loads the certificates (not fatal: `/readyz` stays 503 until they
/// load) and sets up the API client for Secret look-ups (skipped when none is configured).
pub async fn bind(args: &Args) -> Result<Bound, Error> {
    let tls_listener = std::net::TcpListener::bind(args.listen).map_err(|source| Error::Bind {
        what: "webhook",
        addr: args.listen,
        source,
    })?;
    let admin_listener = tokio::net::TcpListener::bind(args.admin_listen)
        .await
        .map_err(|source| Error::Bind {
            what: "admin",
            addr: args.admin_listen,
            source,
        })?;
    let certs = Arc::new(tls::CertStore::new(
        args.tls_cert_file.clone(),
        args.tls_key_file.clone(),
    ));
    {
        let certs = certs.clone();
        let _ = tokio::task::spawn_blocking(move || certs.refresh()).await;
    }
    let secrets: Option<Arc<dyn admission::SecretLookup>> = if args.no_api {
        None
    } else {
        match kube::Client::try_default().await {
            Ok(client) => {
                info!("API access configured: checking that referenced Secrets exist");
                Some(Arc::new(admission::KubeSecrets::new(client)))
            }
            Err(e) => {
                info!(error = %e, "no API access configured: Secret existence checks are skipped");
                None
            }
        }
    };
    let ctx = admission::Context {
        controller_username: args.controller_username.clone(),
        secrets,
    };
    let state = server::AppState {
        ctx: Arc::new(ctx),
        metrics: Arc::new(metrics::Metrics::new()),
        certs: certs.clone(),
        shutting_down: Arc::new(AtomicBool::new(false)),
    };
    Ok(Bound {
        tls_listener,
        admin_listener,
        state,
        certs,
        poll: args.cert_poll_interval,
    })
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let term = async {
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = term => info!("SIGTERM received"),
        r = tokio::signal::ctrl_c() => {
            if r.is_ok() { info!("SIGINT received") }
        }
    }
}

/// The whole program after argument parsing: bind, serve until SIGTERM/SIGINT.
pub async fn run(args: Args) -> Result<(), Error> {
    let bound = bind(&args).await?;
    info!(
        listen = %args.listen,
        admin = %args.admin_listen,
        cert = %args.tls_cert_file.display(),
        controller_username = %args.controller_username,
        "swh-webhook serving"
    );
    bound.serve(shutdown_signal()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("x").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn cli_parses_the_documented_flags() {
        let a = Args::try_parse_from([
            "swh-webhook",
            "--listen",
            "127.0.0.1:9443",
            "--tls-cert-file",
            "c.pem",
            "--tls-key-file",
            "k.pem",
            "--admin-listen",
            "127.0.0.1:9444",
            "--log-format",
            "json",
        ])
        .expect("parses");
        assert_eq!(a.controller_username, DEFAULT_CONTROLLER_USERNAME);
        assert_eq!(a.log_format, LogFormat::Json);
        assert_eq!(a.listen.port(), 9443);
    }
}
