//! Installs swh-webhook on the local cluster: the webhook as a process on loopback (TLS with
//! the cluster PKI's `webhook` certificate), the CRD with its conversion webhook pointing at it,
//! and the ValidatingWebhookConfiguration; then waits until the API server really uses them.
//!
//! Idempotent: when a healthy `swh-webhook` process is already recorded for the cluster it is
//! reused, and the CRD and webhook configuration are (re)applied server-side.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::controlplane::{ClusterError, LocalCluster, base64_encode};
use crate::process::{self, ProcessError};

/// Name of the webhook process in `cluster.processes`.
pub const PROCESS_NAME: &str = "swh-webhook";
/// Name of the ValidatingWebhookConfiguration.
pub const CONFIGURATION_NAME: &str = "swh-webhook";
/// Webhook name (in the configuration) validating ServiceWithHealthchecks.
pub const SWH_WEBHOOK_NAME: &str = "swh.network.deckhouse.io";
/// Webhook name (in the configuration) protecting child Services.
pub const SERVICE_WEBHOOK_NAME: &str = "child-services.network.deckhouse.io";
/// Name of the CRD.
pub const CRD_NAME: &str = "servicewithhealthchecks.network.deckhouse.io";
/// Identity allowed to change child Services: the controller's ServiceAccount (see stack.rs).
pub const CONTROLLER_USERNAME: &str = "system:serviceaccount:swh-system:swh-controller";
/// Field manager of everything applied here.
const FIELD_MANAGER: &str = "swh-e2e-install";

/// The committed CRD (generated from swh-api).
const CRD_YAML: &str = include_str!("../../config/crd/servicewithhealthchecks.yaml");

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error(transparent)]
    Process(#[from] ProcessError),
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`kubectl {args}` failed: {stderr}")]
    Kubectl { args: String, stderr: String },
    #[error("{what}: {detail}")]
    Failed { what: String, detail: String },
}

/// Where the running webhook listens; `<work_dir>/swh-webhook.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WebhookEndpoint {
    pub pid: u32,
    pub port: u16,
    pub admin_port: u16,
    pub log: PathBuf,
}

impl WebhookEndpoint {
    fn state_file(cluster: &LocalCluster) -> PathBuf {
        cluster.work_dir.join("swh-webhook.json")
    }

    /// The endpoint recorded for `cluster`, if any (healthy or not).
    pub fn load(cluster: &LocalCluster) -> Option<WebhookEndpoint> {
        let s = std::fs::read_to_string(Self::state_file(cluster)).ok()?;
        serde_json::from_str(&s).ok()
    }

    /// `https://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    fn healthy(&self, cluster: &LocalCluster) -> bool {
        cluster
            .processes
            .iter()
            .any(|p| p.name == PROCESS_NAME && p.pid == self.pid)
            && process::alive(self.pid)
            && !exe_replaced(self.pid)
            && http_status(self.admin_port, "/readyz") == Some(200)
    }
}

/// True when the binary the process runs was replaced on disk (rebuilt): restart it.
fn exe_replaced(pid: u32) -> bool {
    std::fs::read_link(format!("/proc/{pid}/exe"))
        .map(|p| p.to_string_lossy().ends_with(" (deleted)"))
        .unwrap_or(false)
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> InstallError {
    let what = what.into();
    move |source| InstallError::Io { what, source }
}

/// Status code of a plain-HTTP GET on loopback.
pub fn http_status(port: u16, path: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(500),
    )
    .ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    buf.split_whitespace().nth(1)?.parse().ok()
}

