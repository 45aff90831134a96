//! Turn a plain Service into a ServiceWithHealthchecks (used by `kubectl swh migrate`).

use k8s_openapi::api::core::v1::Service;

use crate::v1beta1;

/// Why a Service can't become an SWH.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FromServiceError {
    /// The Service has no spec.
    #[error("service {0} has no spec")]
    NoSpec(String),
    /// The Service has no name.
    #[error("service has no metadata.name")]
    NoName,
    /// ExternalName Services have no endpoints to probe.
    #[error(
        "service {0} is of type ExternalName: it has no endpoints to probe, so it can't become a ServiceWithHealthchecks"
    )]
    ExternalName(String),
}

/// Build an SWH from a Service and the probes to add.
pub fn from_service(
    svc: &Service,
    probes: Vec<v1beta1::Probe>,
) -> Result<v1beta1::ServiceWithHealthchecks, FromServiceError> {
    let _ = (svc, probes);
    Err(FromServiceError::NoName)
}
