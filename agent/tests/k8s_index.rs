//! The pure index: selection, targets, conditions, secrets, seeding after a restart, status.

mod common_k8s;

use std::collections::BTreeMap;

use common_k8s::{pod, swh, t, tcp_swh};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use serde_json::json;
use swh_agent::index::{Index, ObjectKey, TargetKey, status_signature};
use swh_agent::probe::{ProbeKind, ProbeTarget};
use swh_agent::slices::{self, Conditions, Owner};
use swh_agent::targets::{Family, SecretState};
use swh_agent::threshold::Threshold;
use swh_api::v1beta1::ProbeState as ApiState;

fn key(ns: &str, name: &str) -> ObjectKey {
    (ns.to_string(), name.to_string())
}

fn tk(ns: &str, swh: &str, pod: &str, probe: &str) -> TargetKey {
    TargetKey {
        namespace: ns.into(),
        swh: swh.into(),
        pod_uid: format!("uid-{pod}"),
        probe: probe.into(),
    }
}

fn decided(ok: bool) -> Threshold {
    let mut th = Threshold::new(t(0));
    for i in 0..3 {
        th.record(
            ok,
            if ok { "ok" } else { "connection refused" },
            t(1 + i),
            1,
            3,
        );
    }
    th
}

fn conditions(ix: &Index, k: &ObjectKey) -> BTreeMap<String, Conditions> {
    ix.endpoints(k)
        .into_iter()
        .map(|e| (e.pod_name, e.conditions))
        .collect()
}

const READY: Conditions = Conditions {
    ready: true,
    serving: true,
    terminating: false,
};
const NOT_READY: Conditions = Conditions {
    ready: false,
    serving: false,
    terminating: false,
};

#[test]
fn selector_matching_and_namespace_isolation() {
    let mut ix = Index::new("node-a");
    ix.upsert_swh(tcp_swh(
        "ns",
        "web",
        json!({"app": "web"}),
        json!(8080),
        json!(8080),
    ));
    ix.upsert_pod(pod("ns", "a").label("app", "web").ips(&["10.0.0.1"]).info());
    ix.upsert_pod(pod("ns", "b").label("app", "db").ips(&["10.0.0.2"]).info());
    ix.upsert_pod(
        pod("other", "c")
            .label("app", "web")
            .ips(&["10.0.0.3"])
            .info(),
    );
    let names: Vec<_> = ix
        .selected(&key("ns", "web"))
        .iter()
        .map(|p| p.name.clone())
        .collect();
    assert_eq!(names, vec!["a"]);
}

#[test]
fn empty_or_missing_selector_selects_the_whole_namespace() {
    for selector in [json!({}), serde_json::Value::Null] {
        let mut ix = Index::new("node-a");
        ix.upsert_swh(tcp_swh("ns", "all", selector, json!(80), json!(80)));
        ix.upsert_pod(pod("ns", "a").label("x", "1").ips(&["10.0.0.1"]).info());
        ix.upsert_pod(pod("ns", "b").ips(&["10.0.0.2"]).info());
        ix.upsert_pod(pod("other", "c").ips(&["10.0.0.3"]).info());
        let names: Vec<_> = ix
            .selected(&key("ns", "all"))
            .iter()
            .map(|p| p.name.clone())
            .collect();
        assert_eq!(names, vec!["a", "b"]);
    }
}

#[test]
fn pods_without_ip_or_finished_are_not_selected() {
    let mut ix = Index::new("node-a");
    ix.upsert_swh(tcp_swh("ns", "web", json!({}), json!(80), json!(80)));
    ix.upsert_pod(pod("ns", "no-ip").info());
    ix.upsert_pod(
        pod("ns", "done")
            .ips(&["10.0.0.2"])
            .phase("Succeeded")
            .info(),
    );
    ix.upsert_pod(
        pod("ns", "failed")
            .ips(&["10.0.0.3"])
            .phase("Failed")
            .info(),
    );
    ix.upsert_pod(pod("ns", "ok").ips(&["10.0.0.4"]).info());
    let names: Vec<_> = ix
        .selected(&key("ns", "web"))
        .iter()
        .map(|p| p.name.clone())
        .collect();
    assert_eq!(names, vec!["ok"]);
}

