//! EndpointSlices of one SWH on one node: a pure builder and the "does it need a write" diff.
//!
//! - One group per (address family, resolved port set), as upstream: pods whose named
//!   `targetPort` resolves to different numbers go into different slices. At most
//!   [`MAX_ENDPOINTS`] endpoints a slice (larger groups are split).
//! - Names are deterministic: `<swh>-<node>-ipv4`, then `-<hash>` for every port set but the
//!   first (in sort order), then `-<n>` for the n-th extra chunk. Longer than 63 characters:
//!   a prefix and a hash of the full name.
//! - Labels: `kubernetes.io/service-name=<swh>`,
//!   `endpointslice.kubernetes.io/managed-by=swh-agent.network.deckhouse.io`,
//!   `swh.network.deckhouse.io/node=<node>`. Owner: the SWH.
//! - [`needs_write`] compares only what the agent sets, so fields added by others never cause
//!   a write loop and a slice that is as desired is never written again.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{ObjectReference, ServicePort};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use swh_api::labels;

use crate::targets::{Family, PodInfo};

/// Label naming the node whose agent wrote a slice.
pub const NODE_LABEL: &str = "swh.network.deckhouse.io/node";
/// Field manager of slice writes.
pub const FIELD_MANAGER: &str = "swh-agent";
/// API validation limit, and ours.
pub const MAX_ENDPOINTS: usize = 1000;
/// Longest slice name we produce (a DNS label's length).
pub const MAX_NAME: usize = 63;

/// FNV-1a, 64 bit: a stable hash for names (not for security).
pub fn fnv64(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn short_hash(data: &str) -> String {
    format!("{:08x}", fnv64(data.as_bytes()) & 0xffff_ffff)
}

/// Shortens `name` to [`MAX_NAME`] characters when needed: a prefix, `-`, and a hash of the
/// whole name (so distinct long names stay distinct).
pub fn fit_name(name: &str) -> String {
    if name.len() <= MAX_NAME {
        return name.to_string();
    }
    let hash = short_hash(name);
    let keep = MAX_NAME - hash.len() - 1;
    let prefix: String = name.chars().take(keep).collect();
    let prefix = prefix.trim_end_matches(['-', '.']);
    format!("{prefix}-{hash}")
}

/// Value of [`NODE_LABEL`] for a node: its name, or a fitted form when longer than a label
/// value may be (63 characters).
pub fn node_label_value(node: &str) -> String {
    fit_name(node)
}

/// Label selector of this node's slices.
pub fn own_slices_selector(node: &str) -> String {
    format!(
        "{}={},{}={}",
        labels::MANAGED_BY,
        labels::MANAGED_BY_AGENT,
        NODE_LABEL,
        node_label_value(node)
    )
}

/// One port of a slice.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortEntry {
    /// The Service port's name (`""` for a single unnamed port).
    pub name: String,
    pub port: i32,
    pub protocol: String,
    pub app_protocol: Option<String>,
}

impl PortEntry {
    fn to_api(&self) -> EndpointPort {
        EndpointPort {
            name: Some(self.name.clone()),
            port: Some(self.port),
            protocol: Some(self.protocol.clone()),
            app_protocol: self.app_protocol.clone(),
        }
    }

    fn from_api(p: &EndpointPort) -> PortEntry {
        PortEntry {
            name: p.name.clone().unwrap_or_default(),
            port: p.port.unwrap_or(0),
            protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
            app_protocol: p.app_protocol.clone(),
        }
    }
}

/// The Service ports resolved for one pod: a number `targetPort` as is, a named one against the
/// pod's container ports. A name the pod lacks drops that port for this pod (as upstream).
pub fn resolve_service_ports(ports: &[ServicePort], pod: &PodInfo) -> Vec<PortEntry> {
    let mut out: Vec<PortEntry> = ports
        .iter()
        .filter_map(|sp| {
            let protocol = sp.protocol.clone().unwrap_or_else(|| "TCP".into());
            let target = sp.target_port.clone().unwrap_or(IntOrString::Int(sp.port));
            let target = match target {
                IntOrString::Int(0) => IntOrString::Int(sp.port),
                t => t,
            };
            let port = pod.resolve_port(&target, &protocol).ok()?;
            Some(PortEntry {
                name: sp.name.clone().unwrap_or_default(),
                port: i32::from(port),
                protocol,
                app_protocol: sp.app_protocol.clone(),
            })
        })
        .collect();
    out.sort();
    out
}

