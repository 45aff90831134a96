//! `network.deckhouse.io/v1beta1`: the storage version. The controller and agent speak only this.
//!
//! Compared with v1alpha1: named probes (`name`, a unique DNS label), `port` as int-or-string,
//! per-probe `periodSeconds`/`initialDelaySeconds`/`transitionPeriodSeconds` (fast transitions:
//! the interval used while a pod's probe state is changing), HTTP `expectedStatuses` ranges and
//! `bodyContains`, a gRPC health probe, PostgreSQL `connection` and `tls`, opt-in `failOpen`,
//! and a richer status (per-pod, per-probe state written by each node's agent with server-side
//! apply). Every field is optional in Rust so conversion is exact; defaults live in the schema and
//! in [`crate::defaults`].
//!
//! ## Stricter than v1alpha1
//!
//! v1alpha1 denies only what Deckhouse would fail on too (so every Deckhouse manifest applies
//! unchanged) and warns about the rest; v1beta1 has no existing manifests to keep working, so it
//! denies these settings outright (see [`crate::validation`]):
//! - a `timeoutSeconds` above the probe's period (v1alpha1: the probe then runs at most every
//!   `timeoutSeconds`), or above 30 h; thresholds above 10000; more than 32 probes;
//! - an HTTP path without a leading `/` or with characters that must be percent-encoded, a `host`
//!   that is not a DNS name or IP, a `caCert` that is not PEM, an `expectedStatuses` code outside
//!   100..599; a PostgreSQL `authSecretName` no Secret can have, an empty `query` or `dbName`;
//! - a sub-object of another mode next to the one `mode` names;
//! - Service fields that only apply to another type (`externalTrafficPolicy` on ClusterIP,
//!   `loadBalancerClass`, `healthCheckNodePort`, `allocateLoadBalancerNodePorts`,
//!   `sessionAffinityConfig` without ClientIP), and invalid values of Service fields Deckhouse
//!   does not copy to its child Service but swh does (`sessionAffinity`, `externalIPs`,
//!   `clusterIPs`, `ipFamilies`, `ipFamilyPolicy`, `loadBalancerSourceRanges`,
//!   `trafficDistribution`...): the child Service would be invalid;
//! - changing a set `clusterIP` (v1alpha1: the child keeps its address, as in Deckhouse).
//!
//! Why: these settings never do what they say (the value is ignored, rewritten, or makes the
//! probe or the child Service fail), and a denial at write time is the clearest place to learn
//! it. An update keeps a problem the stored object already had as a warning, so objects written
//! through v1alpha1 can still be edited through v1beta1.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{LoadBalancerStatus, ServicePort, SessionAffinityConfig};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::schema;

pub use crate::v1alpha1::{HttpHeader, HttpMethod, HttpScheme};

