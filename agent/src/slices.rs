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
//! - Annotation [`LAST_CHANGE_TRIGGER_TIME`] (as upstream's endpointslice controller), so that
//!   kube-proxy's `kubeproxy_network_programming_duration_seconds` covers SWH Services: the
//!   time of the event a write publishes. [`build`] leaves it out (desired slices and their
//!   fingerprints stay deterministic) and [`needs_write`] ignores it, so it never causes a
//!   write; [`trigger_time`] gives its value for a write: the previous one while the endpoints
//!   are unchanged, else the event's time. The writer stamps the write's time when the slice
//!   carries none.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::SystemTime;

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

/// Time of the change a slice write publishes (upstream's
/// `discovery.LabelLastChangeTriggerTime`), RFC 3339 with nanoseconds in UTC.
pub const LAST_CHANGE_TRIGGER_TIME: &str = "endpoints.kubernetes.io/last-change-trigger-time";

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
/// Annotations are not compared: in particular [`LAST_CHANGE_TRIGGER_TIME`] never causes a
/// write.
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
    !(labels_ok && owners_ok && same_endpoints(desired, observed))
}

/// Whether two slices publish the same endpoints: address type, ports and endpoints
/// (addresses, conditions, node name, target reference), in any order. What kube-proxy
/// compares before it reprograms a Service.
pub fn same_endpoints(a: &EndpointSlice, b: &EndpointSlice) -> bool {
    a.address_type == b.address_type
        && ports_view(a) == ports_view(b)
        && endpoints_view(a) == endpoints_view(b)
}

/// `t` as Go's `t.UTC().Format(time.RFC3339Nano)`: nanoseconds with trailing zeros dropped
/// (none at all on a whole second), e.g. `2026-11-23T20:18:00.12345Z`. `None` outside the
/// years -9999..=9999.
pub fn rfc3339_nanos(t: SystemTime) -> Option<String> {
    let ts = k8s_openapi::jiff::Timestamp::try_from(t).ok()?;
    let whole = k8s_openapi::jiff::Timestamp::from_second(ts.as_second()).ok()?;
    let mut out = whole.strftime("%Y-%m-%dT%H:%M:%S").to_string();
    let nanos = ts.subsec_nanosecond();
    if nanos > 0 {
        let frac = format!("{nanos:09}");
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
    }
    out.push('Z');
    Some(out)
}

/// The [`LAST_CHANGE_TRIGGER_TIME`] a slice carries.
pub fn trigger_time_of(slice: &EndpointSlice) -> Option<&str> {
    slice
        .metadata
        .annotations
        .as_ref()?
        .get(LAST_CHANGE_TRIGGER_TIME)
        .map(String::as_str)
}

/// The [`LAST_CHANGE_TRIGGER_TIME`] for writing `desired` over `observed` (the slice as
/// stored, if any): `observed`'s own while the endpoints are the same (a write that changes
/// only labels or owners triggers nothing in kube-proxy), else `event`, the time of the probe
/// transition or pod change that caused the write.
pub fn trigger_time(
    desired: &EndpointSlice,
    observed: Option<&EndpointSlice>,
    event: SystemTime,
) -> Option<String> {
    if let Some(o) = observed
        && same_endpoints(desired, o)
        && let Some(t) = trigger_time_of(o)
    {
        return Some(t.to_string());
    }
    rfc3339_nanos(event)
}