#[test]
fn upsert_pod_reports_swhs_selecting_before_and_after() {
    let mut ix = Index::new("node-a");
    ix.upsert_swh(tcp_swh(
        "ns",
        "web",
        json!({"app": "web"}),
        json!(80),
        json!(80),
    ));
    ix.upsert_swh(tcp_swh(
        "ns",
        "db",
        json!({"app": "db"}),
        json!(80),
        json!(80),
    ));
    let dirty = ix.upsert_pod(pod("ns", "a").label("app", "web").ips(&["10.0.0.1"]).info());
    assert_eq!(
        dirty.into_iter().collect::<Vec<_>>(),
        vec![key("ns", "web")]
    );
    let dirty = ix.upsert_pod(pod("ns", "a").label("app", "db").ips(&["10.0.0.1"]).info());
    assert_eq!(
        dirty.into_iter().collect::<Vec<_>>(),
        vec![key("ns", "db"), key("ns", "web")]
    );
    // Unchanged: nothing to do.
    assert!(
        ix.upsert_pod(pod("ns", "a").label("app", "db").ips(&["10.0.0.1"]).info())
            .is_empty()
    );
    assert_eq!(
        ix.remove_pod("ns", "a").into_iter().collect::<Vec<_>>(),
        vec![key("ns", "db")]
    );
}

#[test]
fn one_target_per_pod_and_probe_on_the_primary_ip_with_effective_timing() {
    let mut ix = Index::new("node-a");
    ix.upsert_swh(swh(
        "ns",
        "web",
        json!({
            "ports": [{"port": 80}],
            "healthcheck": {"initialDelaySeconds": 7, "periodSeconds": 5, "probes": [
                {"name": "tcp", "mode": "TCP", "tcp": {"port": 8080}},
                {"name": "http", "mode": "HTTP", "periodSeconds": 2, "initialDelaySeconds": 0,
                 "timeoutSeconds": 3, "failureThreshold": 4,
                 "http": {"port": 8081, "path": "/healthz", "expectedStatuses": ["200-204"]}},
            ]},
        }),
    ));
    ix.upsert_pod(pod("ns", "a").ips(&["10.0.0.1", "fd00::1"]).info());
    let mut targets = ix.targets(&key("ns", "web"), t(100));
    targets.sort_by(|a, b| a.key.cmp(&b.key));
    assert_eq!(targets.len(), 2);
    let http = &targets[0];
    assert_eq!(http.key, tk("ns", "web", "a", "http"));
    assert_eq!(
        http.target,
        ProbeTarget::new("10.0.0.1".parse().unwrap(), 8081)
    );
    assert_eq!(http.spec.period.as_secs(), 2);
    assert_eq!(http.spec.initial_delay.as_secs(), 0);
    assert_eq!(http.spec.timeout.as_secs(), 3);
    assert_eq!(http.spec.failure_threshold, 4);
    match &http.spec.kind {
        ProbeKind::Http(h) => {
            assert_eq!(h.path, "/healthz");
            assert_eq!(h.expected_statuses.len(), 1);
        }
        other => panic!("want http, got {other:?}"),
    }
    let tcp = &targets[1];
    assert_eq!(tcp.target.port, 8080);
    assert_eq!(
        (tcp.spec.period.as_secs(), tcp.spec.initial_delay.as_secs()),
        (5, 7)
    );
    assert_eq!(
        (tcp.spec.success_threshold, tcp.spec.failure_threshold),
        (1, 3)
    );
    // initialDelay counts from the pod's creation.
    assert_eq!(
        tcp.start,
        std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000)
    );
}