fn tail(path: &Path) -> String {
    let s = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

fn kubectl(
    cluster: &LocalCluster,
    args: &[&str],
    stdin: Option<&str>,
) -> Result<String, InstallError> {
    use std::io::Write;
    use std::process::Stdio;
    let mut cmd: Command = cluster.kubectl();
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(io("running kubectl"))?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input.as_bytes())
            .map_err(io("writing kubectl stdin"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(io("waiting for kubectl"))?;
    if !out.status.success() {
        return Err(InstallError::Kubectl {
            args: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn apply_json(cluster: &LocalCluster, doc: &Value) -> Result<(), InstallError> {
    let text = serde_json::to_string(doc).map_err(|e| InstallError::Failed {
        what: "encoding manifest".into(),
        detail: e.to_string(),
    })?;
    kubectl(
        cluster,
        &[
            "apply",
            "--server-side",
            "--force-conflicts",
            &format!("--field-manager={FIELD_MANAGER}"),
            "-f",
            "-",
        ],
        Some(&text),
    )
    .map(|_| ())
}

/// Starts the webhook process (or reuses a healthy one) and returns where it listens.
pub fn start_webhook(
    cluster: &mut LocalCluster,
    webhook_exe: &Path,
) -> Result<WebhookEndpoint, InstallError> {
    if let Some(ep) = WebhookEndpoint::load(cluster) {
        if ep.healthy(cluster) {
            return Ok(ep);
        }
        // Recorded but stale (dead, unhealthy or rebuilt): stop it before starting anew.
        if process::alive(ep.pid) {
            process::stop(ep.pid, None, Duration::from_secs(10));
        }
        cluster
            .processes
            .retain(|p| !(p.name == PROCESS_NAME && p.pid == ep.pid));
    }
    let pki = cluster.pki();
    let port = process::free_port().map_err(io("free port"))?;
    let admin_port = process::free_port().map_err(io("free port"))?;
    let log = cluster.work_dir.join(format!("{PROCESS_NAME}.log"));
    let mut cmd = Command::new(webhook_exe);
    cmd.arg(format!("--listen=127.0.0.1:{port}"))
        .arg(format!("--admin-listen=127.0.0.1:{admin_port}"))
        .arg(format!("--tls-cert-file={}", pki.cert("webhook").display()))
        .arg(format!("--tls-key-file={}", pki.key("webhook").display()))
        .arg(format!("--controller-username={CONTROLLER_USERNAME}"))
        // Admin credentials: only used for the metadata GET of referenced Secrets.
        .env("KUBECONFIG", &cluster.kubeconfig)
        .env(
            "RUST_LOG",
            std::env::var("SWH_COMPONENT_LOG").unwrap_or_else(|_| "info".into()),
        );
    let child = process::spawn_logged(PROCESS_NAME, cmd, &log)?;
    let ep = WebhookEndpoint {
        pid: child.id(),
        port,
        admin_port,
        log: log.clone(),
    };
    cluster.adopt_process(PROCESS_NAME, child, log.clone())?;
    let text = serde_json::to_string_pretty(&ep).map_err(|e| InstallError::Failed {
        what: "encoding webhook state".into(),
        detail: e.to_string(),
    })?;
    std::fs::write(WebhookEndpoint::state_file(cluster), text)
        .map_err(io("writing swh-webhook.json"))?;

    let start = Instant::now();
    loop {
        if http_status(admin_port, "/readyz") == Some(200) {
            return Ok(ep);
        }
        if !process::alive(ep.pid) {
            return Err(InstallError::Failed {
                what: "swh-webhook exited during start-up".into(),
                detail: tail(&log),
            });
        }
        if start.elapsed() > Duration::from_secs(30) {
            return Err(InstallError::Failed {
                what: "swh-webhook not ready within 30s".into(),
                detail: tail(&log),
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The CRD with its conversion webhook at `url/convert`, trusting `ca_pem`.
pub fn crd_manifest(url: &str, ca_pem: &[u8]) -> Result<Value, InstallError> {
    let mut crd: Value = serde_yaml::from_str(CRD_YAML).map_err(|e| InstallError::Failed {
        what: "parsing config/crd/servicewithhealthchecks.yaml".into(),
        detail: e.to_string(),
    })?;
    crd["spec"]["conversion"] = json!({
        "strategy": "Webhook",
        "webhook": {
            "conversionReviewVersions": ["v1"],
            "clientConfig": {"url": format!("{url}/convert"), "caBundle": base64_encode(ca_pem)}
        }
    });
    Ok(crd)
}

/// CEL: the object (or, on UPDATE, the old object) has an ownerReference to an SWH.
pub const OWNED_BY_SWH_CEL: &str = "(has(object.metadata.ownerReferences) && object.metadata.ownerReferences.exists(r, r.kind == 'ServiceWithHealthchecks' && r.apiVersion.startsWith('network.deckhouse.io/'))) || (oldObject != null && has(oldObject.metadata.ownerReferences) && oldObject.metadata.ownerReferences.exists(r, r.kind == 'ServiceWithHealthchecks' && r.apiVersion.startsWith('network.deckhouse.io/')))";

/// The ValidatingWebhookConfiguration with url clientConfigs (same rules as
/// `config/webhook/validatingwebhookconfiguration.yaml`).
pub fn webhook_configuration(url: &str, ca_pem: &[u8]) -> Value {
    let ca = base64_encode(ca_pem);
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": CONFIGURATION_NAME, "labels": {"app.kubernetes.io/part-of": "swh"}},
        "webhooks": [
            {
                "name": SWH_WEBHOOK_NAME,
                "clientConfig": {"url": format!("{url}/validate-swh"), "caBundle": ca},
                "rules": [{
                    "apiGroups": ["network.deckhouse.io"],
                    "apiVersions": ["*"],
                    "operations": ["CREATE", "UPDATE"],
                    "resources": ["servicewithhealthchecks"],
                    "scope": "Namespaced"
                }],
                "failurePolicy": "Fail",
                "matchPolicy": "Equivalent",
                "sideEffects": "None",
                "timeoutSeconds": 5,
                "admissionReviewVersions": ["v1"]
            },
            {
                "name": SERVICE_WEBHOOK_NAME,
                "clientConfig": {"url": format!("{url}/validate-service"), "caBundle": ca},
                "rules": [{
                    "apiGroups": [""],
                    "apiVersions": ["v1"],
                    "operations": ["UPDATE"],
                    "resources": ["services"],
                    "scope": "Namespaced"
                }],
                "matchConditions": [
                    {"name": "owned-by-swh", "expression": OWNED_BY_SWH_CEL},
                    {"name": "not-the-controller", "expression": format!("request.userInfo.username != '{CONTROLLER_USERNAME}'")}
                ],
                "failurePolicy": "Ignore",
                "sideEffects": "None",
                "timeoutSeconds": 3,
                "admissionReviewVersions": ["v1"]
            }
        ]
    })
}

/// An SWH that passes schema and CEL but not the webhook (a header name no request can carry:
/// denied on v1alpha1 too, as no probe can run); v1alpha1, so creating it also exercises
/// conversion to the storage version.
const PROBE_OBJECT: &str = r#"{"apiVersion":"network.deckhouse.io/v1alpha1","kind":"ServiceWithHealthchecks","metadata":{"name":"swh-webhook-install-probe","namespace":"default"},"spec":{"ports":[{"port":80,"targetPort":8080}],"selector":{"app":"x"},"healthcheck":{"probes":[{"mode":"HTTP","http":{"targetPort":8080,"httpHeaders":[{"name":"bad header","value":"x"}]}}]}}}"#;

/// Polls until a dry-run create of an invalid SWH is rejected by the webhook itself.
pub fn wait_effective(cluster: &LocalCluster, limit: Duration) -> Result<(), InstallError> {
    let start = Instant::now();
    let mut last: String;
    loop {
        match kubectl(
            cluster,
            &["create", "--dry-run=server", "-f", "-"],
            Some(PROBE_OBJECT),
        ) {
            Err(InstallError::Kubectl { stderr, .. })
                if stderr.contains(&format!("admission webhook \"{SWH_WEBHOOK_NAME}\" denied")) =>
            {
                return Ok(());
            }
            Err(e) => last = e.to_string(),
            Ok(out) => last = format!("the invalid probe object was accepted: {out}"),
        }
        if start.elapsed() > limit {
            return Err(InstallError::Failed {
                what: format!("the webhook did not take effect within {limit:?}"),
                detail: last,
            });
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Starts swh-webhook (unless a healthy one is recorded), applies the CRD with the conversion
/// webhook and the ValidatingWebhookConfiguration (url clientConfigs + caBundle of the cluster
/// CA), waits for the CRD to be Established and for the webhook to really reject an invalid
/// object.
pub fn install(cluster: &mut LocalCluster, webhook_exe: &Path) -> Result<(), InstallError> {
    let ep = start_webhook(cluster, webhook_exe)?;
    let ca_path = cluster.pki().ca_cert();
    let ca = std::fs::read(&ca_path).map_err(io(format!("reading {}", ca_path.display())))?;
    apply_json(cluster, &crd_manifest(&ep.url(), &ca)?)?;
    kubectl(
        cluster,
        &[
            "wait",
            "--for=condition=Established",
            &format!("crd/{CRD_NAME}"),
            "--timeout=60s",
        ],
        None,
    )?;
    apply_json(cluster, &webhook_configuration(&ep.url(), &ca))?;
    wait_effective(cluster, Duration::from_secs(60))
}
