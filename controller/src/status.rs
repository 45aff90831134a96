//! The aggregate status the controller owns: `Ready`, `ChildServiceReady` (and, when they apply,
//! `ChildServiceConflict`, `Adopted`, `ForeignEndpoints`), the endpoint counts, `ready`,
//! `clusterIP(s)`, `loadBalancer` and `observedGeneration`, and `FailOpen` for SWHs that opt in
//! ([`fail_open`]). Agents own `endpointStatuses`; the controller never sends those, so
//! server-side apply leaves them alone.
//!
//! **Fail-open is decided here, across all nodes**, from the per-pod entries every agent writes
//! (`probesSuccessful` and the probe states: the probes' verdict, which fail-open publishing
//! never changes, so the decision cannot feed back on itself). The agents only follow the
//! `FailOpen` condition. One decision for the whole SWH, not one per node: a node with a single
//! failing pod must not publish it while the other nodes' pods pass, and every node publishes
//! the same way (like a load balancer's panic threshold over its whole backend set). Pods whose
//! probes are all undecided (new, or an agent restarted) count neither way. Known limit: beyond
//! `status_writer::MAX_ENTRIES` pods of one SWH on one node, passing pods can lack an entry and
//! are then not counted.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use swh_api::conditions;
use swh_api::v1beta1::{ServiceWithHealthchecks, ServiceWithHealthchecksStatus, ready_column};

/// Condition type for EndpointSlices or Endpoints of the same service name that neither the
/// agents nor (during adoption) the built-in controller wrote: consumers would merge them.
pub const FOREIGN_ENDPOINTS: &str = "ForeignEndpoints";

/// Condition types the controller writes (and removes when they no longer apply).
pub const CONTROLLER_CONDITIONS: [&str; 6] = [
    conditions::READY,
    conditions::CHILD_SERVICE_READY,
    conditions::CHILD_SERVICE_CONFLICT,
    conditions::ADOPTED,
    FOREIGN_ENDPOINTS,
    conditions::FAIL_OPEN,
];

/// The fail-open verdict of an SWH that sets `healthcheck.failOpen`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailOpen {
    /// Probed pods whose probes all pass.
    pub passing: usize,
    /// Probed pods with a verdict (some probe failing, or all decided).
    pub decided: usize,
    /// `failOpen.minPassingPercent`.
    pub min_percent: i32,
}

impl FailOpen {
    /// Fewer than `min_percent` of the decided pods pass (never with no decided pod).
    pub fn active(&self) -> bool {
        let min = usize::try_from(self.min_percent.clamp(0, 100)).unwrap_or(0);
        self.decided > 0 && self.passing.saturating_mul(100) < min.saturating_mul(self.decided)
    }

    /// Passing share in whole percent (rounded down).
    pub fn percent(&self) -> usize {
        (self.passing * 100).checked_div(self.decided).unwrap_or(0)
    }
}

/// The fail-open verdict of `swh` from all nodes' entries; `None` unless it sets `failOpen`.
pub fn fail_open(swh: &ServiceWithHealthchecks) -> Option<FailOpen> {
    use swh_api::v1beta1::ProbeState;
    let min_percent = swh
        .spec
        .healthcheck
        .as_ref()?
        .fail_open
        .as_ref()?
        .min_passing_percent;
    let mut out = FailOpen {
        passing: 0,
        decided: 0,
        min_percent,
    };
    let entries = swh
        .status
        .as_ref()
        .and_then(|s| s.endpoint_statuses.as_ref());
    for e in entries.into_iter().flatten() {
        let Some(probes) = e.probes.as_ref().filter(|p| !p.is_empty()) else {
            continue; // not probed (no probes, or publishNotReadyAddresses)
        };
        let failing = probes.iter().any(|p| p.state == ProbeState::Failing);
        let unknown = probes.iter().any(|p| p.state == ProbeState::Unknown);
        if unknown && !failing {
            continue;
        }
        out.decided += 1;
        if !failing && e.probes_successful != Some(false) {
            out.passing += 1;
        }
    }
    Some(out)
}