/// A Service plus active health checks run against each selected pod; only pods that pass are
/// published in the Service's endpoints.
///
/// Stricter than v1alpha1: settings v1alpha1 accepts with a warning (a timeout above the period,
/// an HTTP path without a leading '/', fields for another Service type, invalid values of Service
/// fields Deckhouse ignores...) are denied here, as they never do what they say. An update may
/// keep such a setting the stored object already has (a warning then).
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "network.deckhouse.io",
    version = "v1beta1",
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
#[x_kube(validation = Rule::new("!has(self.type) || self.type != 'ExternalName'").message("type ExternalName is not supported: a ServiceWithHealthchecks needs endpoints; use ClusterIP, NodePort or LoadBalancer (the Service would be invalid)").field_path(".type"))]
#[x_kube(validation = Rule::new("!has(self.ports) || !has(self.type) || self.type != 'ClusterIP' || self.ports.all(p, !has(p.nodePort) || p.nodePort == 0)").message("nodePort may only be set when type is NodePort or LoadBalancer; remove nodePort or change type (the Service would be invalid)").field_path(".ports"))]
#[x_kube(validation = Rule::new("!has(self.ports) || size(self.ports) <= 1 || self.ports.all(p, has(p.name) && size(p.name) > 0)").message("every port needs a name when there is more than one port; set spec.ports[*].name (the Service would be invalid)").field_path(".ports"))]
pub struct ServiceWithHealthchecksSpec {
    /// The list of ports that are exposed by this service (as in a Service).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::service_ports")]
    pub ports: Option<Vec<ServicePort>>,
    /// Label selector of the pods to probe and publish. An empty or missing selector selects
    /// every pod in the namespace (Deckhouse behaviour).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::selector")]
    pub selector: Option<BTreeMap<String, String>>,
    /// ClusterIP, NodePort or LoadBalancer. Default ClusterIP.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::service_type")]
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
    #[schemars(schema_with = "schema::atomic_string_list_2")]
    pub cluster_ips: Option<Vec<String>>,
    /// IPs for which nodes also accept traffic for this service.
    #[serde(
        default,
        rename = "externalIPs",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(schema_with = "schema::atomic_string_list")]
    pub external_ips: Option<Vec<String>>,
    /// Accepted for compatibility; type ExternalName is rejected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_name: Option<String>,
    /// ClientIP or None.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::session_affinity")]
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
    #[schemars(schema_with = "schema::atomic_string_list")]
    pub load_balancer_source_ranges: Option<Vec<String>>,
    /// Class of the load balancer implementation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer_class: Option<String>,
    /// Cluster or Local.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::traffic_policy")]
    pub external_traffic_policy: Option<String>,
    /// Cluster or Local.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::traffic_policy")]
    pub internal_traffic_policy: Option<String>,
    /// Health check node port for externalTrafficPolicy Local.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check_node_port: Option<i32>,
    /// Publish every selected pod regardless of readiness and probes (disables probing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish_not_ready_addresses: Option<bool>,
    /// IPv4 and/or IPv6.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::ip_families")]
    pub ip_families: Option<Vec<String>>,
    /// SingleStack, PreferDualStack or RequireDualStack.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::ip_family_policy")]
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
#[x_kube(validation = Rule::new("!has(self.probes) || !has(self.periodSeconds) || self.probes.all(p, has(p.periodSeconds) || !has(p.timeoutSeconds) || p.timeoutSeconds <= self.periodSeconds)").message("a probe's timeoutSeconds must not exceed periodSeconds; lower timeoutSeconds or raise periodSeconds (v1beta1 only: v1alpha1 accepts it with a warning)").field_path(".probes"))]
#[x_kube(validation = Rule::new("!has(self.probes) || !has(self.periodSeconds) || self.probes.all(p, has(p.periodSeconds) || !has(p.transitionPeriodSeconds) || p.transitionPeriodSeconds <= self.periodSeconds)").message("a probe's transitionPeriodSeconds must not exceed periodSeconds; lower transitionPeriodSeconds or remove it (it defaults to the period)").field_path(".probes"))]
pub struct Healthcheck {
    /// Seconds after the pod's creation before the first probe. Default 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 108000), extend("default" = 10))]
    pub initial_delay_seconds: Option<i32>,
    /// Seconds between probes of one pod. Default 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 108000), extend("default" = 10))]
    pub period_seconds: Option<i32>,
    /// The probes (list-map keyed by name); all must pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub probes: Option<Vec<Probe>>,
    /// Opt-in fail-open: when fewer than `minPassingPercent` of the probed pods pass, publish all
    /// probed pods (a probe outage must not take the whole Service down).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_open: Option<FailOpen>,
}

/// Fail-open settings.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct FailOpen {
    /// Publish every probed pod when fewer than this percentage (1..100) of them pass.
    #[schemars(range(min = 1, max = 100))]
    pub min_passing_percent: i32,
}

/// Kind of probe.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum ProbeMode {
    /// HTTP(S) request.
    #[default]
    #[serde(rename = "HTTP")]
    Http,
    /// TCP connect and close.
    #[serde(rename = "TCP")]
    Tcp,
    /// SQL query that must return true.
    #[serde(rename = "PostgreSQL")]
    PostgreSql,
    /// gRPC health checking protocol (grpc.health.v1.Health/Check).
    #[serde(rename = "GRPC")]
    Grpc,
}

impl ProbeMode {
    /// The JSON value (`HTTP`, `TCP`, `PostgreSQL`, `GRPC`).
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeMode::Http => "HTTP",
            ProbeMode::Tcp => "TCP",
            ProbeMode::PostgreSql => "PostgreSQL",
            ProbeMode::Grpc => "GRPC",
        }
    }

    /// Lower-case name used in derived probe names, metrics and logs.
    pub fn lower(self) -> &'static str {
        match self {
            ProbeMode::Http => "http",
            ProbeMode::Tcp => "tcp",
            ProbeMode::PostgreSql => "postgresql",
            ProbeMode::Grpc => "grpc",
        }
    }

    /// The name of the sub-object this mode needs.
    pub fn field(self) -> &'static str {
        match self {
            ProbeMode::Http => "http",
            ProbeMode::Tcp => "tcp",
            ProbeMode::PostgreSql => "postgreSQL",
            ProbeMode::Grpc => "grpc",
        }
    }
}

