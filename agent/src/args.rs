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
    /// Timeout of one API request (connect, send, each wait for the response), in seconds. A
    /// timed-out write is retried with backoff like any failed one. Lists and watches use the
    /// connect/send part; their read timeout is beyond the server's watch timeout.
    #[arg(long, env = "SWH_API_TIMEOUT_SECONDS", default_value_t = swh_runtime::client::DEFAULT_API_TIMEOUT_SECS,
          value_parser = clap::value_parser!(u64).range(1..=300))]
    pub api_timeout_seconds: u64,
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

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::Args;

    #[test]
    fn api_timeout_defaults_to_a_few_seconds_and_is_never_zero() {
        let a = Args::try_parse_from(["swh-agent", "--node-name=n"]).unwrap();
        assert_eq!(a.api_timeout_seconds, 5);
        let a = Args::try_parse_from(["swh-agent", "--node-name=n", "--api-timeout-seconds=2"])
            .unwrap();
        assert_eq!(a.api_timeout_seconds, 2);
        assert!(
            Args::try_parse_from(["swh-agent", "--node-name=n", "--api-timeout-seconds=0"])
                .is_err()
        );
    }
}
