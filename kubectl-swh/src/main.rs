use clap::Parser;

fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let _args = kubectl_swh::Args::parse();
    Ok(())
}
