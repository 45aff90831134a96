//! EndpointSlices and Endpoints around an SWH: which are the agents', which are foreign, which
//! are orphans. Pure functions over what the watches hold.

use k8s_openapi::api::core::v1::Endpoints;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::ResourceExt;
use kube::core::PartialObjectMeta;
use swh_api::labels;

use crate::adoption::BUILTIN_SLICE_MANAGER;

/// Label the agent puts on its slices naming the node they describe (slices are per node).
pub const NODE_LABEL: &str = "swh.network.deckhouse.io/node";

/// Longest label value.
const MAX_LABEL_VALUE: usize = 63;

/// Label the Endpoints controller puts on the Endpoints it writes, so they are not mirrored into
/// EndpointSlices (consumers read slices, so those Endpoints don't add traffic).
pub const SKIP_MIRROR_LABEL: &str = "endpointslice.kubernetes.io/skip-mirror";

/// Label selector of the agents' slices.
pub fn agent_selector() -> String {
    format!("{}={}", labels::MANAGED_BY, labels::MANAGED_BY_AGENT)
}

/// Label selector of every other slice that names a service.
pub fn non_agent_selector() -> String {
    format!(
        "{},{}!={}",
        labels::SERVICE_NAME,
        labels::MANAGED_BY,
        labels::MANAGED_BY_AGENT
    )
}

fn label<'a>(r: &'a impl ResourceExt, key: &str) -> Option<&'a str> {
    r.labels().get(key).map(String::as_str)
}

/// The service name a slice belongs to.
pub fn service_name(r: &impl ResourceExt) -> Option<&str> {
    label(r, labels::SERVICE_NAME)
}

/// Whether the agents wrote this slice.
pub fn is_agent(r: &impl ResourceExt) -> bool {
    label(r, labels::MANAGED_BY) == Some(labels::MANAGED_BY_AGENT)
}

/// Whether `r` is in `ns` and labelled with service name `name`.
pub fn belongs_to(r: &impl ResourceExt, ns: &str, name: &str) -> bool {
    r.namespace().as_deref() == Some(ns) && service_name(r) == Some(name)
}

/// Foreign endpoint sources for service `name` in `ns`: slices not written by the agents nor the
/// built-in controller (whose slices are transient here: it deletes them once the Service has no
/// selector), and an Endpoints object that the mirroring controller would turn into slices.
pub fn foreign_endpoints<'a>(
    ns: &str,
    name: &str,
    slices: impl IntoIterator<Item = &'a PartialObjectMeta<EndpointSlice>>,
    endpoints: Option<&PartialObjectMeta<Endpoints>>,
) -> Vec<String> {
    let mut out: Vec<String> = slices
        .into_iter()
        .filter(|s| belongs_to(*s, ns, name))
        .filter(|s| !is_agent(*s) && label(*s, labels::MANAGED_BY) != Some(BUILTIN_SLICE_MANAGER))
        .map(|s| {
            format!(
                "EndpointSlice {} (managed by {})",
                s.name_any(),
                label(s, labels::MANAGED_BY).unwrap_or("nobody")
            )
        })
        .collect();
    out.sort();
    if let Some(ep) = endpoints
        && ep.namespace().as_deref() == Some(ns)
        && ep.name_any() == name
        && label(ep, SKIP_MIRROR_LABEL) != Some("true")
    {
        out.push(format!("Endpoints {name}"));
    }
    out
}

/// Why an agent slice is an orphan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Orphan {
    /// No SWH of its service name exists in its namespace.
    SwhGone,
    /// The node it describes no longer exists.
    NodeGone(String),
}

