//! Property tests: conversion is exact both ways over generated objects that cover every
//! optional field (including objects that validation would reject: conversion must not lose
//! them either), and its output never carries fields the target schema would prune.

mod common;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    ClientIPConfig, LoadBalancerIngress, LoadBalancerStatus, PortStatus, ServicePort,
    SessionAffinityConfig,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use proptest::collection::{btree_map, vec};
use proptest::option::of;
use proptest::prelude::*;
use serde_json::Value;
use swh_api::conversion::convert;
use swh_api::{API_VERSION_V1ALPHA1, API_VERSION_V1BETA1, v1alpha1 as a, v1beta1 as b};

fn word() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9-]{0,6}"
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![word(), "[ -~]{0,12}", Just(String::new())]
}

fn time() -> impl Strategy<Value = Time> {
    (0i64..4_000_000_000)
        .prop_map(|s| Time(k8s_openapi::jiff::Timestamp::from_second(s).expect("in range")))
}

fn int_or_string() -> impl Strategy<Value = IntOrString> {
    prop_oneof![
        (1i32..65536).prop_map(IntOrString::Int),
        any::<i32>().prop_map(IntOrString::Int),
        "[a-z]{1,8}".prop_map(IntOrString::String),
    ]
}

fn str_list() -> impl Strategy<Value = Option<Vec<String>>> {
    of(vec(word(), 0..3))
}

fn one_of(items: &'static [&'static str]) -> impl Strategy<Value = String> {
    proptest::sample::select(items).prop_map(str::to_string)
}

fn service_port() -> impl Strategy<Value = ServicePort> {
    (
        of(word()),
        0i32..70000,
        of(one_of(&["TCP", "UDP", "SCTP"])),
        of(int_or_string()),
        of(0i32..33000),
        of(word()),
    )
        .prop_map(
            |(name, port, protocol, target_port, node_port, app_protocol)| ServicePort {
                name,
                port,
                protocol,
                target_port,
                node_port,
                app_protocol,
            },
        )
}

/// The service-like fields shared by both versions.
#[derive(Clone, Debug, Default)]
struct Svc {
    ports: Option<Vec<ServicePort>>,
    selector: Option<BTreeMap<String, String>>,
    type_: Option<String>,
    cluster_ip: Option<String>,
    cluster_ips: Option<Vec<String>>,
    external_ips: Option<Vec<String>>,
    external_name: Option<String>,
    session_affinity: Option<String>,
    session_affinity_config: Option<SessionAffinityConfig>,
    load_balancer_ip: Option<String>,
    load_balancer_source_ranges: Option<Vec<String>>,
    load_balancer_class: Option<String>,
    external_traffic_policy: Option<String>,
    internal_traffic_policy: Option<String>,
    health_check_node_port: Option<i32>,
    publish_not_ready_addresses: Option<bool>,
    ip_families: Option<Vec<String>>,
    ip_family_policy: Option<String>,
    allocate_load_balancer_node_ports: Option<bool>,
    traffic_distribution: Option<String>,
}

fn svc() -> impl Strategy<Value = Svc> {
    (
        (
            of(vec(service_port(), 0..3)),
            of(btree_map(word(), word(), 0..3)),
            of(one_of(&[
                "ClusterIP",
                "NodePort",
                "LoadBalancer",
                "ExternalName",
            ])),
            of(one_of(&["None", "10.96.0.10", "", "fd00::10"])),
            str_list(),
            str_list(),
            of(word()),
        ),
        (
            of(one_of(&["ClientIP", "None"])),
            of(of(0i32..100000).prop_map(|t| SessionAffinityConfig {
                client_ip: Some(ClientIPConfig { timeout_seconds: t }),
            })),
            of(word()),
            str_list(),
            of(word()),
            of(one_of(&["Cluster", "Local"])),
            of(one_of(&["Cluster", "Local"])),
        ),
        (
            of(any::<i32>()),
            of(any::<bool>()),
            str_list(),
            of(one_of(&["SingleStack", "PreferDualStack"])),
            of(any::<bool>()),
            of(one_of(&["PreferClose"])),
        ),
    )
        .prop_map(|(x, y, z)| Svc {
            ports: x.0,
            selector: x.1,
            type_: x.2,
            cluster_ip: x.3,
            cluster_ips: x.4,
            external_ips: x.5,
            external_name: x.6,
            session_affinity: y.0,
            session_affinity_config: y.1,
            load_balancer_ip: y.2,
            load_balancer_source_ranges: y.3,
            load_balancer_class: y.4,
            external_traffic_policy: y.5,
            internal_traffic_policy: y.6,
            health_check_node_port: z.0,
            publish_not_ready_addresses: z.1,
            ip_families: z.2,
            ip_family_policy: z.3,
            allocate_load_balancer_node_ports: z.4,
            traffic_distribution: z.5,
        })
}

