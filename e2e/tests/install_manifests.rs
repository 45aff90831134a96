//! The install manifests in `config/`, built with the real kubectl (v1.37.2, kustomize inside)
//! and checked against the real API server:
//!
//! * every entry point renders every part (a `kubectl apply -k a -k b` that silently keeps
//!   only the last folder is the class of bug this guards against: README's commands are
//!   checked to name one entry point each, and `config/default` to hold everything);
//! * every Pod template passes Pod Security `restricted`, asserted on the fields AND by
//!   dry-run creating a bare Pod from each template in a namespace that enforces it;
//! * the real-node overlay (`e2e/overlays/real-node` + [`install::write_overlay`]) is
//!   accepted by the API server (`kubectl apply --server-side --dry-run=server`).
//!
//! kubectl is `$SWH_K8S_BIN/kubectl`, else the shared cluster's (`$SWH_LOCAL_DIR`).

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};
use swh_e2e::controlplane::{LocalCluster, base64_encode};
use swh_e2e::install::{self, IMAGES};
use swh_e2e::testenv;

fn root() -> PathBuf {
    testenv::workspace_root()
}

/// The real kubectl: `$SWH_K8S_BIN/kubectl`, else the shared cluster's.
fn kubectl_bin() -> PathBuf {
    if let Some(dir) = std::env::var_os("SWH_K8S_BIN") {
        return PathBuf::from(dir).join("kubectl");
    }
    testenv::shared_cluster()
        .expect("SWH_K8S_BIN or a shared local cluster (run `make test` or `make up`)")
        .bin_dir
        .join("kubectl")
}

fn cluster() -> LocalCluster {
    testenv::shared_cluster().expect("shared local cluster (run `make test` or `make up`)")
}

fn render(dir: &Path) -> Vec<Value> {
    let yaml = install::render(&kubectl_bin(), dir).expect("kubectl kustomize");
    install::documents(&yaml).expect("rendered YAML")
}

fn id(doc: &Value) -> (String, String, String) {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    (
        s(&doc["kind"]),
        s(&doc["metadata"]["namespace"]),
        s(&doc["metadata"]["name"]),
    )
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("{kind} {name} not rendered"))
}

/// Everything `config/default` must install.
fn expected_default() -> BTreeSet<(String, String, String)> {
    let ns = "swh-system";
    let mut e: Vec<(&str, &str, &str)> = vec![
        ("Namespace", "", ns),
        (
            "CustomResourceDefinition",
            "",
            "servicewithhealthchecks.network.deckhouse.io",
        ),
        ("Role", ns, "swh-controller-leader-election"),
        ("RoleBinding", ns, "swh-controller-leader-election"),
        ("Service", ns, "swh-webhook"),
        ("Deployment", ns, "swh-webhook"),
        ("PodDisruptionBudget", ns, "swh-webhook"),
        ("ValidatingWebhookConfiguration", "", "swh-webhook"),
        ("Issuer", ns, "swh-selfsigned"),
        ("Issuer", ns, "swh-ca"),
        ("Certificate", ns, "swh-webhook-ca"),
        ("Certificate", ns, "swh-webhook"),
        ("Deployment", ns, "swh-controller"),
        ("PodDisruptionBudget", ns, "swh-controller"),
        ("DaemonSet", ns, "swh-agent"),
    ];
    for c in ["swh-controller", "swh-agent", "swh-webhook"] {
        e.push(("ServiceAccount", ns, c));
        e.push(("ClusterRole", "", c));
        e.push(("ClusterRoleBinding", "", c));
    }
    e.into_iter()
        .map(|(k, n, m)| (k.to_string(), n.to_string(), m.to_string()))
        .collect()
}

fn ids(docs: &[Value]) -> BTreeSet<(String, String, String)> {
    let all: Vec<_> = docs.iter().map(id).collect();
    let set: BTreeSet<_> = all.iter().cloned().collect();
    assert_eq!(set.len(), all.len(), "duplicate objects: {all:?}");
    set
}

