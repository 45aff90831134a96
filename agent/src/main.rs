use clap::Parser;

fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let args = swh_agent::Args::parse();
    swh_agent::args::init_tracing(args.log_format);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = rt.block_on(swh_agent::run::run(args));
    // Don't wait for blocking work still in flight (e.g. a name lookup) on the way out.
    rt.shutdown_timeout(std::time::Duration::from_millis(200));
    result
}
