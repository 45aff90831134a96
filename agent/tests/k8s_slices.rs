//! The EndpointSlice builder and diff, and the status apply body.

mod common_k8s;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use common_k8s::pod;
use k8s_openapi::api::core::v1::ServicePort;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use swh_agent::slices::{self, Conditions, EndpointInput, Owner, PortEntry};
use swh_agent::targets::Family;

fn owner() -> Owner {
    Owner {
        namespace: "ns".into(),
        name: "web".into(),
        uid: "swh-uid".into(),
    }
}

fn port(name: &str, p: i32) -> PortEntry {
    PortEntry {
        name: name.into(),
        port: p,
        protocol: "TCP".into(),
        app_protocol: None,
    }
}

fn ep(name: &str, ip: &str, ports: Vec<PortEntry>, ready: bool) -> EndpointInput {
    let ip: IpAddr = ip.parse().unwrap();
    EndpointInput {
        pod_name: name.into(),
        pod_uid: format!("uid-{name}"),
        addresses: BTreeMap::from([(Family::of(ip), ip)]),
        ports,
        conditions: Conditions {
            ready,
            serving: ready,
            terminating: false,
        },
    }
}

#[test]
fn one_slice_with_names_labels_owner_ports_and_endpoints() {
    let built = slices::build(
        &owner(),
        "node-a",
        &[
            ep("b", "10.0.0.2", vec![port("web", 8080)], false),
            ep("a", "10.0.0.1", vec![port("web", 8080)], true),
        ],
    );
    assert_eq!(built.len(), 1);
    let s = &built[0];
    assert_eq!(s.metadata.name.as_deref(), Some("web-node-a-ipv4"));
    assert_eq!(s.metadata.namespace.as_deref(), Some("ns"));
    let labels = s.metadata.labels.clone().unwrap();
    assert_eq!(labels["kubernetes.io/service-name"], "web");
    assert_eq!(
        labels["endpointslice.kubernetes.io/managed-by"],
        "swh-agent.network.deckhouse.io"
    );
    assert_eq!(labels["swh.network.deckhouse.io/node"], "node-a");
    let owner_ref = &s.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (
            owner_ref.api_version.as_str(),
            owner_ref.kind.as_str(),
            owner_ref.name.as_str(),
            owner_ref.uid.as_str()
        ),
        (
            "network.deckhouse.io/v1beta1",
            "ServiceWithHealthchecks",
            "web",
            "swh-uid"
        )
    );
    assert_eq!(owner_ref.block_owner_deletion, None);
    assert_eq!(s.address_type, "IPv4");
    let p = &s.ports.as_ref().unwrap()[0];
    assert_eq!(
        (p.name.as_deref(), p.port, p.protocol.as_deref()),
        (Some("web"), Some(8080), Some("TCP"))
    );
    // Sorted by pod name; failing pods stay with ready=false.
    let e: Vec<_> = s
        .endpoints
        .iter()
        .map(|e| {
            let c = e.conditions.clone().unwrap();
            (e.addresses[0].clone(), c.ready, c.serving, c.terminating)
        })
        .collect();
    assert_eq!(
        e,
        vec![
            ("10.0.0.1".into(), Some(true), Some(true), Some(false)),
            ("10.0.0.2".into(), Some(false), Some(false), Some(false)),
        ]
    );
    let first = &s.endpoints[0];
    assert_eq!(first.node_name.as_deref(), Some("node-a"));
    let tr = first.target_ref.as_ref().unwrap();
    assert_eq!(
        (
            tr.kind.as_deref(),
            tr.namespace.as_deref(),
            tr.name.as_deref(),
            tr.uid.as_deref()
        ),
        (Some("Pod"), Some("ns"), Some("a"), Some("uid-a"))
    );
}

