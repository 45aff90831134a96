//! The plugin as users install and use it, with the real tools:
//!
//! * completion through the real kubectl (v1.37.2): `kubectl __complete swh ...` runs
//!   `kubectl_complete-swh`, which lists the SWH names of the namespace from the API server;
//!   and the bash script of `kubectl swh completion bash` run by the real bash.

mod tools;

use std::path::{Path, PathBuf};
use std::process::Command;

use swh_e2e::controlplane::LocalCluster;
use swh_e2e::testenv;
use tools::{kubectl_bin, run, run_ok};

/// The folder with `kubectl-swh` and `kubectl_complete-swh` (built by `cargo build`).
fn plugin_dir() -> PathBuf {
    for b in ["kubectl-swh", "kubectl_complete-swh"] {
        let exe = testenv::workspace_bin(b);
        assert!(
            exe.exists(),
            "{} is missing: run `cargo build -p kubectl-swh` first",
            exe.display()
        );
    }
    testenv::workspace_bin("kubectl-swh")
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn cluster() -> LocalCluster {
    testenv::shared_cluster().expect("shared local cluster (run `make test` or `make up`)")
}

/// PATH with only the plugin's folder, kubectl's and the system's.
fn path_with(dirs: &[&Path]) -> String {
    let mut parts: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    parts.push("/usr/local/bin:/usr/bin:/bin".into());
    parts.join(":")
}

fn swh(name: &str) -> String {
    format!(
        "apiVersion: network.deckhouse.io/v1alpha1\nkind: ServiceWithHealthchecks\nmetadata:\n  name: {name}\nspec:\n  ports:\n  - port: 80\n    targetPort: 8080\n  selector:\n    app: {name}\n"
    )
}

/// (candidates, directive) of kubectl's `__complete` output.
fn parse_complete(out: &str) -> (Vec<String>, String) {
    let mut lines: Vec<String> = out.lines().map(String::from).collect();
    let directive = lines.pop().unwrap_or_default();
    let values = lines
        .iter()
        .filter(|l| !l.starts_with("Completion ended"))
        .map(|l| l.split('\t').next().unwrap_or_default().to_string())
        .collect();
    (values, directive)
}

#[test]
fn kubectl_completes_the_plugin_through_kubectl_complete_swh() {
    let cluster = cluster();
    let ns = testenv::unique_name("compl");
    let mut c = cluster.kubectl();
    c.args(["create", "namespace", &ns]);
    run_ok(c, None);
    for name in ["web-frontend", "web-backend", "smtp"] {
        let mut c = cluster.kubectl();
        c.args(["apply", "--server-side", "-n", &ns, "-f", "-"]);
        run_ok(c, Some(&swh(name)));
    }
    let k8s = kubectl_bin();
    let kdir = k8s.parent().expect("kubectl dir").to_path_buf();
    let path = path_with(&[&plugin_dir(), &kdir]);
    let complete = |args: &[&str]| {
        let mut c = Command::new(&k8s);
        c.arg("__complete")
            .args(args)
            .env("PATH", &path)
            .env("KUBECONFIG", &cluster.kubeconfig);
        parse_complete(&run_ok(c, None))
    };

    // SWH names of the namespace on the line, from the API server.
    let (names, directive) = complete(&["swh", "status", "-n", &ns, ""]);
    assert_eq!(names, ["smtp", "web-backend", "web-frontend"], "{names:?}");
    assert_eq!(directive, ":4");
    let (names, _) = complete(&["swh", "status", "-n", &ns, "web-f"]);
    assert_eq!(names, ["web-frontend"]);
    // The namespace from the kubeconfig's context (default: none of ours there).
    let (names, _) = complete(&["swh", "status", ""]);
    assert!(!names.iter().any(|n| n.starts_with("web-")), "{names:?}");
    // Subcommands, flags, flag values and namespaces.
    let (subs, _) = complete(&["swh", ""]);
    for s in ["status", "migrate", "completion"] {
        assert!(subs.contains(&s.to_string()), "{subs:?}");
    }
    assert!(!subs.contains(&"__complete".to_string()));
    let (flags, _) = complete(&["swh", "status", "--all"]);
    assert_eq!(flags, ["--all-namespaces"]);
    let (formats, _) = complete(&["swh", "status", "-o", ""]);
    assert_eq!(formats, ["wide", "json", "yaml", "name"]);
    let (nss, _) = complete(&["swh", "status", "-n", &ns[..ns.len() - 1]]);
    assert!(nss.contains(&ns), "{ns} not in {nss:?}");

    // Without kubectl_complete-swh on PATH kubectl offers nothing for the plugin's words:
    // the names above came from our executable.
    let bare = tools::temp_dir("swh-bare-plugin");
    std::os::unix::fs::symlink(
        testenv::workspace_bin("kubectl-swh"),
        bare.join("kubectl-swh"),
    )
    .expect("symlink");
    let mut c = Command::new(&k8s);
    c.args(["__complete", "swh", "status", "-n", &ns, ""])
        .env("PATH", path_with(&[&bare, &kdir]))
        .env("KUBECONFIG", &cluster.kubeconfig);
    let (names, _) = parse_complete(&run_ok(c, None));
    assert!(!names.contains(&"smtp".to_string()), "{names:?}");
    let _ = std::fs::remove_dir_all(&bare);

    // The bash script of `kubectl swh completion bash`, in the real bash.
    let plugin = testenv::workspace_bin("kubectl-swh");
    let mut c = Command::new(&plugin);
    c.args(["completion", "bash"]);
    let script = run_ok(c, None);
    let bash = format!(
        "{script}\nCOMP_WORDS=(kubectl-swh status -n {ns} web-); COMP_CWORD=4\n_kubectl_swh\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"\n"
    );
    let mut c = Command::new("bash");
    c.args(["--norc", "-c", &bash])
        .env("PATH", path_with(&[&plugin_dir(), &kdir]))
        .env("KUBECONFIG", &cluster.kubeconfig);
    let out = run_ok(c, None);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["web-backend", "web-frontend"],
        "bash completion: {out}"
    );
    // zsh and fish scripts speak the same protocol.
    for shell in ["zsh", "fish"] {
        let mut c = Command::new(&plugin);
        c.args(["completion", shell]);
        let s = run_ok(c, None);
        assert!(
            s.contains("__complete") && s.contains("kubectl-swh"),
            "{shell}: {s}"
        );
    }

    let mut c = cluster.kubectl();
    c.args(["delete", "namespace", &ns, "--wait=false"]);
    let _ = run(c, None);
}
