//! Lossless conversion between v1alpha1 and v1beta1 (the CRD conversion webhook's logic).
//!
//! Rules:
//! - Only `apiVersion`, `spec`, `status` and `metadata.annotations` change; every other key of
//!   the object is passed through untouched.
//! - v1beta1 → v1alpha1: everything v1alpha1 can say is said in its own fields; the rest
//!   (probe names that differ from the derived `<mode>-<index>`, per-probe period/delay/
//!   transitionPeriodSeconds, non-numeric expected statuses, body match, PostgreSQL
//!   connection/TLS, gRPC probes, failOpen, per-pod probe states...) goes into the annotation
//!   [`V1BETA1_FIELDS`] as JSON. v1alpha1 fields win over the annotation on the way back, so
//!   edits made through v1alpha1 are kept.
//! - A gRPC probe is shown to v1alpha1 readers as a TCP probe on the same port.
//! - v1alpha1 → v1beta1 removes the annotation and restores the data. Probe names are derived as
//!   `<mode>-<index>` (`http-0`, `postgresql-1`) when the annotation has none.
//! - The few v1alpha1 status details v1beta1 has no field for (`healthcheckCondition` that is
//!   empty or has `activeNodeName`) ride in [`V1ALPHA1_FIELDS`] on v1beta1.
//!
//! - Values the v1beta1 schema defaults and v1alpha1 has no field for (PostgreSQL
//!   `connection: Persistent`) count as unset: a v1alpha1 object stored as v1beta1 and read back
//!   as v1alpha1 carries no annotation. An explicitly absent `connection` is recorded instead.
//!
//! Round trips are exact in both directions (property-tested) for objects of normal size.
//! Timestamps are written in the API server's form (RFC 3339, whole seconds, `Z`), as every
//! Kubernetes client writes them.
//!
//! ## Size limits
//!
//! The API server rejects a converted object whose annotations total more than
//! [`MAX_ANNOTATIONS_BYTES`] (sum of key and value lengths), and one such object breaks the
//! v1alpha1 list/watch of every SWH. So conversion to v1alpha1 never produces more:
//! - spec data (written by users) always goes into the annotation, so user edits round-trip;
//! - status data (written by the controller and agents, which speak v1beta1) goes in only while
//!   its part of the annotation is at most [`STATUS_ANNOTATION_BUDGET`] bytes and all annotations
//!   fit. Otherwise (e.g. 2,000 pods with per-probe states) it is left out and the annotation
//!   says `"statusOmitted": true`: v1alpha1 readers then see the v1alpha1 status only (per-pod
//!   ready/failedProbes/times, counts, conditions), and a status written back through v1alpha1
//!   loses per-pod `podIP`, `published` and `probes` (the agents rewrite them on their next
//!   report). v1beta1 readers, which read the stored object, are never affected;
//! - if the spec data alone would not fit (pathological: e.g. several 64 KiB PostgreSQL CA
//!   certificates, or huge other annotations), conversion fails with
//!   [`ConversionError::AnnotationsTooLarge`] instead of returning invalid metadata.
//!   [`crate::validation::validate`] rejects such specs at admission
//!   ([`SPEC_ANNOTATION_BUDGET`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::annotations::V1BETA1_FIELDS;
use crate::{API_VERSION_V1ALPHA1, API_VERSION_V1BETA1, v1alpha1 as a, v1beta1 as b};

/// On v1beta1 objects only: v1alpha1 status details v1beta1 has no field for.
pub const V1ALPHA1_FIELDS: &str = crate::annotations::V1ALPHA1_FIELDS;

/// Kubernetes' limit on the total size of `metadata.annotations` (sum of `len(key) + len(value)`).
pub const MAX_ANNOTATIONS_BYTES: usize = 256 * 1024;

/// At most this many bytes of status details go into [`V1BETA1_FIELDS`] on v1alpha1; larger
/// status details are left out (see the module docs).
pub const STATUS_ANNOTATION_BUDGET: usize = 32 * 1024;

/// Largest spec part of [`V1BETA1_FIELDS`] that validation admits, leaving room for the
/// object's other annotations (kubectl's last-applied-configuration holds the spec again).
pub const SPEC_ANNOTATION_BUDGET: usize = 96 * 1024;

