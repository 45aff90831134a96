//! The child Service: what it should look like ([`desired_service`]), whose it is
//! ([`classify`]), and whether the live object needs a write ([`needs_apply`]).
//!
//! Everything here is pure. The child is written with server-side apply by one field manager
//! ([`FIELD_MANAGER`]), so fields the controller stops sending (a label removed from the SWH, a
//! dropped `sessionAffinity`) are removed by the API server, while fields other writers set
//! (cloud-provider annotations, allocated node ports) stay.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    FieldsV1, ManagedFieldsEntry, OwnerReference,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::ObjectMeta;
use kube::{Resource, ResourceExt};
use serde_json::Value;
use swh_api::v1beta1::ServiceWithHealthchecks;
use swh_api::{GROUP, KIND, annotations, defaults};

/// The one field manager of everything the controller writes.
pub const FIELD_MANAGER: &str = "swh-controller";

/// SWH annotations never copied to the child: client-side bookkeeping, conversion data and
/// the adoption request (meaningless on a Service), and Helm ownership (the child is ours).
pub const NOT_PROPAGATED_ANNOTATIONS: [&str; 5] = [
    annotations::LAST_APPLIED,
    annotations::V1BETA1_FIELDS,
    annotations::ADOPT_SERVICE,
    "meta.helm.sh/release-name",
    "meta.helm.sh/release-namespace",
];

fn is_lb(type_: &str) -> bool {
    type_ == "LoadBalancer"
}

fn has_node_ports(type_: &str) -> bool {
    type_ == "NodePort" || type_ == "LoadBalancer"
}

/// The controller owner reference to `swh` (`controller: true`, `blockOwnerDeletion: true`).
pub fn owner_reference(swh: &ServiceWithHealthchecks) -> Option<OwnerReference> {
    swh.controller_owner_ref(&()).map(|o| OwnerReference {
        controller: Some(true),
        block_owner_deletion: Some(true),
        ..o
    })
}

/// The child Service `swh` asks for: same name and namespace, no selector, every Service field
/// the user set (fields the API server would reject for the chosen type are left out, so that
/// changing the type works), labels and annotations propagated, owned by the SWH.
///
/// `clusterIP(s)` come from the SWH: they are honoured only at creation; on updates
/// [`preserve_immutable`] replaces them with the live values.
pub fn desired_service(swh: &ServiceWithHealthchecks) -> Service {
    let s = &swh.spec;
    let type_ = match s.service_type() {
        "ExternalName" => defaults::SERVICE_TYPE,
        t => t,
    }
    .to_string();
    let node_ports = has_node_ports(&type_);
    let lb = is_lb(&type_);
    let ports: Vec<ServicePort> = s
        .ports()
        .iter()
        .map(|p| ServicePort {
            name: p.name.clone().filter(|n| !n.is_empty()),
            port: p.port,
            protocol: Some(
                p.protocol
                    .clone()
                    .unwrap_or_else(|| defaults::PROTOCOL.to_string()),
            ),
            target_port: Some(match &p.target_port {
                None | Some(IntOrString::Int(0)) => IntOrString::Int(p.port),
                Some(IntOrString::String(s)) if s.is_empty() => IntOrString::Int(p.port),
                Some(t) => t.clone(),
            }),
            app_protocol: p.app_protocol.clone(),
            node_port: p.node_port.filter(|n| node_ports && *n != 0),
        })
        .collect();
    let etp = s.external_traffic_policy.clone().filter(|_| node_ports);
    let spec = ServiceSpec {
        selector: Some(BTreeMap::new()),
        ports: (!ports.is_empty()).then_some(ports),
        type_: Some(type_.clone()),
        cluster_ip: s.cluster_ip.clone().filter(|ip| !ip.is_empty()),
        cluster_ips: s.cluster_ips.clone().filter(|ips| !ips.is_empty()),
        external_ips: s.external_ips.clone().filter(|v| !v.is_empty()),
        session_affinity: s.session_affinity.clone(),
        session_affinity_config: s
            .session_affinity_config
            .clone()
            .filter(|_| s.session_affinity.as_deref() == Some("ClientIP")),
        load_balancer_ip: s.load_balancer_ip.clone().filter(|ip| !ip.is_empty()),
        load_balancer_source_ranges: s
            .load_balancer_source_ranges
            .clone()
            .filter(|v| lb && !v.is_empty()),
        load_balancer_class: s.load_balancer_class.clone().filter(|_| lb),
        health_check_node_port: s
            .health_check_node_port
            .filter(|p| lb && *p != 0 && etp.as_deref() == Some("Local")),
        external_traffic_policy: etp,
        internal_traffic_policy: s.internal_traffic_policy.clone(),
        publish_not_ready_addresses: s.publish_not_ready_addresses,
        ip_families: s.ip_families.clone().filter(|v| !v.is_empty()),
        ip_family_policy: s.ip_family_policy.clone(),
        allocate_load_balancer_node_ports: s.allocate_load_balancer_node_ports.filter(|_| lb),
        traffic_distribution: s.traffic_distribution.clone(),
        external_name: None,
    };
    let labels = swh.labels().clone();
    let mut annotations = swh.annotations().clone();
    for a in NOT_PROPAGATED_ANNOTATIONS {
        annotations.remove(a);
    }
    Service {
        metadata: ObjectMeta {
            name: swh.metadata.name.clone(),
            namespace: swh.metadata.namespace.clone(),
            labels: (!labels.is_empty()).then_some(labels),
            annotations: (!annotations.is_empty()).then_some(annotations),
            owner_references: owner_reference(swh).map(|o| vec![o]),
            ..Default::default()
        },
        spec: Some(spec),
        status: None,
    }
}

