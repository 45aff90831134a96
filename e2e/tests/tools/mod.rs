//! What the chart, monitoring and plugin-install tests share: the tool binaries (helm, krew,
//! validate-krew-manifest from `e2e/tools/build.sh`; kubectl from the control plane), running
//! commands, YAML streams.
#![allow(dead_code)] // each test file uses a part

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use serde_json::Value;
use swh_e2e::testenv;

pub fn root() -> PathBuf {
    testenv::workspace_root()
}

/// helm, krew and validate-krew-manifest: `$SWH_TOOLS_BIN`, else what `bash e2e/tools/build.sh`
/// prints (it builds once, then answers from its cache in ~/.cache/swh/).
pub fn tools_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(dir) = std::env::var_os("SWH_TOOLS_BIN") {
            return PathBuf::from(dir);
        }
        let out = Command::new("bash")
            .arg(root().join("e2e/tools/build.sh"))
            .stderr(Stdio::inherit())
            .output()
            .expect("running e2e/tools/build.sh");
        assert!(out.status.success(), "e2e/tools/build.sh failed");
        let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(!dir.is_empty(), "e2e/tools/build.sh printed no directory");
        PathBuf::from(dir)
    })
    .clone()
}

/// The folder of the real kubectl (v1.37.2): `$SWH_K8S_BIN`, else the shared cluster's.
pub fn k8s_bin() -> PathBuf {
    if let Some(dir) = std::env::var_os("SWH_K8S_BIN") {
        return PathBuf::from(dir);
    }
    testenv::shared_cluster()
        .expect("SWH_K8S_BIN or a shared local cluster (run `make test` or `make up`)")
        .bin_dir
}

pub fn kubectl_bin() -> PathBuf {
    k8s_bin().join("kubectl")
}

/// Runs `cmd` with `stdin`, returning its output (whatever the exit status).
pub fn run(mut cmd: Command, stdin: Option<&str>) -> Output {
    let shown = format!("{cmd:?}");
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{shown}: {e}"));
    if let Some(s) = stdin {
        let mut w = child.stdin.take().expect("stdin");
        w.write_all(s.as_bytes()).expect("write stdin");
    }
    child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("{shown}: {e}"))
}

/// Runs `cmd`, panicking with its stderr unless it succeeds; returns stdout.
pub fn run_ok(cmd: Command, stdin: Option<&str>) -> String {
    let shown = format!("{cmd:?}");
    let out = run(cmd, stdin);
    assert!(
        out.status.success(),
        "{shown} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// Every non-empty document of a YAML stream.
pub fn documents(yaml: &str) -> Vec<Value> {
    swh_e2e::install::documents(yaml).expect("a YAML stream")
}

/// A helm command with its state (cache, config, data) in a temporary folder of its own.
pub fn helm(home: &Path) -> Command {
    let mut c = Command::new(tools_bin().join("helm"));
    for (var, sub) in [
        ("HELM_CACHE_HOME", "cache"),
        ("HELM_CONFIG_HOME", "config"),
        ("HELM_DATA_HOME", "data"),
    ] {
        c.env(var, home.join(sub));
    }
    c.env_remove("KUBECONFIG");
    c
}

/// A fresh temporary folder (removed by the caller or left in /tmp for a failed test).
pub fn temp_dir(prefix: &str) -> PathBuf {
    let d = std::env::temp_dir().join(testenv::unique_name(prefix));
    std::fs::create_dir_all(&d).expect("mkdir temp");
    d
}
