use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let args = swh_controller::Args::parse();
    swh_controller::init_tracing(args.log_format, &args.log_level);
    swh_controller::run(args).await
}