/// Keeps the live object's immutable, allocated values in `desired`: the ClusterIP (and
/// ClusterIPs when the user pins them) is never changed after creation.
pub fn preserve_immutable(desired: &mut Service, live: &Service) {
    let (Some(d), Some(l)) = (desired.spec.as_mut(), live.spec.as_ref()) else {
        return;
    };
    if let Some(ip) = l.cluster_ip.clone().filter(|ip| !ip.is_empty()) {
        d.cluster_ip = Some(ip);
        if d.cluster_ips.is_some() {
            d.cluster_ips = l.cluster_ips.clone();
        }
    }
}

/// The SWH pins a ClusterIP the live child can't take (it is immutable).
pub fn cluster_ip_mismatch(swh: &ServiceWithHealthchecks, live: &Service) -> Option<String> {
    let want = swh.spec.cluster_ip.as_deref().filter(|ip| !ip.is_empty())?;
    let have = live.spec.as_ref()?.cluster_ip.as_deref().unwrap_or("");
    (want != have).then(|| {
        format!(
            "spec.clusterIP is {want} but the Service keeps {have} (a ClusterIP can't change); set spec.clusterIP to {have} or remove it (see status.clusterIP)"
        )
    })
}

/// Who the Service of the SWH's name belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ownership {
    /// No such Service.
    Missing,
    /// Controlled by this SWH (same UID).
    Ours,
    /// Controlled by an earlier SWH of the same name that no longer exists (deleted and
    /// re-created before garbage collection): taken over by replacing the owner reference.
    PreviousIncarnation,
    /// Controlled by something else.
    OwnedByOther(String),
    /// No controller: a user's Service.
    Unowned,
}

/// Classifies `live` relative to `swh` (conflict detection).
pub fn classify(swh: &ServiceWithHealthchecks, live: Option<&Service>) -> Ownership {
    let Some(live) = live else {
        return Ownership::Missing;
    };
    let uid = swh.metadata.uid.as_deref().unwrap_or("");
    let ctrl = live
        .metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true));
    match ctrl {
        None => Ownership::Unowned,
        Some(o) if o.uid == uid && !uid.is_empty() => Ownership::Ours,
        Some(o)
            if o.kind == KIND
                && o.api_version.split('/').next() == Some(GROUP)
                && Some(&o.name) == swh.metadata.name.as_ref() =>
        {
            Ownership::PreviousIncarnation
        }
        Some(o) => Ownership::OwnedByOther(format!("{} {}", o.kind, o.name)),
    }
}

