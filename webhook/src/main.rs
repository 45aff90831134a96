use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // One TLS provider, installed before anything can build a TLS config.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let args = swh_webhook::Args::parse();
    swh_webhook::init_tracing(args.log_format);
    swh_webhook::run(args).await?;
    Ok(())
}