#[test]
fn named_probe_port_resolves_per_pod_and_a_missing_name_fails_with_a_reason() {
    let mut ix = Index::new("node-a");
    let k = key("ns", "web");
    ix.upsert_swh(tcp_swh("ns", "web", json!({}), json!("web"), json!("web")));
    ix.upsert_pod(pod("ns", "a").ips(&["10.0.0.1"]).port("web", 8081).info());
    ix.upsert_pod(pod("ns", "b").ips(&["10.0.0.2"]).port("web", 9091).info());
    ix.upsert_pod(pod("ns", "c").ips(&["10.0.0.3"]).port("other", 1).info());
    let targets = ix.targets(&k, t(100));
    let ports: BTreeMap<String, u16> = targets
        .iter()
        .map(|t| (t.key.pod_uid.clone(), t.target.port))
        .collect();
    assert_eq!(
        ports,
        BTreeMap::from([("uid-a".into(), 8081), ("uid-b".into(), 9091)])
    );
    // Pod c: not scheduled, failing, with the reason in words.
    let st = ix.statuses(&k, t(100));
    let c = st.iter().find(|e| e.pod_name == "c").expect("entry for c");
    let p = &c.probes.as_ref().expect("probes")[0];
    assert_eq!(p.state, ApiState::Failing);
    assert_eq!(
        p.last_error.as_deref(),
        Some("port name web not found in pod")
    );
    assert_eq!(c.published, Some(false));
    assert_eq!(c.failed_probes.as_deref(), Some(&["tcp".to_string()][..]));
    assert_eq!(conditions(&ix, &k)["c"], NOT_READY);
}

#[test]
fn conditions_follow_probes_and_unknown_is_not_ready() {
    let mut ix = Index::new("node-a");
    let k = key("ns", "web");
    ix.upsert_swh(tcp_swh("ns", "web", json!({}), json!(8080), json!(8080)));
    ix.upsert_pod(pod("ns", "a").ips(&["10.0.0.1"]).info());
    // A not-Ready pod whose probes pass is published: the probes decide.
    ix.upsert_pod(pod("ns", "b").ips(&["10.0.0.2"]).not_ready().info());
    ix.targets(&k, t(0));
    assert_eq!(
        conditions(&ix, &k)["a"],
        NOT_READY,
        "unknown counts as not passing"
    );
    ix.record(tk("ns", "web", "a", "tcp"), decided(true));
    ix.record(tk("ns", "web", "b", "tcp"), decided(true));
    let c = conditions(&ix, &k);
    assert_eq!((c["a"], c["b"]), (READY, READY));
    ix.record(tk("ns", "web", "a", "tcp"), decided(false));
    assert_eq!(
        conditions(&ix, &k)["a"],
        NOT_READY,
        "failing pods stay, not ready"
    );
}

#[test]
fn terminating_pods_are_not_ready_but_serving_follows_probes() {
    let mut ix = Index::new("node-a");
    let k = key("ns", "web");
    ix.upsert_swh(tcp_swh("ns", "web", json!({}), json!(8080), json!(8080)));
    ix.upsert_pod(pod("ns", "a").ips(&["10.0.0.1"]).terminating().info());
    ix.targets(&k, t(0));
    ix.record(tk("ns", "web", "a", "tcp"), decided(true));
    assert_eq!(
        conditions(&ix, &k)["a"],
        Conditions {
            ready: false,
            serving: true,
            terminating: true
        }
    );
    ix.record(tk("ns", "web", "a", "tcp"), decided(false));
    assert_eq!(
        conditions(&ix, &k)["a"],
        Conditions {
            ready: false,
            serving: false,
            terminating: true
        }
    );
}

#[test]
fn without_probes_the_pod_ready_condition_decides() {
    let mut ix = Index::new("node-a");
    let k = key("ns", "plain");
    ix.upsert_swh(swh("ns", "plain", json!({"ports": [{"port": 80}]})));
    ix.upsert_pod(pod("ns", "a").ips(&["10.0.0.1"]).info());
    ix.upsert_pod(pod("ns", "b").ips(&["10.0.0.2"]).not_ready().info());
    assert!(ix.targets(&k, t(0)).is_empty());
    let c = conditions(&ix, &k);
    assert_eq!((c["a"], c["b"]), (READY, NOT_READY));
}