impl std::fmt::Display for ProbeMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One probe. Exactly the sub-object named by `mode` must be set.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.mode != 'HTTP' || has(self.http)").message("mode is HTTP but field http is missing; add http (no probe can run)"))]
#[x_kube(validation = Rule::new("self.mode != 'TCP' || has(self.tcp)").message("mode is TCP but field tcp is missing; add tcp (no probe can run)"))]
#[x_kube(validation = Rule::new("self.mode != 'PostgreSQL' || has(self.postgreSQL)").message("mode is PostgreSQL but field postgreSQL is missing; add postgreSQL (no probe can run)"))]
#[x_kube(validation = Rule::new("self.mode != 'GRPC' || has(self.grpc)").message("mode is GRPC but field grpc is missing; add grpc (no probe can run)"))]
#[x_kube(validation = Rule::new("(has(self.http) ? 1 : 0) + (has(self.tcp) ? 1 : 0) + (has(self.postgreSQL) ? 1 : 0) + (has(self.grpc) ? 1 : 0) <= 1").message("set only the sub-object named by mode (one of http, tcp, postgreSQL, grpc) (v1beta1 only: v1alpha1 accepts it with a warning)"))]
#[x_kube(validation = Rule::new("!has(self.timeoutSeconds) || !has(self.periodSeconds) || self.timeoutSeconds <= self.periodSeconds").message("timeoutSeconds must not exceed periodSeconds (v1beta1 only: v1alpha1 accepts it with a warning)").field_path(".timeoutSeconds"))]
#[x_kube(validation = Rule::new("!has(self.transitionPeriodSeconds) || !has(self.periodSeconds) || self.transitionPeriodSeconds <= self.periodSeconds").message("transitionPeriodSeconds must not exceed periodSeconds; lower transitionPeriodSeconds or remove it (it defaults to the period)").field_path(".transitionPeriodSeconds"))]
pub struct Probe {
    /// Unique name of the probe (a DNS label); status, metrics and the plugin key on it.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,
    /// HTTP, TCP, PostgreSQL or GRPC.
    pub mode: ProbeMode,
    /// Seconds after which the probe times out. Default 1. At most the probe's period (v1alpha1
    /// accepts a longer timeout with a warning: the next probe starts when the previous ends).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 108000), extend("default" = 1))]
    pub timeout_seconds: Option<i32>,
    /// Consecutive successes for a failed probe to pass. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10000), extend("default" = 1))]
    pub success_threshold: Option<i32>,
    /// Consecutive failures for a passing probe to fail. Default 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10000), extend("default" = 3))]
    pub failure_threshold: Option<i32>,
    /// Overrides spec.healthcheck.periodSeconds for this probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 108000))]
    pub period_seconds: Option<i32>,
    /// Overrides spec.healthcheck.initialDelaySeconds for this probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 108000))]
    pub initial_delay_seconds: Option<i32>,
    /// Fast transitions (opt-in, v1beta1 only): once a result disagrees with the probe's state
    /// (a failure of a passing probe, a success of a failing one, any result before a verdict),
    /// the next probes of that pod run every this many seconds until the threshold decides or
    /// the streak breaks; then the period resumes. Thresholds keep their meaning (consecutive
    /// results). Setting it also enables immediate re-probes when a persistent PostgreSQL
    /// session is closed by the server or a connect is refused. 1..the probe's period; default
    /// the period (off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 108000))]
    pub transition_period_seconds: Option<i32>,
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
    /// Settings of a gRPC health probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc: Option<GrpcProbe>,
}

/// HTTP(S) probe settings.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.path) || self.path.startsWith('/')").message("path must start with '/' (v1beta1 only: v1alpha1 accepts it with a warning)").field_path(".path"))]
pub struct HttpProbe {
    /// Pod port to probe: 1..65535 or a container port name (resolved per pod).
    #[schemars(schema_with = "schema::probe_port")]
    pub port: IntOrString,
    /// Request path, starting with '/' and percent-encoded. Default "/". (v1alpha1 accepts
    /// other paths with a warning: a leading '/' is added and the rest percent-encoded.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    pub path: Option<String>,
    /// Host header and TLS server name; the pod IP is still dialed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub host: Option<String>,
    /// HTTP or HTTPS. Default HTTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "HTTP"))]
    pub scheme: Option<HttpScheme>,
    /// GET or HEAD (PUT, POST accepted). Default GET.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "GET"))]
    pub method: Option<HttpMethod>,
    /// Extra request headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub http_headers: Option<Vec<HttpHeader>>,
    /// Do not verify the server certificate. Default false.
    #[serde(
        default,
        rename = "insecureSkipTLSVerify",
        skip_serializing_if = "Option::is_none"
    )]
    pub insecure_skip_tls_verify: Option<bool>,
    /// PEM CA bundle to verify the server certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 65536))]
    pub ca_cert: Option<String>,
    /// Accepted status codes and ranges, e.g. ["200-299", "301"]. Empty or missing: 200-399.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64), inner(length(max = 7)))]
    pub expected_statuses: Option<Vec<String>>,
    /// When set, the response body (first 64 KiB) must contain this string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub body_contains: Option<String>,
}

/// TCP probe settings: connect and close, nothing written.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct TcpProbe {
    /// Pod port to connect to: 1..65535 or a container port name.
    #[schemars(schema_with = "schema::probe_port")]
    pub port: IntOrString,
}