/// Published (ready) and total endpoints of the agents' slices, one per pod (a dual-stack pod
/// appears in two slices and counts once; it is published if ready in any of them).
pub fn endpoint_counts<'a>(slices: impl IntoIterator<Item = &'a EndpointSlice>) -> (i32, i32) {
    let mut pods: BTreeMap<String, bool> = BTreeMap::new();
    for s in slices {
        for e in &s.endpoints {
            let key = match &e.target_ref {
                Some(r) if r.name.is_some() => format!(
                    "{}/{}/{}",
                    r.kind.as_deref().unwrap_or("Pod"),
                    r.namespace.as_deref().unwrap_or(""),
                    r.name.as_deref().unwrap_or("")
                ),
                _ => match e.addresses.first() {
                    Some(a) => format!("addr/{a}"),
                    None => continue,
                },
            };
            let ready = e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
            *pods.entry(key).or_insert(false) |= ready;
        }
    }
    let total = i32::try_from(pods.len()).unwrap_or(i32::MAX);
    let published = i32::try_from(pods.values().filter(|r| **r).count()).unwrap_or(i32::MAX);
    (published, total)
}

/// One condition the controller wants, before timestamps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cond {
    pub type_: &'static str,
    pub status: bool,
    pub reason: String,
    pub message: String,
}

impl Cond {
    pub fn new(
        type_: &'static str,
        status: bool,
        reason: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Cond {
            type_,
            status,
            reason: reason.into(),
            message: message.into(),
        }
    }
}

/// The state of the child Service as the reconcile left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChildState {
    /// In sync.
    Ready,
    /// The SWH pins a ClusterIP the Service can't take.
    ClusterIpImmutable(String),
    /// A Service of that name is not ours.
    Conflict(String),
    /// Adoption: waiting for the agents' slices.
    Adopting {
        covered: usize,
        required: usize,
        missing: Vec<String>,
    },
    /// Writing the Service failed.
    Failed(String),
}

/// Everything the status is computed from.
#[derive(Debug, Clone)]
pub struct Observed<'a> {
    pub child: ChildState,
    /// The Service of that name when it is ours or being adopted (ClusterIP, load balancer).
    pub service: Option<&'a Service>,
    /// The SWH asks for adoption and the Service was handed over (it is ours now).
    pub adopted: bool,
    pub published: i32,
    pub total: i32,
    /// Names of foreign EndpointSlices / Endpoints (empty: none).
    pub foreign: Vec<String>,
    /// The fail-open verdict, when the SWH opts in ([`fail_open`]).
    pub fail_open: Option<FailOpen>,
}