#[test]
fn publish_not_ready_addresses_publishes_everything_without_probing() {
    let mut ix = Index::new("node-a");
    let k = key("ns", "pnra");
    ix.upsert_swh(swh(
        "ns",
        "pnra",
        json!({"ports": [{"port": 80}], "publishNotReadyAddresses": true,
               "healthcheck": {"probes": [{"name": "t", "mode": "TCP", "tcp": {"port": 80}}]}}),
    ));
    ix.upsert_pod(pod("ns", "a").ips(&["10.0.0.1"]).not_ready().info());
    assert!(ix.targets(&k, t(0)).is_empty());
    assert!(conditions(&ix, &k)["a"].ready);
}

fn pg_swh(ns: &str) -> std::sync::Arc<swh_api::v1beta1::ServiceWithHealthchecks> {
    swh(
        ns,
        "db",
        json!({"ports": [{"port": 5432}], "healthcheck": {"probes": [
            {"name": "pg", "mode": "PostgreSQL",
             "postgreSQL": {"port": 5432, "authSecretName": "cred-secret", "dbName": "postgres"}}]}}),
    )
}

fn secret(data: &[(&str, &str)]) -> SecretState {
    let s = Secret {
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                .collect(),
        ),
        type_: Some("Opaque".into()),
        ..Default::default()
    };
    SecretState::from_secret(&s)
}

fn pg_credentials(ix: &mut Index) -> Option<Result<String, String>> {
    let targets = ix.targets(&key("ns", "db"), t(0));
    targets.first().map(|t| match &t.spec.kind {
        ProbeKind::Postgres(p) => p.credentials.clone().map(|c| c.user),
        other => panic!("want postgres, got {other:?}"),
    })
}

#[test]
fn postgres_credentials_come_from_any_secret_and_a_missing_one_fails_the_probe() {
    let mut ix = Index::new("node-a");
    ix.upsert_swh(pg_swh("ns"));
    ix.upsert_pod(pod("ns", "db-0").ips(&["10.0.0.1"]).info());
    let secret_key = key("ns", "cred-secret");
    assert_eq!(
        ix.referenced_secrets().into_iter().collect::<Vec<_>>(),
        vec![secret_key.clone()]
    );
    // Not fetched yet: not scheduled (Unknown), so nothing runs with wrong credentials.
    assert_eq!(pg_credentials(&mut ix), None);
    let dirty = ix.set_secret(secret_key.clone(), SecretState::Missing);
    assert_eq!(dirty.into_iter().collect::<Vec<_>>(), vec![key("ns", "db")]);
    assert_eq!(
        pg_credentials(&mut ix),
        Some(Err("secret cred-secret not found".into()))
    );
    ix.set_secret(secret_key.clone(), secret(&[("user", "postgres")]));
    assert_eq!(
        pg_credentials(&mut ix),
        Some(Err("secret cred-secret has no key password".into()))
    );
    ix.set_secret(
        secret_key.clone(),
        secret(&[("user", "postgres"), ("password", "example")]),
    );
    assert_eq!(pg_credentials(&mut ix), Some(Ok("postgres".into())));
    let targets = ix.targets(&key("ns", "db"), t(0));
    let ProbeKind::Postgres(p) = &targets[0].spec.kind else {
        panic!("postgres")
    };
    // No tlsMode anywhere: TLS when the server offers it.
    assert_eq!(p.tls.mode, swh_agent::probe::PgTlsMode::Prefer);
    assert_eq!(p.db_name.as_deref(), Some("postgres"));
    ix.set_secret(
        secret_key,
        secret(&[("user", "u"), ("password", "p"), ("tlsMode", "VerifyAll")]),
    );
    let targets = ix.targets(&key("ns", "db"), t(0));
    let ProbeKind::Postgres(p) = &targets[0].spec.kind else {
        panic!("postgres")
    };
    assert_eq!(p.tls.mode, swh_agent::probe::PgTlsMode::VerifyFull);
}