#[test]
fn service_ports_resolve_per_pod_and_different_numbers_split_slices() {
    let sp = |name: &str, port: i32, target: IntOrString| ServicePort {
        name: Some(name.into()),
        port,
        target_port: Some(target),
        protocol: Some("TCP".into()),
        ..Default::default()
    };
    let ports = vec![
        sp("web", 80, IntOrString::String("web".into())),
        sp("metrics", 9000, IntOrString::Int(9100)),
    ];
    let a = pod("ns", "a").ips(&["10.0.0.1"]).port("web", 8081).info();
    let b = pod("ns", "b").ips(&["10.0.0.2"]).port("web", 9091).info();
    let c = pod("ns", "c").ips(&["10.0.0.3"]).info();
    let pa = slices::resolve_service_ports(&ports, &a);
    assert_eq!(pa, vec![port("metrics", 9100), port("web", 8081)]);
    let pc = slices::resolve_service_ports(&ports, &c);
    assert_eq!(
        pc,
        vec![port("metrics", 9100)],
        "unresolvable name: port left out"
    );
    // Unset targetPort = port; unnamed single port has name "".
    let single = vec![ServicePort {
        port: 5432,
        ..Default::default()
    }];
    assert_eq!(
        slices::resolve_service_ports(&single, &c),
        vec![port("", 5432)]
    );

    let built = slices::build(
        &owner(),
        "node-a",
        &[
            ep("a", "10.0.0.1", pa.clone(), true),
            ep(
                "b",
                "10.0.0.2",
                slices::resolve_service_ports(&ports, &b),
                true,
            ),
        ],
    );
    assert_eq!(built.len(), 2);
    let names: BTreeSet<_> = built
        .iter()
        .map(|s| s.metadata.name.clone().unwrap())
        .collect();
    assert!(names.contains("web-node-a-ipv4"));
    assert!(names.iter().all(|n| n.starts_with("web-node-a-ipv4")));
    for s in &built {
        let web = s
            .ports
            .as_ref()
            .unwrap()
            .iter()
            .find(|p| p.name.as_deref() == Some("web"))
            .unwrap();
        let addr = &s.endpoints[0].addresses[0];
        let want = if addr == "10.0.0.1" { 8081 } else { 9091 };
        assert_eq!(web.port, Some(want));
        assert_eq!(s.endpoints.len(), 1);
    }
    // Deterministic.
    let again = slices::build(
        &owner(),
        "node-a",
        &[
            ep(
                "b",
                "10.0.0.2",
                slices::resolve_service_ports(&ports, &b),
                true,
            ),
            ep("a", "10.0.0.1", pa, true),
        ],
    );
    assert_eq!(again, built);
}

