//! Adoption of a pre-existing Service (the SWH carries `network.deckhouse.io/adopt-service:
//! "true"`, as `kubectl swh migrate` sets it): a handover without a moment of zero endpoints.
//!
//! While the Service still has its selector, the built-in EndpointSlice controller publishes the
//! pods that are ready by the kubelet; the agents publish the pods that pass the probes. Both sets
//! of slices carry the Service's name, so consumers merge them. The controller waits until every
//! address ready in the built-in slices is ready in the agents' slices, then clears the selector
//! and adds its owner reference in one write. The built-in controller ignores selector-less
//! Services and leaves its slices behind, frozen; the reconcile deletes them right after the
//! handover (the agents' slices already carry every endpoint they had ready).

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::child;

/// `endpointslice.kubernetes.io/managed-by` of the built-in EndpointSlice controller.
pub const BUILTIN_SLICE_MANAGER: &str = "endpointslice-controller.k8s.io";

/// What to do with an unowned Service the SWH asks to adopt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Clear the selector and take ownership now.
    HandOver,
    /// Not yet: the agents publish `covered` of the `required` addresses that are ready in the
    /// built-in slices; `missing` lists (some of) the others.
    Wait {
        covered: usize,
        required: usize,
        missing: Vec<String>,
    },
}

/// Addresses of endpoints that are ready (an unset `ready` counts as ready, as the API says).
pub fn ready_addresses<'a>(
    slices: impl IntoIterator<Item = &'a EndpointSlice>,
) -> BTreeSet<String> {
    slices
        .into_iter()
        .flat_map(|s| s.endpoints.iter())
        .filter(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true))
        .flat_map(|e| e.addresses.iter().cloned())
        .collect()
}

/// Decides the handover for `live` (the Service to adopt), given the agents' slices and the
/// built-in controller's slices of that Service.
pub fn decide(live: &Service, agent: &[&EndpointSlice], builtin: &[&EndpointSlice]) -> Decision {
    if !child::has_selector(live) {
        // Nothing publishes for it but whoever writes its endpoints by hand; no traffic to keep.
        return Decision::HandOver;
    }
    let have = ready_addresses(agent.iter().copied());
    let want = ready_addresses(builtin.iter().copied());
    let missing: Vec<String> = want.difference(&have).cloned().collect();
    if missing.is_empty() {
        Decision::HandOver
    } else {
        Decision::Wait {
            covered: want.len() - missing.len(),
            required: want.len(),
            missing: missing.into_iter().take(5).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn slice(eps: &[(&str, Option<bool>)]) -> EndpointSlice {
        let eps: Vec<_> = eps
            .iter()
            .map(|(a, r)| match r {
                Some(r) => json!({"addresses": [a], "conditions": {"ready": r}}),
                None => json!({"addresses": [a]}),
            })
            .collect();
        serde_json::from_value(
            json!({"metadata": {"name": "s"}, "addressType": "IPv4", "endpoints": eps}),
        )
        .unwrap()
    }

    fn svc(selector: bool) -> Service {
        let spec = if selector {
            json!({"selector": {"app": "db"}})
        } else {
            json!({})
        };
        serde_json::from_value(json!({"metadata": {"name": "db"}, "spec": spec})).unwrap()
    }

    #[test]
    fn waits_until_agent_slices_carry_every_ready_endpoint() {
        let builtin = slice(&[
            ("10.0.0.1", Some(true)),
            ("10.0.0.2", None),
            ("10.0.0.3", Some(false)),
        ]);
        let none: Vec<&EndpointSlice> = vec![];
        assert_eq!(
            decide(&svc(true), &none, &[&builtin]),
            Decision::Wait {
                covered: 0,
                required: 2,
                missing: vec!["10.0.0.1".into(), "10.0.0.2".into()]
            }
        );
        let partial = slice(&[("10.0.0.1", Some(true)), ("10.0.0.2", Some(false))]);
        assert_eq!(
            decide(&svc(true), &[&partial], &[&builtin]),
            Decision::Wait {
                covered: 1,
                required: 2,
                missing: vec!["10.0.0.2".into()]
            }
        );
        // across several agent slices (one per node)
        let a = slice(&[("10.0.0.1", Some(true))]);
        let b = slice(&[("10.0.0.2", Some(true)), ("10.0.0.3", Some(false))]);
        assert_eq!(
            decide(&svc(true), &[&a, &b], &[&builtin]),
            Decision::HandOver
        );
    }

    #[test]
    fn hands_over_when_nothing_is_ready_or_no_selector() {
        let builtin = slice(&[("10.0.0.3", Some(false))]);
        assert_eq!(decide(&svc(true), &[], &[&builtin]), Decision::HandOver);
        assert_eq!(decide(&svc(true), &[], &[]), Decision::HandOver);
        let full = slice(&[("10.0.0.1", Some(true))]);
        assert_eq!(decide(&svc(false), &[], &[&full]), Decision::HandOver);
    }

    #[test]
    fn extra_agent_endpoints_do_not_block() {
        let builtin = slice(&[("10.0.0.1", Some(true))]);
        let agent = slice(&[("10.0.0.1", Some(true)), ("10.0.0.9", Some(true))]);
        assert_eq!(
            decide(&svc(true), &[&agent], &[&builtin]),
            Decision::HandOver
        );
    }
}