/// The conditions the controller wants for `o`.
pub fn desired_conditions(o: &Observed<'_>, name: &str) -> Vec<Cond> {
    use conditions::*;
    let mut out = Vec::new();
    let child = match &o.child {
        ChildState::Ready => Cond::new(
            CHILD_SERVICE_READY,
            true,
            "ChildServiceWasCreated",
            format!("Service {name} is in sync"),
        ),
        ChildState::ClusterIpImmutable(m) => Cond::new(
            CHILD_SERVICE_READY,
            false,
            "ChildServiceClusterIPImmutable",
            m.clone(),
        ),
        ChildState::Conflict(m) => Cond::new(
            CHILD_SERVICE_READY,
            false,
            "ChildServiceConflict",
            m.clone(),
        ),
        ChildState::Adopting { .. } => Cond::new(
            CHILD_SERVICE_READY,
            false,
            "AdoptionInProgress",
            format!("adopting the existing Service {name}; see condition Adopted"),
        ),
        ChildState::Failed(m) => Cond::new(
            CHILD_SERVICE_READY,
            false,
            "ChildServiceWasNotCreated",
            format!("can't write child Service {name:?}: {m}"),
        ),
    };
    let child_ok = child.status;
    out.push(child);
    if let ChildState::Conflict(m) = &o.child {
        out.push(Cond::new(
            CHILD_SERVICE_CONFLICT,
            true,
            "ServiceExists",
            m.clone(),
        ));
    }
    if let ChildState::Adopting {
        covered,
        required,
        missing,
    } = &o.child
    {
        out.push(Cond::new(
            ADOPTED,
            false,
            "WaitingForAgentEndpoints",
            format!(
                "agent EndpointSlices carry {covered} of the {required} endpoints ready in the Service's own slices (missing e.g. {}); the selector is cleared once they carry all",
                missing.join(", ")
            ),
        ));
    } else if o.adopted {
        out.push(Cond::new(
            ADOPTED,
            true,
            "HandedOver",
            format!("Service {name} was adopted: its selector is cleared and it is served by agent EndpointSlices"),
        ));
    }
    if !o.foreign.is_empty() {
        out.push(Cond::new(
            FOREIGN_ENDPOINTS,
            true,
            "ForeignEndpointsFound",
            format!(
                "endpoints not written by swh carry the service name {name} and are merged into its traffic: {}; delete them",
                o.foreign.join(", ")
            ),
        ));
    }
    if let Some(f) = &o.fail_open {
        out.push(if f.active() {
            Cond::new(
                FAIL_OPEN,
                true,
                "FewerPodsPassThanMinPassingPercent",
                format!(
                    "{} of {} probed pods pass ({}%), below minPassingPercent {}%: every probed pod that is Ready and not terminating is published",
                    f.passing, f.decided, f.percent(), f.min_percent
                ),
            )
        } else {
            Cond::new(
                FAIL_OPEN,
                false,
                "EnoughPodsPass",
                format!(
                    "{} of {} probed pods pass, minPassingPercent {}%: only passing pods are published",
                    f.passing, f.decided, f.min_percent
                ),
            )
        });
    }
    let ready = if !child_ok {
        Cond::new(
            READY,
            false,
            "ChildServiceNotReady",
            "the child Service is not ready; see condition ChildServiceReady",
        )
    } else if o.total > 0 && o.published == o.total {
        Cond::new(
            READY,
            true,
            "AllEndpointsAreReady",
            format!("all {} endpoints are ready", o.total),
        )
    } else if o.total == 0 {
        Cond::new(
            READY,
            false,
            "NoEndpoints",
            "no endpoints are published yet",
        )
    } else {
        Cond::new(
            READY,
            false,
            "NotAllEndpointsAreReady",
            format!("{} of {} endpoints are ready", o.published, o.total),
        )
    };
    out.insert(0, ready);
    out
}

/// The controller's part of the status. `lastTransitionTime` is kept from `current` when a
/// condition's status did not change; `now` is used otherwise.
pub fn desired_status(
    swh: &ServiceWithHealthchecks,
    o: &Observed<'_>,
    now: &Time,
) -> ServiceWithHealthchecksStatus {
    let name = swh.metadata.name.as_deref().unwrap_or("");
    let generation = swh.metadata.generation;
    let current = swh.status.as_ref().and_then(|s| s.conditions.as_ref());
    let conds = desired_conditions(o, name)
        .into_iter()
        .map(|c| {
            let status = if c.status { "True" } else { "False" }.to_string();
            let ltt = current
                .and_then(|cs| cs.iter().find(|x| x.type_ == c.type_))
                .filter(|x| x.status == status)
                .map(|x| x.last_transition_time.clone())
                .unwrap_or_else(|| now.clone());
            Condition {
                type_: c.type_.to_string(),
                status,
                reason: c.reason,
                message: c.message,
                observed_generation: generation,
                last_transition_time: ltt,
            }
        })
        .collect();
    let spec = o.service.and_then(|s| s.spec.as_ref());
    let is_lb = spec.and_then(|s| s.type_.as_deref()) == Some("LoadBalancer");
    ServiceWithHealthchecksStatus {
        conditions: Some(conds),
        observed_generation: generation,
        published_endpoints: Some(o.published),
        total_endpoints: Some(o.total),
        ready: Some(ready_column(o.published, o.total)),
        cluster_ip: spec.and_then(|s| s.cluster_ip.clone()),
        cluster_ips: spec.and_then(|s| s.cluster_ips.clone()),
        load_balancer: o
            .service
            .filter(|_| is_lb)
            .and_then(|s| s.status.as_ref())
            .and_then(|s| s.load_balancer.clone())
            .filter(|lb| lb.ingress.as_ref().is_some_and(|i| !i.is_empty())),
        endpoint_statuses: None,
    }
}