#[test]
fn restart_keeps_published_conditions_until_results_decide() {
    let k = key("ns", "web");
    // What the previous agent published.
    let mut before = Index::new("node-a");
    before.upsert_swh(tcp_swh("ns", "web", json!({}), json!(8080), json!(8080)));
    before.upsert_pod(pod("ns", "a").ips(&["10.0.0.1"]).info());
    before.upsert_pod(pod("ns", "b").ips(&["10.0.0.2"]).info());
    before.targets(&k, t(0));
    before.record(tk("ns", "web", "a", "tcp"), decided(true));
    before.record(tk("ns", "web", "b", "tcp"), decided(false));
    let owner = before.owner(&k).expect("owner");
    let published = slices::build(&owner, "node-a", &before.endpoints(&k));

    // A new agent: same objects, no results yet.
    let mut ix = Index::new("node-a");
    ix.upsert_swh(tcp_swh("ns", "web", json!({}), json!(8080), json!(8080)));
    ix.upsert_pod(pod("ns", "a").ips(&["10.0.0.1"]).info());
    ix.upsert_pod(pod("ns", "b").ips(&["10.0.0.2"]).info());
    for s in &published {
        ix.seed("ns", s);
    }
    ix.targets(&k, t(10));
    let now = slices::build(&owner, "node-a", &ix.endpoints(&k));
    assert_eq!(now.len(), published.len());
    for (d, o) in now.iter().zip(&published) {
        assert!(!slices::needs_write(d, o), "a restart writes nothing");
    }
    ix.settle_seeds(&k);
    assert_eq!(ix.seeds_len(), 2, "undecided pods keep their seeds");

    // A failing result decides at once; a passing one too.
    ix.record(tk("ns", "web", "a", "tcp"), decided(false));
    ix.record(tk("ns", "web", "b", "tcp"), decided(true));
    let c = conditions(&ix, &k);
    assert_eq!((c["a"], c["b"]), (NOT_READY, READY));
    ix.settle_seeds(&k);
    assert_eq!(ix.seeds_len(), 0, "decided pods drop their seeds");
}

#[test]
fn seeds_do_not_apply_to_a_new_address_or_a_failing_probe() {
    let k = key("ns", "web");
    let mut before = Index::new("node-a");
    before.upsert_swh(tcp_swh("ns", "web", json!({}), json!(8080), json!(8080)));
    before.upsert_pod(pod("ns", "a").ips(&["10.0.0.1"]).info());
    before.targets(&k, t(0));
    before.record(tk("ns", "web", "a", "tcp"), decided(true));
    let owner = before.owner(&k).expect("owner");
    let published = slices::build(&owner, "node-a", &before.endpoints(&k));

    let mut ix = Index::new("node-a");
    ix.upsert_swh(tcp_swh("ns", "web", json!({}), json!(8080), json!(8080)));
    ix.upsert_pod(pod("ns", "a").ips(&["10.0.0.9"]).info());
    ix.seed("ns", &published[0]);
    assert_eq!(conditions(&ix, &k)["a"], NOT_READY, "new IP: no seed");
}

