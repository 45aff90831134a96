//! The Helm chart (`config/helm/swh`), with the real helm (v3.21.4, built by
//! `e2e/tools/build.sh`) and the real API server:
//!
//! * `helm lint --strict` passes, for the defaults and for the provided-certificate mode;
//! * with default values, `helm template` renders exactly the objects of `kubectl kustomize
//!   config/default` (kind, namespace, name and every field; the chart may only add labels)
//!   except the Namespace, which it renders identically on `namespace.create=true`: the
//!   kustomize bases stay the one source of truth;
//! * every documented value reaches the objects it names; invalid values are refused;
//! * the rendered objects are accepted by the API server (`kubectl apply --server-side
//!   --dry-run=server`) in a namespace that enforces Pod Security `restricted`, without a
//!   PodSecurity warning.

mod tools;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;

use serde_json::{Value, json};
use swh_e2e::controlplane::base64_encode;
use swh_e2e::testenv;
use tools::{documents, helm, kubectl_bin, root, run, run_ok, temp_dir};

type Id = (String, String, String);

fn chart() -> PathBuf {
    root().join("config/helm/swh")
}

fn id(doc: &Value) -> Id {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    (
        s(&doc["kind"]),
        s(&doc["metadata"]["namespace"]),
        s(&doc["metadata"]["name"]),
    )
}

fn by_id(docs: Vec<Value>) -> BTreeMap<Id, Value> {
    let n = docs.len();
    let map: BTreeMap<Id, Value> = docs.into_iter().map(|d| (id(&d), d)).collect();
    assert_eq!(map.len(), n, "duplicate objects in {:?}", map.keys());
    map
}

/// `helm template swh config/helm/swh -n NS` with a values file (YAML) and extra args.
fn template_out(ns: &str, values: &str, extra: &[&str]) -> std::process::Output {
    let home = temp_dir("swh-helm");
    let vf = home.join("values.yaml");
    std::fs::write(&vf, values).expect("write values");
    let mut c = helm(&home);
    c.args(["template", "swh"])
        .arg(chart())
        .args(["--namespace", ns, "--values"])
        .arg(&vf)
        .args(extra);
    let out = run(c, None);
    let _ = std::fs::remove_dir_all(&home);
    out
}

fn template(ns: &str, values: &str) -> BTreeMap<Id, Value> {
    let out = template_out(ns, values, &[]);
    assert!(
        out.status.success(),
        "helm template failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    by_id(documents(&String::from_utf8_lossy(&out.stdout)))
}

fn kustomize_default() -> BTreeMap<Id, Value> {
    let mut c = Command::new(kubectl_bin());
    c.arg("kustomize").arg(root().join("config/default"));
    by_id(documents(&run_ok(c, None)))
}

fn get<'a>(docs: &'a BTreeMap<Id, Value>, kind: &str, ns: &str, name: &str) -> &'a Value {
    docs.get(&(kind.to_string(), ns.to_string(), name.to_string()))
        .unwrap_or_else(|| {
            panic!(
                "{kind} {ns}/{name} not rendered; have {:?}",
                docs.keys().collect::<Vec<_>>()
            )
        })
}