/// Whether the selector of `svc` is set (non-empty).
pub fn has_selector(svc: &Service) -> bool {
    svc.spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .is_some_and(|s| !s.is_empty())
}

/// Whether applying `desired` would change `live`: a value the controller sends differs, or a
/// field the controller owns (per its `Apply` entry in `managedFields`) is no longer sent and
/// must be removed.
pub fn needs_apply(desired: &Service, live: &Service) -> bool {
    let (Ok(d), Ok(l)) = (serde_json::to_value(desired), serde_json::to_value(live)) else {
        return true;
    };
    let d = comparable(&d);
    let l = comparable(&l);
    if !covers(&l, &d, "") {
        return true;
    }
    live.metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|mf| {
            mf.manager.as_deref() == Some(FIELD_MANAGER) && mf.operation.as_deref() == Some("Apply")
        })
        .filter_map(|mf| mf.fields_v1.as_ref())
        .any(|f| owned_missing(&f.0, &d))
}

/// After a create (an `Update` operation), the controller's fields are recorded under an
/// `Update` entry, which server-side apply never prunes. This returns the managed fields with
/// that entry turned into (merged with) the controller's `Apply` entry, for a one-time rewrite;
/// `None` when there is nothing to move. Only fields `desired` sends are kept: the create also
/// recorded the API server's defaults (`sessionAffinity`, ...), which the controller must not
/// own (it would have to prune them with another write).
pub fn managed_fields_as_apply(
    live: &Service,
    desired: &Service,
) -> Option<Vec<ManagedFieldsEntry>> {
    let desired = comparable(&serde_json::to_value(desired).ok()?);
    let entries = live.metadata.managed_fields.as_ref()?;
    let ours = |e: &ManagedFieldsEntry, op: &str| {
        e.manager.as_deref() == Some(FIELD_MANAGER)
            && e.operation.as_deref() == Some(op)
            && e.subresource.as_deref().unwrap_or("").is_empty()
    };
    let mut update = entries.iter().find(|e| ours(e, "Update"))?.clone();
    if let Some(f) = update.fields_v1.as_mut() {
        prune_to(&mut f.0, &desired);
    }
    let mut out: Vec<ManagedFieldsEntry> = entries
        .iter()
        .filter(|e| !ours(e, "Update"))
        .cloned()
        .collect();
    match out.iter_mut().find(|e| ours(e, "Apply")) {
        Some(apply) => {
            let mut merged = apply
                .fields_v1
                .as_ref()
                .map(|f| f.0.clone())
                .unwrap_or(Value::Object(Default::default()));
            if let Some(f) = &update.fields_v1 {
                merge_fields(&mut merged, &f.0);
            }
            apply.fields_v1 = Some(FieldsV1(merged));
        }
        None => out.push(ManagedFieldsEntry {
            operation: Some("Apply".into()),
            ..update
        }),
    }
    Some(out)
}

/// Keeps in the FieldsV1 set `owned` only what `desired` has.
fn prune_to(owned: &mut Value, desired: &Value) {
    let Value::Object(om) = owned else {
        return;
    };
    om.retain(|k, sub| {
        if k == "." {
            true
        } else if let Some(field) = k.strip_prefix("f:") {
            match desired.get(field) {
                None | Some(Value::Null) => false,
                Some(dv) => {
                    prune_to(sub, dv);
                    true
                }
            }
        } else if let Some(key) = k.strip_prefix("k:") {
            let Ok(Value::Object(key)) = serde_json::from_str::<Value>(key) else {
                return false;
            };
            match desired.as_array().and_then(|items| {
                items
                    .iter()
                    .find(|i| key.iter().all(|(kk, kv)| i.get(kk) == Some(kv)))
            }) {
                Some(item) => {
                    prune_to(sub, item);
                    true
                }
                None => false,
            }
        } else if let Some(v) = k.strip_prefix("v:") {
            serde_json::from_str::<Value>(v)
                .is_ok_and(|v| desired.as_array().is_some_and(|a| a.contains(&v)))
        } else {
            false
        }
    });
}