/// Whether agent slice `s` is an orphan, given what exists.
pub fn orphan_reason(
    s: &EndpointSlice,
    swh_exists: impl Fn(&str, &str) -> bool,
    node_exists: impl Fn(&str) -> bool,
) -> Option<Orphan> {
    if !is_agent(s) {
        return None;
    }
    let ns = s.namespace()?;
    let svc = service_name(s)?;
    if !swh_exists(&ns, svc) {
        return Some(Orphan::SwhGone);
    }
    let value = label(s, NODE_LABEL).filter(|v| !v.is_empty())?;
    // The agent fits names longer than a label value (63) into a prefix and a hash; such a
    // value is not a node name, so the endpoints' nodeName tells the node instead.
    let nodes: Vec<&str> = if value.len() < MAX_LABEL_VALUE {
        vec![value]
    } else {
        let mut v: Vec<&str> = s
            .endpoints
            .iter()
            .filter_map(|e| e.node_name.as_deref())
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    };
    match nodes.first() {
        Some(first) if nodes.iter().all(|n| !node_exists(n)) => {
            Some(Orphan::NodeGone((*first).to_string()))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn meta<K>(ns: &str, name: &str, labels: serde_json::Value) -> PartialObjectMeta<K> {
        serde_json::from_value(json!({
            "apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
            "metadata": {"namespace": ns, "name": name, "labels": labels}
        }))
        .unwrap()
    }

    #[test]
    fn foreign_slices_and_endpoints_are_named() {
        let slices = vec![
            meta::<EndpointSlice>(
                "ns",
                "web-a",
                json!({"kubernetes.io/service-name": "web", "endpointslice.kubernetes.io/managed-by": "swh-agent.network.deckhouse.io"}),
            ),
            meta(
                "ns",
                "web-b",
                json!({"kubernetes.io/service-name": "web", "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}),
            ),
            meta(
                "ns",
                "web-c",
                json!({"kubernetes.io/service-name": "web", "endpointslice.kubernetes.io/managed-by": "someone"}),
            ),
            meta("ns", "web-d", json!({"kubernetes.io/service-name": "web"})),
            meta(
                "other",
                "web-e",
                json!({"kubernetes.io/service-name": "web", "endpointslice.kubernetes.io/managed-by": "someone"}),
            ),
            meta(
                "ns",
                "db-a",
                json!({"kubernetes.io/service-name": "db", "endpointslice.kubernetes.io/managed-by": "someone"}),
            ),
        ];
        let f = foreign_endpoints("ns", "web", &slices, None);
        assert_eq!(
            f,
            vec![
                "EndpointSlice web-c (managed by someone)".to_string(),
                "EndpointSlice web-d (managed by nobody)".to_string()
            ]
        );
        let ep = meta::<Endpoints>("ns", "web", json!({}));
        assert_eq!(
            foreign_endpoints("ns", "web", [], Some(&ep)),
            vec!["Endpoints web".to_string()]
        );
        let mirrored_skip = meta::<Endpoints>(
            "ns",
            "web",
            json!({"endpointslice.kubernetes.io/skip-mirror": "true"}),
        );
        assert!(foreign_endpoints("ns", "web", [], Some(&mirrored_skip)).is_empty());
    }

    fn agent_slice(ns: &str, svc: &str, node: Option<&str>) -> EndpointSlice {
        let mut l = json!({"kubernetes.io/service-name": svc, "endpointslice.kubernetes.io/managed-by": "swh-agent.network.deckhouse.io"});
        if let Some(n) = node {
            l[NODE_LABEL] = json!(n);
        }
        serde_json::from_value(json!({"metadata": {"namespace": ns, "name": "x", "labels": l}, "addressType": "IPv4", "endpoints": []})).unwrap()
    }

    #[test]
    fn orphans_by_swh_and_node() {
        let swh = |ns: &str, n: &str| ns == "ns" && n == "web";
        let node = |n: &str| n == "n1";
        assert_eq!(
            orphan_reason(&agent_slice("ns", "web", Some("n1")), swh, node),
            None
        );
        assert_eq!(
            orphan_reason(&agent_slice("ns", "web", Some("n2")), swh, node),
            Some(Orphan::NodeGone("n2".into()))
        );
        assert_eq!(
            orphan_reason(&agent_slice("ns", "db", Some("n1")), swh, node),
            Some(Orphan::SwhGone)
        );
        assert_eq!(
            orphan_reason(&agent_slice("ns", "web", None), swh, node),
            None
        );
        // a fitted (hashed) label value: the endpoints' nodeName decides
        let long = "n".repeat(70);
        let mut fitted = agent_slice("ns", "web", Some(&format!("{}-0123abcd", "n".repeat(54))));
        assert_eq!(
            orphan_reason(&fitted, swh, node),
            None,
            "no endpoints: unknown node"
        );
        fitted.endpoints = vec![
            serde_json::from_value(json!({"addresses": ["10.0.0.1"], "nodeName": long})).unwrap(),
        ];
        assert_eq!(orphan_reason(&fitted, swh, |n: &str| n == long), None);
        assert_eq!(
            orphan_reason(&fitted, swh, node),
            Some(Orphan::NodeGone(long.clone()))
        );
        let mut foreign = agent_slice("ns", "db", None);
        foreign
            .metadata
            .labels
            .as_mut()
            .unwrap()
            .remove(labels::MANAGED_BY);
        assert_eq!(orphan_reason(&foreign, swh, node), None);
    }
}
