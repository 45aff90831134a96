//! Command line: `kubectl swh status ...` and `kubectl swh migrate ...`, kubectl-style flags.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// kubectl plugin for ServiceWithHealthchecks (network.deckhouse.io).
#[derive(Parser, Debug, Clone)]
#[command(
    name = "kubectl swh",
    bin_name = "kubectl swh",
    version,
    about = "Show and migrate ServiceWithHealthchecks (network.deckhouse.io)",
    long_about = "Show and migrate ServiceWithHealthchecks (network.deckhouse.io).\n\n\
Examples:\n  kubectl swh status -A\n  kubectl swh status web -n vm -o wide\n  \
kubectl swh migrate svc/web -n shop --dry-run\n  kubectl swh migrate -f manifests.yaml",
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every subcommand takes (before or after the subcommand).
#[derive(Args, Debug, Clone, Default)]
pub struct GlobalArgs {
    /// Path to the kubeconfig file to use (beats $KUBECONFIG).
    #[arg(long, global = true, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// The name of the kubeconfig context to use.
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,
    /// The namespace scope (default: the context's namespace).
    #[arg(short = 'n', long, global = true, value_name = "NS")]
    pub namespace: Option<String>,
    /// Colour the output: auto (only on a terminal and without NO_COLOR), always or never.
    #[arg(long, global = true, value_enum, default_value_t = ColorMode::Auto)]
    pub color: ColorMode,
}

#[derive(Subcommand, Debug, Clone)]
pub enum Command {
    /// Show ServiceWithHealthchecks, or one of them with its pods and per-probe state.
    Status(StatusArgs),
    /// Turn a Service into a ServiceWithHealthchecks (live, keeping its ClusterIP), or convert
    /// the Services in a file (-f, offline).
    Migrate(MigrateArgs),
    /// Print a shell completion script for kubectl-swh (bash, zsh or fish). `kubectl swh
    /// <TAB>` is completed by kubectl itself through the kubectl_complete-swh executable.
    Completion(CompletionArgs),
    /// Cobra's completion protocol (used by the completion scripts and kubectl_complete-swh).
    #[command(name = "__complete", hide = true)]
    Complete(CompleteArgs),
}

/// Shells `completion` writes scripts for.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Args, Debug, Clone)]
pub struct CompletionArgs {
    /// bash, zsh or fish.
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: Shell,
}

#[derive(Args, Debug, Clone, Default)]
pub struct CompleteArgs {
    /// The words after `kubectl swh`, the last one being completed.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
    pub words: Vec<String>,
}

/// When to colour.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ColorMode {
    #[default]
    Auto,
    Always,
    Never,
}

/// `-o` formats.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    Wide,
    Json,
    Yaml,
    Name,
}

#[derive(Args, Debug, Clone, Default)]
pub struct StatusArgs {
    /// Name of one ServiceWithHealthchecks: show its pods and probes.
    #[arg(value_name = "NAME")]
    pub name: Option<String>,
    /// List across all namespaces.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Label selector to filter on (e.g. -l app=web,tier!=db).
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    pub selector: Option<String>,
    /// Output format: wide, json, yaml or name.
    #[arg(short = 'o', long, value_enum, value_name = "FORMAT")]
    pub output: Option<OutputFormat>,
    /// After listing, watch for changes.
    #[arg(short = 'w', long)]
    pub watch: bool,
    /// Don't print headers.
    #[arg(long)]
    pub no_headers: bool,
}

/// Which SWH version `migrate` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ApiVersion {
    V1Alpha1,
    #[default]
    V1Beta1,
}

impl ApiVersion {
    /// The full `apiVersion`.
    pub fn as_str(self) -> &'static str {
        match self {
            ApiVersion::V1Alpha1 => swh_api::API_VERSION_V1ALPHA1,
            ApiVersion::V1Beta1 => swh_api::API_VERSION_V1BETA1,
        }
    }
}

fn parse_api_version(s: &str) -> Result<ApiVersion, String> {
    match s.strip_prefix("network.deckhouse.io/").unwrap_or(s) {
        "v1beta1" => Ok(ApiVersion::V1Beta1),
        "v1alpha1" => Ok(ApiVersion::V1Alpha1),
        _ => Err(format!(
            "expected v1beta1 or v1alpha1 (optionally prefixed with network.deckhouse.io/), got {s:?}"
        )),
    }
}

