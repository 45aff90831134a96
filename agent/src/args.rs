//! Command line and environment.

use std::net::SocketAddr;

use clap::{Parser, ValueEnum};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Plain,
    Json,
}

/// The swh agent: probes the pods of its node that ServiceWithHealthchecks select and publishes
/// them in EndpointSlices. The Kubernetes client comes from KUBECONFIG or the in-cluster
/// environment.
#[derive(Parser, Debug, Clone)]
#[command(name = "swh-agent", version, about)]
pub struct Args {
    /// Name of this node (from the downward API: spec.nodeName).
    #[arg(long, env = "NODE_NAME", required = true)]
    pub node_name: String,
    /// Plain-HTTP admin address: /livez, /readyz, /metrics.
    #[arg(long, default_value = "0.0.0.0:9446")]
    pub admin_listen: SocketAddr,
    /// Probes running at once, at most.
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_concurrency: u32,
    /// Log format on stderr; the level comes from RUST_LOG (default info).
    #[arg(long, value_enum, default_value_t = LogFormat::Plain)]
    pub log_format: LogFormat,
}

/// Installs the tracing subscriber (stderr, RUST_LOG, default `info`).
pub fn init_tracing(format: LogFormat) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = match format {
        LogFormat::Plain => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
