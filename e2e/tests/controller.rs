//! Controller e2e tests against the shared local cluster: child Service, ClusterIP for life,
//! conflicts, garbage collection, aggregate status from agent-style EndpointSlices, orphan
//! cleanup, foreign endpoints and the adoption handover.
//!
//! The controller runs as a separate process under its ServiceAccount (RBAC from
//! `config/rbac/controller.yaml`). When the launcher already runs one (`swh-controller*` in the
//! cluster's processes) the tests use it; otherwise [`ensure_controller`] starts one and records
//! it in the cluster state so `swh-local down` stops it. Agents are simulated: the tests write
//! slices with the agent's labels as admin, for nodes no real agent runs on.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
    PostParams,
};
use kube::{Api, Client};
use serde_json::{Value, json};
use swh_e2e::controlplane::LocalCluster;
use swh_e2e::objects::{self, PodSpecLite};
use swh_e2e::{identity, process, slices, testenv};

const CRD: &str = "servicewithhealthchecks.network.deckhouse.io";
const AGENT: &str = "swh-agent.network.deckhouse.io";
const NODE_LABEL: &str = "swh.network.deckhouse.io/node";
const LIMIT: Duration = Duration::from_secs(30);

static STARTED: Mutex<bool> = Mutex::new(false);

/// Starts a controller under its ServiceAccount unless one is already running.
fn ensure_controller() {
    let mut started = STARTED.lock().unwrap_or_else(|e| e.into_inner());
    if *started {
        return;
    }
    let mut cluster =
        testenv::shared_cluster().expect("shared local cluster (run `make test` or `make up`)");
    let running = cluster
        .processes
        .iter()
        .any(|p| p.name.starts_with("swh-controller") && process::alive(p.pid));
    if !running {
        let root = testenv::workspace_root();
        let kubeconfig =
            identity::service_account_kubeconfig(&cluster, "swh-system", "swh-controller")
                .expect("controller ServiceAccount kubeconfig");
        identity::apply(&cluster, &root.join("config/rbac/controller.yaml"))
            .expect("apply controller RBAC");
        let port = process::free_port().expect("free port");
        let bin = testenv::workspace_bin("swh-controller");
        assert!(
            bin.exists(),
            "{} missing: run `cargo build -p swh-controller`",
            bin.display()
        );
        let mut cmd = std::process::Command::new(bin);
        cmd.arg(format!("--admin-listen=127.0.0.1:{port}"))
            .env("KUBECONFIG", &kubeconfig)
            .env("POD_NAME", "swh-controller-e2e")
            .env("POD_NAMESPACE", "swh-system")
            .env("RUST_LOG", "info,swh_controller=debug");
        let log = cluster.work_dir.join("swh-controller-e2e.log");
        let child = process::spawn_logged("swh-controller-e2e", cmd, &log).expect("spawn");
        cluster
            .adopt_process("swh-controller-e2e", child, log)
            .expect("record controller");
    }
    *started = true;
}

async fn setup() -> (LocalCluster, Client) {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cluster =
        testenv::shared_cluster().expect("shared local cluster (run `make test` or `make up`)");
    let client = testenv::admin_client(&cluster).await.expect("admin client");
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    assert!(
        crds.get_opt(CRD).await.expect("get CRD").is_some(),
        "CRD {CRD} is not installed on the shared cluster (the launcher installs it)"
    );
    ensure_controller();
    (cluster, client)
}

fn swh_api(client: &Client, ns: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("network.deckhouse.io", "v1beta1", "ServiceWithHealthchecks");
    let ar = ApiResource::from_gvk_with_plural(&gvk, "servicewithhealthchecks");
    Api::namespaced_with(client.clone(), ns, &ar)
}

async fn namespace(client: &Client, prefix: &str) -> String {
    let ns = testenv::unique_name(prefix);
    objects::ensure_namespace(client, &ns).await.expect("ns");
    ns
}

async fn create_swh(client: &Client, ns: &str, body: Value) -> DynamicObject {
    let obj: DynamicObject = serde_json::from_value(body).expect("swh json");
    swh_api(client, ns)
        .create(&PostParams::default(), &obj)
        .await
        .expect("create SWH")
}

fn status(o: &DynamicObject) -> &Value {
    o.data.get("status").unwrap_or(&Value::Null)
}