/// Parses a Go-style duration (`2m`, `90s`, `1m30s`, `500ms`, `1h`) or plain seconds (`120`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let err = || format!("invalid duration {s:?}: use e.g. 90s, 2m, 1m30s or 1h");
    if s.is_empty() {
        return Err(err());
    }
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(err)?;
        if digits == 0 {
            return Err(err());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| err())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => Duration::from_millis(1),
            "s" => Duration::from_secs(1),
            "m" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            _ => return Err(err()),
        };
        total += unit
            .checked_mul(u32::try_from(n).map_err(|_| err())?)
            .ok_or_else(err)?;
        rest = &rest[unit_len..];
    }
    Ok(total)
}

#[derive(Args, Debug, Clone)]
pub struct MigrateArgs {
    /// The Service: svc/NAME, service/NAME, services/NAME or `svc NAME`.
    #[arg(value_name = "SERVICE", num_args = 0..=2, required_unless_present = "filename")]
    pub target: Vec<String>,
    /// Convert the Services in this YAML file ("-" for stdin) offline; other documents are
    /// printed unchanged.
    #[arg(short = 'f', long = "filename", value_name = "FILE", conflicts_with_all = ["target", "apply", "dry_run"])]
    pub filename: Option<String>,
    /// Version of the ServiceWithHealthchecks to write: v1beta1 or v1alpha1 (Deckhouse).
    #[arg(long, value_name = "VERSION", value_parser = parse_api_version, default_value = "v1beta1")]
    pub api_version: ApiVersion,
    /// Create the ServiceWithHealthchecks and wait for the controller to take the Service over;
    /// roll back if it does not finish within --timeout.
    #[arg(long, conflicts_with = "dry_run")]
    pub apply: bool,
    /// Show what --apply would change, like `kubectl diff`: exit 0 when nothing would change,
    /// 1 when something would, 2 on error.
    #[arg(long)]
    pub dry_run: bool,
    /// How long --apply waits for the handover before rolling back.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "2m")]
    pub timeout: Duration,
}

/// Resource names `migrate` accepts for a Service.
const SERVICE_KINDS: [&str; 3] = ["svc", "service", "services"];

/// `svc`, `service` or `services` (any case).
pub fn is_service_kind(s: &str) -> bool {
    SERVICE_KINDS.iter().any(|k| k.eq_ignore_ascii_case(s))
}

fn valid_name(s: &str) -> bool {
    swh_api::validation::is_dns1035_label(s)
}

