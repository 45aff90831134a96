//! Identities for the components under test: a kubeconfig carrying a ServiceAccount token, so
//! the controller and agents run with exactly the RBAC in `config/`, never as admin.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::controlplane::{LocalCluster, base64_encode};

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("`kubectl {args}` failed: {stderr}")]
    Kubectl { args: String, stderr: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

/// Runs kubectl against `cluster` as admin; stdout on success.
pub fn kubectl(
    cluster: &LocalCluster,
    args: &[&str],
    stdin: Option<&str>,
) -> Result<String, IdentityError> {
    use std::io::Write;
    let mut cmd: Command = cluster.kubectl();
    cmd.args(args)
        .stdin(if stdin.is_some() {
            std::process::Stdio::piped()
        } else {
            std::process::Stdio::null()
        })
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().map_err(|source| IdentityError::Io {
        what: "running kubectl".into(),
        source,
    })?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input.as_bytes())
            .map_err(|source| IdentityError::Io {
                what: "writing kubectl stdin".into(),
                source,
            })?;
    }
    let out = child
        .wait_with_output()
        .map_err(|source| IdentityError::Io {
            what: "waiting for kubectl".into(),
            source,
        })?;
    if !out.status.success() {
        return Err(IdentityError::Kubectl {
            args: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Applies the kustomization or manifest at `path` (relative to the workspace root or absolute).
pub fn apply(cluster: &LocalCluster, path: &Path) -> Result<(), IdentityError> {
    let p = path.display().to_string();
    let flag = if path.is_dir() { "-k" } else { "-f" };
    kubectl(
        cluster,
        &["apply", "--server-side", "--force-conflicts", flag, &p],
        None,
    )
    .map(|_| ())
}

/// Writes `<work_dir>/<namespace>-<sa>.kubeconfig` with a fresh token of ServiceAccount `sa`
/// (creating the namespace and account when missing). The token lives 48 h.
pub fn service_account_kubeconfig(
    cluster: &LocalCluster,
    namespace: &str,
    sa: &str,
) -> Result<PathBuf, IdentityError> {
    let ns_yaml = format!(
        "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {namespace}}}\n---\napiVersion: v1\nkind: ServiceAccount\nmetadata: {{name: {sa}, namespace: {namespace}}}\n"
    );
    kubectl(cluster, &["apply", "-f", "-"], Some(&ns_yaml))?;
    let token = kubectl(
        cluster,
        &["create", "token", sa, "-n", namespace, "--duration=48h"],
        None,
    )?;
    let ca = std::fs::read(cluster.pki().ca_cert()).map_err(|source| IdentityError::Io {
        what: "reading CA".into(),
        source,
    })?;
    let doc = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "swh-local", "cluster": {"server": cluster.api_url, "certificate-authority-data": base64_encode(&ca)}}],
        "users": [{"name": sa, "user": {"token": token.trim()}}],
        "contexts": [{"name": sa, "context": {"cluster": "swh-local", "user": sa, "namespace": namespace}}],
        "current-context": sa,
    });
    let path = cluster
        .work_dir
        .join(format!("{namespace}-{sa}.kubeconfig"));
    let text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    std::fs::write(&path, text).map_err(|source| IdentityError::Io {
        what: format!("writing {}", path.display()),
        source,
    })?;
    Ok(path)
}