/// Union of two FieldsV1 sets.
fn merge_fields(into: &mut Value, from: &Value) {
    let (Value::Object(a), Value::Object(b)) = (into, from) else {
        return;
    };
    for (k, v) in b {
        match a.get_mut(k) {
            Some(existing) => merge_fields(existing, v),
            None => {
                a.insert(k.clone(), v.clone());
            }
        }
    }
}

/// The parts of a Service the controller writes.
fn comparable(v: &Value) -> Value {
    let mut meta = serde_json::Map::new();
    for k in ["labels", "annotations", "ownerReferences"] {
        if let Some(x) = v.pointer(&format!("/metadata/{k}")) {
            meta.insert(k.into(), x.clone());
        }
    }
    let mut out = serde_json::Map::new();
    out.insert("metadata".into(), Value::Object(meta));
    if let Some(s) = v.get("spec") {
        out.insert("spec".into(), s.clone());
    }
    Value::Object(out)
}

fn is_empty_obj(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::Object(m)) => m.is_empty(),
        _ => false,
    }
}

/// `live` has every value of `desired` (list-maps matched by key, other lists atomic).
fn covers(live: &Value, desired: &Value, path: &str) -> bool {
    if path == "/spec/selector" {
        return match (is_empty_obj(Some(desired)), is_empty_obj(Some(live))) {
            (true, true) => true,
            (false, false) => live == desired,
            _ => false,
        };
    }
    match desired {
        Value::Object(dm) => {
            let Value::Object(lm) = live else {
                return dm.is_empty();
            };
            dm.iter().all(|(k, dv)| {
                let p = format!("{path}/{k}");
                match lm.get(k) {
                    Some(lv) => covers(lv, dv, &p),
                    None => p == "/spec/selector" && is_empty_obj(Some(dv)),
                }
            })
        }
        Value::Array(da) => {
            let keys: &[&str] = match path {
                "/spec/ports" => &["port", "protocol"],
                "/metadata/ownerReferences" => &["uid"],
                _ => return live == desired,
            };
            let Value::Array(la) = live else {
                return false;
            };
            da.iter().all(|d| {
                la.iter()
                    .find(|l| keys.iter().all(|k| l.get(k) == d.get(k)))
                    .is_some_and(|l| covers(l, d, path))
            })
        }
        _ => live == desired,
    }
}