fn condition<'a>(o: &'a DynamicObject, type_: &str) -> Option<&'a Value> {
    status(o)
        .get("conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

fn cond_is(o: &DynamicObject, type_: &str, st: &str) -> bool {
    condition(o, type_).is_some_and(|c| c["status"] == st)
}

async fn wait_swh(
    client: &Client,
    ns: &str,
    name: &str,
    what: &str,
    pred: impl Fn(&DynamicObject) -> bool,
) -> DynamicObject {
    let api = swh_api(client, ns);
    testenv::wait_for(what, LIMIT, || async {
        let o = api.get(name).await.ok()?;
        pred(&o).then_some(o)
    })
    .await
}

async fn wait_service(
    client: &Client,
    ns: &str,
    name: &str,
    what: &str,
    limit: Duration,
    pred: impl Fn(&Service) -> bool,
) -> Service {
    let api: Api<Service> = Api::namespaced(client.clone(), ns);
    testenv::wait_for(what, limit, || async {
        let s = api.get_opt(name).await.ok()??;
        pred(&s).then_some(s)
    })
    .await
}

fn spec(s: &Service) -> Value {
    serde_json::to_value(s.spec.clone().unwrap_or_default()).unwrap_or_default()
}

fn has_selector(s: &Service) -> bool {
    s.spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .is_some_and(|m| !m.is_empty())
}

/// An EndpointSlice as the agent on `node` would write it: (address, ready, pod).
fn agent_slice(ns: &str, svc: &str, node: &str, eps: &[(&str, bool, &str)]) -> EndpointSlice {
    let endpoints: Vec<Value> = eps
        .iter()
        .map(|(ip, ready, pod)| {
            json!({
                "addresses": [ip], "nodeName": node,
                "targetRef": {"kind": "Pod", "namespace": ns, "name": pod},
                "conditions": {"ready": ready, "serving": ready, "terminating": false}
            })
        })
        .collect();
    serde_json::from_value(json!({
        "metadata": {"name": format!("{svc}-{node}-ipv4"), "namespace": ns, "labels": {
            "kubernetes.io/service-name": svc,
            "endpointslice.kubernetes.io/managed-by": AGENT,
            NODE_LABEL: node,
        }},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": endpoints,
    }))
    .expect("slice json")
}

async fn put_slice(client: &Client, s: &EndpointSlice) {
    let ns = s.metadata.namespace.clone().unwrap_or_default();
    let api: Api<EndpointSlice> = Api::namespaced(client.clone(), &ns);
    let name = s.metadata.name.clone().unwrap_or_default();
    api.patch(
        &name,
        &PatchParams::apply("e2e-fake-agent").force(),
        &Patch::Apply(s),
    )
    .await
    .expect("apply slice");
}

/// A Node no agent runs on (so hand-made agent slices for it are not touched by real agents).
async fn fake_node(client: &Client, ns: &str) -> String {
    let name = format!("ctl-{ns}");
    objects::ensure_node(client, &name).await.expect("node");
    name
}

#[tokio::test]
async fn child_service_mirrors_every_field_and_keeps_cluster_ip() {
    let (_cluster, client) = setup().await;
    let ns = namespace(&client, "ctl-child").await;
    create_swh(
        &client,
        &ns,
        json!({
            "apiVersion": "network.deckhouse.io/v1beta1", "kind": "ServiceWithHealthchecks",
            "metadata": {"name": "web", "labels": {"team": "a", "tier": "front"},
                "annotations": {"example.com/keep": "1", "example.com/drop": "2",
                    "kubectl.kubernetes.io/last-applied-configuration": "{}"}},
            "spec": {
                "type": "LoadBalancer",
                "selector": {"app": "web"},
                "ports": [{"name": "http", "port": 80, "targetPort": 8080, "appProtocol": "http"},
                          {"name": "metrics", "port": 9090, "protocol": "TCP"}],
                "sessionAffinity": "ClientIP",
                "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 300}},
                "externalIPs": ["192.0.2.10"],
                "loadBalancerSourceRanges": ["10.0.0.0/8"],
                "loadBalancerClass": "example.com/e2e",
                "externalTrafficPolicy": "Local",
                "internalTrafficPolicy": "Local",
                "publishNotReadyAddresses": false,
                "ipFamilies": ["IPv4"],
                "ipFamilyPolicy": "SingleStack",
                "allocateLoadBalancerNodePorts": true,
                "trafficDistribution": "PreferClose",
                "healthcheck": {"probes": [{"name": "http", "mode": "TCP", "tcp": {"port": 8080}}]}
            }
        }),
    )
    .await;
    let svc = wait_service(&client, &ns, "web", "child Service", LIMIT, |_| true).await;
    let s = spec(&svc);
    assert!(!has_selector(&svc), "child must have no selector: {s}");
    assert_eq!(s["type"], "LoadBalancer");
    assert_eq!(s["ports"][0]["name"], "http");
    assert_eq!(s["ports"][0]["port"], 80);
    assert_eq!(s["ports"][0]["targetPort"], 8080);
    assert_eq!(s["ports"][0]["appProtocol"], "http");
    assert_eq!(
        s["ports"][1]["targetPort"], 9090,
        "targetPort defaults to port"
    );
    assert_eq!(s["sessionAffinity"], "ClientIP");
    assert_eq!(
        s["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"],
        300
    );
    assert_eq!(s["externalIPs"], json!(["192.0.2.10"]));
    assert_eq!(s["loadBalancerSourceRanges"], json!(["10.0.0.0/8"]));
    assert_eq!(s["loadBalancerClass"], "example.com/e2e");
    assert_eq!(s["externalTrafficPolicy"], "Local");
    assert_eq!(s["internalTrafficPolicy"], "Local");
    assert_eq!(s["ipFamilies"], json!(["IPv4"]));
    assert_eq!(s["ipFamilyPolicy"], "SingleStack");
    assert_eq!(s["allocateLoadBalancerNodePorts"], true);
    assert_eq!(s["trafficDistribution"], "PreferClose");
    assert!(s.get("externalName").is_none());
    let owner = &svc.metadata.owner_references.clone().unwrap_or_default()[0];
    assert_eq!(owner.kind, "ServiceWithHealthchecks");
    assert_eq!(owner.name, "web");
    assert_eq!(owner.controller, Some(true));
    assert_eq!(owner.block_owner_deletion, Some(true));
    let labels = svc.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels.get("team").map(String::as_str), Some("a"));
    let ann = svc.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(ann.get("example.com/keep").map(String::as_str), Some("1"));
    assert!(!ann.contains_key("kubectl.kubernetes.io/last-applied-configuration"));
    assert!(!ann.contains_key("network.deckhouse.io/v1beta1-fields"));
    let ip = s["clusterIP"].as_str().unwrap_or_default().to_string();
    assert!(!ip.is_empty());

    // The status reports the ClusterIP and the child's readiness.
    wait_swh(&client, &ns, "web", "ChildServiceReady", |o| {
        cond_is(o, "ChildServiceReady", "True") && status(o)["clusterIP"] == ip.as_str()
    })
    .await;

    // A label and an annotation removed from the SWH are removed from the child; a port
    // changes; sessionAffinity goes back to the default; the ClusterIP stays.
    let api = swh_api(&client, &ns);
    let patch = json!({
        "metadata": {"labels": {"tier": null}, "annotations": {"example.com/drop": null}},
        "spec": {"ports": [{"name": "http", "port": 81, "targetPort": 8080}],
                 "sessionAffinity": null, "sessionAffinityConfig": null}
    });
    api.patch("web", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patch SWH");
    let svc = wait_service(&client, &ns, "web", "child updated", LIMIT, |s| {
        let sp = spec(s);
        let l = s.metadata.labels.clone().unwrap_or_default();
        let a = s.metadata.annotations.clone().unwrap_or_default();
        sp["ports"]
            .as_array()
            .is_some_and(|p| p.len() == 1 && p[0]["port"] == 81)
            && sp["sessionAffinity"] == "None"
            && !l.contains_key("tier")
            && l.contains_key("team")
            && !a.contains_key("example.com/drop")
            && a.contains_key("example.com/keep")
    })
    .await;
    assert_eq!(
        spec(&svc)["clusterIP"],
        ip.as_str(),
        "ClusterIP kept for life"
    );
    assert!(!has_selector(&svc));

    // Another writer's annotation on the child survives our updates.
    let svcs: Api<Service> = Api::namespaced(client.clone(), &ns);
    svcs.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {"cloud.example.com/lb-id": "x"}}})),
    )
    .await
    .expect("foreign annotation");
    api.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"tier": "back"}}})),
    )
    .await
    .expect("patch SWH");
    let svc = wait_service(&client, &ns, "web", "label re-added", LIMIT, |s| {
        s.metadata.labels.clone().unwrap_or_default().get("tier") == Some(&"back".to_string())
    })
    .await;
    assert!(
        svc.metadata
            .annotations
            .clone()
            .unwrap_or_default()
            .contains_key("cloud.example.com/lb-id")
    );
    assert_eq!(spec(&svc)["clusterIP"], ip.as_str());
}