macro_rules! spec_from_svc {
    ($m:ident, $s:expr, $hc:expr) => {{
        let s = $s;
        $m::ServiceWithHealthchecksSpec {
            ports: s.ports,
            selector: s.selector,
            type_: s.type_,
            cluster_ip: s.cluster_ip,
            cluster_ips: s.cluster_ips,
            external_ips: s.external_ips,
            external_name: s.external_name,
            session_affinity: s.session_affinity,
            session_affinity_config: s.session_affinity_config,
            load_balancer_ip: s.load_balancer_ip,
            load_balancer_source_ranges: s.load_balancer_source_ranges,
            load_balancer_class: s.load_balancer_class,
            external_traffic_policy: s.external_traffic_policy,
            internal_traffic_policy: s.internal_traffic_policy,
            health_check_node_port: s.health_check_node_port,
            publish_not_ready_addresses: s.publish_not_ready_addresses,
            ip_families: s.ip_families,
            ip_family_policy: s.ip_family_policy,
            allocate_load_balancer_node_ports: s.allocate_load_balancer_node_ports,
            traffic_distribution: s.traffic_distribution,
            healthcheck: $hc,
        }
    }};
}

fn small_i32() -> impl Strategy<Value = Option<i32>> {
    of(prop_oneof![-2i32..20, any::<i32>()])
}

fn headers() -> impl Strategy<Value = Option<Vec<a::HttpHeader>>> {
    of(vec(
        (text(), text()).prop_map(|(name, value)| a::HttpHeader { name, value }),
        0..3,
    ))
}

fn scheme() -> impl Strategy<Value = Option<a::HttpScheme>> {
    of(prop_oneof![
        Just(a::HttpScheme::Http),
        Just(a::HttpScheme::Https)
    ])
}

fn method() -> impl Strategy<Value = Option<a::HttpMethod>> {
    of(prop_oneof![
        Just(a::HttpMethod::Get),
        Just(a::HttpMethod::Head),
        Just(a::HttpMethod::Put),
        Just(a::HttpMethod::Post)
    ])
}

// ------------------------------------------------------------------------------------------
// v1alpha1
// ------------------------------------------------------------------------------------------

fn alpha_http() -> impl Strategy<Value = a::HttpProbe> {
    (
        int_or_string(),
        of(text()),
        of(word()),
        scheme(),
        method(),
        headers(),
        of(any::<bool>()),
        of(text()),
        of(vec(prop_oneof![100i32..600, any::<i32>()], 0..3)),
    )
        .prop_map(
            |(target_port, path, host, scheme, method, http_headers, insecure, ca, code)| {
                a::HttpProbe {
                    target_port,
                    path,
                    host,
                    scheme,
                    method,
                    http_headers,
                    insecure_skip_tls_verify: insecure,
                    ca_cert: ca,
                    code,
                }
            },
        )
}