/// The Service name from `svc/NAME`, `service/NAME`, `services/NAME` or `svc NAME`.
pub fn service_target(target: &[String]) -> Result<String, String> {
    let usage = "expected svc/NAME, service/NAME, services/NAME or `svc NAME`";
    let (kind, name) = match target {
        [one] => match one.split_once('/') {
            Some((k, n)) => (k, n),
            None if is_service_kind(one) => {
                return Err(format!("{usage}: the Service name is missing"));
            }
            None => {
                return Err(format!(
                    "{usage}, got {one:?} (a resource type is required)"
                ));
            }
        },
        [k, n] => (k.as_str(), n.as_str()),
        [] => return Err(format!("{usage}, or -f FILE")),
        _ => return Err(format!("{usage}: too many arguments")),
    };
    if !is_service_kind(kind) {
        return Err(format!(
            "{usage}: only Services can be migrated, got resource type {kind:?}"
        ));
    }
    if !valid_name(name) {
        return Err(format!(
            "{usage}: {name:?} is not a valid Service name (a DNS-1035 label)"
        ));
    }
    Ok(name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("kubectl-swh").chain(args.iter().copied()))
    }

    fn migrate(args: &[&str]) -> MigrateArgs {
        match parse(args).expect("parses").command {
            Command::Migrate(m) => m,
            c => panic!("not migrate: {c:?}"),
        }
    }

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn help_reads_kubectl_swh() {
        let help = Cli::command().render_help().to_string();
        assert!(help.contains("Usage: kubectl swh"), "{help}");
        for sub in ["status", "migrate"] {
            let e = parse(&[sub, "--help"]).expect_err("help exits early");
            let text = e.render().to_string();
            assert!(
                text.contains(&format!("Usage: kubectl swh {sub}")),
                "{text}"
            );
            assert!(
                text.contains("--kubeconfig") && text.contains("--context"),
                "{text}"
            );
        }
    }

    #[test]
    fn every_service_form_is_accepted() {
        for args in [
            &["migrate", "svc/web"][..],
            &["migrate", "service/web"],
            &["migrate", "services/web"],
            &["migrate", "svc", "web"],
            &["migrate", "service", "web"],
            &["migrate", "Service/web"],
        ] {
            let m = migrate(args);
            assert_eq!(service_target(&m.target), Ok("web".to_string()), "{args:?}");
        }
    }

    #[test]
    fn bad_service_forms_are_rejected() {
        for t in [
            &["deploy/web"][..],
            &["web"],
            &["svc"],
            &["svc/"],
            &["svc/Web_1"],
            &["pod", "web"],
            &["svc", "a/b"],
            &["svc", "web", "extra"],
            &[],
        ] {
            let t: Vec<String> = t.iter().map(|s| s.to_string()).collect();
            assert!(service_target(&t).is_err(), "{t:?} should be rejected");
        }
    }

    #[test]
    fn usage_errors_exit_2() {
        for args in [
            &["status", "-o", "table-of-doom"][..],
            &["status", "--color", "sometimes"],
            &["frobnicate"],
            &["migrate"],
            &["migrate", "svc/web", "--apply", "--dry-run"],
            &["migrate", "-f", "x.yaml", "svc/web"],
            &["migrate", "-f", "x.yaml", "--apply"],
            &["migrate", "svc/web", "--api-version", "v2"],
            &["migrate", "svc/web", "--timeout", "soon"],
            &["migrate", "svc", "web", "more"],
            &["status", "--bogus"],
        ] {
            let e = parse(args).expect_err(&format!("{args:?} must fail"));
            assert_eq!(e.exit_code(), 2, "{args:?}: {e}");
        }
    }

    #[test]
    fn help_and_version_exit_0() {
        for args in [&["--help"][..], &["status", "--help"], &["--version"]] {
            let e = parse(args).expect_err("help is an early exit");
            assert_eq!(e.exit_code(), 0, "{args:?}");
        }
    }

    #[test]
    fn status_flags() {
        let cli = parse(&[
            "--context",
            "dev",
            "status",
            "web",
            "-n",
            "vm",
            "-o",
            "wide",
            "-w",
            "--no-headers",
            "--color",
            "never",
            "--kubeconfig",
            "/tmp/kc",
        ])
        .expect("parses");
        assert_eq!(cli.global.context.as_deref(), Some("dev"));
        assert_eq!(cli.global.namespace.as_deref(), Some("vm"));
        assert_eq!(cli.global.color, ColorMode::Never);
        assert_eq!(
            cli.global.kubeconfig.as_deref(),
            Some(std::path::Path::new("/tmp/kc"))
        );
        let Command::Status(s) = cli.command else {
            panic!("status")
        };
        assert_eq!(s.name.as_deref(), Some("web"));
        assert_eq!(s.output, Some(OutputFormat::Wide));
        assert!(s.watch && s.no_headers && !s.all_namespaces);
        let cli = parse(&["status", "-A", "-l", "app=web", "-o", "name"]).expect("parses");
        let Command::Status(s) = cli.command else {
            panic!("status")
        };
        assert!(s.all_namespaces);
        assert_eq!(s.selector.as_deref(), Some("app=web"));
        assert_eq!(s.output, Some(OutputFormat::Name));
    }

    #[test]
    fn migrate_flags() {
        let m = migrate(&["migrate", "svc/web"]);
        assert_eq!(m.api_version, ApiVersion::V1Beta1);
        assert_eq!(m.timeout, Duration::from_secs(120));
        assert!(!m.apply && !m.dry_run);
        let m = migrate(&[
            "migrate",
            "svc/web",
            "--api-version",
            "network.deckhouse.io/v1alpha1",
            "--apply",
            "--timeout",
            "1m30s",
        ]);
        assert_eq!(m.api_version, ApiVersion::V1Alpha1);
        assert!(m.apply);
        assert_eq!(m.timeout, Duration::from_secs(90));
        let m = migrate(&["migrate", "-f", "-"]);
        assert_eq!(m.filename.as_deref(), Some("-"));
        assert!(m.target.is_empty());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        assert_eq!(parse_duration("1h2m3s"), Ok(Duration::from_secs(3723)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        for bad in ["", "m", "2x", "1.5m", "-1s", "2m-"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
