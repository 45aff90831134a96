//! Turn a plain Service into a ServiceWithHealthchecks (used by `kubectl swh migrate`).
//!
//! Every ServiceSpec field is kept (the selector becomes `spec.selector`, the ClusterIP is kept
//! so the handover does not change it), as are name, namespace, labels and annotations (minus
//! kubectl's last-applied configuration). The result carries the adopt annotation so the
//! controller hands the existing Service over instead of reporting a conflict.

use k8s_openapi::api::core::v1::Service;
use kube::api::ObjectMeta;

use crate::annotations::{ADOPT_SERVICE, LAST_APPLIED};
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

/// Annotations never copied from the Service (kubectl and helm bookkeeping).
const DROPPED_ANNOTATIONS: [&str; 1] = [LAST_APPLIED];

/// Build an SWH from a Service and the probes to add. The result has annotation
/// [`ADOPT_SERVICE`] = `"true"`.
pub fn from_service(
    svc: &Service,
    probes: Vec<v1beta1::Probe>,
) -> Result<v1beta1::ServiceWithHealthchecks, FromServiceError> {
    let name = svc
        .metadata
        .name
        .clone()
        .filter(|n| !n.is_empty())
        .ok_or(FromServiceError::NoName)?;
    let s = svc
        .spec
        .as_ref()
        .ok_or_else(|| FromServiceError::NoSpec(name.clone()))?;
    if s.type_.as_deref() == Some("ExternalName") {
        return Err(FromServiceError::ExternalName(name));
    }
    let mut annotations = svc.metadata.annotations.clone().unwrap_or_default();
    for a in DROPPED_ANNOTATIONS {
        annotations.remove(a);
    }
    annotations.insert(ADOPT_SERVICE.to_string(), "true".to_string());
    let metadata = ObjectMeta {
        name: Some(name.clone()),
        namespace: svc.metadata.namespace.clone(),
        labels: svc.metadata.labels.clone().filter(|l| !l.is_empty()),
        annotations: Some(annotations),
        ..Default::default()
    };
    let spec = v1beta1::ServiceWithHealthchecksSpec {
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
        healthcheck: (!probes.is_empty()).then(|| v1beta1::Healthcheck {
            probes: Some(probes),
            ..Default::default()
        }),
    };
    let mut swh = v1beta1::ServiceWithHealthchecks::new(&name, spec);
    swh.metadata = metadata;
    Ok(swh)
}