fn alpha_probe() -> impl Strategy<Value = a::Probe> {
    (
        prop_oneof![
            Just(a::ProbeMode::Http),
            Just(a::ProbeMode::Tcp),
            Just(a::ProbeMode::PostgreSql)
        ],
        small_i32(),
        small_i32(),
        small_i32(),
        of(alpha_http()),
        of(int_or_string().prop_map(|target_port| a::TcpProbe { target_port })),
        of(
            (int_or_string(), of(word()), of(text()), of(word())).prop_map(
                |(target_port, db_name, query, auth_secret_name)| a::PostgreSqlProbe {
                    target_port,
                    db_name,
                    query,
                    auth_secret_name,
                },
            ),
        ),
    )
        .prop_map(|(mode, t, s, f, http, tcp, postgre_sql)| a::Probe {
            mode,
            timeout_seconds: t,
            success_threshold: s,
            failure_threshold: f,
            http,
            tcp,
            postgre_sql,
        })
}

fn alpha_spec() -> impl Strategy<Value = a::ServiceWithHealthchecksSpec> {
    (
        svc(),
        of(
            (small_i32(), small_i32(), of(vec(alpha_probe(), 0..4))).prop_map(
                |(initial_delay_seconds, period_seconds, probes)| a::Healthcheck {
                    initial_delay_seconds,
                    period_seconds,
                    probes,
                },
            ),
        ),
    )
        .prop_map(|(s, hc)| spec_from_svc!(a, s, hc))
}

fn condition() -> impl Strategy<Value = Condition> {
    (
        time(),
        text(),
        of(any::<i64>()),
        word(),
        one_of(&["True", "False", "Unknown"]),
        word(),
    )
        .prop_map(
            |(t, message, observed_generation, reason, status, type_)| Condition {
                last_transition_time: t,
                message,
                observed_generation,
                reason,
                status,
                type_,
            },
        )
}

fn load_balancer() -> impl Strategy<Value = LoadBalancerStatus> {
    of(vec(
        (
            of(word()),
            of(word()),
            of(one_of(&["VIP", "Proxy"])),
            of(vec(
                (of(word()), 1i32..65536, one_of(&["TCP", "UDP"])).prop_map(
                    |(error, port, protocol)| PortStatus {
                        error,
                        port,
                        protocol,
                    },
                ),
                0..2,
            )),
        )
            .prop_map(|(hostname, ip, ip_mode, ports)| LoadBalancerIngress {
                hostname,
                ip,
                ip_mode,
                ports,
            }),
        0..2,
    ))
    .prop_map(|ingress| LoadBalancerStatus { ingress })
}

/// Unique pod names, as a list-map guarantees.
fn pod_names() -> impl Strategy<Value = Vec<String>> {
    proptest::collection::btree_set(word(), 0..4).prop_map(|s| s.into_iter().collect())
}

fn alpha_status() -> impl Strategy<Value = a::ServiceWithHealthchecksStatus> {
    (
        of(load_balancer()),
        of(word()),
        str_list(),
        of(vec(condition(), 0..3)),
        of(
            (of(any::<i64>()), small_i32(), small_i32(), of(word())).prop_map(
                |(observed_generation, endpoints, ready_endpoints, active_node_name)| {
                    a::HealthcheckCondition {
                        observed_generation,
                        endpoints,
                        ready_endpoints,
                        active_node_name,
                    }
                },
            ),
        ),
        of(word()),
        of(pod_names().prop_flat_map(|names| {
            let n = names.len();
            (
                Just(names),
                vec(
                    (
                        of(word()),
                        of(any::<bool>()),
                        of(any::<bool>()),
                        str_list(),
                        of(time()),
                        of(time()),
                    ),
                    n..=n,
                ),
            )
                .prop_map(|(names, rest)| {
                    names
                        .into_iter()
                        .zip(rest)
                        .map(|(pod_name, r)| a::EndpointStatus {
                            pod_name,
                            node_name: r.0,
                            ready: r.1,
                            probes_successful: r.2,
                            failed_probes: r.3,
                            last_probe_time: r.4,
                            last_transition_time: r.5,
                        })
                        .collect()
                })
        })),
    )
        .prop_map(|(lb, cip, cips, conditions, hc, ready, es)| {
            a::ServiceWithHealthchecksStatus {
                load_balancer: lb,
                cluster_ip: cip,
                cluster_ips: cips,
                conditions,
                healthcheck_condition: hc,
                ready,
                endpoint_statuses: es,
            }
        })
}

