use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let args = swh_agent::Args::parse();
    swh_agent::args::init_tracing(args.log_format);
    swh_agent::run::run(args).await
}