#[tokio::test]
async fn conflict_with_a_foreign_service_leaves_it_untouched() {
    let (_cluster, client) = setup().await;
    let ns = namespace(&client, "ctl-conflict").await;
    let svcs: Api<Service> = Api::namespaced(client.clone(), &ns);
    let foreign: Service = serde_json::from_value(json!({
        "metadata": {"name": "db", "labels": {"owner": "someone"}},
        "spec": {"selector": {"app": "db"}, "ports": [{"port": 5432}]}
    }))
    .expect("svc");
    let before = svcs
        .create(&PostParams::default(), &foreign)
        .await
        .expect("create foreign Service");
    create_swh(
        &client,
        &ns,
        json!({
            "apiVersion": "network.deckhouse.io/v1beta1", "kind": "ServiceWithHealthchecks",
            "metadata": {"name": "db", "labels": {"x": "y"}},
            "spec": {"selector": {"app": "db"}, "ports": [{"port": 5433}]}
        }),
    )
    .await;
    let o = wait_swh(&client, &ns, "db", "ChildServiceConflict", |o| {
        cond_is(o, "ChildServiceConflict", "True")
    })
    .await;
    assert!(cond_is(&o, "ChildServiceReady", "False"));
    assert!(cond_is(&o, "Ready", "False"));
    // Give the controller time to do something wrong.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = svcs.get("db").await.expect("get");
    assert_eq!(
        after.metadata.resource_version, before.metadata.resource_version,
        "the foreign Service must not be written"
    );
    assert!(after.metadata.owner_references.is_none());
    assert!(has_selector(&after));

    // An event explains it.
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), &ns);
    testenv::wait_for("ChildServiceConflict event", LIMIT, || async {
        let l = events.list(&ListParams::default()).await.ok()?;
        l.items
            .iter()
            .any(|e| e.reason.as_deref() == Some("ChildServiceConflict"))
            .then_some(())
    })
    .await;

    // Once the foreign Service is gone, the child is created and the conflict clears.
    svcs.delete("db", &DeleteParams::default())
        .await
        .expect("delete foreign");
    let svc = wait_service(&client, &ns, "db", "child after conflict", LIMIT, |s| {
        s.metadata
            .owner_references
            .as_ref()
            .is_some_and(|o| o.iter().any(|o| o.kind == "ServiceWithHealthchecks"))
    })
    .await;
    assert!(!has_selector(&svc));
    wait_swh(&client, &ns, "db", "conflict cleared", |o| {
        condition(o, "ChildServiceConflict").is_none() && cond_is(o, "ChildServiceReady", "True")
    })
    .await;
}

