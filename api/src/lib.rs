//! ServiceWithHealthchecks API: types, defaults, validation, conversion. Pure, no I/O.
//!
//! - [`v1alpha1`]: Deckhouse-compatible version (every field of the Deckhouse CRD, union of its
//!   versions, same JSON names; defaults in the schema).
//! - [`v1beta1`]: our storage version, the one the controller and agent speak. Every field is an
//!   `Option` so conversion is exact; use the helpers (`spec.ports()`, `spec.probes()`,
//!   `spec.service_type()`) and [`defaults`]'s `effective_*` functions for values in force.
//! - [`conversion`]: `convert(Value, desired_api_version)`, `to_v1beta1(Value)`: lossless both
//!   ways (v1beta1-only data rides in the [`annotations::V1BETA1_FIELDS`] annotation on v1alpha1),
//!   except that status details over a size budget are left out so annotations stay within
//!   Kubernetes' 256 KiB limit.
//! - [`validation`]: `check(new, old, version) -> Checked { errors, warnings }` (v1alpha1 denies
//!   only what Deckhouse fails on), `validate` (v1beta1's errors), `warnings(new)`, `check_json`.
//! - [`defaults`]: `apply(&mut spec)` (Deckhouse defaults, same as the schema's).
//! - [`service_to_swh`]: `from_service(&Service, probes)` for `kubectl swh migrate`.
//! - [`crd`]: `crd()` (both versions, storage v1beta1, conversion webhook placeholder) and the
//!   committed YAML in `config/crd/` (regenerate: `SWH_UPDATE_CRD=1 cargo test -p swh-api crd`).
//!
//! Validation layers: the OpenAPI schema (types, enums, ranges, lengths, list-map keys),
//! CEL rules in the CRD (mode/sub-object match, port ranges, named ports, Service type; v1beta1
//! also timeout ≤ period, nodePort/type, port names) and [`validation::check`] in the webhook for
//! the rest (names, addresses, PEM, status ranges, immutability...).
//!
//! v1alpha1 denies only what Deckhouse would fail on too (its schema, its child Service, its
//! agent), every message saying which; what swh finds risky beyond that is an admission warning.
//! The v1alpha1 schema therefore has Deckhouse's constraints only (no enums on Service fields, no
//! length limits), and v1beta1, which has no existing manifests to keep working, stays stricter:
//! see [`validation`] and [`v1beta1`].

pub mod conversion;
pub mod crd;
pub mod defaults;
pub mod service_to_swh;
pub mod v1alpha1;
pub mod v1beta1;
pub mod validation;

mod schema;

/// API group of the CRD.
pub const GROUP: &str = "network.deckhouse.io";
/// Kind of the CRD.
pub const KIND: &str = "ServiceWithHealthchecks";
/// Plural resource name.
pub const PLURAL: &str = "servicewithhealthchecks";
/// `apiVersion` of the Deckhouse-compatible version.
pub const API_VERSION_V1ALPHA1: &str = "network.deckhouse.io/v1alpha1";
/// `apiVersion` of the storage version.
pub const API_VERSION_V1BETA1: &str = "network.deckhouse.io/v1beta1";

/// Annotation keys used by swh.
pub mod annotations {
    /// Set on an SWH (by `kubectl swh migrate`) to allow the controller to adopt a pre-existing
    /// Service of the same name (handover keeping its ClusterIP).
    pub const ADOPT_SERVICE: &str = "network.deckhouse.io/adopt-service";
    /// On v1alpha1 objects only: JSON with the v1beta1-only data, so that conversion is lossless
    /// (spec always; status details only up to a size budget, see [`crate::conversion`]).
    pub const V1BETA1_FIELDS: &str = "network.deckhouse.io/v1beta1-fields";
    /// On v1beta1 objects only (rare): v1alpha1 status details v1beta1 has no field for.
    pub const V1ALPHA1_FIELDS: &str = "network.deckhouse.io/v1alpha1-fields";
    /// kubectl's client-side apply annotation (never copied between objects).
    pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
}

/// Label keys used by swh.
pub mod labels {
    /// Standard EndpointSlice label naming the Service it belongs to.
    pub const SERVICE_NAME: &str = "kubernetes.io/service-name";
    /// Standard EndpointSlice label naming the controller that manages it.
    pub const MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
    /// Value of [`MANAGED_BY`] on the slices the swh agent writes.
    pub const MANAGED_BY_AGENT: &str = "swh-agent.network.deckhouse.io";
}

/// Condition types written into `status.conditions`.
pub mod conditions {
    /// All endpoints are published (agent-aggregated, Deckhouse name).
    pub const READY: &str = "Ready";
    /// The child Service exists and matches the spec (controller, Deckhouse name).
    pub const CHILD_SERVICE_READY: &str = "ChildServiceReady";
    /// A Service of the same name exists and is not ours.
    pub const CHILD_SERVICE_CONFLICT: &str = "ChildServiceConflict";
    /// A pre-existing Service was adopted (handover state in the reason).
    pub const ADOPTED: &str = "Adopted";
    /// Fail-open is active: fewer than the configured share of pods pass, all probed pods are
    /// published.
    pub const FAIL_OPEN: &str = "FailOpen";
}