fn metadata() -> impl Strategy<Value = ObjectMeta> {
    (
        word(),
        of(word()),
        of(btree_map(word(), text(), 0..3)),
        // Non-empty: the API server never stores an empty annotations map (omitempty).
        of(btree_map(
            prop_oneof![word(), Just("example.com/note".to_string())],
            text(),
            1..3,
        )),
        of(1i64..1000),
        of("[0-9]{1,6}"),
        of(time()),
        of("[0-9a-f]{8}"),
    )
        .prop_map(
            |(name, namespace, labels, annotations, generation, rv, created, uid)| ObjectMeta {
                name: Some(name),
                namespace,
                labels,
                annotations,
                generation,
                resource_version: rv,
                creation_timestamp: created,
                uid,
                ..Default::default()
            },
        )
}

fn alpha_object() -> impl Strategy<Value = Value> {
    (metadata(), alpha_spec(), of(alpha_status())).prop_map(|(metadata, spec, status)| {
        let mut o = a::ServiceWithHealthchecks::new("x", spec);
        o.metadata = metadata;
        o.status = status;
        serde_json::to_value(o).expect("serialize")
    })
}

// ------------------------------------------------------------------------------------------
// v1beta1
// ------------------------------------------------------------------------------------------

fn statuses() -> impl Strategy<Value = Option<Vec<String>>> {
    of(vec(
        prop_oneof![
            (100u16..600).prop_map(|n| n.to_string()),
            (100u16..600, 100u16..600).prop_map(|(a, b)| format!("{a}-{b}")),
            Just("0200".to_string()),
            Just("2xx".to_string()),
            any::<i32>().prop_map(|n| n.to_string()),
        ],
        0..3,
    ))
}

fn beta_http() -> impl Strategy<Value = b::HttpProbe> {
    (
        (
            int_or_string(),
            of(text()),
            of(word()),
            scheme(),
            method(),
            headers(),
        ),
        (of(any::<bool>()), of(text()), statuses(), of(text())),
    )
        .prop_map(|(x, y)| b::HttpProbe {
            port: x.0,
            path: x.1,
            host: x.2,
            scheme: x.3,
            method: x.4,
            http_headers: x.5,
            insecure_skip_tls_verify: y.0,
            ca_cert: y.1,
            expected_statuses: y.2,
            body_contains: y.3,
        })
}

fn beta_pg() -> impl Strategy<Value = b::PostgreSqlProbe> {
    (
        int_or_string(),
        of(word()),
        of(text()),
        of(word()),
        of(prop_oneof![
            Just(b::PgConnection::Persistent),
            Just(b::PgConnection::PerProbe)
        ]),
        of((
            of(prop_oneof![
                Just(b::PgTlsMode::Disabled),
                Just(b::PgTlsMode::SkipVerification),
                Just(b::PgTlsMode::VerifyCa),
                Just(b::PgTlsMode::VerifyAll)
            ]),
            of(text()),
            of(word()),
        )
            .prop_map(|(mode, ca_cert, server_name)| b::PgTls {
                mode,
                ca_cert,
                server_name,
            })),
    )
        .prop_map(
            |(port, db_name, query, auth_secret_name, connection, tls)| b::PostgreSqlProbe {
                port,
                db_name,
                query,
                auth_secret_name,
                connection,
                tls,
            },
        )
}

fn beta_mode() -> impl Strategy<Value = b::ProbeMode> {
    prop_oneof![
        Just(b::ProbeMode::Http),
        Just(b::ProbeMode::Tcp),
        Just(b::ProbeMode::PostgreSql),
        Just(b::ProbeMode::Grpc)
    ]
}