/// Why an object could not be converted.
#[derive(Debug, thiserror::Error)]
pub enum ConversionError {
    /// The apiVersion is not one we serve.
    #[error(
        "unsupported apiVersion {0:?}: expected network.deckhouse.io/v1alpha1 or network.deckhouse.io/v1beta1"
    )]
    UnknownApiVersion(String),
    /// The object is not a JSON object or lacks apiVersion.
    #[error("object has no apiVersion (or is not a JSON object)")]
    MissingApiVersion,
    /// The object does not match the schema of its version.
    #[error("invalid {api_version} object: {source}")]
    Invalid {
        /// The object's apiVersion.
        api_version: String,
        /// The decoding error.
        #[source]
        source: serde_json::Error,
    },
    /// The v1beta1-only spec data does not fit in the annotation limit on v1alpha1.
    #[error(
        "cannot convert {object} to v1alpha1: its v1beta1-only spec settings need {needed} bytes \
         in the {annotation} annotation, and with the object's other annotations ({others} bytes) \
         that exceeds Kubernetes' limit of {limit} bytes for metadata.annotations; read it as \
         v1beta1, or shrink those settings (e.g. put PostgreSQL CA certificates in the auth \
         Secret's caCert key) or the other annotations",
        annotation = V1BETA1_FIELDS,
        limit = MAX_ANNOTATIONS_BYTES
    )]
    AnnotationsTooLarge {
        /// `namespace/name` of the object.
        object: String,
        /// Bytes the annotation (key and value) needs without status details.
        needed: usize,
        /// Bytes of the object's other annotations.
        others: usize,
    },
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Version {
    Alpha,
    Beta,
}

fn version_of(api_version: &str) -> Result<Version, ConversionError> {
    match api_version {
        API_VERSION_V1ALPHA1 => Ok(Version::Alpha),
        API_VERSION_V1BETA1 => Ok(Version::Beta),
        other => Err(ConversionError::UnknownApiVersion(other.to_string())),
    }
}

/// Convert a whole object (apiVersion/kind/metadata/spec/status) to `desired_api_version`.
/// Same-version conversion is the identity.
pub fn convert(obj: Value, desired_api_version: &str) -> Result<Value, ConversionError> {
    let to = version_of(desired_api_version)?;
    let Value::Object(mut obj) = obj else {
        return Err(ConversionError::MissingApiVersion);
    };
    let from = match obj.get("apiVersion").and_then(Value::as_str) {
        Some(v) => version_of(v)?,
        None => return Err(ConversionError::MissingApiVersion),
    };
    if from == to {
        return Ok(Value::Object(obj));
    }
    match to {
        Version::Beta => alpha_to_beta(&mut obj)?,
        Version::Alpha => beta_to_alpha(&mut obj)?,
    }
    obj.insert(
        "apiVersion".into(),
        Value::String(desired_api_version.into()),
    );
    Ok(Value::Object(obj))
}

/// Decode an object of either served version as v1beta1.
pub fn to_v1beta1(obj: Value) -> Result<b::ServiceWithHealthchecks, ConversionError> {
    let v = convert(obj, API_VERSION_V1BETA1)?;
    decode(API_VERSION_V1BETA1, v)
}

/// Decode an object of either served version as v1alpha1.
pub fn to_v1alpha1(obj: Value) -> Result<a::ServiceWithHealthchecks, ConversionError> {
    let v = convert(obj, API_VERSION_V1ALPHA1)?;
    decode(API_VERSION_V1ALPHA1, v)
}

fn decode<T: serde::de::DeserializeOwned>(
    api_version: &str,
    v: Value,
) -> Result<T, ConversionError> {
    serde_json::from_value(v).map_err(|source| ConversionError::Invalid {
        api_version: api_version.to_string(),
        source,
    })
}

fn encode<T: Serialize>(api_version: &str, t: &T) -> Result<Value, ConversionError> {
    serde_json::to_value(t).map_err(|source| ConversionError::Invalid {
        api_version: api_version.to_string(),
        source,
    })
}

// ---------------------------------------------------------------------------------------------
// Annotation payloads
// ---------------------------------------------------------------------------------------------

