//! Installs `config/` as real pods: the per-cluster overlay over `e2e/overlays/real-node`
//! (config/default without cert-manager, local images), with the webhook's serving certificate
//! as a generated Secret and its CA in the three caBundles (the two webhooks of the
//! ValidatingWebhookConfiguration and the CRD's conversion webhook).
//!
//! [`write_overlay`] writes the overlay, [`render`] builds it with the real `kubectl kustomize`;
//! applying the result (`kubectl apply --server-side -f -`) is the caller's.

use std::path::{Component, Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use crate::controlplane::base64_encode;

/// The images the real-node overlay sets (built locally, never pulled: `localhost/` names and
/// a tag other than `latest`, so the default pull policy is IfNotPresent).
pub const IMAGES: [&str; 3] = [
    "localhost/swh-webhook:dev",
    "localhost/swh-controller:dev",
    "localhost/swh-agent:dev",
];

/// Name (in namespace [`NAMESPACE`]) of the webhook's serving-certificate Secret.
pub const TLS_SECRET: &str = "swh-webhook-tls";
/// The components' namespace.
pub const NAMESPACE: &str = "swh-system";
/// The ValidatingWebhookConfiguration of config/webhook/base.
pub const WEBHOOK_CONFIGURATION: &str = "swh-webhook";
/// The CRD of config/crd.
pub const CRD_NAME: &str = "servicewithhealthchecks.network.deckhouse.io";

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("parsing {what}: {source}")]
    Yaml {
        what: String,
        #[source]
        source: serde_yaml::Error,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("`{command}` failed ({status}): {stderr}")]
    Kubectl {
        command: String,
        status: String,
        stderr: String,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> InstallError {
    let what = what.into();
    move |source| InstallError::Io { what, source }
}

/// `e2e/overlays/real-node` in this workspace.
pub fn real_node_overlay() -> PathBuf {
    crate::testenv::workspace_root().join("e2e/overlays/real-node")
}

/// How many webhooks the ValidatingWebhookConfiguration in config/webhook/base has (each gets
/// a caBundle patch).
pub fn webhook_count() -> Result<usize, InstallError> {
    let path = crate::testenv::workspace_root()
        .join("config/webhook/base/validatingwebhookconfiguration.yaml");
    let text = std::fs::read_to_string(&path).map_err(io(format!("reading {}", path.display())))?;
    let doc: Value = serde_yaml::from_str(&text).map_err(|source| InstallError::Yaml {
        what: path.display().to_string(),
        source,
    })?;
    match doc.get("webhooks").and_then(Value::as_array) {
        Some(w) if !w.is_empty() => Ok(w.len()),
        _ => Err(InstallError::Invalid(format!(
            "{} has no webhooks",
            path.display()
        ))),
    }
}

/// Writes into `dir` (created when missing) a kustomization over `e2e/overlays/real-node`
/// that adds the Secret `swh-system/swh-webhook-tls` (type kubernetes.io/tls: `tls.crt`,
/// `tls.key`, `ca.crt`, no name suffix) and `caBundle` = base64(`ca_pem`) on every webhook of
/// the ValidatingWebhookConfiguration and on the CRD's conversion webhook. Returns `dir`.
///
/// The resource is referenced by a relative path: kustomize refuses an absolute one ("new root
/// cannot be absolute"), and a relative path to a directory with a kustomization needs no
/// `--load-restrictor`.
pub fn write_overlay(
    dir: &Path,
    ca_pem: &str,
    tls_crt_pem: &str,
    tls_key_pem: &str,
) -> Result<PathBuf, InstallError> {
    for (what, pem) in [
        ("ca_pem", ca_pem),
        ("tls_crt_pem", tls_crt_pem),
        ("tls_key_pem", tls_key_pem),
    ] {
        if !pem.contains("-----BEGIN ") {
            return Err(InstallError::Invalid(format!("{what} is not PEM")));
        }
    }
    std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
    let dir = dir
        .canonicalize()
        .map_err(io(format!("resolving {}", dir.display())))?;
    let base = real_node_overlay();
    let base = base
        .canonicalize()
        .map_err(io(format!("resolving {}", base.display())))?;
    let resource = relative_path(&dir, &base)?;

    for (file, pem) in [
        ("tls.crt", tls_crt_pem),
        ("tls.key", tls_key_pem),
        ("ca.crt", ca_pem),
    ] {
        let path = dir.join(file);
        std::fs::write(&path, pem).map_err(io(format!("writing {}", path.display())))?;
    }

    let ca_bundle = base64_encode(ca_pem.as_bytes());
    let webhook_patch: Vec<Value> = (0..webhook_count()?)
        .map(|i| {
            json!({"op": "add", "path": format!("/webhooks/{i}/clientConfig/caBundle"), "value": ca_bundle})
        })
        .collect();
    let crd_patch = vec![json!({
        "op": "add",
        "path": "/spec/conversion/webhook/clientConfig/caBundle",
        "value": ca_bundle,
    })];
    let to_json = |v: &Vec<Value>| {
        serde_json::to_string(v).map_err(|e| InstallError::Invalid(format!("patch: {e}")))
    };
    let kustomization = json!({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [resource.display().to_string()],
        "secretGenerator": [{
            "name": TLS_SECRET,
            "namespace": NAMESPACE,
            "type": "kubernetes.io/tls",
            "files": ["tls.crt", "tls.key", "ca.crt"],
            "options": {"disableNameSuffixHash": true},
        }],
        "patches": [
            {
                "target": {"group": "admissionregistration.k8s.io", "kind": "ValidatingWebhookConfiguration", "name": WEBHOOK_CONFIGURATION},
                "patch": to_json(&webhook_patch)?,
            },
            {
                "target": {"group": "apiextensions.k8s.io", "kind": "CustomResourceDefinition", "name": CRD_NAME},
                "patch": to_json(&crd_patch)?,
            },
        ],
    });
    let text = serde_yaml::to_string(&kustomization).map_err(|source| InstallError::Yaml {
        what: "the generated kustomization".into(),
        source,
    })?;
    let path = dir.join("kustomization.yaml");
    let header = "# Generated by swh_e2e::install::write_overlay: e2e/overlays/real-node plus this \
                  cluster's webhook certificate.\n";
    std::fs::write(&path, format!("{header}{text}"))
        .map_err(io(format!("writing {}", path.display())))?;
    Ok(dir)
}

/// `kubectl kustomize <overlay>` with the given kubectl: the manifests as one YAML stream.
pub fn render(kubectl: &Path, overlay: &Path) -> Result<String, InstallError> {
    let mut cmd = Command::new(kubectl);
    cmd.arg("kustomize").arg(overlay);
    let command = format!("{} kustomize {}", kubectl.display(), overlay.display());
    let out = cmd.output().map_err(io(format!("running {command}")))?;
    if !out.status.success() {
        return Err(InstallError::Kubectl {
            command,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    String::from_utf8(out.stdout)
        .map_err(|e| InstallError::Invalid(format!("{command}: output is not UTF-8: {e}")))
}

/// Every document of a YAML stream (empty documents skipped).
pub fn documents(yaml: &str) -> Result<Vec<Value>, InstallError> {
    let mut docs = Vec::new();
    for de in serde_yaml::Deserializer::from_str(yaml) {
        let v: Value =
            serde::Deserialize::deserialize(de).map_err(|source| InstallError::Yaml {
                what: "a YAML stream".into(),
                source,
            })?;
        if !v.is_null() {
            docs.push(v);
        }
    }
    Ok(docs)
}

/// `to` relative to the directory `from` (both absolute and canonical).
fn relative_path(from: &Path, to: &Path) -> Result<PathBuf, InstallError> {
    if !from.is_absolute() || !to.is_absolute() {
        return Err(InstallError::Invalid(format!(
            "relative_path needs absolute paths, got {} and {}",
            from.display(),
            to.display()
        )));
    }
    let f: Vec<Component> = from.components().collect();
    let t: Vec<Component> = to.components().collect();
    let common = f.iter().zip(&t).take_while(|(a, b)| a == b).count();
    let mut rel = PathBuf::new();
    for _ in common..f.len() {
        rel.push("..");
    }
    for c in &t[common..] {
        rel.push(c.as_os_str());
    }
    if rel.as_os_str().is_empty() {
        rel.push(".");
    }
    Ok(rel)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths() {
        let r = |a: &str, b: &str| relative_path(Path::new(a), Path::new(b)).ok();
        assert_eq!(
            r("/tmp/x/ov", "/work/main/e2e/overlays/real-node"),
            Some(PathBuf::from("../../../work/main/e2e/overlays/real-node"))
        );
        assert_eq!(
            r("/work/main/target/ov", "/work/main/e2e/overlays/real-node"),
            Some(PathBuf::from("../../e2e/overlays/real-node"))
        );
        assert_eq!(r("/a/b", "/a/b/c"), Some(PathBuf::from("c")));
        assert_eq!(r("/a/b", "/a/b"), Some(PathBuf::from(".")));
        assert_eq!(r("a", "/b"), None);
    }

    #[test]
    fn the_webhook_configuration_has_two_webhooks() {
        assert_eq!(webhook_count().ok(), Some(2));
    }

    #[test]
    fn overlay_has_secret_and_ca_bundle_patches() {
        let dir = std::env::temp_dir().join(format!("swh-install-unit-{}", std::process::id()));
        let pem = "-----BEGIN CERTIFICATE-----\nMA==\n-----END CERTIFICATE-----\n";
        let key = "-----BEGIN PRIVATE KEY-----\nMA==\n-----END PRIVATE KEY-----\n";
        let out = write_overlay(&dir, pem, pem, key).expect("write_overlay");
        let k: Value = serde_yaml::from_str(
            &std::fs::read_to_string(out.join("kustomization.yaml")).expect("read"),
        )
        .expect("yaml");
        let res = k["resources"][0].as_str().expect("resource");
        assert!(!res.starts_with('/'), "{res}");
        assert!(
            out.join(res).join("kustomization.yaml").is_file(),
            "{res} from {}",
            out.display()
        );
        assert_eq!(k["secretGenerator"][0]["type"], "kubernetes.io/tls");
        let vwc: Value =
            serde_json::from_str(k["patches"][0]["patch"].as_str().expect("patch")).expect("json");
        assert_eq!(vwc.as_array().map(Vec::len), Some(2));
        assert_eq!(vwc[1]["path"], "/webhooks/1/clientConfig/caBundle");
        assert_eq!(vwc[0]["value"], base64_encode(pem.as_bytes()));
        assert_eq!(
            std::fs::read_to_string(out.join("tls.key")).ok().as_deref(),
            Some(key)
        );
        assert!(write_overlay(&dir, "nope", pem, key).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