/// Conditions of one endpoint.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Conditions {
    pub ready: bool,
    pub serving: bool,
    pub terminating: bool,
}

/// One pod to publish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointInput {
    pub pod_name: String,
    pub pod_uid: String,
    /// The pod's address in each family it is published in.
    pub addresses: BTreeMap<Family, IpAddr>,
    /// Its resolved port set.
    pub ports: Vec<PortEntry>,
    pub conditions: Conditions,
}

/// The SWH the slices belong to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

impl Owner {
    pub fn owner_reference(&self) -> OwnerReference {
        OwnerReference {
            api_version: swh_api::API_VERSION_V1BETA1.to_string(),
            kind: swh_api::KIND.to_string(),
            name: self.name.clone(),
            uid: self.uid.clone(),
            controller: Some(true),
            block_owner_deletion: None,
        }
    }
}

/// Labels the agent puts on every slice of `swh` on `node`.
pub fn slice_labels(swh: &str, node: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (labels::SERVICE_NAME.to_string(), swh.to_string()),
        (
            labels::MANAGED_BY.to_string(),
            labels::MANAGED_BY_AGENT.to_string(),
        ),
        (NODE_LABEL.to_string(), node_label_value(node)),
    ])
}

fn port_key(ports: &[PortEntry]) -> String {
    ports
        .iter()
        .map(|p| {
            format!(
                "{}/{}/{}/{}",
                p.name,
                p.port,
                p.protocol,
                p.app_protocol.as_deref().unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Name of a slice: `<swh>-<node>-<family>[-<porthash>][-<chunk>]`, fitted to 63 characters.
pub fn slice_name(
    swh: &str,
    node: &str,
    family: Family,
    ports: Option<&[PortEntry]>,
    chunk: usize,
) -> String {
    let mut name = format!("{swh}-{node}-{}", family.suffix());
    if let Some(ports) = ports {
        name.push('-');
        name.push_str(&short_hash(&port_key(ports)));
    }
    if chunk > 0 {
        name.push_str(&format!("-{chunk}"));
    }
    fit_name(&name)
}

/// Builds the slices for `endpoints` of `owner` on `node`. Deterministic: the same input gives
/// the same slices, names and order.
pub fn build(owner: &Owner, node: &str, endpoints: &[EndpointInput]) -> Vec<EndpointSlice> {
    // (family, port set) -> endpoints
    let mut groups: BTreeMap<(Family, Vec<PortEntry>), Vec<Endpoint>> = BTreeMap::new();
    let mut sorted: Vec<&EndpointInput> = endpoints.iter().collect();
    sorted.sort_by(|a, b| (&a.pod_name, &a.pod_uid).cmp(&(&b.pod_name, &b.pod_uid)));
    for e in sorted {
        for (family, ip) in &e.addresses {
            groups
                .entry((*family, e.ports.clone()))
                .or_default()
                .push(Endpoint {
                    addresses: vec![ip.to_string()],
                    conditions: Some(EndpointConditions {
                        ready: Some(e.conditions.ready),
                        serving: Some(e.conditions.serving),
                        terminating: Some(e.conditions.terminating),
                    }),
                    node_name: Some(node.to_string()),
                    target_ref: Some(ObjectReference {
                        kind: Some("Pod".into()),
                        namespace: Some(owner.namespace.clone()),
                        name: Some(e.pod_name.clone()),
                        uid: Some(e.pod_uid.clone()).filter(|u| !u.is_empty()),
                        ..Default::default()
                    }),
                    ..Default::default()
                });
        }
    }
    let mut out = Vec::new();
    let mut first_of_family: BTreeSet<Family> = BTreeSet::new();
    for ((family, ports), eps) in groups {
        let plain = first_of_family.insert(family);
        for (chunk, part) in eps.chunks(MAX_ENDPOINTS).enumerate() {
            let name = slice_name(
                &owner.name,
                node,
                family,
                (!plain).then_some(ports.as_slice()),
                chunk,
            );
            out.push(EndpointSlice {
                metadata: ObjectMeta {
                    name: Some(name),
                    namespace: Some(owner.namespace.clone()),
                    labels: Some(slice_labels(&owner.name, node)),
                    owner_references: Some(vec![owner.owner_reference()]),
                    ..Default::default()
                },
                address_type: family.address_type().to_string(),
                endpoints: part.to_vec(),
                ports: Some(ports.iter().map(PortEntry::to_api).collect()),
            });
        }
    }
    out
}

/// (kind, namespace, name, uid) of a target reference.
type TargetView = (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// (SWH name, pod UID, address) of a published endpoint.
pub type PublishedKey = (String, String, String);

/// What of an endpoint the agent sets (and compares).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct EndpointView {
    addresses: Vec<String>,
    ready: Option<bool>,
    serving: Option<bool>,
    terminating: Option<bool>,
    node_name: Option<String>,
    target: Option<TargetView>,
}

fn endpoint_view(e: &Endpoint) -> EndpointView {
    let c = e.conditions.clone().unwrap_or_default();
    EndpointView {
        addresses: e.addresses.clone(),
        ready: c.ready,
        serving: c.serving,
        terminating: c.terminating,
        node_name: e.node_name.clone(),
        target: e.target_ref.as_ref().map(|t| {
            (
                t.kind.clone(),
                t.namespace.clone(),
                t.name.clone(),
                t.uid.clone(),
            )
        }),
    }
}

fn endpoints_view(s: &EndpointSlice) -> Vec<EndpointView> {
    let mut v: Vec<EndpointView> = s.endpoints.iter().map(endpoint_view).collect();
    v.sort();
    v
}

fn ports_view(s: &EndpointSlice) -> Vec<PortEntry> {
    let mut v: Vec<PortEntry> = s.ports.iter().flatten().map(PortEntry::from_api).collect();
    v.sort();
    v
}

/// Whether `observed` differs from `desired` in anything the agent sets: labels (ours must be
/// present with our values), our owner reference, address type, ports, endpoints (addresses,
/// conditions, node name, target reference). Order of ports and endpoints does not matter.
pub fn needs_write(desired: &EndpointSlice, observed: &EndpointSlice) -> bool {
    let labels_ok = desired.metadata.labels.iter().flatten().all(|(k, v)| {
        observed
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(k))
            .is_some_and(|o| o == v)
    });
    let owners_ok = desired.metadata.owner_references.iter().flatten().all(|d| {
        observed
            .metadata
            .owner_references
            .iter()
            .flatten()
            .any(|o| o == d)
    });
    !(labels_ok
        && owners_ok
        && desired.address_type == observed.address_type
        && ports_view(desired) == ports_view(observed)
        && endpoints_view(desired) == endpoints_view(observed))
}

/// Per endpoint of a slice this agent wrote: (SWH name, pod UID, address) → (ready, serving).
/// Used on start-up to keep published conditions until fresh probe results decide.
pub fn published_conditions(slice: &EndpointSlice) -> Vec<(PublishedKey, (bool, bool))> {
    let Some(swh) = slice
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(labels::SERVICE_NAME))
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in &slice.endpoints {
        let Some(uid) = e.target_ref.as_ref().and_then(|t| t.uid.clone()) else {
            continue;
        };
        let c = e.conditions.clone().unwrap_or_default();
        // nil means true for consumers (kube-proxy).
        let ready = c.ready.unwrap_or(true);
        let serving = c.serving.unwrap_or(ready);
        for a in &e.addresses {
            out.push(((swh.clone(), uid.clone(), a.clone()), (ready, serving)));
        }
    }
    out
}