#[test]
fn status_entries_carry_probe_state_and_keep_times_across_restarts() {
    let k = key("ns", "web");
    let mut ix = Index::new("node-a");
    ix.upsert_swh(tcp_swh("ns", "web", json!({}), json!(8080), json!(8080)));
    ix.upsert_pod(pod("ns", "a").ips(&["10.0.0.1"]).info());
    ix.targets(&k, t(0));
    ix.record(tk("ns", "web", "a", "tcp"), decided(false));
    let st = ix.statuses(&k, t(50));
    assert_eq!(st.len(), 1);
    let e = &st[0];
    assert_eq!(e.pod_name, "a");
    assert_eq!(e.node_name.as_deref(), Some("node-a"));
    assert_eq!(e.pod_ip.as_deref(), Some("10.0.0.1"));
    assert_eq!(
        (e.published, e.ready, e.probes_successful),
        (Some(false), Some(false), Some(false))
    );
    let p = &e.probes.as_ref().expect("probes")[0];
    assert_eq!(p.state, ApiState::Failing);
    assert_eq!(p.last_error.as_deref(), Some("connection refused"));
    assert_eq!(p.consecutive_failures, Some(3));
    assert!(p.since.is_some() && e.last_transition_time.is_some());

    // Steady: more failing results change counts only, not the signature.
    let sig = status_signature(&st);
    let mut th = decided(false);
    th.record(false, "timeout after 1s", t(20), 1, 3);
    ix.record(tk("ns", "web", "a", "tcp"), th);
    let st2 = ix.statuses(&k, t(60));
    assert_eq!(status_signature(&st2), sig);
    assert_ne!(st2, st);

    // A new agent seeing the written status keeps its times for an unchanged state.
    let mut written = (*tcp_swh("ns", "web", json!({}), json!(8080), json!(8080))).clone();
    written.status = Some(swh_api::v1beta1::ServiceWithHealthchecksStatus {
        endpoint_statuses: Some(st.clone()),
        ..Default::default()
    });
    let mut fresh = Index::new("node-a");
    fresh.upsert_swh(std::sync::Arc::new(written));
    fresh.upsert_pod(pod("ns", "a").ips(&["10.0.0.1"]).info());
    fresh.targets(&k, t(500));
    let mut th = Threshold::new(t(400));
    for i in 0..3 {
        th.record(false, "connection refused", t(401 + i), 1, 3);
    }
    fresh.record(tk("ns", "web", "a", "tcp"), th);
    let again = fresh.statuses(&k, t(500));
    assert_eq!(
        status_signature(&again),
        sig,
        "restart: same signature, no write"
    );
    assert_eq!(fresh.observed_statuses(&k).len(), 1);
}

#[test]
fn status_entries_of_other_nodes_are_not_ours() {
    let k = key("ns", "web");
    let mut s = (*tcp_swh("ns", "web", json!({}), json!(8080), json!(8080))).clone();
    s.status = Some(swh_api::v1beta1::ServiceWithHealthchecksStatus {
        endpoint_statuses: Some(vec![swh_api::v1beta1::EndpointStatus {
            pod_name: "x".into(),
            node_name: Some("node-b".into()),
            ..Default::default()
        }]),
        ..Default::default()
    });
    let mut ix = Index::new("node-a");
    ix.upsert_swh(std::sync::Arc::new(s));
    assert!(ix.observed_statuses(&k).is_empty());
    assert!(ix.statuses(&k, t(0)).is_empty());
}

#[test]
fn dual_stack_publishes_both_families_with_the_primary_ip_result() {
    let mut ix = Index::new("node-a");
    let k = key("ns", "ds");
    ix.upsert_swh(swh(
        "ns",
        "ds",
        json!({"ports": [{"port": 80}], "ipFamilyPolicy": "PreferDualStack",
               "healthcheck": {"probes": [{"name": "t", "mode": "TCP", "tcp": {"port": 80}}]}}),
    ));
    ix.upsert_pod(pod("ns", "a").ips(&["10.0.0.1", "fd00::1"]).info());
    let targets = ix.targets(&k, t(0));
    assert_eq!(targets.len(), 1, "the primary IP is probed once");
    ix.record(tk("ns", "ds", "a", "t"), decided(true));
    let eps = ix.endpoints(&k);
    assert_eq!(
        eps[0].addresses.keys().copied().collect::<Vec<_>>(),
        vec![Family::V4, Family::V6]
    );
    let owner = Owner {
        namespace: "ns".into(),
        name: "ds".into(),
        uid: "u".into(),
    };
    let built = slices::build(&owner, "node-a", &eps);
    let types: Vec<_> = built.iter().map(|s| s.address_type.as_str()).collect();
    assert_eq!(types, vec!["IPv4", "IPv6"]);
    assert!(
        built
            .iter()
            .all(|s| s.endpoints[0].conditions.as_ref().unwrap().ready == Some(true))
    );

    // Single stack by default: the primary IP's family only.
    let mut ix = Index::new("node-a");
    ix.upsert_swh(tcp_swh("ns", "web", json!({}), json!(80), json!(80)));
    ix.upsert_pod(pod("ns", "a").ips(&["fd00::1", "10.0.0.1"]).info());
    let eps = ix.endpoints(&key("ns", "web"));
    assert_eq!(
        eps[0].addresses.keys().copied().collect::<Vec<_>>(),
        vec![Family::V6]
    );
}