fn cond_key(c: &Condition) -> (&str, &str, &str, &str, Option<i64>) {
    (
        &c.type_,
        &c.status,
        &c.reason,
        &c.message,
        c.observed_generation,
    )
}

/// Whether `desired` differs from the controller's part of `current` (no write otherwise).
pub fn needs_write(
    current: Option<&ServiceWithHealthchecksStatus>,
    desired: &ServiceWithHealthchecksStatus,
) -> bool {
    let empty = ServiceWithHealthchecksStatus::default();
    let cur = current.unwrap_or(&empty);
    let mine = |s: &ServiceWithHealthchecksStatus| {
        let mut v: Vec<_> = s
            .conditions
            .iter()
            .flatten()
            .filter(|c| CONTROLLER_CONDITIONS.contains(&c.type_.as_str()))
            .cloned()
            .collect();
        v.sort_by(|a, b| a.type_.cmp(&b.type_));
        v
    };
    let (a, b) = (mine(cur), mine(desired));
    a.len() != b.len()
        || a.iter().zip(&b).any(|(x, y)| cond_key(x) != cond_key(y))
        || cur.observed_generation != desired.observed_generation
        || cur.published_endpoints != desired.published_endpoints
        || cur.total_endpoints != desired.total_endpoints
        || cur.ready != desired.ready
        || cur.cluster_ip != desired.cluster_ip
        || cur.cluster_ips != desired.cluster_ips
        || cur.load_balancer != desired.load_balancer
}

/// The condition of `type_` in `status`, if True.
pub fn is_true(status: Option<&ServiceWithHealthchecksStatus>, type_: &str) -> bool {
    condition(status, type_).is_some_and(|c| c.status == "True")
}