/// A probe whose sub-object matches its mode (the common case) or arbitrary sub-objects.
fn beta_probe() -> impl Strategy<Value = b::Probe> {
    let names = prop_oneof![
        word(),
        (beta_mode(), 0usize..4).prop_map(|(m, i)| format!("{}-{i}", m.lower()))
    ];
    (
        (
            names,
            beta_mode(),
            small_i32(),
            small_i32(),
            small_i32(),
            small_i32(),
            small_i32(),
            small_i32(),
        ),
        (
            of(beta_http()),
            of(int_or_string().prop_map(|port| b::TcpProbe { port })),
            of(beta_pg()),
            of((int_or_string(), of(text()))
                .prop_map(|(port, service)| b::GrpcProbe { port, service })),
            any::<bool>(),
        ),
    )
        .prop_map(|(x, y)| {
            let (http, tcp, pg, grpc, matching) = y;
            let mut p = b::Probe {
                name: x.0,
                mode: x.1,
                timeout_seconds: x.2,
                success_threshold: x.3,
                failure_threshold: x.4,
                period_seconds: x.5,
                initial_delay_seconds: x.6,
                transition_period_seconds: x.7,
                http,
                tcp,
                postgre_sql: pg,
                grpc,
            };
            if matching {
                let keep = p.mode;
                if keep != b::ProbeMode::Http {
                    p.http = None;
                }
                if keep != b::ProbeMode::Tcp {
                    p.tcp = None;
                }
                if keep != b::ProbeMode::PostgreSql {
                    p.postgre_sql = None;
                }
                if keep != b::ProbeMode::Grpc {
                    p.grpc = None;
                }
            }
            p
        })
}

fn beta_spec() -> impl Strategy<Value = b::ServiceWithHealthchecksSpec> {
    (
        svc(),
        of((
            small_i32(),
            small_i32(),
            of(vec(beta_probe(), 0..4)),
            of((-1i32..102).prop_map(|min_passing_percent| b::FailOpen {
                min_passing_percent,
            })),
        )
            .prop_map(
                |(initial_delay_seconds, period_seconds, probes, fail_open)| b::Healthcheck {
                    initial_delay_seconds,
                    period_seconds,
                    probes,
                    fail_open,
                },
            )),
    )
        .prop_map(|(s, hc)| spec_from_svc!(b, s, hc))
}

fn probe_status() -> impl Strategy<Value = b::ProbeStatus> {
    (
        word(),
        prop_oneof![
            Just(b::ProbeState::Passing),
            Just(b::ProbeState::Failing),
            Just(b::ProbeState::Unknown)
        ],
        of(time()),
        of(text()),
        small_i32(),
        small_i32(),
        of(time()),
    )
        .prop_map(
            |(name, state, since, last_error, cf, cs, lpt)| b::ProbeStatus {
                name,
                state,
                since,
                last_error,
                consecutive_failures: cf,
                consecutive_successes: cs,
                last_probe_time: lpt,
            },
        )
}

fn beta_status() -> impl Strategy<Value = b::ServiceWithHealthchecksStatus> {
    (
        (
            of(vec(condition(), 0..3)),
            of(any::<i64>()),
            small_i32(),
            small_i32(),
            of(word()),
            of(word()),
            str_list(),
            of(load_balancer()),
        ),
        of(pod_names().prop_flat_map(|names| {
            let n = names.len();
            (
                Just(names),
                vec(
                    (
                        (of(word()), of(word()), of(any::<bool>()), of(any::<bool>())),
                        (of(any::<bool>()), str_list(), of(time()), of(time())),
                        of(vec(probe_status(), 0..3)),
                    ),
                    n..=n,
                ),
            )
                .prop_map(|(names, rest)| {
                    names
                        .into_iter()
                        .zip(rest)
                        .map(|(pod_name, (x, y, probes))| b::EndpointStatus {
                            pod_name,
                            node_name: x.0,
                            pod_ip: x.1,
                            published: x.2,
                            ready: x.3,
                            probes_successful: y.0,
                            failed_probes: y.1,
                            last_probe_time: y.2,
                            last_transition_time: y.3,
                            probes,
                        })
                        .collect()
                })
        })),
    )
        .prop_map(|(x, es)| b::ServiceWithHealthchecksStatus {
            conditions: x.0,
            observed_generation: x.1,
            published_endpoints: x.2,
            total_endpoints: x.3,
            ready: x.4,
            cluster_ip: x.5,
            cluster_ips: x.6,
            load_balancer: x.7,
            endpoint_statuses: es,
        })
}