/// How the PostgreSQL probe connects.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum PgConnection {
    /// Keep one connection per pod and reuse it (reconnect on error). Default.
    #[default]
    Persistent,
    /// Open a new connection for every probe (Deckhouse behaviour).
    PerProbe,
}

/// TLS mode of the PostgreSQL probe (the Deckhouse Secret key `tlsMode` uses the same names).
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PgTlsMode {
    /// No TLS.
    Disabled,
    /// TLS without certificate verification (libpq `require`).
    SkipVerification,
    /// Verify the CA only (libpq `verify-ca`).
    #[serde(rename = "VerifyCA")]
    VerifyCa,
    /// Verify CA and host name (libpq `verify-full`).
    VerifyAll,
}

/// TLS settings of the PostgreSQL probe. Override `tlsMode`/`caCert` from the Secret.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PgTls {
    /// Disabled, SkipVerification, VerifyCA or VerifyAll.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<PgTlsMode>,
    /// PEM CA bundle to verify the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 65536))]
    pub ca_cert: Option<String>,
    /// Server name for verification (VerifyAll) and SNI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub server_name: Option<String>,
}

/// PostgreSQL probe settings.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PostgreSqlProbe {
    /// Pod port of the database: 1..65535 or a container port name.
    #[schemars(schema_with = "schema::probe_port")]
    pub port: IntOrString,
    /// Database name; the user name when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub db_name: Option<String>,
    /// Query that must return a boolean true. Default `select 1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096), extend("default" = "select 1"))]
    pub query: Option<String>,
    /// Secret in the same namespace (any type) with keys user, password and optionally
    /// tlsMode, clientCert, clientKey, caCert.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub auth_secret_name: Option<String>,
    /// Persistent (default) or PerProbe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "Persistent"))]
    pub connection: Option<PgConnection>,
    /// TLS settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<PgTls>,
}

/// gRPC health probe settings (grpc.health.v1).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct GrpcProbe {
    /// Pod port of the gRPC server: 1..65535 or a container port name.
    #[schemars(schema_with = "schema::probe_port")]
    pub port: IntOrString,
    /// Service name sent in the HealthCheckRequest; empty means the whole server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub service: Option<String>,
}

/// Observed state.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ServiceWithHealthchecksStatus {
    /// Conditions: Ready, ChildServiceReady, ChildServiceConflict, Adopted, FailOpen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::conditions")]
    pub conditions: Option<Vec<Condition>>,
    /// The generation the status reflects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Number of published (ready) endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published_endpoints: Option<i32>,
    /// Number of selected pods with an endpoint status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_endpoints: Option<i32>,
    /// "published/total", for the Ready printer column (see [`ready_column`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<String>,
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
    /// Load balancer status of the child Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<LoadBalancerStatus>,
    /// Per-pod state (list-map keyed by podName: each node's agent applies only its own pods).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["podName".into()]))]
    pub endpoint_statuses: Option<Vec<EndpointStatus>>,
}

/// The value of `status.ready`: `"published/total"`.
pub fn ready_column(published: i32, total: i32) -> String {
    format!("{published}/{total}")
}

/// State of one selected pod.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct EndpointStatus {
    /// Pod name (list-map key).
    pub pod_name: String,
    /// Node of the pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    /// Pod IP.
    #[serde(default, rename = "podIP", skip_serializing_if = "Option::is_none")]
    pub pod_ip: Option<String>,
    /// The endpoint is published with ready=true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published: Option<bool>,
    /// Pod ready and probes successful (Deckhouse meaning).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<bool>,
    /// All probes pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probes_successful: Option<bool>,
    /// Names of the failing probes (kept for v1alpha1 readers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_probes: Option<Vec<String>>,
    /// Time of the last probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_probe_time: Option<Time>,
    /// Time of the last change of published, ready or a probe state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
    /// Per-probe state (list-map keyed by name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub probes: Option<Vec<ProbeStatus>>,
}

/// State of one probe.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum ProbeState {
    /// Passing (success threshold reached).
    Passing,
    /// Failing (failure threshold reached, or never passed yet).
    Failing,
    /// Not probed yet.
    #[default]
    Unknown,
}

/// State of one probe against one pod.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ProbeStatus {
    /// Probe name (list-map key).
    pub name: String,
    /// Passing, Failing or Unknown.
    pub state: ProbeState,
    /// Since when the probe is in this state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<Time>,
    /// The last error in words, e.g. "503 Service Unavailable" or "secret cred-secret not found".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub last_error: Option<String>,
    /// Consecutive failures so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_failures: Option<i32>,
    /// Consecutive successes so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_successes: Option<i32>,
    /// Time of the last probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_probe_time: Option<Time>,
}