/// The JSON in [`V1BETA1_FIELDS`].
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
struct BetaFields {
    /// Per-probe extras, by index in `spec.healthcheck.probes`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    probes: Vec<ProbeExtra>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fail_open: Option<b::FailOpen>,
    /// Fallback: the whole v1beta1 spec, used only when the field-wise mapping can't express it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    spec: Option<Box<b::ServiceWithHealthchecksSpec>>,
    /// Per-pod extras, by podName.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    endpoints: Vec<EndpointExtra>,
    /// Fallback: the whole v1beta1 status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    status: Option<Box<b::ServiceWithHealthchecksStatus>>,
    /// Status details (`endpoints`/`status`) were too large and left out.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    status_omitted: bool,
}

impl BetaFields {
    fn is_empty(&self) -> bool {
        self == &BetaFields::default()
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
struct ProbeExtra {
    index: usize,
    /// The v1beta1 mode; the extra applies only while the v1alpha1 probe has the matching mode.
    mode: b::ProbeMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    period_seconds: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    initial_delay_seconds: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    transition_period_seconds: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expected_statuses: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    body_contains: Option<String>,
    /// A non-default PostgreSQL connection (absent means the default, `Persistent`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    connection: Option<b::PgConnection>,
    /// The v1beta1 PostgreSQL probe had no `connection` at all (rare: the API server defaults it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    connection_unset: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tls: Option<b::PgTls>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    grpc_service: Option<String>,
    /// Fallback: the whole v1beta1 probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    full: Option<Box<b::Probe>>,
}

impl ProbeExtra {
    fn is_trivial(&self) -> bool {
        let bare = ProbeExtra {
            index: self.index,
            mode: self.mode,
            ..Default::default()
        };
        self == &bare && self.mode != b::ProbeMode::Grpc
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
struct EndpointExtra {
    pod_name: String,
    #[serde(default, rename = "podIP", skip_serializing_if = "Option::is_none")]
    pod_ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    published: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    probes: Option<Vec<b::ProbeStatus>>,
}

/// The JSON in [`V1ALPHA1_FIELDS`].
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
struct AlphaFields {
    /// The original v1alpha1 `status.healthcheckCondition`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    healthcheck_condition: Option<a::HealthcheckCondition>,
}

// ---------------------------------------------------------------------------------------------
// Object level
// ---------------------------------------------------------------------------------------------

fn annotations_mut(obj: &mut Map<String, Value>) -> Option<&mut Map<String, Value>> {
    obj.get_mut("metadata")?
        .as_object_mut()?
        .get_mut("annotations")?
        .as_object_mut()
}

/// Removes annotation `key` if it parses as `T`; an unparsable value is left in place and ignored.
fn take_annotation<T: serde::de::DeserializeOwned>(
    obj: &mut Map<String, Value>,
    key: &str,
) -> Option<T> {
    let anns = annotations_mut(obj)?;
    let parsed = serde_json::from_str::<T>(anns.get(key)?.as_str()?).ok()?;
    anns.remove(key);
    if anns.is_empty()
        && let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut)
    {
        meta.remove("annotations");
    }
    Some(parsed)
}

fn put_annotation(obj: &mut Map<String, Value>, key: &str, text: String) {
    let meta = obj
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !meta.is_object() {
        *meta = Value::Object(Map::new());
    }
    let Some(meta) = meta.as_object_mut() else {
        return;
    };
    let anns = meta
        .entry("annotations")
        .or_insert_with(|| Value::Object(Map::new()));
    if !anns.is_object() {
        *anns = Value::Object(Map::new());
    }
    if let Some(anns) = anns.as_object_mut() {
        anns.insert(key.to_string(), Value::String(text));
    }
}

fn alpha_to_beta(obj: &mut Map<String, Value>) -> Result<(), ConversionError> {
    let extras: BetaFields = take_annotation(obj, V1BETA1_FIELDS).unwrap_or_default();
    if let Some(spec) = obj.get("spec").cloned() {
        let spec: a::ServiceWithHealthchecksSpec = decode(API_VERSION_V1ALPHA1, spec)?;
        let beta = spec_up(&spec, &extras);
        obj.insert("spec".into(), encode(API_VERSION_V1BETA1, &beta)?);
    }
    if let Some(status) = obj.get("status").cloned() {
        let status: a::ServiceWithHealthchecksStatus = decode(API_VERSION_V1ALPHA1, status)?;
        let beta = status_up(&status, &extras);
        // v1alpha1 details v1beta1 can't hold.
        let back = status_down(&beta).0;
        if back.healthcheck_condition != status.healthcheck_condition {
            let fields = AlphaFields {
                healthcheck_condition: status.healthcheck_condition.clone(),
            };
            // Status detail: left out rather than overflow the annotation limit.
            if let Ok(text) = serde_json::to_string(&fields)
                && other_annotations_bytes(obj, V1ALPHA1_FIELDS)
                    + V1ALPHA1_FIELDS.len()
                    + text.len()
                    <= MAX_ANNOTATIONS_BYTES
            {
                put_annotation(obj, V1ALPHA1_FIELDS, text);
            }
        }
        obj.insert("status".into(), encode(API_VERSION_V1BETA1, &beta)?);
    }
    Ok(())
}

fn beta_to_alpha(obj: &mut Map<String, Value>) -> Result<(), ConversionError> {
    let alpha_fields: AlphaFields = take_annotation(obj, V1ALPHA1_FIELDS).unwrap_or_default();
    let mut extras = BetaFields::default();
    if let Some(spec) = obj.get("spec").cloned() {
        let spec: b::ServiceWithHealthchecksSpec = decode(API_VERSION_V1BETA1, spec)?;
        let alpha = spec_down(&spec, &mut extras);
        obj.insert("spec".into(), encode(API_VERSION_V1ALPHA1, &alpha)?);
    }
    if let Some(status) = obj.get("status").cloned() {
        let status: b::ServiceWithHealthchecksStatus = decode(API_VERSION_V1BETA1, status)?;
        let (mut alpha, endpoints) = status_down(&status);
        extras.endpoints = endpoints;
        if status_up(&alpha, &extras) != status {
            extras.endpoints.clear();
            extras.status = Some(Box::new(status.clone()));
        }
        // Restore the v1alpha1-only healthcheckCondition details when the counts still agree.
        if let Some(orig) = alpha_fields.healthcheck_condition {
            let counts = |h: &Option<a::HealthcheckCondition>| {
                h.as_ref()
                    .map(|h| (h.observed_generation, h.endpoints, h.ready_endpoints))
                    .unwrap_or_default()
            };
            if counts(&alpha.healthcheck_condition) == counts(&Some(orig.clone())) {
                alpha.healthcheck_condition = Some(orig);
            }
        }
        obj.insert("status".into(), encode(API_VERSION_V1ALPHA1, &alpha)?);
    }
    put_beta_fields(obj, extras)
}

/// Writes [`V1BETA1_FIELDS`] within the size limits (see the module docs): spec data always,
/// status details only while they fit the budget.
fn put_beta_fields(
    obj: &mut Map<String, Value>,
    mut extras: BetaFields,
) -> Result<(), ConversionError> {
    if extras.is_empty() {
        return Ok(());
    }
    let others = other_annotations_bytes(obj, V1BETA1_FIELDS);
    let fits = |text: &str| others + V1BETA1_FIELDS.len() + text.len() <= MAX_ANNOTATIONS_BYTES;
    let has_status = !extras.endpoints.is_empty() || extras.status.is_some();
    if has_status {
        // Bounded: a huge status is not serialized just to be dropped.
        let status_small = json_len_at_most(
            &(&extras.endpoints, &extras.status),
            STATUS_ANNOTATION_BUDGET,
        )
        .is_some();
        if status_small {
            let text = to_json(&extras)?;
            if fits(&text) {
                put_annotation(obj, V1BETA1_FIELDS, text);
                return Ok(());
            }
        }
        // Status is written by the controller and agents (v1beta1 speakers), so its details
        // are the first to go: v1alpha1 readers of a huge status lose per-probe detail.
        extras.endpoints.clear();
        extras.status = None;
        extras.status_omitted = true;
    }
    let text = to_json(&extras)?;
    if fits(&text) {
        put_annotation(obj, V1BETA1_FIELDS, text);
        return Ok(());
    }
    let spec_only = BetaFields {
        status_omitted: false,
        ..extras
    };
    if spec_only.is_empty() {
        // Only the "statusOmitted" marker, and even that does not fit: leave it out.
        return Ok(());
    }
    let needed = V1BETA1_FIELDS.len() + to_json(&spec_only)?.len();
    Err(ConversionError::AnnotationsTooLarge {
        object: object_name(obj),
        needed,
        others,
    })
}

fn to_json<T: Serialize>(t: &T) -> Result<String, ConversionError> {
    serde_json::to_string(t).map_err(|source| ConversionError::Invalid {
        api_version: API_VERSION_V1ALPHA1.to_string(),
        source,
    })
}

/// `namespace/name` (or `name`) of an object, for messages.
fn object_name(obj: &Map<String, Value>) -> String {
    let get = |k: &str| {
        obj.get("metadata")
            .and_then(|m| m.get(k))
            .and_then(Value::as_str)
            .unwrap_or("")
    };
    match (get("namespace"), get("name")) {
        ("", "") => "the object".to_string(),
        ("", n) => n.to_string(),
        (ns, n) => format!("{ns}/{n}"),
    }
}

/// Size of the object's annotations other than `except`, as the API server counts it.
fn other_annotations_bytes(obj: &Map<String, Value>, except: &str) -> usize {
    let Some(anns) = obj
        .get("metadata")
        .and_then(|m| m.get("annotations"))
        .and_then(Value::as_object)
    else {
        return 0;
    };
    anns.iter()
        .filter(|(k, _)| k.as_str() != except)
        .map(|(k, v)| {
            k.len()
                + match v {
                    Value::String(s) => s.len(),
                    other => other.to_string().len(),
                }
        })
        .sum()
}

/// The length of `t` as JSON if it is at most `limit` bytes; stops writing past the limit.
fn json_len_at_most<T: Serialize>(t: &T, limit: usize) -> Option<usize> {
    struct Counter {
        len: usize,
        limit: usize,
    }
    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.len += buf.len();
            if self.len > self.limit {
                return Err(std::io::Error::other("over the limit"));
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut c = Counter { len: 0, limit };
    serde_json::to_writer(&mut c, t).ok()?;
    Some(c.len)
}

/// Size in bytes of the [`V1BETA1_FIELDS`] annotation value that carries the v1beta1-only data
/// of `spec` on v1alpha1 (0 when none is needed). Validation keeps it within
/// [`SPEC_ANNOTATION_BUDGET`].
pub fn spec_annotation_bytes(spec: &b::ServiceWithHealthchecksSpec) -> usize {
    let mut extras = BetaFields::default();
    spec_down(spec, &mut extras);
    if extras.is_empty() {
        return 0;
    }
    serde_json::to_string(&extras).map_or(0, |t| t.len())
}

// ---------------------------------------------------------------------------------------------
// Spec
// ---------------------------------------------------------------------------------------------

/// Derived name of the v1alpha1 probe at `index`: `<mode-lower>-<index>`.
pub fn derived_probe_name(mode: b::ProbeMode, index: usize) -> String {
    format!("{}-{index}", mode.lower())
}

fn alpha_mode(m: b::ProbeMode) -> a::ProbeMode {
    match m {
        b::ProbeMode::Http => a::ProbeMode::Http,
        b::ProbeMode::Tcp | b::ProbeMode::Grpc => a::ProbeMode::Tcp,
        b::ProbeMode::PostgreSql => a::ProbeMode::PostgreSql,
    }
}

fn beta_mode(m: a::ProbeMode) -> b::ProbeMode {
    match m {
        a::ProbeMode::Http => b::ProbeMode::Http,
        a::ProbeMode::Tcp => b::ProbeMode::Tcp,
        a::ProbeMode::PostgreSql => b::ProbeMode::PostgreSql,
    }
}

/// `"301"` ↔ 301 only for canonical integers, so the mapping is exact.
fn status_as_code(s: &str) -> Option<i32> {
    s.parse::<i32>().ok().filter(|n| n.to_string() == s)
}

fn spec_up(s: &a::ServiceWithHealthchecksSpec, x: &BetaFields) -> b::ServiceWithHealthchecksSpec {
    if let Some(full) = &x.spec {
        return (**full).clone();
    }
    b::ServiceWithHealthchecksSpec {
        ports: s.ports.clone(),
        selector: s.selector.clone(),
        type_: s.type_.clone(),
        cluster_ip: s.cluster_ip.clone(),
        cluster_ips: s.cluster_ips.clone(),
        external_ips: s.external_ips.clone(),
        external_name: s.external_name.clone(),
        session_affinity: s.session_affinity.clone(),
        session_affinity_config: s.session_affinity_config.clone(),
        load_balancer_ip: s.load_balancer_ip.clone(),
        load_balancer_source_ranges: s.load_balancer_source_ranges.clone(),
        load_balancer_class: s.load_balancer_class.clone(),
        external_traffic_policy: s.external_traffic_policy.clone(),
        internal_traffic_policy: s.internal_traffic_policy.clone(),
        health_check_node_port: s.health_check_node_port,
        publish_not_ready_addresses: s.publish_not_ready_addresses,
        ip_families: s.ip_families.clone(),
        ip_family_policy: s.ip_family_policy.clone(),
        allocate_load_balancer_node_ports: s.allocate_load_balancer_node_ports,
        traffic_distribution: s.traffic_distribution.clone(),
        healthcheck: healthcheck_up(s.healthcheck.as_ref(), x),
    }
}

fn healthcheck_up(h: Option<&a::Healthcheck>, x: &BetaFields) -> Option<b::Healthcheck> {
    let fail_open = x.fail_open.clone();
    let Some(h) = h else {
        // failOpen without a healthcheck section.
        return fail_open.map(|f| b::Healthcheck {
            fail_open: Some(f),
            ..Default::default()
        });
    };
    let by_index: BTreeMap<usize, &ProbeExtra> = x.probes.iter().map(|p| (p.index, p)).collect();
    Some(b::Healthcheck {
        initial_delay_seconds: h.initial_delay_seconds,
        period_seconds: h.period_seconds,
        probes: h.probes.as_ref().map(|ps| {
            ps.iter()
                .enumerate()
                .map(|(i, p)| {
                    let extra = by_index
                        .get(&i)
                        .copied()
                        .filter(|e| alpha_mode(e.mode) == p.mode);
                    probe_up(i, p, extra)
                })
                .collect()
        }),
        fail_open,
    })
}

fn probe_up(index: usize, p: &a::Probe, x: Option<&ProbeExtra>) -> b::Probe {
    if let Some(full) = x.and_then(|x| x.full.as_ref()) {
        return (**full).clone();
    }
    let mode = x.map(|x| x.mode).unwrap_or_else(|| beta_mode(p.mode));
    let name = x
        .and_then(|x| x.name.clone())
        .unwrap_or_else(|| derived_probe_name(mode, index));
    let http = p.http.as_ref().map(|h| b::HttpProbe {
        port: h.target_port.clone(),
        path: h.path.clone(),
        host: h.host.clone(),
        scheme: h.scheme,
        method: h.method,
        http_headers: h.http_headers.clone(),
        insecure_skip_tls_verify: h.insecure_skip_tls_verify,
        ca_cert: h.ca_cert.clone(),
        expected_statuses: match &h.code {
            Some(codes) => Some(codes.iter().map(i32::to_string).collect()),
            None => x.and_then(|x| x.expected_statuses.clone()),
        },
        body_contains: x.and_then(|x| x.body_contains.clone()),
    });
    let postgre_sql = p.postgre_sql.as_ref().map(|pg| b::PostgreSqlProbe {
        port: pg.target_port.clone(),
        db_name: pg.db_name.clone(),
        query: pg.query.clone(),
        auth_secret_name: pg.auth_secret_name.clone(),
        connection: match x {
            Some(x) if x.connection_unset => None,
            _ => Some(x.and_then(|x| x.connection).unwrap_or_default()),
        },
        tls: x.and_then(|x| x.tls.clone()),
    });
    let (tcp, grpc) = match (mode, &p.tcp) {
        (b::ProbeMode::Grpc, t) => (
            None,
            t.as_ref().map(|t| b::GrpcProbe {
                port: t.target_port.clone(),
                service: x.and_then(|x| x.grpc_service.clone()),
            }),
        ),
        (_, t) => (
            t.as_ref().map(|t| b::TcpProbe {
                port: t.target_port.clone(),
            }),
            None,
        ),
    };
    b::Probe {
        name,
        mode,
        timeout_seconds: p.timeout_seconds,
        success_threshold: p.success_threshold,
        failure_threshold: p.failure_threshold,
        period_seconds: x.and_then(|x| x.period_seconds),
        initial_delay_seconds: x.and_then(|x| x.initial_delay_seconds),
        transition_period_seconds: x.and_then(|x| x.transition_period_seconds),
        http,
        tcp,
        postgre_sql,
        grpc,
    }
}

fn spec_down(
    s: &b::ServiceWithHealthchecksSpec,
    x: &mut BetaFields,
) -> a::ServiceWithHealthchecksSpec {
    let mut probes = Vec::new();
    let healthcheck = s.healthcheck.as_ref().and_then(|h| {
        x.fail_open = h.fail_open.clone();
        let only_fail_open = h.initial_delay_seconds.is_none()
            && h.period_seconds.is_none()
            && h.probes.is_none()
            && h.fail_open.is_some();
        if only_fail_open {
            return None;
        }
        Some(a::Healthcheck {
            initial_delay_seconds: h.initial_delay_seconds,
            period_seconds: h.period_seconds,
            probes: h.probes.as_ref().map(|ps| {
                ps.iter()
                    .enumerate()
                    .map(|(i, p)| {
                        let (ap, extra) = probe_down(i, p);
                        if let Some(e) = extra {
                            probes.push(e);
                        }
                        ap
                    })
                    .collect()
            }),
        })
    });
    x.probes = probes;
    let alpha = a::ServiceWithHealthchecksSpec {
        ports: s.ports.clone(),
        selector: s.selector.clone(),
        type_: s.type_.clone(),
        cluster_ip: s.cluster_ip.clone(),
        cluster_ips: s.cluster_ips.clone(),
        external_ips: s.external_ips.clone(),
        external_name: s.external_name.clone(),
        session_affinity: s.session_affinity.clone(),
        session_affinity_config: s.session_affinity_config.clone(),
        load_balancer_ip: s.load_balancer_ip.clone(),
        load_balancer_source_ranges: s.load_balancer_source_ranges.clone(),
        load_balancer_class: s.load_balancer_class.clone(),
        external_traffic_policy: s.external_traffic_policy.clone(),
        internal_traffic_policy: s.internal_traffic_policy.clone(),
        health_check_node_port: s.health_check_node_port,
        publish_not_ready_addresses: s.publish_not_ready_addresses,
        ip_families: s.ip_families.clone(),
        ip_family_policy: s.ip_family_policy.clone(),
        allocate_load_balancer_node_ports: s.allocate_load_balancer_node_ports,
        traffic_distribution: s.traffic_distribution.clone(),
        healthcheck,
    };
    if &spec_up(&alpha, x) != s {
        x.probes.clear();
        x.fail_open = None;
        x.spec = Some(Box::new(s.clone()));
    }
    alpha
}

fn probe_down(index: usize, p: &b::Probe) -> (a::Probe, Option<ProbeExtra>) {
    let mut x = ProbeExtra {
        index,
        mode: p.mode,
        name: Some(p.name.clone()).filter(|n| *n != derived_probe_name(p.mode, index)),
        period_seconds: p.period_seconds,
        initial_delay_seconds: p.initial_delay_seconds,
        transition_period_seconds: p.transition_period_seconds,
        ..Default::default()
    };
    let http = p.http.as_ref().map(|h| {
        let code = match &h.expected_statuses {
            Some(st) => {
                let codes: Option<Vec<i32>> = st.iter().map(|s| status_as_code(s)).collect();
                if codes.is_none() {
                    x.expected_statuses = Some(st.clone());
                }
                codes
            }
            None => None,
        };
        x.body_contains = h.body_contains.clone();
        a::HttpProbe {
            target_port: h.port.clone(),
            path: h.path.clone(),
            host: h.host.clone(),
            scheme: h.scheme,
            method: h.method,
            http_headers: h.http_headers.clone(),
            insecure_skip_tls_verify: h.insecure_skip_tls_verify,
            ca_cert: h.ca_cert.clone(),
            code,
        }
    });
    let postgre_sql = p.postgre_sql.as_ref().map(|pg| {
        // The schema default counts as unset, so that a v1alpha1 probe stored as v1beta1 (and
        // defaulted there) reads back without an annotation.
        x.connection = pg.connection.filter(|c| *c != b::PgConnection::default());
        x.connection_unset = pg.connection.is_none();
        x.tls = pg.tls.clone();
        a::PostgreSqlProbe {
            target_port: pg.port.clone(),
            db_name: pg.db_name.clone(),
            query: pg.query.clone(),
            auth_secret_name: pg.auth_secret_name.clone(),
        }
    });
    let tcp = match (p.mode, &p.grpc) {
        (b::ProbeMode::Grpc, Some(g)) => {
            x.grpc_service = g.service.clone();
            Some(a::TcpProbe {
                target_port: g.port.clone(),
            })
        }
        _ => p.tcp.as_ref().map(|t| a::TcpProbe {
            target_port: t.port.clone(),
        }),
    };
    let ap = a::Probe {
        mode: alpha_mode(p.mode),
        timeout_seconds: p.timeout_seconds,
        success_threshold: p.success_threshold,
        failure_threshold: p.failure_threshold,
        http,
        tcp,
        postgre_sql,
    };
    if probe_up(index, &ap, Some(&x)) != *p {
        x = ProbeExtra {
            index,
            mode: p.mode,
            full: Some(Box::new(p.clone())),
            ..Default::default()
        };
    }
    let extra = Some(x).filter(|x| !x.is_trivial());
    (ap, extra)
}

// ---------------------------------------------------------------------------------------------
// Status
// ---------------------------------------------------------------------------------------------

fn status_up(
    s: &a::ServiceWithHealthchecksStatus,
    x: &BetaFields,
) -> b::ServiceWithHealthchecksStatus {
    if let Some(full) = &x.status {
        return (**full).clone();
    }
    let by_pod: BTreeMap<&str, &EndpointExtra> = x
        .endpoints
        .iter()
        .map(|e| (e.pod_name.as_str(), e))
        .collect();
    let hc = s.healthcheck_condition.as_ref();
    b::ServiceWithHealthchecksStatus {
        conditions: s.conditions.clone(),
        observed_generation: hc.and_then(|h| h.observed_generation),
        published_endpoints: hc.and_then(|h| h.ready_endpoints),
        total_endpoints: hc.and_then(|h| h.endpoints),
        ready: s.ready.clone(),
        cluster_ip: s.cluster_ip.clone(),
        cluster_ips: s.cluster_ips.clone(),
        load_balancer: s.load_balancer.clone(),
        endpoint_statuses: s.endpoint_statuses.as_ref().map(|es| {
            es.iter()
                .map(|e| {
                    let x = by_pod.get(e.pod_name.as_str());
                    b::EndpointStatus {
                        pod_name: e.pod_name.clone(),
                        node_name: e.node_name.clone(),
                        pod_ip: x.and_then(|x| x.pod_ip.clone()),
                        published: x.and_then(|x| x.published),
                        ready: e.ready,
                        probes_successful: e.probes_successful,
                        failed_probes: e.failed_probes.clone(),
                        last_probe_time: e.last_probe_time.clone(),
                        last_transition_time: e.last_transition_time.clone(),
                        probes: x.and_then(|x| x.probes.clone()),
                    }
                })
                .collect()
        }),
    }
}

fn status_down(
    s: &b::ServiceWithHealthchecksStatus,
) -> (a::ServiceWithHealthchecksStatus, Vec<EndpointExtra>) {
    let mut extras = Vec::new();
    let has_counts = s.observed_generation.is_some()
        || s.total_endpoints.is_some()
        || s.published_endpoints.is_some();
    let alpha = a::ServiceWithHealthchecksStatus {
        load_balancer: s.load_balancer.clone(),
        cluster_ip: s.cluster_ip.clone(),
        cluster_ips: s.cluster_ips.clone(),
        conditions: s.conditions.clone(),
        healthcheck_condition: has_counts.then_some(a::HealthcheckCondition {
            observed_generation: s.observed_generation,
            endpoints: s.total_endpoints,
            ready_endpoints: s.published_endpoints,
            active_node_name: None,
        }),
        ready: s.ready.clone(),
        endpoint_statuses: s.endpoint_statuses.as_ref().map(|es| {
            es.iter()
                .map(|e| {
                    let x = EndpointExtra {
                        pod_name: e.pod_name.clone(),
                        pod_ip: e.pod_ip.clone(),
                        published: e.published,
                        probes: e.probes.clone(),
                    };
                    if x.pod_ip.is_some() || x.published.is_some() || x.probes.is_some() {
                        extras.push(x);
                    }
                    a::EndpointStatus {
                        pod_name: e.pod_name.clone(),
                        node_name: e.node_name.clone(),
                        ready: e.ready,
                        probes_successful: e.probes_successful,
                        failed_probes: e.failed_probes.clone(),
                        last_probe_time: e.last_probe_time.clone(),
                        last_transition_time: e.last_transition_time.clone(),
                    }
                })
                .collect()
        }),
    };
    (alpha, extras)
}
