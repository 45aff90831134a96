//! The agent's picture of its node, and what follows from it. Pure and synchronous: watch events
//! go in, and for one SWH at a time out come the probe targets to schedule
//! ([`Index::targets`]), the endpoints to publish ([`Index::endpoints`]) and this node's status
//! entries ([`Index::statuses`]).
//!
//! - A pod is selected by an SWH when it is in the SWH's namespace and matches `spec.selector`
//!   (an empty or missing selector selects every pod of the namespace, as in Deckhouse), and is
//!   eligible: it has an IP and is not `Succeeded`/`Failed`.
//! - One target per (SWH, pod, probe), probing the pod's primary IP; the result is published for
//!   every address family the SWH publishes.
//! - Conditions: with probes, `serving` = all probes Passing, `ready` = serving and not
//!   terminating; without probes, the pod's Ready condition stands in for the probes; with
//!   `publishNotReadyAddresses`, every pod is ready (serving follows the pod, like upstream).
//!   Unknown (not decided yet) counts as not passing, except right after start-up: an address an
//!   existing slice publishes keeps its published conditions until results decide.
//! - Fail-open: while the SWH sets `healthcheck.failOpen` and the controller reports the
//!   condition `FailOpen` True (fewer than `minPassingPercent` of its probed pods pass, counted
//!   across all nodes), every probed pod that is Ready in the kubelet sense and not terminating
//!   is published ready whatever its probes say ([`Index::fail_open`]). Status entries keep the
//!   probes' verdict (`probesSuccessful`, `ready`), which is what the controller counts.
//! - Nothing is published while the controller reports a foreign Service of the same name
//!   (`ChildServiceConflict` True) and the SWH lacks `adopt-service: "true"` ([`Index::publishes`]);
//!   probes keep running and status entries say `published: false`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use swh_api::v1beta1::{self, EndpointStatus, ProbeStatus, ServiceWithHealthchecks};

use crate::probe::{ProbeSpec, ProbeTarget};
use crate::slices::{self, Conditions, EndpointInput, Owner};
use crate::targets::{self, PodInfo, ProbePlan, SecretState, families_for, plan_probe};
use crate::threshold::{ProbeState, Threshold};

/// (namespace, name).
pub type ObjectKey = (String, String);

/// One scheduled (SWH, pod, probe).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TargetKey {
    pub namespace: String,
    pub swh: String,
    pub pod_uid: String,
    pub probe: String,
}

/// A target to run.
#[derive(Clone, Debug, PartialEq)]
pub struct DesiredTarget {
    pub key: TargetKey,
    pub spec: ProbeSpec,
    pub target: ProbeTarget,
    /// The pod's creation: initial delays count from here.
    pub start: SystemTime,
}

/// Seeds from slices seen at start-up: (namespace, SWH, pod UID, address) → (ready, serving).
type SeedKey = (String, String, String, String);

#[derive(Default)]
pub struct Index {
    node: String,
    pods: BTreeMap<ObjectKey, PodInfo>,
    swhs: BTreeMap<ObjectKey, Arc<ServiceWithHealthchecks>>,
    secrets: HashMap<ObjectKey, SecretState>,
    results: HashMap<TargetKey, Threshold>,
    /// When a probe that can't run (e.g. unknown port name) started failing.
    static_failures: HashMap<TargetKey, (String, SystemTime)>,
    seeds: HashMap<SeedKey, (bool, bool)>,
    /// Per (SWH, pod name): the significant part of its entry and when it last changed.
    transitions: HashMap<(ObjectKey, String), (EntrySignature, SystemTime)>,
}

/// The part of a status entry whose change is a transition (times of last probe and counts
/// are not).
#[derive(Clone, Debug, PartialEq, Eq)]
struct EntrySignature {
    pod_ip: Option<String>,
    published: bool,
    ready: bool,
    probes: Vec<(String, v1beta1::ProbeState)>,
}

