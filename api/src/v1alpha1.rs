//! `network.deckhouse.io/v1alpha1`: the Deckhouse-compatible version.
//!
//! Every field of the Deckhouse CRD and Go types (the union of their versions), same JSON names.
//! Defaults are expressed in the schema (the API server applies them); the Rust types keep every
//! field optional so that conversion is exact. Use [`crate::defaults`] for the effective values.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{LoadBalancerStatus, ServicePort, SessionAffinityConfig};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::schema;

/// A Service plus active health checks run against each selected pod; only pods that pass are
/// published in the Service's endpoints.
///
/// Deckhouse-compatible: an object is denied only where Deckhouse would fail on it too (its
/// schema, its child Service, or its agent; each message says which). Settings swh finds risky
/// are accepted with a warning naming the field; v1beta1 denies them.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "network.deckhouse.io",
    version = "v1alpha1",
    kind = "ServiceWithHealthchecks",
    plural = "servicewithhealthchecks",
    singular = "servicewithhealthcheck",
    namespaced,
    status = "ServiceWithHealthchecksStatus",
    shortname = "swh",
    derive = "PartialEq",
    derive = "Default"
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.type) || self.type in ['ClusterIP', 'NodePort', 'LoadBalancer']").message("type must be ClusterIP, NodePort or LoadBalancer (ExternalName is not supported: a ServiceWithHealthchecks publishes probed endpoints) (the Service would be invalid)").field_path(".type"))]
pub struct ServiceWithHealthchecksSpec {
    /// The list of ports that are exposed by this service (as in a Service).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::service_ports_alpha")]
    pub ports: Option<Vec<ServicePort>>,
    /// Label selector of the pods to probe and publish. An empty or missing selector selects
    /// every pod in the namespace (Deckhouse behaviour).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::selector")]
    pub selector: Option<BTreeMap<String, String>>,
    /// ClusterIP, NodePort or LoadBalancer. Default ClusterIP.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::service_type_alpha")]
    pub type_: Option<String>,
    /// The IP address of the service; "None" makes it headless. Immutable once set.
    #[serde(default, rename = "clusterIP", skip_serializing_if = "Option::is_none")]
    pub cluster_ip: Option<String>,
    /// The IP addresses of the service (dual stack).
    #[serde(
        default,
        rename = "clusterIPs",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(schema_with = "schema::string_list_alpha")]
    pub cluster_ips: Option<Vec<String>>,
    /// IPs for which nodes also accept traffic for this service.
    #[serde(
        default,
        rename = "externalIPs",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(schema_with = "schema::string_list_alpha")]
    pub external_ips: Option<Vec<String>>,
    /// Accepted for compatibility; type ExternalName is rejected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_name: Option<String>,
    /// ClientIP or None. Deckhouse does not copy it to its child Service; swh does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_affinity: Option<String>,
    /// Configuration of session affinity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_affinity_config: Option<SessionAffinityConfig>,
    /// Deprecated Service field, passed through.
    #[serde(
        default,
        rename = "loadBalancerIP",
        skip_serializing_if = "Option::is_none"
    )]
    pub load_balancer_ip: Option<String>,
    /// CIDRs allowed to reach a cloud load balancer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::string_list_alpha")]
    pub load_balancer_source_ranges: Option<Vec<String>>,
    /// Class of the load balancer implementation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer_class: Option<String>,
    /// Cluster or Local (used with type NodePort or LoadBalancer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_traffic_policy: Option<String>,
    /// Cluster or Local.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internal_traffic_policy: Option<String>,
    /// Health check node port for externalTrafficPolicy Local.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check_node_port: Option<i32>,
    /// Publish every selected pod regardless of readiness and probes (disables probing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish_not_ready_addresses: Option<bool>,
    /// IPv4 and/or IPv6.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::string_list_alpha")]
    pub ip_families: Option<Vec<String>>,
    /// SingleStack, PreferDualStack or RequireDualStack.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_family_policy: Option<String>,
    /// Whether NodePorts are allocated for type LoadBalancer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocate_load_balancer_node_ports: Option<bool>,
    /// Traffic distribution preference (e.g. PreferClose).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_distribution: Option<String>,
    /// Active health checks. Without probes, pods are published by readiness alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Healthcheck>,
}

