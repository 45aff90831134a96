//! `kubectl_complete-swh`: what kubectl (≥ 1.26) runs to complete `kubectl swh ...`. It gets
//! the words after `kubectl swh` (the last one being completed) and answers in Cobra's protocol
//! (see `kubectl_swh::complete`). Install it on $PATH next to kubectl-swh.

fn main() -> std::process::ExitCode {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let words: Vec<String> = std::env::args().skip(1).collect();
    let code = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(kubectl_swh::complete::run(&words)),
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            1
        }
    };
    std::process::ExitCode::from(u8::try_from(code).unwrap_or(1))
}