fn matches_selector(swh: &ServiceWithHealthchecks, pod: &PodInfo) -> bool {
    swh.spec
        .selector
        .iter()
        .flatten()
        .all(|(k, v)| pod.labels.get(k) == Some(v))
}

/// `ChildServiceConflict` is True and the SWH does not carry `adopt-service: "true"`.
/// Whether `swh` opts in to fail-open and the controller reports it active.
fn fail_open_active(swh: &ServiceWithHealthchecks) -> bool {
    swh.spec
        .healthcheck
        .as_ref()
        .is_some_and(|h| h.fail_open.is_some())
        && swh
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten()
            .any(|c| c.type_ == swh_api::conditions::FAIL_OPEN && c.status == "True")
}

fn blocked_by_conflict(swh: &ServiceWithHealthchecks) -> bool {
    let conflict = swh
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| c.type_ == swh_api::conditions::CHILD_SERVICE_CONFLICT && c.status == "True");
    let adopt = swh
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(swh_api::annotations::ADOPT_SERVICE))
        .is_some_and(|v| v == "true");
    conflict && !adopt
}

/// A handover is pending: the SWH asks to adopt an existing Service (`adopt-service: "true"`)
/// and the controller does not report the child Service in sync (`ChildServiceReady` True)
/// yet. The Service's own EndpointSlices still carry its pods then, and kube-proxy merges
/// duplicate addresses across slices in no defined order (the last non-terminating one wins):
/// a not-ready duplicate from us could hide the same pod's ready entry there and reject
/// traffic. So during a handover only ready endpoints are published.
fn handover_pending(swh: &ServiceWithHealthchecks) -> bool {
    let adopt = swh
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(swh_api::annotations::ADOPT_SERVICE))
        .is_some_and(|v| v == "true");
    let in_sync = swh
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| c.type_ == swh_api::conditions::CHILD_SERVICE_READY && c.status == "True");
    adopt && !in_sync
}

fn key_of(swh: &ServiceWithHealthchecks) -> Option<ObjectKey> {
    Some((swh.metadata.namespace.clone()?, swh.metadata.name.clone()?))
}

/// Whole seconds (what the API keeps of a time).
pub fn truncate_secs(t: SystemTime) -> SystemTime {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => SystemTime::UNIX_EPOCH + Duration::from_secs(d.as_secs()),
        Err(_) => t,
    }
}

pub fn to_time(t: SystemTime) -> Option<Time> {
    k8s_openapi::jiff::Timestamp::try_from(truncate_secs(t))
        .ok()
        .map(Time)
}

fn api_state(s: ProbeState) -> v1beta1::ProbeState {
    match s {
        ProbeState::Passing => v1beta1::ProbeState::Passing,
        ProbeState::Failing => v1beta1::ProbeState::Failing,
        ProbeState::Unknown => v1beta1::ProbeState::Unknown,
    }
}

/// State of one probe against one pod, as the index sees it.
#[derive(Clone, Debug)]
struct ProbeView {
    name: String,
    state: ProbeState,
    since: Option<SystemTime>,
    last_error: Option<String>,
    successes: u32,
    failures: u32,
    last_probe: Option<SystemTime>,
}

impl Index {
    pub fn new(node: impl Into<String>) -> Self {
        Index {
            node: node.into(),
            ..Default::default()
        }
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    // ---- inputs -------------------------------------------------------------------------

    /// SWHs of `namespace` that select `pod`.
    fn selecting(&self, pod: &PodInfo) -> Vec<ObjectKey> {
        self.swhs_in(&pod.namespace)
            .filter(|(_, s)| matches_selector(s, pod))
            .map(|(k, _)| k.clone())
            .collect()
    }

    fn swhs_in(
        &self,
        ns: &str,
    ) -> impl Iterator<Item = (&ObjectKey, &Arc<ServiceWithHealthchecks>)> + '_ {
        let ns = ns.to_string();
        self.swhs
            .range((ns.clone(), String::new())..)
            .take_while(move |((n, _), _)| *n == ns)
    }