/// The chart's object with its labels reduced to the keys kustomize has (after checking it
/// has each of them with the same value) and Helm's keep annotation removed.
fn comparable(helm_obj: &Value, kustomize_obj: &Value) -> Value {
    let what = format!("{:?}", id(kustomize_obj));
    let mut h = helm_obj.clone();
    let want = kustomize_obj["metadata"]["labels"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let got = h["metadata"]["labels"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    for (k, v) in &want {
        assert_eq!(got.get(k), Some(v), "{what}: label {k}");
    }
    // The chart adds the standard Helm labels; nothing else differs.
    for k in got.keys().filter(|k| !want.contains_key(*k)) {
        assert!(
            [
                "app.kubernetes.io/instance",
                "app.kubernetes.io/managed-by",
                "app.kubernetes.io/version",
                "helm.sh/chart",
                // Objects kustomize leaves unlabelled get the component's labels.
                "app.kubernetes.io/name",
                "app.kubernetes.io/part-of",
            ]
            .contains(&k.as_str()),
            "{what}: unexpected label {k}"
        );
    }
    let meta = h["metadata"].as_object_mut().expect("metadata");
    if want.is_empty() {
        meta.remove("labels");
    } else {
        meta.insert("labels".into(), Value::Object(want));
    }
    if let Some(a) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
        a.remove("helm.sh/resource-policy");
        if a.is_empty() {
            meta.remove("annotations");
        }
    }
    h
}

#[test]
fn default_values_render_the_objects_of_config_default() {
    let k = kustomize_default();
    let h = template("swh-system", "{}\n");
    let kustomize_ids: BTreeSet<&Id> = k.keys().filter(|i| i.0 != "Namespace").collect();
    let helm_ids: BTreeSet<&Id> = h.keys().collect();
    assert_eq!(
        helm_ids, kustomize_ids,
        "the chart's objects differ from config/default's (minus the Namespace)"
    );
    for (i, kobj) in k.iter().filter(|(i, _)| i.0 != "Namespace") {
        let got = comparable(&h[i], kobj);
        assert!(
            got == *kobj,
            "{i:?} differs from config/default:\nhelm:\n{}\nkustomize:\n{}",
            serde_yaml::to_string(&got).unwrap_or_default(),
            serde_yaml::to_string(kobj).unwrap_or_default()
        );
    }
    // The CRD is kept on uninstall, the rest is not.
    let crd = get(
        &h,
        "CustomResourceDefinition",
        "",
        "servicewithhealthchecks.network.deckhouse.io",
    );
    assert_eq!(
        crd["metadata"]["annotations"]["helm.sh/resource-policy"],
        "keep"
    );

    // namespace.create renders the Namespace of config/namespace.
    let h = template("swh-system", "namespace: {create: true}\n");
    let kns = get(&k, "Namespace", "", "swh-system");
    assert_eq!(
        comparable(get(&h, "Namespace", "", "swh-system"), kns),
        *kns
    );
    assert_eq!(h.len(), k.len());
}

const ALL_VALUES: &str = r#"
commonLabels: {team: platform, cost-center: "42"}
image: {registry: registry.example.test/swh/, tag: v9.8.7, pullPolicy: IfNotPresent, pullSecrets: [{name: regcred}]}
logFormat: plain
logLevel: debug
crd: {keep: false}
webhook:
  replicas: 3
  image: {tag: w1}
  port: 10443
  metricsPort: 10444
  pdb: {maxUnavailable: 2}
  resources: {requests: {cpu: 1m, memory: 1Mi}, limits: {memory: 2Mi}}
  nodeSelector: {role: infra}
  priorityClassName: webhook-prio
  podAnnotations: {a: b}
  extraArgs: [--cert-poll-interval=5s]
controller:
  replicas: 1
  metricsPort: 10445
  leaderElection: {leaseName: my-lease, leaseDurationSeconds: 30, renewGraceSeconds: 10}
  pdb: {enabled: false}
  tolerations: [{key: infra, operator: Exists, effect: NoSchedule}]
agent:
  metricsPort: 10446
  tolerations: [{key: dedicated, operator: Equal, value: db, effect: NoExecute}]
  nodeSelector: {kubernetes.io/os: linux}
  priorityClassName: agent-prio
  resources: {requests: {cpu: 5m, memory: 8Mi}, limits: {memory: 64Mi}}
  podLabels: {extra: agent-pods}
"#;

fn container(obj: &Value) -> &Value {
    &obj["spec"]["template"]["spec"]["containers"][0]
}

fn args(obj: &Value) -> Vec<String> {
    container(obj)["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().expect("arg").to_string())
        .collect()
}

fn env(obj: &Value, name: &str) -> Option<String> {
    container(obj)["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)
        .and_then(|e| e["value"].as_str().map(String::from))
}

#[test]
fn every_value_reaches_its_objects() {
    let h = template("platform", ALL_VALUES);
    let ns = "platform";
    let w = get(&h, "Deployment", ns, "swh-webhook");
    let c = get(&h, "Deployment", ns, "swh-controller");
    let a = get(&h, "DaemonSet", ns, "swh-agent");

    // Images: registry (trailing slash trimmed) + repository + tag (per component or global).
    assert_eq!(
        container(w)["image"],
        "registry.example.test/swh/swh-webhook:w1"
    );
    assert_eq!(
        container(c)["image"],
        "registry.example.test/swh/swh-controller:v9.8.7"
    );
    assert_eq!(
        container(a)["image"],
        "registry.example.test/swh/swh-agent:v9.8.7"
    );
    for o in [w, c, a] {
        assert_eq!(container(o)["imagePullPolicy"], "IfNotPresent");
        assert_eq!(
            o["spec"]["template"]["spec"]["imagePullSecrets"],
            json!([{"name": "regcred"}])
        );
        assert!(args(o).contains(&"--log-format=plain".to_string()));
    }
    // Log level: RUST_LOG for the webhook and the agent, --log-level for the controller.
    assert_eq!(env(w, "RUST_LOG").as_deref(), Some("debug"));
    assert_eq!(env(a, "RUST_LOG").as_deref(), Some("debug"));
    assert!(args(c).contains(&"--log-level=debug".to_string()));

    // Webhook: replicas, ports (args, container ports), PDB, scheduling, extra args.
    assert_eq!(w["spec"]["replicas"], 3);
    let wa = args(w);
    for want in [
        "--listen=0.0.0.0:10443",
        "--admin-listen=0.0.0.0:10444",
        "--controller-username=system:serviceaccount:platform:swh-controller",
        "--cert-poll-interval=5s",
    ] {
        assert!(
            wa.contains(&want.to_string()),
            "webhook args {wa:?} lack {want}"
        );
    }
    assert_eq!(
        container(w)["ports"],
        json!([{"name": "https", "containerPort": 10443}, {"name": "admin", "containerPort": 10444}])
    );
    assert_eq!(
        get(&h, "PodDisruptionBudget", ns, "swh-webhook")["spec"]["maxUnavailable"],
        2
    );
    let wp = &w["spec"]["template"]["spec"];
    assert_eq!(wp["nodeSelector"], json!({"role": "infra"}));
    assert_eq!(wp["priorityClassName"], "webhook-prio");
    assert_eq!(
        w["spec"]["template"]["metadata"]["annotations"],
        json!({"a": "b"})
    );
    assert_eq!(
        container(w)["resources"],
        json!({"requests": {"cpu": "1m", "memory": "1Mi"}, "limits": {"memory": "2Mi"}})
    );

    // Controller: replicas, leader election, no PDB, tolerations, metrics port.
    assert_eq!(c["spec"]["replicas"], 1);
    let ca = args(c);
    for want in [
        "--admin-listen=0.0.0.0:10445",
        "--lease-name=my-lease",
        "--lease-duration-seconds=30",
        "--lease-grace-seconds=10",
    ] {
        assert!(
            ca.contains(&want.to_string()),
            "controller args {ca:?} lack {want}"
        );
    }
    assert_eq!(container(c)["ports"][0]["containerPort"], 10445);
    assert!(!h.contains_key(&(
        "PodDisruptionBudget".to_string(),
        ns.to_string(),
        "swh-controller".to_string()
    )));
    assert_eq!(
        c["spec"]["template"]["spec"]["tolerations"],
        json!([{"key": "infra", "operator": "Exists", "effect": "NoSchedule"}])
    );

    // Agent: tolerations, nodeSelector, priorityClass, resources, metrics port, pod labels.
    let ap = &a["spec"]["template"]["spec"];
    assert_eq!(
        ap["tolerations"],
        json!([{"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoExecute"}])
    );
    assert_eq!(ap["nodeSelector"], json!({"kubernetes.io/os": "linux"}));
    assert_eq!(ap["priorityClassName"], "agent-prio");
    assert_eq!(
        container(a)["resources"],
        json!({"requests": {"cpu": "5m", "memory": "8Mi"}, "limits": {"memory": "64Mi"}})
    );
    assert!(args(a).contains(&"--admin-listen=0.0.0.0:10446".to_string()));
    assert_eq!(container(a)["ports"][0]["containerPort"], 10446);
    assert_eq!(
        a["spec"]["template"]["metadata"]["labels"]["extra"],
        "agent-pods"
    );
    // Selectors never take extra labels (they are immutable).
    assert_eq!(
        a["spec"]["selector"],
        json!({"matchLabels": {"app.kubernetes.io/name": "swh-agent"}})
    );

    // Extra labels on every object and every pod.
    for (i, o) in &h {
        assert_eq!(o["metadata"]["labels"]["team"], "platform", "{i:?}");
        assert_eq!(o["metadata"]["labels"]["cost-center"], "42", "{i:?}");
    }
    for o in [w, c, a] {
        assert_eq!(
            o["spec"]["template"]["metadata"]["labels"]["team"],
            "platform"
        );
    }
    // The release namespace everywhere the kustomize bases say swh-system.
    let text = serde_json::to_string(&h.values().collect::<Vec<_>>()).expect("json");
    assert!(
        !text.contains("swh-system"),
        "swh-system left in a render for namespace platform"
    );
    let vwc = get(&h, "ValidatingWebhookConfiguration", "", "swh-webhook");
    assert!(
        vwc["webhooks"][1]["matchConditions"][1]["expression"]
            .as_str()
            .expect("expression")
            .contains("'system:serviceaccount:platform:swh-controller'")
    );
    let cert = get(&h, "Certificate", ns, "swh-webhook");
    assert_eq!(
        cert["spec"]["dnsNames"],
        json!([
            "swh-webhook.platform.svc",
            "swh-webhook.platform.svc.cluster.local"
        ])
    );
    let crd = get(
        &h,
        "CustomResourceDefinition",
        "",
        "servicewithhealthchecks.network.deckhouse.io",
    );
    assert!(crd["metadata"]["annotations"]["helm.sh/resource-policy"].is_null());
    assert_eq!(
        crd["metadata"]["annotations"]["cert-manager.io/inject-ca-from"],
        "platform/swh-webhook"
    );
}

/// A throwaway CA in PEM (the API server only parses it in a dry run).
fn ca_pem() -> String {
    let cluster = testenv::shared_cluster().ok();
    match cluster {
        Some(c) => std::fs::read_to_string(c.pki().ca_cert()).expect("cluster CA"),
        None => {
            let key = rcgen_key();
            let params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
            params.self_signed(&key).expect("self-signed").pem()
        }
    }
}

fn rcgen_key() -> rcgen::KeyPair {
    rcgen::KeyPair::generate().expect("key")
}

/// Values for mode provided; with `secret`, the (cert, key) PEM the chart makes a Secret of.
fn provided_values(ca: &str, secret: Option<(&str, &str)>) -> String {
    let mut v = json!({
        "webhook": {"certificate": {"mode": "provided", "secretName": "my-tls",
            "provided": {"caBundle": ca}}},
    });
    if let Some((crt, key)) = secret {
        v["webhook"]["certificate"]["provided"]["tlsCrt"] = json!(crt);
        v["webhook"]["certificate"]["provided"]["tlsKey"] = json!(key);
    }
    serde_yaml::to_string(&v).expect("yaml")
}

#[test]
fn provided_certificate_mode_puts_the_ca_in_every_bundle() {
    let ca = ca_pem();
    let b64 = base64_encode(ca.as_bytes());
    let h = template(
        "infra",
        &provided_values(&ca, Some(("CERT for infra\n", "KEY\n"))),
    );
    let kinds: BTreeSet<&str> = h.keys().map(|i| i.0.as_str()).collect();
    assert!(
        !kinds.contains("Certificate") && !kinds.contains("Issuer"),
        "cert-manager objects in mode provided: {kinds:?}"
    );
    let vwc = get(&h, "ValidatingWebhookConfiguration", "", "swh-webhook");
    let crd = get(
        &h,
        "CustomResourceDefinition",
        "",
        "servicewithhealthchecks.network.deckhouse.io",
    );
    for o in [vwc, crd] {
        assert!(
            o["metadata"]["annotations"]["cert-manager.io/inject-ca-from"].is_null(),
            "{:?} still asks cainjector",
            id(o)
        );
    }
    for wh in vwc["webhooks"].as_array().expect("webhooks") {
        assert_eq!(wh["clientConfig"]["caBundle"], b64.as_str(), "{wh}");
    }
    let cc = &crd["spec"]["conversion"]["webhook"]["clientConfig"];
    assert_eq!(cc["caBundle"], b64.as_str());
    assert_eq!(
        cc["service"],
        json!({"name": "swh-webhook", "namespace": "infra", "path": "/convert", "port": 443})
    );
    // The Secret from the values, mounted by the webhook.
    let s = get(&h, "Secret", "infra", "my-tls");
    assert_eq!(s["type"], "kubernetes.io/tls");
    assert_eq!(
        s["data"]["tls.crt"],
        base64_encode(b"CERT for infra\n").as_str()
    );
    let w = get(&h, "Deployment", "infra", "swh-webhook");
    assert_eq!(
        w["spec"]["template"]["spec"]["volumes"][0]["secret"]["secretName"],
        "my-tls"
    );
    // Already base64: taken as is. Without tlsCrt/tlsKey: no Secret (it must exist).
    let h = template("infra", &provided_values(&b64, None));
    let vwc = get(&h, "ValidatingWebhookConfiguration", "", "swh-webhook");
    assert_eq!(vwc["webhooks"][0]["clientConfig"]["caBundle"], b64.as_str());
    assert!(!h.keys().any(|i| i.0 == "Secret"));
}

#[test]
fn invalid_values_are_refused() {
    for (values, needle) in [
        (
            "webhook: {certificate: {mode: self-made}}\n",
            "webhook.certificate.mode",
        ),
        (
            "webhook: {certificate: {mode: provided}}\n",
            "caBundle is required",
        ),
        ("logFormat: xml\n", "logFormat"),
        ("webhook: {replicas: two}\n", "replicas"),
        ("agent: {tolerations: {operator: Exists}}\n", "tolerations"),
    ] {
        let out = template_out("swh-system", values, &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "accepted: {values}");
        assert!(
            err.contains(needle),
            "{values}: error does not name {needle}: {err}"
        );
    }
}

/// `helm lint --strict` with a values file: (success, stdout + stderr).
fn lint(values: &str) -> (bool, String) {
    let home = temp_dir("swh-helm-lint");
    let vf = home.join("values.yaml");
    std::fs::write(&vf, values).expect("write values");
    let mut c = helm(&home);
    c.args(["lint", "--strict"])
        .arg(chart())
        .arg("--values")
        .arg(&vf);
    let out = run(c, None);
    let _ = std::fs::remove_dir_all(&home);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn helm_lint_passes() {
    for values in [
        "{}\n".to_string(),
        provided_values(&ca_pem(), Some(("CRT\n", "KEY\n"))),
    ] {
        let (ok, out) = lint(&values);
        assert!(ok, "helm lint: {out}");
        assert!(
            out.contains("1 chart(s) linted, 0 chart(s) failed"),
            "helm lint: {out}"
        );
        // lint only logs a `required` or `fail` of a template: none may show.
        for bad in ["[ERROR]", "[WARNING]", "Missing required value", "Fail:"] {
            assert!(!out.contains(bad), "helm lint says {bad}: {out}");
        }
    }
    // lint checks the values against values.schema.json (so the passes above mean something).
    let (ok, out) = lint("logFormat: xml\n");
    assert!(!ok, "helm lint accepted logFormat xml: {out}");
    assert!(out.contains("logFormat"), "{out}");
}

fn kubectl(args: &[&str], stdin: Option<&str>) -> std::process::Output {
    let cluster = testenv::shared_cluster().expect("shared local cluster (make test / make up)");
    let mut c = cluster.kubectl();
    c.args(args);
    run(c, stdin)
}

#[test]
fn rendered_chart_is_accepted_by_the_api_server() {
    let ns = testenv::unique_name("helm-swh");
    // The namespace from the chart (Pod Security restricted enforced), created for real.
    let home = temp_dir("swh-helm-ns");
    let mut c = helm(&home);
    c.args(["template", "swh"])
        .arg(chart())
        .args(["-n", &ns, "--set", "namespace.create=true", "--show-only"])
        .arg("templates/namespace.yaml");
    let ns_yaml = run_ok(c, None);
    let out = kubectl(&["apply", "--server-side", "-f", "-"], Some(&ns_yaml));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let check = |values: &str| {
        let out = template_out(&ns, values, &[]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let docs = documents(&String::from_utf8_lossy(&out.stdout));
        // Dry runs: nothing is stored. The shared cluster has its own CRD and webhook
        // configuration (URL clientConfigs, another field manager): an apply would merge
        // into them, so objects that exist are checked as a replace (a whole-object PUT, as
        // on a fresh cluster), the others as the create `helm install` does.
        let (mut create, mut replace) = (String::new(), String::new());
        for d in &docs {
            let (kind, dns, name) = id(d);
            let mut get = vec!["get", kind.as_str(), name.as_str()];
            if !dns.is_empty() {
                get.extend(["-n", dns.as_str()]);
            }
            let exists = kubectl(&get, None).status.success();
            let doc = format!("---\n{}", serde_yaml::to_string(d).expect("yaml"));
            if exists {
                replace.push_str(&doc)
            } else {
                create.push_str(&doc)
            }
        }
        let mut applied = 0;
        for (verb, stream) in [("create", &create), ("replace", &replace)] {
            if stream.is_empty() {
                continue;
            }
            let out = kubectl(&[verb, "--dry-run=server", "-f", "-"], Some(stream));
            let stdout = String::from_utf8_lossy(&out.stdout);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                out.status.success(),
                "{verb} --dry-run=server refused:\n{stdout}\n{stderr}"
            );
            assert!(!stderr.contains("Warning"), "{verb}: warnings: {stderr}");
            applied += stdout
                .lines()
                .filter(|l| l.ends_with("(server dry run)"))
                .count();
        }
        assert_eq!(
            applied,
            docs.len(),
            "not every object went through the API server"
        );
    };
    let cluster = testenv::shared_cluster().expect("shared cluster");
    let pki = cluster.pki();
    let read = |p: PathBuf| std::fs::read_to_string(p).expect("cluster PKI");
    let (ca, crt, key) = (
        read(pki.ca_cert()),
        read(pki.cert("webhook")),
        read(pki.key("webhook")),
    );
    check(&provided_values(&ca, Some((&crt, &key))));
    // Everything else on: extra labels, a registry, agent scheduling, controller settings.
    let mut all: Value = serde_yaml::from_str(ALL_VALUES).expect("values");
    let provided: Value = serde_yaml::from_str(&provided_values(&ca, None)).expect("v");
    all["webhook"]["certificate"] = provided["webhook"]["certificate"].clone();
    // Priority classes must exist: use the built-in ones.
    all["webhook"]["priorityClassName"] = json!("system-cluster-critical");
    all["agent"]["priorityClassName"] = json!("system-node-critical");
    check(&serde_yaml::to_string(&all).expect("yaml"));

    let _ = kubectl(&["delete", "namespace", &ns, "--wait=false"], None);
    let _ = std::fs::remove_dir_all(&home);
}