/// The condition of `type_` in `status`.
pub fn condition<'a>(
    status: Option<&'a ServiceWithHealthchecksStatus>,
    type_: &str,
) -> Option<&'a Condition> {
    status?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn slice(eps: Value) -> EndpointSlice {
        serde_json::from_value(
            json!({"metadata": {"name": "s"}, "addressType": "IPv4", "endpoints": eps}),
        )
        .unwrap()
    }
    use serde_json::Value;

    fn swh() -> ServiceWithHealthchecks {
        let mut s: ServiceWithHealthchecks = serde_json::from_value(json!({
            "apiVersion": "network.deckhouse.io/v1beta1", "kind": "ServiceWithHealthchecks",
            "metadata": {"name": "web", "namespace": "ns", "uid": "u", "generation": 3},
            "spec": {}
        }))
        .unwrap();
        s.metadata.generation = Some(3);
        s
    }

    fn t(s: &str) -> Time {
        Time(s.parse().unwrap())
    }

    #[test]
    fn counts_dedupe_pods_across_families_and_nodes() {
        let v4 = slice(json!([
            {"addresses": ["10.0.0.1"], "targetRef": {"kind": "Pod", "namespace": "ns", "name": "a"}, "conditions": {"ready": true}},
            {"addresses": ["10.0.0.2"], "targetRef": {"kind": "Pod", "namespace": "ns", "name": "b"}, "conditions": {"ready": false}},
        ]));
        let v6 = slice(json!([
            {"addresses": ["fd00::1"], "targetRef": {"kind": "Pod", "namespace": "ns", "name": "a"}, "conditions": {"ready": true}},
        ]));
        let other_node = slice(json!([
            {"addresses": ["10.0.1.1"], "conditions": {"ready": true}},
            {"addresses": ["10.0.1.2"], "conditions": {"ready": false, "serving": true, "terminating": true}},
        ]));
        assert_eq!(endpoint_counts([&v4, &v6, &other_node]), (2, 4));
        assert_eq!(endpoint_counts(std::iter::empty()), (0, 0));
    }

    fn observed(child: ChildState, published: i32, total: i32) -> Observed<'static> {
        Observed {
            child,
            service: None,
            adopted: false,
            published,
            total,
            foreign: vec![],
            fail_open: None,
        }
    }

    #[test]
    fn ready_follows_counts_and_child() {
        let get = |o: &Observed<'_>| {
            desired_conditions(o, "web")
                .into_iter()
                .find(|c| c.type_ == "Ready")
                .unwrap()
        };
        assert!(get(&observed(ChildState::Ready, 2, 2)).status);
        assert_eq!(
            get(&observed(ChildState::Ready, 1, 2)).reason,
            "NotAllEndpointsAreReady"
        );
        assert_eq!(
            get(&observed(ChildState::Ready, 0, 0)).reason,
            "NoEndpoints"
        );
        assert_eq!(
            get(&observed(ChildState::Conflict("x".into()), 2, 2)).reason,
            "ChildServiceNotReady"
        );
        let conflict = desired_conditions(&observed(ChildState::Conflict("x".into()), 0, 0), "web");
        assert!(
            conflict
                .iter()
                .any(|c| c.type_ == "ChildServiceConflict" && c.status)
        );
        assert!(
            conflict
                .iter()
                .any(|c| c.type_ == "ChildServiceReady" && !c.status)
        );
        let ok = desired_conditions(&observed(ChildState::Ready, 0, 0), "web");
        assert!(!ok.iter().any(|c| c.type_ == "ChildServiceConflict"));
        assert!(!ok.iter().any(|c| c.type_ == "Adopted"));
    }

    #[test]
    fn adoption_and_foreign_conditions() {
        let mut o = observed(
            ChildState::Adopting {
                covered: 1,
                required: 2,
                missing: vec!["10.0.0.2".into()],
            },
            1,
            1,
        );
        let c = desired_conditions(&o, "web");
        let a = c.iter().find(|c| c.type_ == "Adopted").unwrap();
        assert_eq!(a.reason, "WaitingForAgentEndpoints");
        assert!(a.message.contains("1 of the 2"));
        o.child = ChildState::Ready;
        o.adopted = true;
        o.foreign = vec!["EndpointSlice web-manual".into()];
        let c = desired_conditions(&o, "web");
        assert!(
            c.iter()
                .any(|c| c.type_ == "Adopted" && c.status && c.reason == "HandedOver")
        );
        assert!(c.iter().any(|c| c.type_ == FOREIGN_ENDPOINTS && c.status));
    }

    #[test]
    fn status_write_only_on_change_and_times_kept() {
        let mut s = swh();
        let svc: Service = serde_json::from_value(json!({"metadata": {"name": "web"}, "spec": {"clusterIP": "10.96.0.3", "clusterIPs": ["10.96.0.3"]}})).unwrap();
        let mut o = observed(ChildState::Ready, 1, 2);
        o.service = Some(&svc);
        let d1 = desired_status(&s, &o, &t("2026-01-01T00:00:00Z"));
        assert_eq!(d1.ready.as_deref(), Some("1/2"));
        assert_eq!(d1.cluster_ip.as_deref(), Some("10.96.0.3"));
        assert_eq!(d1.observed_generation, Some(3));
        assert!(d1.endpoint_statuses.is_none());
        assert!(needs_write(s.status.as_ref(), &d1));
        // the agents' entries and other writers' conditions are not the controller's business
        // (FailOpen is the controller's own since the controller decides it)
        let mut written = d1.clone();
        written.endpoint_statuses = Some(vec![Default::default()]);
        written.conditions.as_mut().unwrap().push(Condition {
            type_: "example.com/SomeoneElses".into(),
            status: "False".into(),
            reason: "x".into(),
            message: "".into(),
            observed_generation: None,
            last_transition_time: t("2025-01-01T00:00:00Z"),
        });
        s.status = Some(written);
        let d2 = desired_status(&s, &o, &t("2026-02-02T00:00:00Z"));
        assert!(
            !needs_write(s.status.as_ref(), &d2),
            "steady state: no write"
        );
        let ready = condition(Some(&d2), "Ready").unwrap();
        assert_eq!(ready.last_transition_time, t("2026-01-01T00:00:00Z"));
        // a count change is written, the Ready transition gets a new time
        o.published = 2;
        let d3 = desired_status(&s, &o, &t("2026-03-03T00:00:00Z"));
        assert!(needs_write(s.status.as_ref(), &d3));
        assert_eq!(
            condition(Some(&d3), "Ready").unwrap().last_transition_time,
            t("2026-03-03T00:00:00Z")
        );
        assert_eq!(
            condition(Some(&d3), "ChildServiceReady")
                .unwrap()
                .last_transition_time,
            t("2026-01-01T00:00:00Z")
        );
        // a condition that no longer applies is removed (so a write is needed)
        let mut with_conflict = s.status.clone().unwrap();
        with_conflict.conditions.as_mut().unwrap().push(Condition {
            type_: "ChildServiceConflict".into(),
            status: "True".into(),
            reason: "ServiceExists".into(),
            message: "".into(),
            observed_generation: Some(3),
            last_transition_time: t("2025-01-01T00:00:00Z"),
        });
        assert!(needs_write(Some(&with_conflict), &d2));
    }

    fn fo_swh(min: Option<i32>, entries: Value) -> ServiceWithHealthchecks {
        let mut hc = json!({"probes": [{"name": "web", "mode": "TCP", "tcp": {"port": 80}}]});
        if let Some(m) = min {
            hc["failOpen"] = json!({"minPassingPercent": m});
        }
        serde_json::from_value(json!({
            "apiVersion": "network.deckhouse.io/v1beta1",
            "kind": "ServiceWithHealthchecks",
            "metadata": {"namespace": "ns", "name": "web"},
            "spec": {"ports": [{"port": 80}], "healthcheck": hc},
            "status": {"endpointStatuses": entries},
        }))
        .unwrap()
    }

    fn entry(pod: &str, node: &str, state: &str) -> Value {
        json!({"podName": pod, "nodeName": node, "probesSuccessful": state == "Passing",
               "probes": [{"name": "web", "state": state}]})
    }

    #[test]
    fn fail_open_counts_every_node_and_skips_undecided_pods() {
        // 1 of 3 decided pods pass (on two nodes); the undecided pod counts neither way.
        let swh = fo_swh(
            Some(50),
            json!([
                entry("a", "node-a", "Passing"),
                entry("b", "node-a", "Failing"),
                entry("c", "node-b", "Failing"),
                entry("d", "node-b", "Unknown"),
                {"podName": "e", "nodeName": "node-b", "probesSuccessful": true},
            ]),
        );
        let f = fail_open(&swh).unwrap();
        assert_eq!((f.passing, f.decided, f.min_percent), (1, 3, 50));
        assert!(f.active());
        // 2 of 3 pass: 66% >= 50%.
        let swh = fo_swh(
            Some(50),
            json!([
                entry("a", "node-a", "Passing"),
                entry("b", "node-a", "Passing"),
                entry("c", "node-b", "Failing"),
            ]),
        );
        assert!(!fail_open(&swh).unwrap().active());
        // Exactly the threshold is enough: 1 of 2 at 50%.
        let f = FailOpen {
            passing: 1,
            decided: 2,
            min_percent: 50,
        };
        assert!(!f.active());
        // Nothing decided yet (new pods, restarted agents): never fail-open.
        let swh = fo_swh(Some(100), json!([entry("a", "node-a", "Unknown")]));
        assert!(!fail_open(&swh).unwrap().active());
        // No failOpen in the spec: no verdict, no condition.
        assert_eq!(fail_open(&fo_swh(None, json!([]))), None);
    }

    #[test]
    fn fail_open_condition_says_why() {
        let mut o = observed(ChildState::Ready, 3, 3);
        o.fail_open = Some(FailOpen {
            passing: 1,
            decided: 3,
            min_percent: 50,
        });
        let c = desired_conditions(&o, "web");
        let f = c.iter().find(|c| c.type_ == "FailOpen").unwrap();
        assert!(f.status);
        assert_eq!(f.reason, "FewerPodsPassThanMinPassingPercent");
        assert!(f.message.contains("1 of 3"), "{}", f.message);
        o.fail_open = Some(FailOpen {
            passing: 2,
            decided: 3,
            min_percent: 50,
        });
        let c = desired_conditions(&o, "web");
        assert!(c.iter().any(|c| c.type_ == "FailOpen" && !c.status));
        o.fail_open = None;
        let c = desired_conditions(&o, "web");
        assert!(!c.iter().any(|c| c.type_ == "FailOpen"));
        // The controller owns the condition: one left over from failOpen removed is dropped.
        assert!(CONTROLLER_CONDITIONS.contains(&"FailOpen"));
    }
}
