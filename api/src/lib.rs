//! ServiceWithHealthchecks API: types, defaults, validation, conversion. Pure, no I/O.
//!
//! - [`v1alpha1`]: Deckhouse-compatible version (every field of the Deckhouse CRD).
//! - [`v1beta1`]: our storage version, the one the controller and agent speak.
//! - [`conversion`]: lossless conversion between them (v1beta1-only data rides in the
//!   [`annotations::V1BETA1_FIELDS`] annotation on v1alpha1).
//! - [`validation`], [`defaults`], [`service_to_swh`], [`crd`].

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
    /// On v1alpha1 objects only: JSON with the v1beta1-only data, so that conversion is lossless.
    pub const V1BETA1_FIELDS: &str = "network.deckhouse.io/v1beta1-fields";
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