/// A field in the managed-fields set `owned` (FieldsV1) that `desired` no longer has.
fn owned_missing(owned: &Value, desired: &Value) -> bool {
    let Value::Object(om) = owned else {
        return false;
    };
    om.iter().any(|(k, sub)| {
        if k == "." {
            false
        } else if let Some(field) = k.strip_prefix("f:") {
            match desired.get(field) {
                None | Some(Value::Null) => true,
                Some(dv) => owned_missing(sub, dv),
            }
        } else if let Some(key) = k.strip_prefix("k:") {
            let Ok(Value::Object(key)) = serde_json::from_str::<Value>(key) else {
                return false;
            };
            let Value::Array(items) = desired else {
                return true;
            };
            match items
                .iter()
                .find(|i| key.iter().all(|(kk, kv)| i.get(kk) == Some(kv)))
            {
                None => true,
                Some(item) => owned_missing(sub, item),
            }
        } else if let Some(v) = k.strip_prefix("v:") {
            let Ok(v) = serde_json::from_str::<Value>(v) else {
                return false;
            };
            !desired.as_array().is_some_and(|a| a.contains(&v))
        } else {
            false
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn swh(spec: Value) -> ServiceWithHealthchecks {
        let mut s: ServiceWithHealthchecks = serde_json::from_value(json!({
            "apiVersion": "network.deckhouse.io/v1beta1",
            "kind": "ServiceWithHealthchecks",
            "metadata": {"name": "web", "namespace": "ns", "uid": "u-1"},
            "spec": spec,
        }))
        .unwrap();
        s.metadata.generation = Some(1);
        s
    }

    fn svc(v: Value) -> Service {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn desired_service_has_empty_selector_owner_and_defaults() {
        let s = swh(
            json!({"selector": {"app": "web"}, "ports": [{"port": 80}, {"name": "m", "port": 9000, "protocol": "UDP", "targetPort": "metrics"}]}),
        );
        let d = desired_service(&s);
        let v = serde_json::to_value(&d).unwrap();
        assert_eq!(v["apiVersion"], "v1");
        assert_eq!(v["kind"], "Service");
        assert_eq!(v["metadata"]["name"], "web");
        assert_eq!(v["metadata"]["namespace"], "ns");
        assert_eq!(v["spec"]["selector"], json!({}));
        assert_eq!(v["spec"]["type"], "ClusterIP");
        assert_eq!(
            v["spec"]["ports"],
            json!([
                {"port": 80, "protocol": "TCP", "targetPort": 80},
                {"name": "m", "port": 9000, "protocol": "UDP", "targetPort": "metrics"}
            ])
        );
        let o = &v["metadata"]["ownerReferences"][0];
        assert_eq!(o["apiVersion"], "network.deckhouse.io/v1beta1");
        assert_eq!(o["kind"], "ServiceWithHealthchecks");
        assert_eq!(o["name"], "web");
        assert_eq!(o["uid"], "u-1");
        assert_eq!(o["controller"], true);
        assert_eq!(o["blockOwnerDeletion"], true);
        assert!(v["spec"].get("externalName").is_none());
        assert!(v["spec"].get("clusterIP").is_none());
    }

    #[test]
    fn desired_service_copies_every_service_field() {
        let s = swh(json!({
            "type": "LoadBalancer",
            "ports": [{"name": "http", "port": 80, "targetPort": 8080, "nodePort": 30080, "appProtocol": "http"}],
            "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
            "externalIPs": ["192.0.2.1"],
            "sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}},
            "loadBalancerIP": "192.0.2.2", "loadBalancerSourceRanges": ["10.0.0.0/8"],
            "loadBalancerClass": "example.com/lb",
            "externalTrafficPolicy": "Local", "internalTrafficPolicy": "Local",
            "healthCheckNodePort": 31000,
            "publishNotReadyAddresses": true,
            "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
            "allocateLoadBalancerNodePorts": false,
            "trafficDistribution": "PreferClose",
            "externalName": "ignored.example.com",
        }));
        let v = serde_json::to_value(desired_service(&s)).unwrap();
        let spec = &v["spec"];
        assert_eq!(
            spec,
            &json!({
                "selector": {},
                "type": "LoadBalancer",
                "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080, "nodePort": 30080, "appProtocol": "http"}],
                "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
                "externalIPs": ["192.0.2.1"],
                "sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}},
                "loadBalancerIP": "192.0.2.2", "loadBalancerSourceRanges": ["10.0.0.0/8"],
                "loadBalancerClass": "example.com/lb",
                "externalTrafficPolicy": "Local", "internalTrafficPolicy": "Local",
                "healthCheckNodePort": 31000,
                "publishNotReadyAddresses": true,
                "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
                "allocateLoadBalancerNodePorts": false,
                "trafficDistribution": "PreferClose",
            })
        );
    }

    #[test]
    fn type_specific_fields_dropped_for_cluster_ip() {
        let s = swh(json!({
            "type": "ClusterIP",
            "ports": [{"port": 80, "nodePort": 30080}],
            "externalTrafficPolicy": "Local", "loadBalancerClass": "x", "loadBalancerSourceRanges": ["10.0.0.0/8"],
            "allocateLoadBalancerNodePorts": true, "healthCheckNodePort": 31000,
            "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}},
        }));
        let v = serde_json::to_value(desired_service(&s)).unwrap();
        for f in [
            "externalTrafficPolicy",
            "loadBalancerClass",
            "loadBalancerSourceRanges",
            "allocateLoadBalancerNodePorts",
            "healthCheckNodePort",
            "sessionAffinityConfig",
        ] {
            assert!(v["spec"].get(f).is_none(), "{f} must be dropped");
        }
        assert!(v["spec"]["ports"][0].get("nodePort").is_none());
        let ext = swh(json!({"type": "ExternalName", "externalName": "x.example.com"}));
        let v = serde_json::to_value(desired_service(&ext)).unwrap();
        assert_eq!(v["spec"]["type"], "ClusterIP");
        assert!(v["spec"].get("externalName").is_none());
    }

    #[test]
    fn metadata_propagated_without_bookkeeping_annotations() {
        let mut s = swh(json!({"ports": [{"port": 80}]}));
        s.metadata.labels = Some(BTreeMap::from([("team".into(), "a".into())]));
        s.metadata.annotations = Some(BTreeMap::from([
            ("example.com/lb-ip".into(), "1.2.3.4".into()),
            (annotations::LAST_APPLIED.into(), "{}".into()),
            (annotations::V1BETA1_FIELDS.into(), "{}".into()),
            (annotations::ADOPT_SERVICE.into(), "true".into()),
            ("meta.helm.sh/release-name".into(), "r".into()),
        ]));
        let d = desired_service(&s);
        assert_eq!(d.labels().get("team").map(String::as_str), Some("a"));
        assert_eq!(
            d.annotations().keys().collect::<Vec<_>>(),
            vec!["example.com/lb-ip"]
        );
    }

    #[test]
    fn cluster_ip_preserved_from_live() {
        let s = swh(json!({"ports": [{"port": 80}], "clusterIP": "10.96.0.99"}));
        let mut d = desired_service(&s);
        let live = svc(
            json!({"metadata": {"name": "web"}, "spec": {"clusterIP": "10.96.0.7", "clusterIPs": ["10.96.0.7"]}}),
        );
        preserve_immutable(&mut d, &live);
        let spec = d.spec.as_ref().unwrap();
        assert_eq!(spec.cluster_ip.as_deref(), Some("10.96.0.7"));
        assert_eq!(spec.cluster_ips, None);
        assert!(cluster_ip_mismatch(&s, &live).is_some());
        let unpinned = swh(json!({"ports": [{"port": 80}]}));
        assert!(cluster_ip_mismatch(&unpinned, &live).is_none());
    }

    fn owned(uid: &str, kind: &str, name: &str) -> Service {
        svc(json!({"metadata": {"name": "web", "ownerReferences": [
            {"apiVersion": "network.deckhouse.io/v1beta1", "kind": kind, "name": name, "uid": uid, "controller": true}
        ]}}))
    }

    #[test]
    fn conflict_detection() {
        let s = swh(json!({}));
        assert_eq!(classify(&s, None), Ownership::Missing);
        assert_eq!(
            classify(&s, Some(&owned("u-1", "ServiceWithHealthchecks", "web"))),
            Ownership::Ours
        );
        assert_eq!(
            classify(&s, Some(&owned("u-0", "ServiceWithHealthchecks", "web"))),
            Ownership::PreviousIncarnation
        );
        assert!(matches!(
            classify(&s, Some(&owned("u-9", "Gadget", "web"))),
            Ownership::OwnedByOther(_)
        ));
        assert!(matches!(
            classify(&s, Some(&owned("u-9", "ServiceWithHealthchecks", "other"))),
            Ownership::OwnedByOther(_)
        ));
        let plain = svc(json!({"metadata": {"name": "web"}, "spec": {"selector": {"a": "b"}}}));
        assert_eq!(classify(&s, Some(&plain)), Ownership::Unowned);
        assert!(has_selector(&plain));
        // a non-controller owner reference does not make it ours or someone's
        let weak = svc(json!({"metadata": {"name": "web", "ownerReferences": [
            {"apiVersion": "v1", "kind": "ConfigMap", "name": "x", "uid": "u-1"}
        ]}}));
        assert_eq!(classify(&s, Some(&weak)), Ownership::Unowned);
    }

    fn with_managed(mut s: Service, fields: Value) -> Service {
        s.metadata.managed_fields = Some(vec![ManagedFieldsEntry {
            manager: Some(FIELD_MANAGER.into()),
            operation: Some("Apply".into()),
            fields_type: Some("FieldsV1".into()),
            fields_v1: Some(FieldsV1(fields)),
            ..Default::default()
        }]);
        s
    }

    #[test]
    fn needs_apply_detects_changes_and_removals() {
        let mut s = swh(json!({"ports": [{"name": "http", "port": 80}]}));
        s.metadata.labels = Some(BTreeMap::from([("a".into(), "1".into())]));
        let d = desired_service(&s);
        let mut live_v = serde_json::to_value(&d).unwrap();
        // what the API server adds
        live_v["spec"]["clusterIP"] = json!("10.96.0.5");
        live_v["spec"]["sessionAffinity"] = json!("None");
        live_v["spec"].as_object_mut().unwrap().remove("selector");
        live_v["metadata"]["labels"]["other-writer"] = json!("x");
        live_v["metadata"]["annotations"] = json!({"cloud/lb": "y"});
        let fields = json!({
            "f:metadata": {"f:labels": {"f:a": {}}, "f:ownerReferences": {"k:{\"uid\":\"u-1\"}": {".": {}}}},
            "f:spec": {"f:selector": {}, "f:type": {}, "f:ports": {"k:{\"port\":80,\"protocol\":\"TCP\"}": {".": {}, "f:name": {}, "f:port": {}}}}
        });
        let live = with_managed(svc(live_v.clone()), fields.clone());
        let mut d2 = d.clone();
        preserve_immutable(&mut d2, &live);
        assert!(!needs_apply(&d2, &live), "in sync");

        // a label removed from the SWH must be removed from the child
        let mut s_nolabel = s.clone();
        s_nolabel.metadata.labels = None;
        let mut d3 = desired_service(&s_nolabel);
        preserve_immutable(&mut d3, &live);
        assert!(needs_apply(&d3, &live));

        // a changed port
        let s_port = swh(json!({"ports": [{"name": "http", "port": 81}]}));
        let mut s_port = s_port;
        s_port.metadata.labels = s.metadata.labels.clone();
        let d4 = desired_service(&s_port);
        assert!(needs_apply(&d4, &live));

        // someone added a selector
        let mut sel = live_v.clone();
        sel["spec"]["selector"] = json!({"app": "x"});
        let live_sel = with_managed(svc(sel), fields.clone());
        assert!(needs_apply(&d2, &live_sel));

        // an Update entry by our manager (from create) is turned into the Apply entry
        assert_eq!(managed_fields_as_apply(&live, &d2), None);
        let mut live_upd = live.clone();
        if let Some(m) = live_upd.metadata.managed_fields.as_mut() {
            m[0].operation = Some("Update".into());
            m.push(ManagedFieldsEntry {
                manager: Some("kubectl".into()),
                operation: Some("Update".into()),
                ..Default::default()
            });
        }
        let moved = managed_fields_as_apply(&live_upd, &d2).unwrap();
        assert_eq!(moved.len(), 2);
        assert_eq!(moved[0].manager.as_deref(), Some("kubectl"));
        assert_eq!(moved[1].operation.as_deref(), Some("Apply"));
        assert_eq!(moved[1].fields_v1, Some(FieldsV1(fields.clone())));
        // merged into an existing Apply entry
        let mut both = live.clone();
        if let Some(m) = both.metadata.managed_fields.as_mut() {
            let mut upd = m[0].clone();
            upd.operation = Some("Update".into());
            upd.fields_v1 = Some(FieldsV1(json!({"f:spec": {"f:sessionAffinity": {}}})));
            m.push(upd);
        }
        let merged = managed_fields_as_apply(&both, &d2).unwrap();
        assert_eq!(merged.len(), 1);
        let f = &merged[0].fields_v1.as_ref().unwrap().0;
        assert!(f["f:spec"].get("f:type").is_some());
        assert!(
            f["f:spec"].get("f:sessionAffinity").is_none(),
            "server defaults recorded by the create are not kept"
        );
        let after = with_managed(svc(serde_json::to_value(&d2).unwrap()), Value::Null);
        let mut after = after;
        after.metadata.managed_fields = Some(merged);
        assert!(!needs_apply(&d2, &after));

        // a field we owned but no longer send (sessionAffinity) must be removed
        let mut f2 = fields.clone();
        f2["f:spec"]["f:sessionAffinity"] = json!({});
        let live_sa = with_managed(svc(live_v), f2);
        assert!(needs_apply(&d2, &live_sa));
    }
}
