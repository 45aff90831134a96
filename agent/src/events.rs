//! Kubernetes events for probe transitions, regarding the SWH (`kubectl describe swh` shows
//! them), reporter `swh-agent`, instance = the node name.
//!
//! - `ProbeFailed` (Warning) when a pod's probe turns Failing; `ProbePassed` (Normal) when it
//!   passes again after failing. The first verdict of a new pod, or of a restarted agent, that
//!   says Passing is the normal case and no event (it would be one event per pod and probe on
//!   every rollout of the agent). A result leaving `Unknown` is compared with the state this
//!   node wrote in the SWH's status, so a restart repeats no event.
//! - One event per transition. The regarding reference carries the probe as `fieldPath`
//!   (`spec.healthcheck.probes{NAME}`) and the pod as `related`, so the recorder's series
//!   (same SWH, probe, pod and reason within 6 minutes) counts a flapping pair in one event
//!   instead of creating new ones, and never mixes up pods or probes.
//! - Published by one task, in order, from a bounded queue: a burst beyond [`QUEUE`] (e.g. a
//!   whole node failing at once) is dropped and logged, never slowing the engine.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use tokio::sync::mpsc;

use crate::threshold::ProbeState;

/// Reporting controller of the events.
pub const REPORTER: &str = "swh-agent";
/// Events waiting to be published, at most.
pub const QUEUE: usize = 1024;
/// The Events API limit of a note.
const MAX_NOTE: usize = 1024;

/// Which event a transition gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeEventKind {
    Failed,
    Passed,
}

impl ProbeEventKind {
    pub fn reason(self) -> &'static str {
        match self {
            ProbeEventKind::Failed => "ProbeFailed",
            ProbeEventKind::Passed => "ProbePassed",
        }
    }

    pub fn event_type(self) -> EventType {
        match self {
            ProbeEventKind::Failed => EventType::Warning,
            ProbeEventKind::Passed => EventType::Normal,
        }
    }
}

/// The event for a transition `from` → `to`, if any. `written` is the state this node last
/// wrote for the pair (used when `from` is `Unknown`: not decided by this process yet).
pub fn decide(
    from: ProbeState,
    to: ProbeState,
    written: Option<ProbeState>,
) -> Option<ProbeEventKind> {
    let before = match from {
        ProbeState::Unknown => written.unwrap_or(ProbeState::Unknown),
        s => s,
    };
    match (before, to) {
        (ProbeState::Failing, ProbeState::Failing) => None,
        (_, ProbeState::Failing) => Some(ProbeEventKind::Failed),
        (ProbeState::Failing, ProbeState::Passing) => Some(ProbeEventKind::Passed),
        _ => None,
    }
}

/// One event to publish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeEvent {
    pub kind: ProbeEventKind,
    pub namespace: String,
    pub swh: String,
    pub swh_uid: Option<String>,
    pub pod: String,
    pub pod_uid: String,
    pub probe: String,
    /// The deciding result's message.
    pub message: String,
}

impl ProbeEvent {
    /// `pod db-0: probe primary failing: connection refused` (at most 1 KiB).
    pub fn note(&self) -> String {
        let state = match self.kind {
            ProbeEventKind::Failed => "failing",
            ProbeEventKind::Passed => "passing again",
        };
        let mut note = format!(
            "pod {}: probe {} {state}: {}",
            self.pod, self.probe, self.message
        );
        if note.len() > MAX_NOTE {
            let mut end = MAX_NOTE;
            while !note.is_char_boundary(end) {
                end -= 1;
            }
            note.truncate(end);
        }
        note
    }

    /// The SWH, with the probe as field path.
    pub fn regarding(&self) -> ObjectReference {
        ObjectReference {
            api_version: Some(swh_api::API_VERSION_V1BETA1.to_string()),
            kind: Some(swh_api::KIND.to_string()),
            namespace: Some(self.namespace.clone()),
            name: Some(self.swh.clone()),
            uid: self.swh_uid.clone(),
            field_path: Some(format!("spec.healthcheck.probes{{{}}}", self.probe)),
            ..Default::default()
        }
    }

    /// The pod.
    pub fn related(&self) -> ObjectReference {
        ObjectReference {
            api_version: Some("v1".to_string()),
            kind: Some("Pod".to_string()),
            namespace: Some(self.namespace.clone()),
            name: Some(self.pod.clone()),
            uid: Some(self.pod_uid.clone()).filter(|u| !u.is_empty()),
            ..Default::default()
        }
    }