fn beta_object() -> impl Strategy<Value = Value> {
    (metadata(), beta_spec(), of(beta_status())).prop_map(|(metadata, spec, status)| {
        let mut o = b::ServiceWithHealthchecks::new("x", spec);
        o.metadata = metadata;
        o.status = status;
        serde_json::to_value(o).expect("serialize")
    })
}

// ------------------------------------------------------------------------------------------
// Properties
// ------------------------------------------------------------------------------------------

fn without_annotations(v: &Value) -> Value {
    let mut m = v["metadata"].clone();
    if let Some(o) = m.as_object_mut() {
        o.remove("annotations");
    }
    m
}

fn unknown_fields(v: &Value, version: &str) -> Vec<String> {
    common::schema_problems(v, &common::version_schema(version))
        .into_iter()
        .filter(|p| p.contains("unknown field") || p.contains("must be"))
        .collect()
}

/// Run a property on a thread with a large stack (the nested strategies are deep in debug builds).
fn run<S>(strategy: S, test: fn(Value) -> Result<(), TestCaseError>)
where
    S: Strategy<Value = Value> + Send + 'static,
{
    std::thread::Builder::new()
        .stack_size(256 * 1024 * 1024)
        .spawn(move || {
            let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
                cases: 256,
                failure_persistence: None,
                ..ProptestConfig::default()
            });
            if let Err(e) = runner.run(&strategy, test) {
                panic!("{e}");
            }
        })
        .expect("spawn")
        .join()
        .expect("property holds");
}

#[test]
fn alpha_beta_alpha_is_exact() {
    run(alpha_object(), |obj| {
        let beta = convert(obj.clone(), API_VERSION_V1BETA1).expect("up");
        prop_assert_eq!(&beta["apiVersion"], API_VERSION_V1BETA1);
        prop_assert_eq!(&beta["kind"], &obj["kind"]);
        prop_assert_eq!(without_annotations(&beta), without_annotations(&obj));
        let problems = unknown_fields(&beta, "v1beta1");
        prop_assert!(problems.is_empty(), "{:?}", problems);
        serde_json::from_value::<b::ServiceWithHealthchecks>(beta.clone())
            .expect("decodes as v1beta1");
        let back = convert(beta, API_VERSION_V1ALPHA1).expect("down");
        prop_assert_eq!(back, obj);
        Ok(())
    });
}

#[test]
fn beta_alpha_beta_is_exact() {
    run(beta_object(), |obj| {
        let alpha = convert(obj.clone(), API_VERSION_V1ALPHA1).expect("down");
        prop_assert_eq!(&alpha["apiVersion"], API_VERSION_V1ALPHA1);
        prop_assert_eq!(without_annotations(&alpha), without_annotations(&obj));
        let problems = unknown_fields(&alpha, "v1alpha1");
        prop_assert!(problems.is_empty(), "{:?}", problems);
        serde_json::from_value::<a::ServiceWithHealthchecks>(alpha.clone())
            .expect("decodes as v1alpha1");
        let back = convert(alpha, API_VERSION_V1BETA1).expect("up");
        prop_assert_eq!(back, obj);
        Ok(())
    });
}

#[test]
fn same_version_is_identity() {
    run(beta_object(), |obj| {
        prop_assert_eq!(convert(obj.clone(), API_VERSION_V1BETA1).expect("id"), obj);
        Ok(())
    });
}