fn assert_same(
    what: &str,
    got: &BTreeSet<(String, String, String)>,
    want: &BTreeSet<(String, String, String)>,
) {
    let missing: Vec<_> = want.difference(got).collect();
    let extra: Vec<_> = got.difference(want).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{what}: missing {missing:?}, unexpected {extra:?} (update expected_default() when adding an object on purpose)"
    );
}

#[test]
fn config_default_renders_every_part() {
    let docs = render(&root().join("config/default"));
    assert_same("config/default", &ids(&docs), &expected_default());

    // The cert-manager wiring: caBundle injection on both, the conversion through the Service.
    let inject = "swh-system/swh-webhook";
    let crd = find(&docs, "CustomResourceDefinition", install::CRD_NAME);
    let vwc = find(&docs, "ValidatingWebhookConfiguration", "swh-webhook");
    for d in [crd, vwc] {
        assert_eq!(
            d["metadata"]["annotations"]["cert-manager.io/inject-ca-from"],
            inject,
            "{:?}",
            id(d)
        );
    }
    assert_eq!(
        crd["spec"]["conversion"]["webhook"]["clientConfig"]["service"],
        json!({"name": "swh-webhook", "namespace": "swh-system", "path": "/convert", "port": 443})
    );
    let webhooks = vwc["webhooks"].as_array().expect("webhooks");
    assert_eq!(webhooks.len(), install::webhook_count().expect("count"));
    for w in webhooks {
        assert_eq!(w["clientConfig"]["service"]["name"], "swh-webhook", "{w}");
    }
    // Namespace: Pod Security restricted, enforced.
    let ns = find(&docs, "Namespace", "swh-system");
    for mode in ["enforce", "audit", "warn"] {
        let l = &ns["metadata"]["labels"];
        assert_eq!(
            l[format!("pod-security.kubernetes.io/{mode}")],
            "restricted"
        );
        assert_eq!(
            l[format!("pod-security.kubernetes.io/{mode}-version")],
            "latest"
        );
    }
    // Images stay the plain names: overlays set them.
    let images: BTreeSet<String> = pod_templates(&docs)
        .iter()
        .flat_map(|(_, spec)| containers(spec))
        .map(|c| c["image"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        images,
        [
            "swh-agent:latest",
            "swh-controller:latest",
            "swh-webhook:latest"
        ]
        .map(String::from)
        .into()
    );
}

/// Every part folder renders on its own, and the union of the parts is config/default: no
/// entry point drops or adds anything.
#[test]
fn part_folders_render_and_add_up_to_config_default() {
    let parts = [
        "config/namespace",
        "config/crd",
        "config/rbac",
        "config/webhook/base",
        "config/webhook/cert-manager",
        "config/controller",
        "config/agent",
    ];
    let mut union = BTreeSet::new();
    for p in parts {
        let got = ids(&render(&root().join(p)));
        assert!(!got.is_empty(), "{p} renders nothing");
        union.extend(got);
    }
    assert_same("the parts together", &union, &expected_default());

    // config/webhook (the webhook alone, as documented before config/default existed) still
    // builds, with and without --load-restrictor, to the same objects.
    let plain = install::render(&kubectl_bin(), &root().join("config/webhook")).expect("plain");
    let out = Command::new(kubectl_bin())
        .args(["kustomize", "--load-restrictor=LoadRestrictionsNone"])
        .arg(root().join("config/webhook"))
        .output()
        .expect("kubectl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), plain);
    let webhook = ids(&install::documents(&plain).expect("yaml"));
    for want in [
        ("Namespace", "", "swh-system"),
        ("CustomResourceDefinition", "", install::CRD_NAME),
        ("Deployment", "swh-system", "swh-webhook"),
        ("Certificate", "swh-system", "swh-webhook"),
        ("ValidatingWebhookConfiguration", "", "swh-webhook"),
    ] {
        let want = (want.0.to_string(), want.1.to_string(), want.2.to_string());
        assert!(webhook.contains(&want), "config/webhook lacks {want:?}");
    }
}

/// The `kubectl apply` commands of the install docs name one entry point each (kubectl keeps
/// only the last `-k`/`-f` of a command), and the README's image overlay example builds.
#[test]
fn install_docs_name_one_entry_point_and_their_overlay_builds() {
    for doc in ["README.md", "config/webhook/README.md"] {
        let text = std::fs::read_to_string(root().join(doc)).expect("read doc");
        // Join continuation lines so a command split with `\` is one line.
        let joined = text.replace("\\\n", " ");
        for line in joined.lines().filter(|l| l.contains("kubectl apply")) {
            let sources = line
                .split_whitespace()
                .filter(|w| {
                    matches!(*w, "-k" | "-f" | "--kustomize" | "--filename")
                        || w.starts_with("--kustomize=")
                        || w.starts_with("--filename=")
                })
                .count();
            assert!(
                sources <= 1,
                "{doc}: more than one -k/-f in `{}`",
                line.trim()
            );
        }
        assert!(
            !joined.contains("rbac/namespace.yaml"),
            "{doc} names a file that moved to config/namespace"
        );
    }
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README");
    let section = readme
        .split("## Install on a real cluster")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("README has an install section");
    assert!(
        section.contains("kubectl apply --server-side -k config/default"),
        "the install section must use config/default"
    );
    let yaml = section
        .split("```yaml\n")
        .nth(1)
        .and_then(|s| s.split("```").next())
        .expect("the install section's overlay example");

    // The example as a user would lay it out: `my-swh` next to the checkout (here: a
    // `../swh` symlink to the workspace in a fresh directory).
    let base = std::env::temp_dir().join(testenv::unique_name("swh-readme-overlay"));
    std::fs::create_dir_all(base.join("my-swh")).expect("mkdir");
    std::os::unix::fs::symlink(root().canonicalize().expect("root"), base.join("swh"))
        .expect("symlink");
    let yaml = yaml
        .replace("REGISTRY", "registry.example.test/swh")
        .replace("TAG", "v1.2.3");
    std::fs::write(base.join("my-swh/kustomization.yaml"), yaml).expect("write");
    let docs = render(&base.join("my-swh"));
    let _ = std::fs::remove_dir_all(&base);
    assert_same("the README overlay", &ids(&docs), &expected_default());
    let images: BTreeSet<String> = pod_templates(&docs)
        .iter()
        .flat_map(|(_, spec)| containers(spec))
        .map(|c| c["image"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        images,
        ["agent", "controller", "webhook"]
            .map(|c| format!("registry.example.test/swh/swh-{c}:v1.2.3"))
            .into()
    );
}

/// (workload "Kind/name", its pod spec) of every Deployment/DaemonSet/StatefulSet/Job/Pod.
fn pod_templates(docs: &[Value]) -> Vec<(String, Value)> {
    docs.iter()
        .filter_map(|d| {
            let kind = d["kind"].as_str()?;
            let spec = match kind {
                "Deployment" | "DaemonSet" | "StatefulSet" | "ReplicaSet" | "Job" => {
                    d["spec"]["template"]["spec"].clone()
                }
                "CronJob" => d["spec"]["jobTemplate"]["spec"]["template"]["spec"].clone(),
                "Pod" => d["spec"].clone(),
                _ => return None,
            };
            Some((format!("{kind}/{}", d["metadata"]["name"].as_str()?), spec))
        })
        .collect()
}

fn containers(spec: &Value) -> Vec<Value> {
    ["initContainers", "containers", "ephemeralContainers"]
        .iter()
        .filter_map(|k| spec[k].as_array())
        .flatten()
        .cloned()
        .collect()
}

/// The `restricted` fields we require of every pod (stricter than the profile in places:
/// readOnlyRootFilesystem, a fixed UID/GID).
fn assert_restricted_fields(what: &str, spec: &Value) {
    let sc = &spec["securityContext"];
    assert_eq!(sc["runAsNonRoot"], true, "{what}: pod runAsNonRoot");
    assert_eq!(sc["runAsUser"], 65532, "{what}: pod runAsUser");
    assert_eq!(sc["runAsGroup"], 65532, "{what}: pod runAsGroup");
    assert_eq!(
        sc["seccompProfile"]["type"], "RuntimeDefault",
        "{what}: pod seccompProfile"
    );
    for k in ["hostNetwork", "hostPID", "hostIPC"] {
        assert_ne!(spec[k], true, "{what}: {k}");
    }
    for v in spec["volumes"].as_array().into_iter().flatten() {
        assert!(v.get("hostPath").is_none(), "{what}: hostPath volume {v}");
    }
    let cs = containers(spec);
    assert!(!cs.is_empty(), "{what}: no containers");
    for c in cs {
        let name = c["name"].as_str().unwrap_or_default();
        let csc = &c["securityContext"];
        assert_eq!(
            csc["allowPrivilegeEscalation"], false,
            "{what}/{name}: allowPrivilegeEscalation"
        );
        assert_eq!(
            csc["capabilities"]["drop"],
            json!(["ALL"]),
            "{what}/{name}: capabilities.drop"
        );
        assert!(
            csc["capabilities"].get("add").is_none(),
            "{what}/{name}: capabilities.add"
        );
        assert_eq!(
            csc["readOnlyRootFilesystem"], true,
            "{what}/{name}: readOnlyRootFilesystem"
        );
        assert_ne!(csc["privileged"], true, "{what}/{name}: privileged");
        // A container-level override must not undo the pod's settings.
        assert_ne!(csc["runAsNonRoot"], false, "{what}/{name}: runAsNonRoot");
        assert_ne!(csc["runAsUser"], 0, "{what}/{name}: runAsUser");
        if let Some(t) = csc["seccompProfile"]["type"].as_str() {
            assert!(
                t == "RuntimeDefault" || t == "Localhost",
                "{what}/{name}: seccomp {t}"
            );
        }
    }
}

#[test]
fn every_pod_template_has_the_restricted_fields() {
    for overlay in [root().join("config/default"), install::real_node_overlay()] {
        let templates = pod_templates(&render(&overlay));
        let names: BTreeSet<&str> = templates.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "DaemonSet/swh-agent",
                "Deployment/swh-controller",
                "Deployment/swh-webhook"
            ]
            .into(),
            "{}",
            overlay.display()
        );
        for (what, spec) in &templates {
            assert_restricted_fields(&format!("{}: {what}", overlay.display()), spec);
        }
    }
}

// ---- against the API server ---------------------------------------------------------------

fn kubectl(cluster: &LocalCluster, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = cluster.kubectl();
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("kubectl");
    if let Some(input) = stdin {
        let mut w = child.stdin.take().expect("stdin");
        w.write_all(input.as_bytes()).expect("write stdin");
    }
    child.wait_with_output().expect("kubectl output")
}

fn kubectl_ok(cluster: &LocalCluster, args: &[&str], stdin: Option<&str>) -> Output {
    let out = kubectl(cluster, args, stdin);
    assert!(
        out.status.success(),
        "kubectl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Throwaway CA and serving certificate for `swh-webhook.swh-system.svc[.cluster.local]`:
/// (ca.crt, tls.crt, tls.key) as PEM.
fn throwaway_pki() -> (String, String, String) {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    let ca_key = KeyPair::generate().expect("ca key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca.distinguished_name
        .push(DnType::CommonName, "swh-webhook-test-ca");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).expect("ca cert");
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().expect("leaf key");
    let mut leaf = CertificateParams::new(vec![
        "swh-webhook.swh-system.svc".to_string(),
        "swh-webhook.swh-system.svc.cluster.local".to_string(),
    ])
    .expect("leaf params");
    leaf.distinguished_name
        .push(DnType::CommonName, "swh-webhook.swh-system.svc");
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = leaf.signed_by(&key, &issuer).expect("leaf cert");
    (ca_cert.pem(), cert.pem(), key.serialize_pem())
}

/// Writes and renders the real-node overlay with throwaway PEMs.
fn real_node_rendered(ca: &str, crt: &str, key: &str) -> (PathBuf, String) {
    let dir = std::env::temp_dir().join(testenv::unique_name("swh-real-node-overlay"));
    let overlay = install::write_overlay(&dir, ca, crt, key).expect("write_overlay");
    let yaml = install::render(&kubectl_bin(), &overlay).expect("render");
    (overlay, yaml)
}

#[test]
fn real_node_overlay_has_local_images_secret_and_ca_bundles() {
    let (ca, crt, key) = throwaway_pki();
    let (overlay, yaml) = real_node_rendered(&ca, &crt, &key);
    let _ = std::fs::remove_dir_all(&overlay);
    let docs = install::documents(&yaml).expect("yaml");

    let mut want = expected_default();
    for (k, n) in [
        ("Issuer", "swh-selfsigned"),
        ("Issuer", "swh-ca"),
        ("Certificate", "swh-webhook-ca"),
        ("Certificate", "swh-webhook"),
    ] {
        want.remove(&(k.to_string(), "swh-system".to_string(), n.to_string()));
    }
    want.insert((
        "Secret".into(),
        "swh-system".into(),
        "swh-webhook-tls".into(),
    ));
    assert_same("the real-node overlay", &ids(&docs), &want);

    let images: BTreeSet<String> = pod_templates(&docs)
        .iter()
        .flat_map(|(_, spec)| containers(spec))
        .map(|c| c["image"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(images, IMAGES.map(String::from).into());

    let secret = find(&docs, "Secret", "swh-webhook-tls");
    assert_eq!(secret["type"], "kubernetes.io/tls");
    for (k, v) in [("tls.crt", &crt), ("tls.key", &key), ("ca.crt", &ca)] {
        // kustomize wraps the base64 at 70 columns.
        let got: String = secret["data"][k]
            .as_str()
            .unwrap_or_default()
            .split_whitespace()
            .collect();
        assert_eq!(got, base64_encode(v.as_bytes()), "{k}");
    }
    let bundle = base64_encode(ca.as_bytes());
    let vwc = find(&docs, "ValidatingWebhookConfiguration", "swh-webhook");
    let webhooks = vwc["webhooks"].as_array().expect("webhooks");
    assert_eq!(webhooks.len(), 2);
    for w in webhooks {
        assert_eq!(w["clientConfig"]["caBundle"], bundle, "{}", w["name"]);
    }
    let crd = find(&docs, "CustomResourceDefinition", install::CRD_NAME);
    assert_eq!(
        crd["spec"]["conversion"],
        json!({"strategy": "Webhook", "webhook": {"conversionReviewVersions": ["v1"], "clientConfig": {
            "service": {"name": "swh-webhook", "namespace": "swh-system", "path": "/convert", "port": 443},
            "caBundle": bundle}}})
    );
    assert!(crd["metadata"]["annotations"]["cert-manager.io/inject-ca-from"].is_null());
}

/// The API server accepts the whole real-node install (server-side dry run: nothing is
/// stored; only the Namespace is applied for real, so namespaced objects can be dry-run and
/// the workloads get Pod Security warnings if any).
#[test]
fn real_node_overlay_is_accepted_by_the_api_server() {
    let cluster = cluster();
    let (ca, crt, key) = throwaway_pki();
    let (overlay, yaml) = real_node_rendered(&ca, &crt, &key);
    let _ = std::fs::remove_dir_all(&overlay);
    let ns_path = root().join("config/namespace");
    kubectl_ok(
        &cluster,
        &[
            "apply",
            "--server-side",
            "--field-manager=swh-e2e-install-test",
            "--force-conflicts",
            "-k",
            &ns_path.display().to_string(),
        ],
        None,
    );
    // Each object as a whole, dry run: replaced where the cluster already has it (the
    // process-mode cluster installs the CRD and webhook configuration by URL; an apply would
    // merge `url` with the overlay's `service`), created where not.
    let docs = install::documents(&yaml).expect("yaml");
    let mut accepted = 0;
    for doc in &docs {
        let kind = doc["kind"].as_str().unwrap_or_default();
        let name = doc["metadata"]["name"].as_str().unwrap_or_default();
        let ns = doc["metadata"]["namespace"].as_str();
        let mut get = vec!["get".to_string(), format!("{kind}/{name}")];
        if let Some(ns) = ns {
            get.extend(["-n".to_string(), ns.to_string()]);
        }
        let get: Vec<&str> = get.iter().map(String::as_str).collect();
        let exists = kubectl(&cluster, &get, None).status.success();
        let verb = if exists { "replace" } else { "create" };
        let out = kubectl(
            &cluster,
            &[verb, "--dry-run=server", "-f", "-"],
            Some(&doc.to_string()),
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stdout.contains("(server dry run)"),
            "{verb} {kind}/{name} (server dry run): {stdout}{stderr}"
        );
        assert!(
            !stderr.contains("PodSecurity"),
            "Pod Security warnings for {kind}/{name}: {stderr}"
        );
        accepted += 1;
    }
    assert_eq!(accepted, docs.len());
}

/// Deletes the namespace when dropped (also on a failed assertion).
struct TempNamespace<'a> {
    cluster: &'a LocalCluster,
    name: String,
}

impl Drop for TempNamespace<'_> {
    fn drop(&mut self) {
        let _ = kubectl(
            self.cluster,
            &["delete", "namespace", &self.name, "--wait=false"],
            None,
        );
    }
}

/// A bare Pod from each Pod template, dry-run created in a namespace enforcing `restricted`
/// (for Deployments and DaemonSets Pod Security only warns; for Pods it denies). A copy
/// without seccompProfile must be denied, so the check is known to be live.
#[test]
fn every_pod_template_is_admitted_under_enforced_restricted() {
    let cluster = cluster();
    let name = testenv::unique_name("swh-pss");
    let ns_yaml = serde_json::to_string(&json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": {
            "pod-security.kubernetes.io/enforce": "restricted",
            "pod-security.kubernetes.io/enforce-version": "latest",
        }},
    }))
    .expect("json");
    kubectl_ok(&cluster, &["create", "-f", "-"], Some(&ns_yaml));
    let ns = TempNamespace {
        cluster: &cluster,
        name,
    };

    let (ca, crt, key) = throwaway_pki();
    let (overlay, yaml) = real_node_rendered(&ca, &crt, &key);
    let _ = std::fs::remove_dir_all(&overlay);
    let templates = pod_templates(&install::documents(&yaml).expect("yaml"));
    assert_eq!(templates.len(), 3);
    // Their ServiceAccounts, in case the ServiceAccount admission plugin is on.
    for (_, spec) in &templates {
        if let Some(sa) = spec["serviceAccountName"].as_str() {
            kubectl_ok(
                &cluster,
                &["create", "serviceaccount", sa, "-n", &ns.name],
                None,
            );
        }
    }
    for (what, spec) in &templates {
        let pod_name = what.replace('/', "-").to_lowercase();
        let pod = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": pod_name, "namespace": ns.name},
            "spec": spec,
        });
        let out = kubectl(
            &cluster,
            &["create", "--dry-run=server", "-f", "-"],
            Some(&pod.to_string()),
        );
        assert!(
            out.status.success(),
            "{what} as a bare Pod under enforced restricted: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("PodSecurity"), "{what}: {stderr}");

        let mut bad = pod.clone();
        if let Some(sc) = bad["spec"]["securityContext"].as_object_mut() {
            sc.remove("seccompProfile");
        }
        let out = kubectl(
            &cluster,
            &["create", "--dry-run=server", "-f", "-"],
            Some(&bad.to_string()),
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains("violates PodSecurity"),
            "{what} without seccompProfile must be denied: {stderr}"
        );
    }
}