    pub fn event(&self) -> Event {
        Event {
            type_: self.kind.event_type(),
            reason: self.kind.reason().to_string(),
            note: Some(self.note()),
            action: "Probe".to_string(),
            secondary: Some(self.related()),
        }
    }
}

/// Queue to the publishing task.
#[derive(Clone)]
pub struct Events {
    tx: mpsc::Sender<ProbeEvent>,
}

impl Events {
    /// Starts the publishing task (it ends when every [`Events`] is dropped).
    pub fn spawn(client: Client, node: &str) -> Events {
        let recorder = Recorder::new(
            client,
            Reporter {
                controller: REPORTER.to_string(),
                instance: Some(node.to_string()),
            },
        );
        let (tx, mut rx) = mpsc::channel::<ProbeEvent>(QUEUE);
        tokio::spawn(async move {
            while let Some(e) = rx.recv().await {
                if let Err(error) = recorder.publish(&e.event(), &e.regarding()).await {
                    tracing::warn!(ns = %e.namespace, swh = %e.swh, pod = %e.pod, probe = %e.probe,
                        reason = e.kind.reason(), %error, "publishing an event failed");
                }
            }
        });
        Events { tx }
    }

    /// Queues an event; `false` when the queue is full (it is dropped).
    pub fn send(&self, e: ProbeEvent) -> bool {
        self.tx.try_send(e).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ProbeState::{Failing as F, Passing as P, Unknown as U};

    #[test]
    fn failing_always_and_passing_only_after_failing() {
        assert_eq!(decide(P, F, None), Some(ProbeEventKind::Failed));
        assert_eq!(decide(U, F, None), Some(ProbeEventKind::Failed));
        assert_eq!(decide(F, P, None), Some(ProbeEventKind::Passed));
        // A first verdict that passes is the normal case.
        assert_eq!(decide(U, P, None), None);
        assert_eq!(decide(U, P, Some(U)), None);
    }

    #[test]
    fn after_a_restart_the_written_state_is_the_state_before() {
        // Written Failing, still failing: no repeat; now passing: a recovery.
        assert_eq!(decide(U, F, Some(F)), None);
        assert_eq!(decide(U, P, Some(F)), Some(ProbeEventKind::Passed));
        // Written Passing: no event for passing, an event for failing.
        assert_eq!(decide(U, P, Some(P)), None);
        assert_eq!(decide(U, F, Some(P)), Some(ProbeEventKind::Failed));
        // Decided by this process: the written state does not matter.
        assert_eq!(decide(P, F, Some(F)), Some(ProbeEventKind::Failed));
    }

    #[test]
    fn the_event_names_pod_probe_and_reason_and_regards_the_swh() {
        let e = ProbeEvent {
            kind: ProbeEventKind::Failed,
            namespace: "db".into(),
            swh: "db-write".into(),
            swh_uid: Some("u1".into()),
            pod: "db-0".into(),
            pod_uid: "p1".into(),
            probe: "primary".into(),
            message: "query returned false".into(),
        };
        let ev = e.event();
        assert_eq!(ev.reason, "ProbeFailed");
        assert_eq!(ev.type_, EventType::Warning);
        assert_eq!(
            ev.note.as_deref(),
            Some("pod db-0: probe primary failing: query returned false")
        );
        let r = e.regarding();
        assert_eq!(
            (r.kind.as_deref(), r.name.as_deref(), r.uid.as_deref()),
            (
                Some("ServiceWithHealthchecks"),
                Some("db-write"),
                Some("u1")
            )
        );
        assert_eq!(
            r.field_path.as_deref(),
            Some("spec.healthcheck.probes{primary}")
        );
        let p = ev.secondary.expect("related pod");
        assert_eq!(
            (p.kind.as_deref(), p.name.as_deref(), p.uid.as_deref()),
            (Some("Pod"), Some("db-0"), Some("p1"))
        );
        let passed = ProbeEvent {
            kind: ProbeEventKind::Passed,
            message: "query returned true".into(),
            ..e.clone()
        };
        assert_eq!(passed.event().type_, EventType::Normal);
        assert_eq!(
            passed.note(),
            "pod db-0: probe primary passing again: query returned true"
        );
        let long = ProbeEvent {
            message: "é".repeat(2000),
            ..e
        };
        assert!(long.note().len() <= 1024);
    }
}