#[tokio::test]
async fn deleting_the_swh_garbage_collects_the_service() {
    let (_cluster, client) = setup().await;
    let ns = namespace(&client, "ctl-gc").await;
    create_swh(
        &client,
        &ns,
        json!({
            "apiVersion": "network.deckhouse.io/v1beta1", "kind": "ServiceWithHealthchecks",
            "metadata": {"name": "gone"},
            "spec": {"selector": {"app": "x"}, "ports": [{"port": 80}]}
        }),
    )
    .await;
    wait_service(&client, &ns, "gone", "child Service", LIMIT, |_| true).await;
    swh_api(&client, &ns)
        .delete("gone", &DeleteParams::default())
        .await
        .expect("delete SWH");
    let svcs: Api<Service> = Api::namespaced(client.clone(), &ns);
    testenv::wait_for(
        "garbage collection of the child Service",
        Duration::from_secs(60),
        || async { svcs.get_opt("gone").await.ok()?.is_none().then_some(()) },
    )
    .await;
}

#[tokio::test]
async fn status_follows_agent_slices_and_orphans_go() {
    let (_cluster, client) = setup().await;
    let ns = namespace(&client, "ctl-status").await;
    let node = fake_node(&client, &ns).await;
    create_swh(
        &client,
        &ns,
        json!({
            "apiVersion": "network.deckhouse.io/v1beta1", "kind": "ServiceWithHealthchecks",
            "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web-none"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}
        }),
    )
    .await;
    let o = wait_swh(&client, &ns, "web", "initial status", |o| {
        cond_is(o, "ChildServiceReady", "True") && status(o)["ready"] == "0/0"
    })
    .await;
    assert_eq!(
        condition(&o, "Ready").map(|c| c["reason"].clone()),
        Some(json!("NoEndpoints"))
    );
    assert!(status(&o)["observedGeneration"].as_i64().is_some());

    put_slice(
        &client,
        &agent_slice(
            &ns,
            "web",
            &node,
            &[("10.248.200.1", true, "p1"), ("10.248.200.2", false, "p2")],
        ),
    )
    .await;
    let o = wait_swh(&client, &ns, "web", "1/2", |o| status(o)["ready"] == "1/2").await;
    assert_eq!(status(&o)["publishedEndpoints"], 1);
    assert_eq!(status(&o)["totalEndpoints"], 2);
    assert!(cond_is(&o, "Ready", "False"));
    put_slice(
        &client,
        &agent_slice(
            &ns,
            "web",
            &node,
            &[("10.248.200.1", true, "p1"), ("10.248.200.2", true, "p2")],
        ),
    )
    .await;
    let o = wait_swh(&client, &ns, "web", "2/2 and Ready", |o| {
        status(o)["ready"] == "2/2" && cond_is(o, "Ready", "True")
    })
    .await;

    // Steady state: no status write while nothing changes.
    let rv = o.metadata.resource_version.clone();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let again = swh_api(&client, &ns).get("web").await.expect("get");
    assert_eq!(
        again.metadata.resource_version, rv,
        "no write in steady state"
    );

    // A foreign slice with the same service name is flagged, and the flag clears.
    let slices_api: Api<EndpointSlice> = Api::namespaced(client.clone(), &ns);
    let mut foreign = agent_slice(&ns, "web", &node, &[("10.248.200.9", true, "x")]);
    foreign.metadata.name = Some("web-manual".into());
    if let Some(l) = foreign.metadata.labels.as_mut() {
        l.insert(
            "endpointslice.kubernetes.io/managed-by".into(),
            "someone-else".into(),
        );
        l.remove(NODE_LABEL);
    }
    put_slice(&client, &foreign).await;
    wait_swh(&client, &ns, "web", "ForeignEndpoints", |o| {
        cond_is(o, "ForeignEndpoints", "True")
    })
    .await;
    slices_api
        .delete("web-manual", &DeleteParams::default())
        .await
        .expect("delete foreign slice");
    wait_swh(&client, &ns, "web", "ForeignEndpoints cleared", |o| {
        condition(o, "ForeignEndpoints").is_none()
    })
    .await;

    // The node goes away: its slice is an orphan and is deleted within seconds.
    let nodes: Api<Node> = Api::all(client.clone());
    nodes
        .delete(&node, &DeleteParams::default())
        .await
        .expect("delete node");
    let slice_name = format!("web-{node}-ipv4");
    testenv::wait_for("orphan slice deleted", Duration::from_secs(15), || async {
        slices_api
            .get_opt(&slice_name)
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
    wait_swh(&client, &ns, "web", "0/0 after orphan cleanup", |o| {
        status(o)["ready"] == "0/0"
    })
    .await;
}

#[tokio::test]
async fn adoption_hands_over_only_when_agent_slices_carry_the_ready_endpoints() {
    let (cluster, client) = setup().await;
    let ns = namespace(&client, "ctl-adopt").await;
    let node = fake_node(&client, &ns).await;
    // Two ready pods behind a plain Service: the built-in controller publishes them.
    let mut ips = Vec::new();
    for pod in ["db-0", "db-1"] {
        objects::create_pod(
            &client,
            &PodSpecLite {
                namespace: ns.clone(),
                name: pod.into(),
                node: node.clone(),
                labels: BTreeMap::from([("app".to_string(), "db".to_string())]),
                ports: vec![],
            },
        )
        .await
        .expect("pod");
        let (v4, _) = cluster.pod_network.alloc_pod_ips().expect("ip");
        objects::set_pod_status(&client, &ns, pod, &[v4], true)
            .await
            .expect("pod status");
        ips.push(v4.to_string());
    }
    let svcs: Api<Service> = Api::namespaced(client.clone(), &ns);
    let plain: Service = serde_json::from_value(json!({
        "metadata": {"name": "db", "labels": {"app": "db"}},
        "spec": {"selector": {"app": "db"}, "ports": [{"name": "pg", "port": 5432, "targetPort": 5432}]}
    }))
    .expect("svc");
    let plain = svcs
        .create(&PostParams::default(), &plain)
        .await
        .expect("create Service");
    let ip = plain
        .spec
        .as_ref()
        .and_then(|s| s.cluster_ip.clone())
        .unwrap_or_default();
    testenv::wait_for("built-in slices with both pods", LIMIT, || async {
        let r = slices::ready(&client, &ns, "db").await.ok()?;
        (r.len() == 2).then_some(())
    })
    .await;

    // What `kubectl swh migrate` creates: the Service's fields plus the adopt annotation.
    create_swh(
        &client,
        &ns,
        json!({
            "apiVersion": "network.deckhouse.io/v1beta1", "kind": "ServiceWithHealthchecks",
            "metadata": {"name": "db", "labels": {"app": "db"},
                "annotations": {"network.deckhouse.io/adopt-service": "true"}},
            "spec": {"selector": {"app": "db"}, "clusterIP": ip,
                "ports": [{"name": "pg", "port": 5432, "targetPort": 5432}]}
        }),
    )
    .await;
    let o = wait_swh(
        &client,
        &ns,
        "db",
        "Adopted WaitingForAgentEndpoints",
        |o| condition(o, "Adopted").is_some_and(|c| c["reason"] == "WaitingForAgentEndpoints"),
    )
    .await;
    assert!(cond_is(&o, "ChildServiceReady", "False"));
    assert!(condition(&o, "ChildServiceConflict").is_none());

    // Only one of the two ready endpoints in agent slices: still waiting, selector kept.
    put_slice(
        &client,
        &agent_slice(&ns, "db", &node, &[(&ips[0], true, "db-0")]),
    )
    .await;
    wait_swh(&client, &ns, "db", "1 of 2 covered", |o| {
        condition(o, "Adopted").is_some_and(|c| {
            c["message"]
                .as_str()
                .is_some_and(|m| m.contains("carry 1 of the 2"))
        })
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let svc = svcs.get("db").await.expect("get");
    assert!(
        has_selector(&svc),
        "selector must stay until agents carry every ready endpoint"
    );
    assert!(svc.metadata.owner_references.is_none());

    // Both: the handover happens, in one write, keeping the ClusterIP. At every moment we look,
    // the service has ready endpoints.
    put_slice(
        &client,
        &agent_slice(
            &ns,
            "db",
            &node,
            &[(&ips[0], true, "db-0"), (&ips[1], true, "db-1")],
        ),
    )
    .await;
    let svc = testenv::wait_for("handover", LIMIT, || async {
        let ready = slices::ready(&client, &ns, "db").await.ok()?;
        assert!(
            !ready.is_empty(),
            "zero ready endpoints during the handover"
        );
        let s = svcs.get("db").await.ok()?;
        (!has_selector(&s)
            && s.metadata
                .owner_references
                .as_ref()
                .is_some_and(|o| o.iter().any(|o| o.controller == Some(true))))
        .then_some(s)
    })
    .await;
    assert_eq!(spec(&svc)["clusterIP"], ip.as_str(), "ClusterIP kept");
    wait_swh(&client, &ns, "db", "HandedOver", |o| {
        condition(o, "Adopted")
            .is_some_and(|c| c["status"] == "True" && c["reason"] == "HandedOver")
            && cond_is(o, "ChildServiceReady", "True")
            && cond_is(o, "Ready", "True")
    })
    .await;

    // The built-in controller ignores selector-less Services and would leave its slices behind
    // with frozen endpoints; the controller deletes them. The agent's slice keeps the endpoints
    // ready throughout.
    let slices_api: Api<EndpointSlice> = Api::namespaced(client.clone(), &ns);
    testenv::wait_for("built-in slices removed", LIMIT, || async {
        let ready = slices::ready(&client, &ns, "db").await.ok()?;
        assert_eq!(ready.len(), 2, "agent endpoints stay ready");
        let l = slices_api
            .list(&ListParams::default().labels(
                "kubernetes.io/service-name=db,endpointslice.kubernetes.io/managed-by=endpointslice-controller.k8s.io",
            ))
            .await
            .ok()?;
        l.items.is_empty().then_some(())
    })
    .await;
}

/// Replicas started by a test, stopped (SIGTERM, then SIGKILL) when it ends.
struct Replicas(Vec<(std::process::Child, u16)>);

impl Drop for Replicas {
    fn drop(&mut self) {
        for (child, _) in &mut self.0 {
            let pid = child.id();
            process::stop(pid, Some(child), Duration::from_secs(5));
        }
    }
}

async fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).await.ok()?;
    let code = buf.get(9..12)?.parse().ok()?;
    Some((code, buf.split_once("\r\n\r\n")?.1.to_string()))
}

/// The value of an unlabelled metric line (`name value`).
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

#[tokio::test]
async fn leader_election_only_the_holder_writes_and_fails_over() {
    let (cluster, client) = setup().await;
    let ns = namespace(&client, "ctl-lease").await;
    let kubeconfig = identity::service_account_kubeconfig(&cluster, "swh-system", "swh-controller")
        .expect("kubeconfig");
    let lease = format!("swh-controller-{ns}");
    let mut replicas = Replicas(Vec::new());
    for id in ["a", "b"] {
        let port = process::free_port().expect("port");
        let mut cmd = std::process::Command::new(testenv::workspace_bin("swh-controller"));
        cmd.args([
            format!("--admin-listen=127.0.0.1:{port}"),
            format!("--watch-namespace={ns}"),
            format!("--lease-name={lease}"),
            "--lease-duration-seconds=4".into(),
            "--lease-grace-seconds=2".into(),
        ])
        .env("KUBECONFIG", &kubeconfig)
        .env("POD_NAME", format!("{ns}-{id}"))
        .env("POD_NAMESPACE", "swh-system");
        let log = cluster.work_dir.join(format!("{ns}-{id}.log"));
        let child = process::spawn_logged(&format!("{ns}-{id}"), cmd, &log).expect("spawn");
        replicas.0.push((child, port));
    }
    let ports: Vec<u16> = replicas.0.iter().map(|(_, p)| *p).collect();
    for port in &ports {
        testenv::wait_for("replica ready", LIMIT, || async {
            (http_get(*port, "/readyz").await?.0 == 200).then_some(())
        })
        .await;
    }
    // Exactly one replica leads.
    let leader = testenv::wait_for("one leader", LIMIT, || async {
        let mut flags = Vec::new();
        for port in &ports {
            let (_, m) = http_get(*port, "/metrics").await?;
            flags.push(metric(&m, "swh_controller_leader")? == 1.0);
        }
        (flags.iter().filter(|f| **f).count() == 1).then(|| flags.iter().position(|f| *f))?
    })
    .await;
    let follower = 1 - leader;

    create_swh(
        &client,
        &ns,
        json!({
            "apiVersion": "network.deckhouse.io/v1beta1", "kind": "ServiceWithHealthchecks",
            "metadata": {"name": "web"},
            "spec": {"selector": {"app": "x"}, "ports": [{"port": 80}]}
        }),
    )
    .await;
    wait_swh(&client, &ns, "web", "reconciled", |o| {
        cond_is(o, "ChildServiceReady", "True")
    })
    .await;
    let (_, m) = http_get(ports[follower], "/metrics")
        .await
        .expect("metrics");
    assert!(
        !m.contains("swh_controller_api_writes_total{"),
        "the follower must not write:\n{m}"
    );
    assert_eq!(metric(&m, "swh_controller_reconciles_total"), Some(0.0));

    // The leader stops (SIGTERM releases the lease): the follower takes over.
    let (mut child, _) = replicas.0.remove(leader);
    let pid = child.id();
    process::stop(pid, Some(&mut child), Duration::from_secs(10));
    let port = ports[follower];
    testenv::wait_for("failover", Duration::from_secs(15), || async {
        let (_, m) = http_get(port, "/metrics").await?;
        (metric(&m, "swh_controller_leader")? == 1.0).then_some(())
    })
    .await;
    swh_api(&client, &ns)
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"after": "failover"}}})),
        )
        .await
        .expect("patch");
    wait_service(&client, &ns, "web", "label after failover", LIMIT, |s| {
        s.metadata
            .labels
            .clone()
            .unwrap_or_default()
            .contains_key("after")
    })
    .await;
    testenv::wait_for("new leader reconciles", LIMIT, || async {
        let (_, m) = http_get(port, "/metrics").await?;
        (metric(&m, "swh_controller_reconciles_total")? > 0.0).then_some(())
    })
    .await;
}