#[test]
fn removing_an_swh_forgets_its_results() {
    let mut ix = Index::new("node-a");
    let k = key("ns", "web");
    ix.upsert_swh(tcp_swh("ns", "web", json!({}), json!(8080), json!(8080)));
    ix.upsert_pod(pod("ns", "a").ips(&["10.0.0.1"]).info());
    ix.record(tk("ns", "web", "a", "tcp"), decided(true));
    ix.remove_swh(&k);
    assert!(ix.endpoints(&k).is_empty());
    ix.upsert_swh(tcp_swh("ns", "web", json!({}), json!(8080), json!(8080)));
    assert_eq!(conditions(&ix, &k)["a"], NOT_READY);
}

/// The SWH `web` with a TCP probe, its child Service in conflict (as the controller reports it),
/// optionally asking for adoption.
fn conflicted_swh(
    adopt: Option<&str>,
) -> std::sync::Arc<swh_api::v1beta1::ServiceWithHealthchecks> {
    let mut s = (*tcp_swh("ns", "web", json!({}), json!(80), json!(80))).clone();
    if let Some(v) = adopt {
        s.metadata.annotations = Some(BTreeMap::from([(
            swh_api::annotations::ADOPT_SERVICE.to_string(),
            v.to_string(),
        )]));
    }
    s.status = Some(
        serde_json::from_value(json!({"conditions": [{
            "type": "ChildServiceConflict", "status": "True", "reason": "ServiceNotOwned",
            "message": "Service ns/web exists and is not owned by this SWH",
            "lastTransitionTime": "2023-11-14T22:13:20Z"}]}))
        .expect("status json"),
    );
    std::sync::Arc::new(s)
}

#[test]
fn a_foreign_service_of_the_same_name_blocks_publishing_unless_adoption_is_asked() {
    let k = key("ns", "web");
    for (adopt, publishes) in [(None, false), (Some("false"), false), (Some("true"), true)] {
        let mut ix = Index::new("node-a");
        ix.upsert_swh(conflicted_swh(adopt));
        ix.upsert_pod(pod("ns", "a").ips(&["10.0.0.1"]).info());
        // Probing goes on either way.
        assert_eq!(ix.targets(&k, t(0)).len(), 1, "adopt={adopt:?}");
        ix.record(tk("ns", "web", "a", "tcp"), decided(true));
        assert_eq!(ix.publishes(&k), publishes, "adopt={adopt:?}");
        let expected = if publishes {
            BTreeMap::from([("a".to_string(), READY)])
        } else {
            BTreeMap::new()
        };
        assert_eq!(conditions(&ix, &k), expected, "adopt={adopt:?}");
        let owner = ix.owner(&k).expect("owner");
        assert_eq!(
            slices::build(&owner, "node-a", &ix.endpoints(&k)).is_empty(),
            !publishes
        );
        let st = ix.statuses(&k, t(10));
        assert_eq!(st.len(), 1);
        assert_eq!(st[0].published, Some(publishes), "adopt={adopt:?}");
        assert_eq!(st[0].probes_successful, Some(true));
    }
    // The conflict resolved (condition False): publishing resumes.
    let mut ix = Index::new("node-a");
    let mut s = (*conflicted_swh(None)).clone();
    if let Some(c) = s
        .status
        .as_mut()
        .and_then(|st| st.conditions.as_mut())
        .and_then(|c| c.first_mut())
    {
        c.status = "False".into();
    }
    ix.upsert_swh(std::sync::Arc::new(s));
    ix.upsert_pod(pod("ns", "a").ips(&["10.0.0.1"]).info());
    ix.record(tk("ns", "web", "a", "tcp"), decided(true));
    assert!(ix.publishes(&k));
    assert_eq!(
        conditions(&ix, &k),
        BTreeMap::from([("a".to_string(), READY)])
    );
}