    fn pods_in(&self, ns: &str) -> impl Iterator<Item = &PodInfo> + '_ {
        let ns = ns.to_string();
        self.pods
            .range((ns.clone(), String::new())..)
            .take_while(move |((n, _), _)| *n == ns)
            .map(|(_, p)| p)
    }

    /// Adds or updates a pod; returns the SWHs affected (selecting it before or after).
    pub fn upsert_pod(&mut self, pod: PodInfo) -> BTreeSet<ObjectKey> {
        let key = (pod.namespace.clone(), pod.name.clone());
        let mut dirty: BTreeSet<ObjectKey> = self.selecting(&pod).into_iter().collect();
        if let Some(old) = self.pods.get(&key) {
            if *old == pod {
                return BTreeSet::new();
            }
            dirty.extend(self.selecting(old));
        }
        self.pods.insert(key, pod);
        dirty
    }

    pub fn remove_pod(&mut self, namespace: &str, name: &str) -> BTreeSet<ObjectKey> {
        match self.pods.remove(&(namespace.to_string(), name.to_string())) {
            Some(old) => self.selecting(&old).into_iter().collect(),
            None => BTreeSet::new(),
        }
    }

    /// Replaces all pods (a watch re-list); returns the SWHs affected.
    pub fn replace_pods(&mut self, pods: Vec<PodInfo>) -> BTreeSet<ObjectKey> {
        let mut dirty = BTreeSet::new();
        let keep: BTreeSet<ObjectKey> = pods
            .iter()
            .map(|p| (p.namespace.clone(), p.name.clone()))
            .collect();
        let gone: Vec<ObjectKey> = self
            .pods
            .keys()
            .filter(|k| !keep.contains(*k))
            .cloned()
            .collect();
        for (ns, name) in gone {
            dirty.extend(self.remove_pod(&ns, &name));
        }
        for p in pods {
            dirty.extend(self.upsert_pod(p));
        }
        dirty
    }

    /// Adds or updates an SWH; returns its key.
    pub fn upsert_swh(&mut self, swh: Arc<ServiceWithHealthchecks>) -> Option<ObjectKey> {
        let key = key_of(&swh)?;
        if let Some(old) = self.swhs.get(&key)
            && old.metadata.uid != swh.metadata.uid
        {
            self.forget_swh(&key);
        }
        self.swhs.insert(key.clone(), swh);
        Some(key)
    }

    pub fn remove_swh(&mut self, key: &ObjectKey) {
        self.swhs.remove(key);
        self.forget_swh(key);
    }

    fn forget_swh(&mut self, key: &ObjectKey) {
        self.results
            .retain(|k, _| !(k.namespace == key.0 && k.swh == key.1));
        self.static_failures
            .retain(|k, _| !(k.namespace == key.0 && k.swh == key.1));
        self.transitions.retain(|(k, _), _| k != key);
    }

    /// Replaces all SWHs (a watch re-list); returns every SWH key before and after.
    pub fn replace_swhs(&mut self, swhs: Vec<Arc<ServiceWithHealthchecks>>) -> BTreeSet<ObjectKey> {
        let mut dirty: BTreeSet<ObjectKey> = self.swhs.keys().cloned().collect();
        let keep: BTreeSet<ObjectKey> = swhs.iter().filter_map(|s| key_of(s)).collect();
        for k in dirty.clone() {
            if !keep.contains(&k) {
                self.remove_swh(&k);
            }
        }
        for s in swhs {
            dirty.extend(self.upsert_swh(s));
        }
        dirty
    }

    pub fn swh(&self, key: &ObjectKey) -> Option<&Arc<ServiceWithHealthchecks>> {
        self.swhs.get(key)
    }

    pub fn swh_keys(&self) -> impl Iterator<Item = &ObjectKey> {
        self.swhs.keys()
    }

    /// Every Secret some SWH's probe names, (namespace, name).
    pub fn referenced_secrets(&self) -> BTreeSet<ObjectKey> {
        self.swhs
            .iter()
            .flat_map(|((ns, _), s)| {
                s.spec
                    .probes()
                    .iter()
                    .filter_map(targets::secret_name)
                    .map(|n| (ns.clone(), n.to_string()))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Records what is known of a Secret; returns the SWHs that use it.
    pub fn set_secret(&mut self, key: ObjectKey, state: SecretState) -> BTreeSet<ObjectKey> {
        if self.secrets.get(&key) == Some(&state) {
            return BTreeSet::new();
        }
        self.secrets.insert(key.clone(), state);
        self.swhs_using_secret(&key)
    }

    pub fn forget_secret(&mut self, key: &ObjectKey) {
        self.secrets.remove(key);
    }

    fn swhs_using_secret(&self, key: &ObjectKey) -> BTreeSet<ObjectKey> {
        self.swhs_in(&key.0)
            .filter(|(_, s)| {
                s.spec
                    .probes()
                    .iter()
                    .any(|p| targets::secret_name(p) == Some(key.1.as_str()))
            })
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Records a probe result's hysteresis state.
    pub fn record(&mut self, key: TargetKey, state: Threshold) {
        self.results.insert(key, state);
    }

    /// The pod a target probes (selected pods only).
    pub fn target_pod(&self, key: &TargetKey) -> Option<&PodInfo> {
        self.pods_in(&key.namespace)
            .find(|p| p.uid == key.pod_uid && p.eligible())
    }

    /// The state of a target's probe as this node last wrote it in the SWH's status, when the
    /// entry still describes the pod's current address. What a result that leaves `Unknown`
    /// is compared with, since this process may not have seen the state before (restart).
    pub fn written_state(&self, key: &TargetKey) -> Option<ProbeState> {
        let pod = self.target_pod(key)?;
        let ip = pod.primary_ip().map(|ip| ip.to_string());
        let swh = self.swhs.get(&(key.namespace.clone(), key.swh.clone()))?;
        let entry = swh
            .status
            .as_ref()?
            .endpoint_statuses
            .as_ref()?
            .iter()
            .find(|e| {
                e.pod_name == pod.name
                    && e.node_name.as_deref() == Some(self.node.as_str())
                    && e.pod_ip == ip
            })?;
        let probe = entry
            .probes
            .as_ref()?
            .iter()
            .find(|p| p.name == key.probe)?;
        Some(match probe.state {
            v1beta1::ProbeState::Passing => ProbeState::Passing,
            v1beta1::ProbeState::Failing => ProbeState::Failing,
            v1beta1::ProbeState::Unknown => ProbeState::Unknown,
        })
    }

    /// Forgets a target's results (it was removed, or its target or kind changed).
    pub fn forget_target(&mut self, key: &TargetKey) {
        self.results.remove(key);
    }

    /// Seeds published conditions from a slice seen at start-up.
    pub fn seed(
        &mut self,
        namespace: &str,
        slice: &k8s_openapi::api::discovery::v1::EndpointSlice,
    ) {
        for ((swh, uid, addr), conds) in slices::published_conditions(slice) {
            self.seeds
                .insert((namespace.to_string(), swh, uid, addr), conds);
        }
    }

    pub fn seeds_len(&self) -> usize {
        self.seeds.len()
    }

    // ---- outputs ------------------------------------------------------------------------

    /// Pods `swh` selects on this node, eligible ones only, by name.
    pub fn selected(&self, key: &ObjectKey) -> Vec<&PodInfo> {
        let Some(swh) = self.swhs.get(key) else {
            return Vec::new();
        };
        self.pods_in(&key.0)
            .filter(|p| p.eligible() && matches_selector(swh, p))
            .collect()
    }

    fn target_key(key: &ObjectKey, pod: &PodInfo, probe: &str) -> TargetKey {
        TargetKey {
            namespace: key.0.clone(),
            swh: key.1.clone(),
            pod_uid: pod.uid.clone(),
            probe: probe.to_string(),
        }
    }

    fn plans(&self, key: &ObjectKey, pod: &PodInfo) -> Vec<(TargetKey, ProbePlan)> {
        let Some(swh) = self.swhs.get(key) else {
            return Vec::new();
        };
        if swh.spec.publish_not_ready_addresses == Some(true) {
            return Vec::new();
        }
        let default_hc = v1beta1::Healthcheck::default();
        let hc = swh.spec.healthcheck.as_ref().unwrap_or(&default_hc);
        swh.spec
            .probes()
            .iter()
            .map(|probe| {
                let secret = targets::secret_name(probe)
                    .map(|n| self.secrets.get(&(key.0.clone(), n.to_string())));
                let secret = match secret {
                    None => None,
                    Some(None) => Some(&SecretState::Pending),
                    Some(Some(s)) => Some(s),
                };
                (
                    Self::target_key(key, pod, &probe.name),
                    plan_probe(hc, probe, pod, secret),
                )
            })
            .collect()
    }

    /// Probe targets of `key` to schedule. Also updates which probes fail statically (they are
    /// not scheduled; their state is Failing with the reason as last error).
    pub fn targets(&mut self, key: &ObjectKey, now: SystemTime) -> Vec<DesiredTarget> {
        let mut out = Vec::new();
        let mut statics: HashMap<TargetKey, String> = HashMap::new();
        for pod in self.selected(key) {
            for (tk, plan) in self.plans(key, pod) {
                match plan {
                    ProbePlan::Run { spec, target } => out.push(DesiredTarget {
                        key: tk,
                        spec,
                        target,
                        start: pod.created.unwrap_or(SystemTime::UNIX_EPOCH),
                    }),
                    ProbePlan::Fail(reason) => {
                        statics.insert(tk, reason);
                    }
                    ProbePlan::Pending => {}
                }
            }
        }
        self.static_failures
            .retain(|k, _| !(k.namespace == key.0 && k.swh == key.1) || statics.contains_key(k));
        for (k, reason) in statics {
            match self.static_failures.get_mut(&k) {
                Some((r, _)) if *r == reason => {}
                Some(entry) => *entry = (reason, now),
                None => {
                    self.static_failures.insert(k, (reason, now));
                }
            }
        }
        out
    }

    fn probe_views(&self, key: &ObjectKey, pod: &PodInfo) -> Vec<ProbeView> {
        let Some(swh) = self.swhs.get(key) else {
            return Vec::new();
        };
        if swh.spec.publish_not_ready_addresses == Some(true) {
            return Vec::new();
        }
        swh.spec
            .probes()
            .iter()
            .map(|probe| {
                let tk = Self::target_key(key, pod, &probe.name);
                if let Some((reason, since)) = self.static_failures.get(&tk) {
                    return ProbeView {
                        name: probe.name.clone(),
                        state: ProbeState::Failing,
                        since: Some(*since),
                        last_error: Some(reason.clone()),
                        successes: 0,
                        failures: 0,
                        last_probe: None,
                    };
                }
                match self.results.get(&tk) {
                    Some(th) => ProbeView {
                        name: probe.name.clone(),
                        state: th.state,
                        since: Some(th.since),
                        last_error: th.last_error.clone(),
                        successes: th.consecutive_successes,
                        failures: th.consecutive_failures,
                        last_probe: th.last_probe_time,
                    },
                    None => ProbeView {
                        name: probe.name.clone(),
                        state: ProbeState::Unknown,
                        since: None,
                        last_error: None,
                        successes: 0,
                        failures: 0,
                        last_probe: None,
                    },
                }
            })
            .collect()
    }

    /// Conditions of `pod` in `key`'s slices, whether its probes all pass, and whether the
    /// conditions are the ones published before a restart (probes not decided yet).
    fn conditions(
        &self,
        key: &ObjectKey,
        pod: &PodInfo,
        views: &[ProbeView],
    ) -> (Conditions, bool, bool) {
        let terminating = pod.terminating;
        let Some(swh) = self.swhs.get(key) else {
            return (Conditions::default(), false, false);
        };
        if swh.spec.publish_not_ready_addresses == Some(true) {
            return (
                Conditions {
                    ready: true,
                    serving: pod.ready,
                    terminating,
                },
                true,
                false,
            );
        }
        if views.is_empty() {
            return (
                Conditions {
                    ready: pod.ready && !terminating,
                    serving: pod.ready,
                    terminating,
                },
                true,
                false,
            );
        }
        let all_pass = views.iter().all(|v| v.state.is_passing());
        let any_fail = views.iter().any(|v| v.state == ProbeState::Failing);
        if !all_pass
            && !any_fail
            && let Some(ip) = pod.primary_ip()
            && let Some((ready, serving)) = self.seeds.get(&(
                key.0.clone(),
                key.1.clone(),
                pod.uid.clone(),
                ip.to_string(),
            ))
        {
            return (
                Conditions {
                    ready: *ready && !terminating,
                    serving: *serving,
                    terminating,
                },
                false,
                true,
            );
        }
        // Fail-open publishes a probed pod the probes reject only when the kubelet calls it
        // Ready and it is not terminating.
        let open = !all_pass && pod.ready && !terminating && fail_open_active(swh);
        (
            Conditions {
                ready: (all_pass || open) && !terminating,
                serving: all_pass || open,
                terminating,
            },
            all_pass,
            false,
        )
    }

    /// Drops start-up seeds of `key` whose pods' probes have all been decided (or that no
    /// longer match a selected pod address).
    pub fn settle_seeds(&mut self, key: &ObjectKey) {
        let mut live: BTreeSet<(String, String)> = BTreeSet::new();
        for pod in self.selected(key) {
            let views = self.probe_views(key, pod);
            let undecided = views.iter().any(|v| v.state == ProbeState::Unknown)
                && !views.iter().any(|v| v.state == ProbeState::Failing);
            if undecided && let Some(ip) = pod.primary_ip() {
                live.insert((pod.uid.clone(), ip.to_string()));
            }
        }
        self.seeds.retain(|(ns, swh, uid, addr), _| {
            !(ns == &key.0 && swh == &key.1) || live.contains(&(uid.clone(), addr.clone()))
        });
    }

    /// Drops seeds of SWHs that no longer exist (after the first full sync).
    pub fn settle_all_seeds(&mut self) {
        let keys: Vec<ObjectKey> = self.swhs.keys().cloned().collect();
        let swhs: BTreeSet<ObjectKey> = keys.iter().cloned().collect();
        self.seeds
            .retain(|(ns, swh, _, _), _| swhs.contains(&(ns.clone(), swh.clone())));
        for k in keys {
            self.settle_seeds(&k);
        }
    }

    /// Whether `key` publishes fail-open now (see the module docs).
    pub fn fail_open(&self, key: &ObjectKey) -> bool {
        self.swhs.get(key).is_some_and(|s| fail_open_active(s))
    }

    /// Whether `key`'s endpoints may be published. Not while the controller reports a foreign
    /// Service of the same name (`ChildServiceConflict` True) and the SWH does not ask for
    /// adoption: our slices would carry the SWH's name and merge into someone else's Service.
    /// With `adopt-service: "true"` publishing goes on (the controller's handover waits for
    /// our slices). Probing goes on either way, so a resolved conflict publishes decided states.
    pub fn publishes(&self, key: &ObjectKey) -> bool {
        self.swhs.get(key).is_some_and(|s| !blocked_by_conflict(s))
    }

    /// The endpoints to publish for `key` on this node (none while [`Index::publishes`] is
    /// false; only ready ones while a handover of an existing Service is pending).
    pub fn endpoints(&self, key: &ObjectKey) -> Vec<EndpointInput> {
        let Some(swh) = self.swhs.get(key) else {
            return Vec::new();
        };
        if blocked_by_conflict(swh) {
            return Vec::new();
        }
        let ready_only = handover_pending(swh);
        self.selected(key)
            .into_iter()
            .filter_map(|pod| {
                let views = self.probe_views(key, pod);
                let (conditions, _, _) = self.conditions(key, pod, &views);
                let addresses: BTreeMap<_, _> = families_for(&swh.spec, pod)
                    .into_iter()
                    .filter_map(|f| pod.ip_of(f).map(|ip| (f, ip)))
                    .collect();
                let publish = !addresses.is_empty() && (conditions.ready || !ready_only);
                publish.then(|| EndpointInput {
                    pod_name: pod.name.clone(),
                    pod_uid: pod.uid.clone(),
                    addresses,
                    ports: slices::resolve_service_ports(swh.spec.ports(), pod),
                    conditions,
                })
            })
            .collect()
    }

    /// The owner of `key`'s slices.
    pub fn owner(&self, key: &ObjectKey) -> Option<Owner> {
        let swh = self.swhs.get(key)?;
        Some(Owner {
            namespace: key.0.clone(),
            name: key.1.clone(),
            uid: swh.metadata.uid.clone()?,
        })
    }

    /// This node's `status.endpointStatuses` entries for `key`, sorted by pod name. Times of
    /// states and transitions are kept from the SWH's current status when the state is the same
    /// (so a restart writes nothing), and are whole seconds.
    pub fn statuses(&mut self, key: &ObjectKey, now: SystemTime) -> Vec<EndpointStatus> {
        let Some(swh) = self.swhs.get(key).cloned() else {
            return Vec::new();
        };
        let observed: HashMap<&str, &EndpointStatus> = swh
            .status
            .as_ref()
            .and_then(|s| s.endpoint_statuses.as_ref())
            .into_iter()
            .flatten()
            .filter(|e| e.node_name.as_deref() == Some(self.node.as_str()))
            .map(|e| (e.pod_name.as_str(), e))
            .collect();
        let mut out = Vec::new();
        let mut seen = BTreeSet::new();
        let pods: Vec<PodInfo> = self.selected(key).into_iter().cloned().collect();
        let publishes = !blocked_by_conflict(&swh);
        for pod in &pods {
            let views = self.probe_views(key, pod);
            let (mut conditions, probes_ok, seeded) = self.conditions(key, pod, &views);
            conditions.ready &= publishes;
            let old = observed.get(pod.name.as_str()).copied();
            if seeded
                && publishes
                && let Some(old) = old
            {
                // Restarted, probes not decided yet: the entry stays as it was written.
                seen.insert(pod.name.clone());
                out.push(old.clone());
                continue;
            }
            let pod_ip = pod.primary_ip().map(|ip| ip.to_string());
            let probes: Vec<ProbeStatus> = views
                .iter()
                .map(|v| {
                    let before = old
                        .filter(|o| o.pod_ip == pod_ip)
                        .and_then(|o| o.probes.as_ref())
                        .and_then(|ps| ps.iter().find(|p| p.name == v.name));
                    // Not probed yet by this process (e.g. just restarted, or waiting for its
                    // Secret): the written state stands until a result decides.
                    if v.state == ProbeState::Unknown
                        && v.last_probe.is_none()
                        && let Some(p) = before
                    {
                        return p.clone();
                    }
                    let state = api_state(v.state);
                    let kept_since = old
                        .and_then(|o| o.probes.as_ref())
                        .and_then(|ps| ps.iter().find(|p| p.name == v.name))
                        .filter(|p| p.state == state)
                        .and_then(|p| p.since.clone());
                    ProbeStatus {
                        name: v.name.clone(),
                        state,
                        since: kept_since.or_else(|| v.since.and_then(to_time)),
                        last_error: v.last_error.as_ref().map(|e| truncate_chars(e, 1024)),
                        consecutive_failures: Some(i32::try_from(v.failures).unwrap_or(i32::MAX)),
                        consecutive_successes: Some(i32::try_from(v.successes).unwrap_or(i32::MAX)),
                        last_probe_time: v.last_probe.and_then(to_time),
                    }
                })
                .collect();
            let ready = pod.ready && probes_ok;
            let signature = EntrySignature {
                pod_ip: pod_ip.clone(),
                published: conditions.ready,
                ready,
                probes: probes.iter().map(|p| (p.name.clone(), p.state)).collect(),
            };
            let tkey = (key.clone(), pod.name.clone());
            let ltt = match self.transitions.get(&tkey) {
                Some((sig, t)) if *sig == signature => *t,
                Some(_) => now,
                None => {
                    // First sight: keep the time from the status when it still describes it.
                    let same = old.is_some_and(|o| {
                        o.pod_ip == signature.pod_ip
                            && o.published == Some(signature.published)
                            && o.ready == Some(signature.ready)
                            && o.probes
                                .iter()
                                .flatten()
                                .map(|p| (p.name.clone(), p.state))
                                .eq(signature.probes.iter().cloned())
                    });
                    match old.and_then(|o| o.last_transition_time.as_ref()) {
                        Some(t) if same => SystemTime::from(t.0),
                        _ => now,
                    }
                }
            };
            self.transitions.insert(tkey, (signature, ltt));
            seen.insert(pod.name.clone());
            let failed: Vec<String> = probes
                .iter()
                .filter(|p| p.state == v1beta1::ProbeState::Failing)
                .map(|p| p.name.clone())
                .collect();
            out.push(EndpointStatus {
                pod_name: pod.name.clone(),
                node_name: Some(self.node.clone()),
                pod_ip,
                published: Some(conditions.ready),
                ready: Some(ready),
                probes_successful: Some(probes_ok),
                failed_probes: (!failed.is_empty()).then_some(failed),
                last_probe_time: views
                    .iter()
                    .filter_map(|v| v.last_probe)
                    .max()
                    .and_then(to_time),
                last_transition_time: to_time(ltt),
                probes: (!probes.is_empty()).then_some(probes),
            });
        }
        self.transitions
            .retain(|(k, pod), _| k != key || seen.contains(pod));
        out.sort_by(|a, b| a.pod_name.cmp(&b.pod_name));
        out
    }

    /// This node's entries in the SWH's current status (what was last applied, as seen).
    pub fn observed_statuses(&self, key: &ObjectKey) -> Vec<EndpointStatus> {
        let mut v: Vec<EndpointStatus> = self
            .swhs
            .get(key)
            .and_then(|s| s.status.as_ref())
            .and_then(|s| s.endpoint_statuses.clone())
            .into_iter()
            .flatten()
            .filter(|e| e.node_name.as_deref() == Some(self.node.as_str()))
            .collect();
        v.sort_by(|a, b| a.pod_name.cmp(&b.pod_name));
        v
    }
}

fn truncate_chars(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        s.chars().take(max).collect()
    }
}

/// The part of status entries whose change warrants a write: everything but the last probe
/// times and the consecutive counts (those ride along with writes that happen anyway).
pub fn status_signature(entries: &[EndpointStatus]) -> Vec<EndpointStatus> {
    entries
        .iter()
        .map(|e| EndpointStatus {
            last_probe_time: None,
            probes: e.probes.as_ref().map(|ps| {
                ps.iter()
                    .map(|p| ProbeStatus {
                        name: p.name.clone(),
                        state: p.state,
                        since: p.since.clone(),
                        ..Default::default()
                    })
                    .collect()
            }),
            ..e.clone()
        })
        .collect()
}
