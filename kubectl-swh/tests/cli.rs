//! The binary as kubectl runs it: exit codes, stdout/stderr split, offline `migrate -f -`.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn run(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kubectl-swh"))
        .args(args)
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kubectl-swh");
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input.as_bytes()).expect("stdin");
    }
    child.wait_with_output().expect("wait")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["status", "--bogus"][..],
        &["status", "-o", "xml"],
        &["migrate"],
        &["migrate", "svc/web", "--apply", "--dry-run"],
        &[],
    ] {
        let out = run(args, None);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(
            text(&out.stderr).starts_with("error: ")
                || text(&out.stderr).contains("Usage: kubectl swh"),
            "{}",
            text(&out.stderr)
        );
    }
    // A bad resource type is a usage error too (checked before any API call).
    let out = run(&["migrate", "deploy/web"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).starts_with("error: expected svc/NAME"));
}

#[test]
fn help_exits_0_and_reads_kubectl_swh() {
    let out = run(&["status", "--help"], None);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("Usage: kubectl swh status"));
}

#[test]
fn no_cluster_is_an_error_exit_1() {
    let out = run(&["status", "--kubeconfig", "/nonexistent/kubeconfig"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).starts_with("error: "),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(text(&out.stdout), "");
}

#[test]
fn migrate_file_from_stdin_works_offline() {
    let input = "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: web}\n  ports: [{port: 80, targetPort: 8080}]\n";
    let out = run(&["migrate", "-f", "-"], Some(input));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with(
            "apiVersion: network.deckhouse.io/v1beta1\nkind: ServiceWithHealthchecks\n"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("# TCP connect to targetPort 8080"),
        "{stdout}"
    );

    let bad = format!("{input}---\nkind: [\n");
    let out = run(&["migrate", "-f", "-"], Some(&bad));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), "", "nothing half-written");
    assert!(
        text(&out.stderr).starts_with("error: <stdin>: document 2 (line 9): invalid YAML"),
        "{}",
        text(&out.stderr)
    );
}