/// Sets [`LAST_CHANGE_TRIGGER_TIME`] on `desired` as [`trigger_time`] says (the rest of the
/// annotations untouched). Never changes [`needs_write`]'s answer.
pub fn set_trigger_time(
    desired: &mut EndpointSlice,
    observed: Option<&EndpointSlice>,
    event: SystemTime,
) {
    if let Some(t) = trigger_time(desired, observed, event) {
        desired
            .metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(LAST_CHANGE_TRIGGER_TIME.to_string(), t);
    }
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

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    fn owner() -> Owner {
        Owner {
            namespace: "ns".into(),
            name: "web".into(),
            uid: "swh-uid".into(),
        }
    }

    fn ep(name: &str, ip: &str, ready: bool) -> EndpointInput {
        let ip: IpAddr = ip.parse().unwrap();
        EndpointInput {
            pod_name: name.into(),
            pod_uid: format!("uid-{name}"),
            addresses: BTreeMap::from([(Family::of(ip), ip)]),
            ports: vec![PortEntry {
                name: "http".into(),
                port: 8080,
                protocol: "TCP".into(),
                app_protocol: None,
            }],
            conditions: Conditions {
                ready,
                serving: ready,
                terminating: false,
            },
        }
    }

    fn one(endpoints: &[EndpointInput]) -> EndpointSlice {
        let mut v = build(&owner(), "node-a", endpoints);
        assert_eq!(v.len(), 1);
        v.remove(0)
    }

    fn at(secs: u64, nanos: u32) -> SystemTime {
        UNIX_EPOCH + Duration::new(secs, nanos)
    }

    /// The slice as the API server stores it after a write at `event`.
    fn stored(desired: &EndpointSlice, event: SystemTime) -> EndpointSlice {
        let mut s = desired.clone();
        set_trigger_time(&mut s, None, event);
        s.metadata.resource_version = Some("7".into());
        s
    }

    #[test]
    fn rfc3339_nanos_is_gos_rfc3339nano_in_utc() {
        assert_eq!(
            rfc3339_nanos(at(1_795_000_000, 123_456_789)).as_deref(),
            Some("2026-11-18T11:06:40.123456789Z")
        );
        assert_eq!(
            rfc3339_nanos(at(1_795_000_000, 120_000_000)).as_deref(),
            Some("2026-11-18T11:06:40.12Z")
        );
        assert_eq!(
            rfc3339_nanos(at(1_795_000_000, 0)).as_deref(),
            Some("2026-11-18T11:06:40Z")
        );
        assert_eq!(
            rfc3339_nanos(at(0, 1)).as_deref(),
            Some("1970-01-01T00:00:00.000000001Z")
        );
    }

    #[test]
    fn built_slices_carry_no_trigger_time() {
        let s = one(&[ep("a", "10.0.0.1", true)]);
        assert_eq!(trigger_time_of(&s), None);
        // The first write of a slice: the event's time.
        assert_eq!(
            trigger_time(&s, None, at(1_795_000_000, 5)).as_deref(),
            Some("2026-11-18T11:06:40.000000005Z")
        );
    }

    #[test]
    fn a_changed_endpoint_set_gets_a_new_trigger_time() {
        let t0 = at(1_795_000_000, 100);
        let t1 = at(1_795_000_042, 250_000_000);
        let observed = stored(&one(&[ep("a", "10.0.0.1", true)]), t0);
        // A probe transition (a fails) and a pod change (b appears).
        for endpoints in [
            vec![ep("a", "10.0.0.1", false)],
            vec![ep("a", "10.0.0.1", true), ep("b", "10.0.0.2", true)],
        ] {
            let mut desired = one(&endpoints);
            assert!(needs_write(&desired, &observed));
            set_trigger_time(&mut desired, Some(&observed), t1);
            assert_eq!(
                trigger_time_of(&desired),
                Some("2026-11-18T11:07:22.25Z"),
                "{endpoints:?}"
            );
            assert!(needs_write(&desired, &observed));
        }
    }

    #[test]
    fn an_unchanged_endpoint_set_keeps_the_old_trigger_time_and_is_not_written() {
        let t0 = at(1_795_000_000, 100);
        let t1 = at(1_795_000_042, 0);
        let endpoints = [ep("a", "10.0.0.1", true), ep("b", "10.0.0.2", false)];
        let observed = stored(&one(&endpoints), t0);
        let old = trigger_time_of(&observed).map(str::to_string);
        assert_eq!(old.as_deref(), Some("2026-11-18T11:06:40.0000001Z"));
        // Steady state: rebuilt from the same input, no write, with or without the annotation.
        let mut desired = one(&endpoints);
        assert!(!needs_write(&desired, &observed));
        set_trigger_time(&mut desired, Some(&observed), t1);
        assert_eq!(trigger_time_of(&desired), old.as_deref());
        assert!(!needs_write(&desired, &observed));
        // A write for another reason (our label removed by someone): the endpoints did not
        // change, so the trigger time stays.
        let mut relabelled = observed.clone();
        if let Some(l) = relabelled.metadata.labels.as_mut() {
            l.remove(NODE_LABEL);
        }
        let mut desired = one(&endpoints);
        assert!(needs_write(&desired, &relabelled));
        set_trigger_time(&mut desired, Some(&relabelled), t1);
        assert_eq!(trigger_time_of(&desired), old.as_deref());
        // A different trigger time alone never makes a slice differ.
        let mut other = observed.clone();
        set_trigger_time(&mut other, None, t1);
        assert!(!needs_write(&one(&endpoints), &other));
        assert!(!needs_write(&desired, &other));
    }
}