/// Health checks run against every selected pod. All probes must pass (AND).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Healthcheck {
    /// Seconds after the pod's creation before the first probe. Default 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 108000), extend("default" = 10))]
    pub initial_delay_seconds: Option<i32>,
    /// Seconds between probes of one pod. Default 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 108000), extend("default" = 10))]
    pub period_seconds: Option<i32>,
    /// The probes; all must pass. v1beta1 takes at most 32; v1alpha1 has Deckhouse's
    /// practical limit only (the bound here, needed for the cost of the CEL rules, is more than
    /// an object can hold: etcd stores at most 1.5 MiB and a stored probe takes over 100 bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16384))]
    pub probes: Option<Vec<Probe>>,
}

/// Kind of probe.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum ProbeMode {
    /// HTTP(S) request.
    #[default]
    #[serde(rename = "HTTP")]
    Http,
    /// TCP connect.
    #[serde(rename = "TCP")]
    Tcp,
    /// SQL query that must return true.
    #[serde(rename = "PostgreSQL")]
    PostgreSql,
}

/// One probe. Exactly the sub-object named by `mode` must be set.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.mode != 'HTTP' || has(self.http)").message("mode is HTTP but field http is missing; add http (no probe can run)"))]
#[x_kube(validation = Rule::new("self.mode != 'TCP' || has(self.tcp)").message("mode is TCP but field tcp is missing; add tcp (no probe can run)"))]
#[x_kube(validation = Rule::new("self.mode != 'PostgreSQL' || has(self.postgreSQL)").message("mode is PostgreSQL but field postgreSQL is missing; add postgreSQL (no probe can run)"))]
pub struct Probe {
    /// HTTP, TCP or PostgreSQL.
    pub mode: ProbeMode,
    /// Seconds after which the probe times out. Default 1. A timeout longer than the period is
    /// accepted (with a warning): a slow target is then probed at most every `timeoutSeconds`,
    /// as the next probe of a pod starts when the previous one ended, never two at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1), extend("default" = 1))]
    pub timeout_seconds: Option<i32>,
    /// Consecutive successes for a failed probe to pass. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1), extend("default" = 1))]
    pub success_threshold: Option<i32>,
    /// Consecutive failures for a passing probe to fail. Default 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1), extend("default" = 3))]
    pub failure_threshold: Option<i32>,
    /// Settings of an HTTP probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpProbe>,
    /// Settings of a TCP probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<TcpProbe>,
    /// Settings of a PostgreSQL probe.
    #[serde(
        default,
        rename = "postgreSQL",
        skip_serializing_if = "Option::is_none"
    )]
    pub postgre_sql: Option<PostgreSqlProbe>,
}

/// URL scheme of an HTTP probe.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum HttpScheme {
    /// Plain HTTP.
    #[default]
    #[serde(rename = "HTTP")]
    Http,
    /// HTTP over TLS.
    #[serde(rename = "HTTPS")]
    Https,
}

/// HTTP method of an HTTP probe.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum HttpMethod {
    /// GET.
    #[default]
    #[serde(rename = "GET")]
    Get,
    /// HEAD.
    #[serde(rename = "HEAD")]
    Head,
    /// PUT (older Deckhouse schemas).
    #[serde(rename = "PUT")]
    Put,
    /// POST (older Deckhouse schemas).
    #[serde(rename = "POST")]
    Post,
}

/// An HTTP header sent by a probe.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct HttpHeader {
    /// Header name.
    #[schemars(length(min = 1, max = 256))]
    pub name: String,
    /// Header value.
    #[schemars(length(max = 4096))]
    pub value: String,
}

