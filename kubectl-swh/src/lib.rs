//! kubectl swh: `status` (per-pod, per-probe state of ServiceWithHealthchecks) and `migrate`
//! (Service → ServiceWithHealthchecks, live with handover or offline from files).
//!
//! Looks and behaves like `kubectl get`: see the crate README-level notes in `table`, `age`,
//! `output`. Exit codes: 0 ok, 1 error, 2 usage (and `migrate --dry-run` follows `kubectl diff`:
//! 0 no change, 1 would change, 2 error).

pub mod age;
pub mod args;
pub mod complete;
pub mod migrate;
pub mod output;
pub mod progress;
pub mod status;
pub mod table;

use std::io::{IsTerminal, Write};

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

pub use args::Cli;
use args::{ColorMode, Command, GlobalArgs};

/// Field manager of everything the plugin writes.
pub const FIELD_MANAGER: &str = "kubectl-swh";

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad arguments (exit 2).
    #[error("{0}")]
    Usage(String),
    /// An API call failed.
    #[error("{}", kube_message(.0))]
    Kube(#[from] kube::Error),
    /// Loading the kubeconfig failed.
    #[error("{0}")]
    Config(String),
    /// Anything else, already in words.
    #[error("{0}")]
    Other(String),
}

/// kubectl's wording: `Error from server (NotFound): services "web" not found`.
pub fn kube_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => {
            let reason = if s.reason.is_empty() {
                s.code.to_string()
            } else {
                s.reason.clone()
            };
            format!("Error from server ({reason}): {}", s.message)
        }
        e => format!("error: {e}"),
    }
}

impl Error {
    /// The text for stderr, prefixed as kubectl does.
    pub fn report(&self) -> String {
        match self {
            Error::Kube(e @ kube::Error::Api(_)) => kube_message(e),
            Error::Kube(e) => kube_message(e),
            e => format!("error: {e}"),
        }
    }

    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) => 2,
            _ => 1,
        }
    }
}

/// stdout and stderr, with a broken pipe (`| head`) treated as a normal end.
#[derive(Default)]
pub struct Out {
    closed: bool,
}

impl Out {
    /// Writes `text` to stdout and flushes (so `--watch` rows appear at once).
    pub fn print(&mut self, text: &str) -> Result<(), Error> {
        if self.closed || text.is_empty() {
            return Ok(());
        }
        let mut o = std::io::stdout().lock();
        match o.write_all(text.as_bytes()).and_then(|_| o.flush()) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                self.closed = true;
                Err(Error::Other(String::new()))
            }
            Err(e) => Err(Error::Other(format!("writing output: {e}"))),
        }
    }

    /// A line on stderr.
    pub fn note(&mut self, line: &str) {
        let _ = writeln!(std::io::stderr().lock(), "{line}");
    }

    pub fn is_closed(&self) -> bool {
        self.closed
    }
}

/// Colour decision: `always`/`never` as told; `auto` only on a terminal and without `NO_COLOR`.
pub fn use_color(mode: ColorMode, is_tty: bool, no_color_env: Option<&std::ffi::OsStr>) -> bool {
    match mode {
        ColorMode::Always => true,
        ColorMode::Never => false,
        ColorMode::Auto => is_tty && no_color_env.is_none_or(|v| v.is_empty()),
    }
}

/// A client from `--kubeconfig`/`$KUBECONFIG`/`~/.kube/config` and `--context` (in-cluster
/// config when there is no kubeconfig), and the namespace to use (`-n`, else the context's).
pub async fn client(g: &GlobalArgs) -> Result<(Client, String), Error> {
    let opts = KubeConfigOptions {
        context: g.context.clone(),
        ..Default::default()
    };
    let config = match &g.kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path).map_err(|e| {
                Error::Config(format!("reading kubeconfig {}: {e}", path.display()))
            })?;
            Config::from_custom_kubeconfig(kc, &opts)
                .await
                .map_err(|e| Error::Config(format!("kubeconfig {}: {e}", path.display())))?
        }
        None if g.context.is_some() => Config::from_kubeconfig(&opts)
            .await
            .map_err(|e| Error::Config(format!("kubeconfig: {e}")))?,
        None => Config::infer().await.map_err(|e| {
            Error::Config(format!("no usable kubeconfig or in-cluster config: {e}"))
        })?,
    };
    let ns = g
        .namespace
        .clone()
        .unwrap_or_else(|| config.default_namespace.clone());
    let client = Client::try_from(config).map_err(Error::Kube)?;
    Ok((client, ns))
}

/// Runs a parsed command line; returns the process exit code.
pub async fn run(cli: Cli) -> i32 {
    let mut out = Out::default();
    let color = use_color(
        cli.global.color,
        std::io::stdout().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    let result = dispatch(&cli, color, &mut out).await;
    match result {
        Ok(code) => code,
        Err(_) if out.is_closed() => 0,
        Err(e) => {
            let code = match (&cli.command, &e) {
                // `kubectl diff` convention: >1 is an error.
                (Command::Migrate(m), e) if m.dry_run && e.exit_code() == 1 => 2,
                _ => e.exit_code(),
            };
            out.note(&e.report());
            code
        }
    }
}

async fn dispatch(cli: &Cli, color: bool, out: &mut Out) -> Result<i32, Error> {
    match &cli.command {
        Command::Status(s) => {
            let style = table::Style {
                no_headers: s.no_headers,
                color,
            };
            let (client, ns) = client(&cli.global).await?;
            status::run(client, &ns, s, style, out).await
        }
        Command::Migrate(m) => migrate::run(&cli.global, m, out).await,
        Command::Completion(c) => {
            out.print(complete::script(c.shell))?;
            Ok(0)
        }
        Command::Complete(c) => Ok(complete::run(&c.words).await),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn colour_rules() {
        assert!(use_color(ColorMode::Auto, true, None));
        assert!(!use_color(ColorMode::Auto, false, None));
        assert!(!use_color(ColorMode::Auto, true, Some(OsStr::new("1"))));
        assert!(use_color(ColorMode::Auto, true, Some(OsStr::new(""))));
        assert!(!use_color(ColorMode::Never, true, None));
        assert!(use_color(ColorMode::Always, false, None));
    }

    #[test]
    fn api_errors_read_like_kubectl() {
        let s =
            kube::core::Status::failure("services \"web\" not found", "NotFound").with_code(404);
        let e = Error::Kube(kube::Error::Api(Box::new(s)));
        assert_eq!(
            e.report(),
            "Error from server (NotFound): services \"web\" not found"
        );
        assert_eq!(e.exit_code(), 1);
        assert_eq!(Error::Usage("x".into()).exit_code(), 2);
        assert_eq!(Error::Other("boom".into()).report(), "error: boom");
    }
}