#[test]
fn during_a_handover_only_ready_endpoints_are_published() {
    // kube-proxy merges the Service's own slices with ours; a not-ready duplicate from us could
    // hide a pod the Service still sends traffic to.
    let k = key("ns", "web");
    let mut ix = Index::new("node-a");
    ix.upsert_swh(conflicted_swh(Some("true")));
    ix.upsert_pod(pod("ns", "a").ips(&["10.0.0.1"]).info());
    ix.upsert_pod(pod("ns", "b").ips(&["10.0.0.2"]).info());
    ix.targets(&k, t(0));
    let names = |ix: &Index| {
        ix.endpoints(&k)
            .into_iter()
            .map(|e| e.pod_name)
            .collect::<Vec<_>>()
    };
    assert!(
        names(&ix).is_empty(),
        "undecided pods are not published during a handover"
    );
    ix.record(tk("ns", "web", "a", "tcp"), decided(true));
    ix.record(tk("ns", "web", "b", "tcp"), decided(false));
    assert_eq!(
        names(&ix),
        ["a"],
        "only the ready pod, not b's failing entry"
    );
    // Handed over (the controller reports the child Service in sync): every pod again, the
    // failing one as not ready.
    let mut s = (*conflicted_swh(Some("true"))).clone();
    s.status = Some(
        serde_json::from_value(json!({"conditions": [{
            "type": "ChildServiceReady", "status": "True", "reason": "ChildServiceWasCreated",
            "message": "Service ns/web is in sync", "lastTransitionTime": "2023-11-14T22:13:20Z"}]}))
        .expect("status json"),
    );
    ix.upsert_swh(std::sync::Arc::new(s));
    assert_eq!(names(&ix), ["a", "b"]);
    assert_eq!(
        conditions(&ix, &k),
        BTreeMap::from([("a".to_string(), READY), ("b".to_string(), NOT_READY)])
    );
}

#[test]
fn written_state_is_what_this_node_wrote_for_the_pods_current_address() {
    let k = key("ns", "web");
    let mut ix = Index::new("node-a");
    ix.upsert_swh(tcp_swh("ns", "web", json!({}), json!(8080), json!(8080)));
    ix.upsert_pod(pod("ns", "a").ips(&["10.0.0.1"]).info());
    ix.targets(&k, t(0));
    let target = tk("ns", "web", "a", "tcp");
    assert_eq!(ix.written_state(&target), None, "nothing written yet");
    ix.record(target.clone(), decided(false));
    let st = ix.statuses(&k, t(50));

    let mut written = (*tcp_swh("ns", "web", json!({}), json!(8080), json!(8080))).clone();
    written.status = Some(swh_api::v1beta1::ServiceWithHealthchecksStatus {
        endpoint_statuses: Some(st),
        ..Default::default()
    });
    let mut fresh = Index::new("node-a");
    fresh.upsert_swh(std::sync::Arc::new(written.clone()));
    fresh.upsert_pod(pod("ns", "a").ips(&["10.0.0.1"]).info());
    assert_eq!(
        fresh.written_state(&target),
        Some(swh_agent::threshold::ProbeState::Failing)
    );
    assert_eq!(
        fresh.target_pod(&target).map(|p| p.name.as_str()),
        Some("a")
    );
    // Another address (the pod was recreated with the same name elsewhere): not its state.
    let mut moved = Index::new("node-a");
    moved.upsert_swh(std::sync::Arc::new(written.clone()));
    moved.upsert_pod(pod("ns", "a").ips(&["10.0.0.9"]).info());
    assert_eq!(moved.written_state(&target), None);
    // Another node's agent: not ours.
    let mut other = Index::new("node-b");
    other.upsert_swh(std::sync::Arc::new(written));
    other.upsert_pod(pod("ns", "a").ips(&["10.0.0.1"]).info());
    assert_eq!(other.written_state(&target), None);
}