/// HTTP(S) probe settings.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct HttpProbe {
    /// Pod port to probe (1..65535, or a named container port).
    #[schemars(schema_with = "schema::probe_port_alpha")]
    pub target_port: IntOrString,
    /// Request path. Default "/". A path without a leading `/` is requested with one, and
    /// spaces, control and non-ASCII characters are sent percent-encoded (as Deckhouse does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Host header and TLS server name; the pod IP is still dialed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// HTTP or HTTPS. Default HTTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "HTTP"))]
    pub scheme: Option<HttpScheme>,
    /// GET or HEAD (PUT, POST accepted for older manifests). Default GET.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "GET"))]
    pub method: Option<HttpMethod>,
    /// Extra request headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::http_headers_alpha")]
    pub http_headers: Option<Vec<HttpHeader>>,
    /// Do not verify the server certificate. Default false.
    #[serde(
        default,
        rename = "insecureSkipTLSVerify",
        skip_serializing_if = "Option::is_none"
    )]
    pub insecure_skip_tls_verify: Option<bool>,
    /// PEM CA bundle to verify the server certificate (an invalid bundle makes HTTPS probes
    /// fail).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<String>,
    /// Accepted status codes; empty means 200-399. A code outside 100..599 never matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<Vec<i32>>,
}

/// TCP probe settings.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct TcpProbe {
    /// Pod port to connect to (1..65535, or a named container port).
    #[schemars(schema_with = "schema::probe_port_alpha")]
    pub target_port: IntOrString,
}

/// PostgreSQL probe settings.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PostgreSqlProbe {
    /// Pod port of the database (1..65535, or a named container port).
    #[schemars(schema_with = "schema::probe_port_alpha")]
    pub target_port: IntOrString,
    /// Database name; the user name when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub db_name: Option<String>,
    /// Query that must return a boolean true. Default `select 1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "select 1"))]
    pub query: Option<String>,
    /// Secret in the same namespace with keys user, password and optionally tlsMode,
    /// clientCert, clientKey, caCert.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_secret_name: Option<String>,
}

/// Observed state.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ServiceWithHealthchecksStatus {
    /// Load balancer status of the child Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<LoadBalancerStatus>,
    /// ClusterIP of the child Service.
    #[serde(default, rename = "clusterIP", skip_serializing_if = "Option::is_none")]
    pub cluster_ip: Option<String>,
    /// ClusterIPs of the child Service.
    #[serde(
        default,
        rename = "clusterIPs",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(schema_with = "schema::atomic_string_list_2")]
    pub cluster_ips: Option<Vec<String>>,
    /// Conditions (Ready, ChildServiceReady, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::conditions")]
    pub conditions: Option<Vec<Condition>>,
    /// Aggregate endpoint counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck_condition: Option<HealthcheckCondition>,
    /// "published/total" endpoints, for the Ready printer column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<String>,
    /// Per-pod state, one entry per selected pod (list-map keyed by podName).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["podName".into()]))]
    pub endpoint_statuses: Option<Vec<EndpointStatus>>,
}

/// Aggregate endpoint counts (Deckhouse).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct HealthcheckCondition {
    /// The generation these counts were computed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Number of endpoint statuses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<i32>,
    /// Number of ready endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_endpoints: Option<i32>,
    /// Unused (older Deckhouse types).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_node_name: Option<String>,
}

/// State of one selected pod (Deckhouse).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct EndpointStatus {
    /// Pod name (list-map key).
    pub pod_name: String,
    /// Node of the pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    /// Pod ready and probes successful.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<bool>,
    /// All probes pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probes_successful: Option<bool>,
    /// Failed probes, as `<mode>:<podIP>:<port>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_probes: Option<Vec<String>>,
    /// Time of the last probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_probe_time: Option<Time>,
    /// Time of the last change of ready, probesSuccessful or failedProbes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
}