#[test]
fn at_most_1000_endpoints_per_slice() {
    let eps: Vec<_> = (0..2500)
        .map(|i| {
            ep(
                &format!("p{i:04}"),
                &format!("10.1.{}.{}", i / 250, i % 250 + 1),
                vec![port("", 80)],
                true,
            )
        })
        .collect();
    let built = slices::build(&owner(), "node-a", &eps);
    let sizes: Vec<_> = built.iter().map(|s| s.endpoints.len()).collect();
    assert_eq!(sizes, vec![1000, 1000, 500]);
    let names: Vec<_> = built
        .iter()
        .map(|s| s.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(
        names,
        vec!["web-node-a-ipv4", "web-node-a-ipv4-1", "web-node-a-ipv4-2"]
    );
}

#[test]
fn families_get_their_own_slices() {
    let mut e = ep("a", "10.0.0.1", vec![port("", 80)], true);
    e.addresses.insert(Family::V6, "fd00::1".parse().unwrap());
    let built = slices::build(&owner(), "node-a", &[e]);
    let got: Vec<_> = built
        .iter()
        .map(|s| {
            (
                s.metadata.name.clone().unwrap(),
                s.address_type.clone(),
                s.endpoints[0].addresses[0].clone(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "web-node-a-ipv4".to_string(),
                "IPv4".to_string(),
                "10.0.0.1".to_string()
            ),
            (
                "web-node-a-ipv6".to_string(),
                "IPv6".to_string(),
                "fd00::1".to_string()
            ),
        ]
    );
}

#[test]
fn long_names_fit_63_characters_and_stay_distinct() {
    let long_swh = "a".repeat(60);
    let n1 = slices::slice_name(&long_swh, "node-a", Family::V4, None, 0);
    let n2 = slices::slice_name(&long_swh, "node-b", Family::V4, None, 0);
    assert!(n1.len() <= 63 && n2.len() <= 63, "{n1} {n2}");
    assert_ne!(n1, n2);
    assert!(!n1.contains("--") || n1.ends_with(|c: char| c.is_ascii_hexdigit()));
    assert_eq!(
        slices::slice_name("web", "node-a", Family::V6, None, 0),
        "web-node-a-ipv6"
    );
    // A node name longer than a label value gets a fitted label.
    let long_node = format!("{}.example.com", "n".repeat(70));
    assert!(slices::node_label_value(&long_node).len() <= 63);
    assert_eq!(slices::node_label_value("node-a"), "node-a");
    assert_eq!(
        slices::own_slices_selector("node-a"),
        "endpointslice.kubernetes.io/managed-by=swh-agent.network.deckhouse.io,swh.network.deckhouse.io/node=node-a"
    );
}

#[test]
fn no_write_when_equal_even_with_foreign_additions_or_another_order() {
    let desired = slices::build(
        &owner(),
        "node-a",
        &[
            ep("a", "10.0.0.1", vec![port("web", 8080)], true),
            ep("b", "10.0.0.2", vec![port("web", 8080)], false),
        ],
    )
    .remove(0);
    assert!(!slices::needs_write(&desired, &desired));
    let mut observed = desired.clone();
    observed.metadata.resource_version = Some("42".into());
    observed.metadata.generation = Some(3);
    observed.metadata.uid = Some("x".into());
    observed
        .metadata
        .labels
        .as_mut()
        .unwrap()
        .insert("extra".into(), "1".into());
    observed.endpoints.reverse();
    observed.endpoints[0].zone = Some("z1".into());
    assert!(!slices::needs_write(&desired, &observed));

    let mut changed = observed.clone();
    changed.endpoints[0].conditions.as_mut().unwrap().ready = Some(true);
    assert!(slices::needs_write(&desired, &changed));
    let mut changed = observed.clone();
    changed.ports.as_mut().unwrap()[0].port = Some(9090);
    assert!(slices::needs_write(&desired, &changed));
    let mut changed = observed.clone();
    changed
        .metadata
        .labels
        .as_mut()
        .unwrap()
        .remove("kubernetes.io/service-name");
    assert!(slices::needs_write(&desired, &changed));
    let mut changed = observed.clone();
    changed.metadata.owner_references = None;
    assert!(slices::needs_write(&desired, &changed));
    let mut changed = observed;
    changed.endpoints.pop();
    assert!(slices::needs_write(&desired, &changed));
}

#[test]
fn published_conditions_are_read_back_for_seeding() {
    let s = slices::build(
        &owner(),
        "node-a",
        &[
            ep("a", "10.0.0.1", vec![port("", 80)], true),
            ep("b", "10.0.0.2", vec![port("", 80)], false),
        ],
    )
    .remove(0);
    let got = slices::published_conditions(&s);
    assert_eq!(
        got,
        vec![
            (
                ("web".into(), "uid-a".into(), "10.0.0.1".into()),
                (true, true)
            ),
            (
                ("web".into(), "uid-b".into(), "10.0.0.2".into()),
                (false, false)
            ),
        ]
    );
}

#[test]
fn status_apply_body_holds_only_this_nodes_entries() {
    use swh_api::v1beta1::EndpointStatus;
    let body = swh_agent::status_writer::apply_body(
        "web",
        &[EndpointStatus {
            pod_name: "a".into(),
            node_name: Some("node-a".into()),
            ..Default::default()
        }],
    );
    assert_eq!(body["apiVersion"], "network.deckhouse.io/v1beta1");
    assert_eq!(body["kind"], "ServiceWithHealthchecks");
    assert_eq!(body["metadata"]["name"], "web");
    let status = body["status"].as_object().unwrap();
    assert_eq!(status.keys().collect::<Vec<_>>(), vec!["endpointStatuses"]);
    assert_eq!(body["status"]["endpointStatuses"][0]["podName"], "a");
    // No pods left: an empty list releases every entry this manager owned.
    let empty = swh_agent::status_writer::apply_body("web", &[]);
    assert_eq!(empty["status"], serde_json::json!({"endpointStatuses": []}));
    assert_eq!(
        swh_agent::status_writer::field_manager("node-a"),
        "swh-agent-node-a"
    );
    let slice_body = swh_agent::slice_writer::apply_body(
        &slices::build(
            &owner(),
            "node-a",
            &[ep("a", "10.0.0.1", vec![port("", 80)], true)],
        )[0],
    );
    assert_eq!(slice_body["apiVersion"], "discovery.k8s.io/v1");
    assert_eq!(slice_body["kind"], "EndpointSlice");
}

#[test]
fn failed_writes_are_classified_for_retry() {
    use kube::core::Status;
    use swh_agent::status_writer::{Disposition, disposition};
    let api = |code: u16, reason: &str| {
        kube::Error::Api(Status::failure("x", reason).with_code(code).boxed())
    };
    assert_eq!(disposition(&api(404, "NotFound")), Disposition::Gone);
    assert_eq!(disposition(&api(422, "Invalid")), Disposition::Rejected);
    assert_eq!(disposition(&api(400, "BadRequest")), Disposition::Rejected);
    assert_eq!(disposition(&api(403, "Forbidden")), Disposition::Retry);
    assert_eq!(disposition(&api(409, "Conflict")), Disposition::Retry);
    assert_eq!(
        disposition(&api(429, "TooManyRequests")),
        Disposition::Retry
    );
    assert_eq!(disposition(&api(500, "InternalError")), Disposition::Retry);
}
