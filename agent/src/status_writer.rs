//! Writes this node's `status.endpointStatuses` entries of one SWH: server-side apply on the
//! status subresource with field manager `swh-agent-<node>`. Each node applies only its own
//! entries (the list is a map keyed by podName), so agents never overwrite each other, and an
//! applied set that omits a pod removes that pod's entry this manager owned. The aggregate fields
//! and conditions belong to the controller and are never sent.
//!
//! The entries are bounded ([`bound`]) so that one node's apply stays far below etcd's request
//! limit (about 1.5 MiB) however many pods an SWH has on the node:
//!
//! - while all full entries fit ([`MAX_ENTRIES`], [`MAX_ENTRIES_BYTES`]), all are written in
//!   full, as for any SWH of ordinary size;
//! - otherwise pods that are not fully passing (a probe failing or unknown, or not ready) come
//!   first and keep their full entry (last errors, counters, probe times) while it fits;
//! - and passing pods get a compact entry: podName, nodeName, podIP, published, ready,
//!   probesSuccessful and per probe only name, state and since;
//! - at most [`MAX_ENTRIES`] entries and about [`MAX_ENTRIES_BYTES`] of JSON per node. Beyond
//!   that the remaining passing pods get no entry at all: they are counted only by the
//!   controller's `publishedEndpoints`/`totalEndpoints` (which come from the EndpointSlices).
//!
//! A write the API server rejects as too large (413, or etcd's "request is too large") is not
//! retried until the next change ([`Disposition::TooLarge`]).

use std::io;

use kube::api::{Patch, PatchParams};
use kube::core::DeserializeGuard;
use kube::{Api, Client};
use serde::Serialize;
use swh_api::v1beta1::{self, EndpointStatus, ProbeStatus, ServiceWithHealthchecks};

/// Entries one node writes per SWH, at most.
pub const MAX_ENTRIES: usize = 1000;
/// Serialized size of one node's entries, at most (about; the apply body adds a few hundred
/// bytes of envelope).
pub const MAX_ENTRIES_BYTES: usize = 400 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum StatusWriteError {
    #[error("applying status of {ns}/{name}: {source}")]
    Apply {
        ns: String,
        name: String,
        #[source]
        source: kube::Error,
    },
}

/// What to do after a failed write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// The object is gone: nothing to write.
    Gone,
    /// The server rejected the request (4xx other than 401/403/409/429): retrying the same
    /// request would fail the same way; the next change writes again.
    Rejected,
    /// The request is too large for the API server or etcd (413, or 500 "request is too
    /// large"): retrying the same request would fail the same way; the next change writes
    /// again.
    TooLarge,
    /// Transient (5xx, 409, 429, transport) or fixable outside (401/403: credentials or RBAC):
    /// retry with backoff (at most every 30 s).
    Retry,
}

/// Classifies a failed API call.
pub fn disposition(e: &kube::Error) -> Disposition {
    match e {
        kube::Error::Api(s) if s.is_not_found() => Disposition::Gone,
        kube::Error::Api(s)
            if s.code == 413 || (s.code == 500 && s.message.contains("request is too large")) =>
        {
            Disposition::TooLarge
        }
        kube::Error::Api(s)
            if (400..500).contains(&s.code) && ![401, 403, 409, 429].contains(&s.code) =>
        {
            Disposition::Rejected
        }
        _ => Disposition::Retry,
    }
}

impl StatusWriteError {
    pub fn disposition(&self) -> Disposition {
        match self {
            StatusWriteError::Apply { source, .. } => disposition(source),
        }
    }
}

/// Field manager of a node's status entries.
pub fn field_manager(node: &str) -> String {
    // Field manager names are limited to 128 characters.
    let m = format!("swh-agent-{node}");
    if m.len() <= 128 {
        m
    } else {
        format!("swh-agent-{}", crate::slices::fit_name(node))
    }
}

/// Whether an entry is fully passing: ready, and every probe `Passing`.
pub fn is_passing(e: &EndpointStatus) -> bool {
    e.ready == Some(true)
        && e.probes_successful == Some(true)
        && e.probes
            .iter()
            .flatten()
            .all(|p| p.state == v1beta1::ProbeState::Passing)
}

/// The compact form of an entry: no probe or transition times, no errors, no counters.
pub fn compact(e: EndpointStatus) -> EndpointStatus {
    EndpointStatus {
        pod_name: e.pod_name,
        node_name: e.node_name,
        pod_ip: e.pod_ip,
        published: e.published,
        ready: e.ready,
        probes_successful: e.probes_successful,
        failed_probes: e.failed_probes,
        last_probe_time: None,
        last_transition_time: None,
        probes: e.probes.map(|ps| {
            ps.into_iter()
                .map(|p| ProbeStatus {
                    name: p.name,
                    state: p.state,
                    since: p.since,
                    ..Default::default()
                })
                .collect()
        }),
    }
}

/// Counts bytes written.
struct Counter(usize);

impl io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Length of `v` serialized as compact JSON (what the apply sends).
pub fn json_len<T: Serialize + ?Sized>(v: &T) -> usize {
    let mut c = Counter(0);
    match serde_json::to_writer(&mut c, v) {
        Ok(()) => c.0,
        Err(_) => usize::MAX,
    }
}

/// Entries to write, bounded (see the module docs).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Bounded {
    /// Sorted by pod name.
    pub entries: Vec<EndpointStatus>,
    /// Entries written in full.
    pub full: usize,
    /// Entries written compact.
    pub compact: usize,
    /// Pods left out (over [`MAX_ENTRIES`] or [`MAX_ENTRIES_BYTES`]).
    pub omitted: usize,
}

/// Bounds a node's entries ([`MAX_ENTRIES`], [`MAX_ENTRIES_BYTES`]). When all full entries
/// fit, they are kept as they are. Otherwise, by priority:
///
/// 1. every not-passing pod gets an entry (compact), by pod name, while they fit;
/// 2. those entries become full ones (errors, counters, times), by pod name, while they fit;
/// 3. passing pods get compact entries, by pod name, while they fit.
///
/// Deterministic: the same entries give the same result. Sorted by pod name.
pub fn bound(entries: Vec<EndpointStatus>) -> Bounded {
    bound_with(entries, MAX_ENTRIES, MAX_ENTRIES_BYTES)
}

/// [`bound`] with explicit limits.
pub fn bound_with(entries: Vec<EndpointStatus>, max_entries: usize, max_bytes: usize) -> Bounded {
    let total = entries.len();
    if total <= max_entries {
        let mut bytes = 2usize;
        let all_fit = entries.iter().all(|e| {
            bytes = bytes.saturating_add(json_len(e)).saturating_add(1);
            bytes <= max_bytes
        });
        if all_fit {
            let mut entries = entries;
            entries.sort_by(|a, b| a.pod_name.cmp(&b.pod_name));
            return Bounded {
                full: entries.len(),
                entries,
                ..Default::default()
            };
        }
    }
    let (passing, other): (Vec<EndpointStatus>, Vec<EndpointStatus>) =
        entries.into_iter().partition(is_passing);
    let mut out = Bounded::default();
    // "[" and "]"; every entry adds its length and a comma (one too many: an upper bound).
    let mut bytes = 2usize;
    let fits = |bytes: usize, n: usize| bytes.saturating_add(n) <= max_bytes;
    // 1. Not-passing pods, compact.
    let mut listed: Vec<(EndpointStatus, usize, usize)> = Vec::new();
    for e in other {
        if listed.len() >= max_entries {
            break;
        }
        let c = json_len(&compact(e.clone())) + 1;
        if fits(bytes, c) {
            bytes += c;
            let f = json_len(&e) + 1;
            listed.push((e, f, c));
        }
    }
    // 2. In full where the rest of the budget allows.
    for (e, f, c) in listed {
        let extra = f.saturating_sub(c);
        if fits(bytes, extra) {
            bytes += extra;
            out.full += 1;
            out.entries.push(e);
        } else {
            out.compact += 1;
            out.entries.push(compact(e));
        }
    }
    // 3. Passing pods, compact.
    for e in passing {
        if out.entries.len() >= max_entries {
            break;
        }
        let c = compact(e);
        let n = json_len(&c) + 1;
        if !fits(bytes, n) {
            break;
        }
        bytes += n;
        out.compact += 1;
        out.entries.push(c);
    }
    out.omitted = total - out.entries.len();
    out.entries.sort_by(|a, b| a.pod_name.cmp(&b.pod_name));
    out
}

#[derive(Debug, Serialize)]
struct BodyMeta<'a> {
    name: &'a str,
}

#[derive(Debug, Serialize)]
struct BodyStatus<'a> {
    #[serde(rename = "endpointStatuses")]
    endpoint_statuses: &'a [EndpointStatus],
}

/// The apply body, serialized straight from the entries (no intermediate JSON tree).
#[derive(Debug, Serialize)]
struct Body<'a> {
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    kind: &'static str,
    metadata: BodyMeta<'a>,
    status: BodyStatus<'a>,
}

fn body<'a>(name: &'a str, entries: &'a [EndpointStatus]) -> Body<'a> {
    Body {
        api_version: swh_api::API_VERSION_V1BETA1,
        kind: swh_api::KIND,
        metadata: BodyMeta { name },
        status: BodyStatus {
            endpoint_statuses: entries,
        },
    }
}

/// The apply body: only `status.endpointStatuses` with this node's entries. An empty list
/// releases every entry this manager owned (omitting the field instead could leave `status`
/// empty, which the schema rejects as null).
pub fn apply_body(name: &str, entries: &[EndpointStatus]) -> serde_json::Value {
    serde_json::to_value(body(name, entries)).unwrap_or(serde_json::Value::Null)
}

/// Size in bytes of the apply body as sent.
pub fn apply_body_len(name: &str, entries: &[EndpointStatus]) -> usize {
    json_len(&body(name, entries))
}

pub async fn apply(
    client: &Client,
    node: &str,
    ns: &str,
    name: &str,
    entries: &[EndpointStatus],
) -> Result<(), StatusWriteError> {
    let api: Api<DeserializeGuard<ServiceWithHealthchecks>> = Api::namespaced(client.clone(), ns);
    api.patch_status(
        name,
        &PatchParams::apply(&field_manager(node)).force(),
        &Patch::Apply(body(name, entries)),
    )
    .await
    .map(|_| ())
    .map_err(|source| StatusWriteError::Apply {
        ns: ns.to_string(),
        name: name.to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn time(secs: i64) -> Option<Time> {
        Some(Time(
            k8s_openapi::jiff::Timestamp::from_second(1_795_000_000 + secs).unwrap(),
        ))
    }

    /// An entry as [`crate::index::Index::statuses`] builds it: every field set.
    fn entry(i: usize, failing: bool) -> EndpointStatus {
        let error = failing.then(|| "x".repeat(1024));
        let probe = |name: &str| ProbeStatus {
            name: name.into(),
            state: if failing {
                v1beta1::ProbeState::Failing
            } else {
                v1beta1::ProbeState::Passing
            },
            since: time(1),
            last_error: error.clone(),
            consecutive_failures: Some(if failing { 123_456 } else { 0 }),
            consecutive_successes: Some(if failing { 0 } else { 123_456 }),
            last_probe_time: time(100),
        };
        EndpointStatus {
            pod_name: format!("scale-{i:05}"),
            node_name: Some("node-a".into()),
            pod_ip: Some(format!("10.251.{}.{}", i / 250, i % 250 + 1)),
            published: Some(!failing),
            ready: Some(!failing),
            probes_successful: Some(!failing),
            failed_probes: failing.then(|| vec!["tcp".into(), "http".into()]),
            last_probe_time: time(100),
            last_transition_time: time(1),
            probes: Some(vec![probe("tcp"), probe("http")]),
        }
    }

    fn pods(n: usize, failing: usize) -> Vec<EndpointStatus> {
        // `failing` pods spread over the name range.
        let step = n / failing.max(1);
        (0..n)
            .map(|i| entry(i, failing > 0 && i % step == 0 && i / step < failing))
            .collect()
    }

    const LIMIT: usize = 512 * 1024;

    #[test]
    fn two_thousand_passing_pods_stay_far_below_the_request_limit() {
        let all = pods(2000, 0);
        let before = apply_body_len("scale", &all);
        let b = bound(all);
        let after = apply_body_len("scale", &b.entries);
        println!(
            "2,000 passing pods x 2 probes: body {before} B unbounded, {after} B bounded ({} compact, {} omitted)",
            b.compact, b.omitted
        );
        assert!(
            before > 1024 * 1024,
            "the unbounded body is the problem: {before}"
        );
        assert!(after < LIMIT, "{after}");
        assert_eq!(b.entries.len(), MAX_ENTRIES);
        assert_eq!((b.full, b.compact, b.omitted), (0, 1000, 1000));
        // The first pods by name, compact.
        assert_eq!(b.entries[0].pod_name, "scale-00000");
        assert_eq!(b.entries[999].pod_name, "scale-00999");
        let p = &b.entries[0].probes.as_ref().unwrap()[0];
        assert_eq!(
            p,
            &ProbeStatus {
                name: "tcp".into(),
                state: v1beta1::ProbeState::Passing,
                since: time(1),
                ..Default::default()
            }
        );
        assert!(b.entries[0].last_probe_time.is_none());
        assert!(b.entries[0].last_transition_time.is_none());
        assert_eq!(b.entries[0].published, Some(true));
        assert_eq!(b.entries[0].pod_ip.as_deref(), Some("10.251.0.1"));
    }

    #[test]
    fn failing_pods_come_first_and_in_full_while_they_fit() {
        let all = pods(2000, 300);
        let failing: Vec<String> = all
            .iter()
            .filter(|e| !is_passing(e))
            .map(|e| e.pod_name.clone())
            .collect();
        assert_eq!(failing.len(), 300);
        let before = apply_body_len("scale", &all);
        let b = bound(all);
        let after = apply_body_len("scale", &b.entries);
        println!(
            "2,000 pods x 2 probes, 300 failing with 1 KiB errors: body {before} B unbounded, {after} B bounded ({} full, {} compact, {} omitted)",
            b.full, b.compact, b.omitted
        );
        assert!(after < LIMIT, "{after}");
        assert!(after <= MAX_ENTRIES_BYTES + 200, "{after}");
        // Every failing pod is listed; the first ones in full.
        for name in &failing {
            assert!(b.entries.iter().any(|e| &e.pod_name == name), "{name}");
        }
        assert!(b.full > 100, "{}", b.full);
        let full = b.entries.iter().find(|e| e.pod_name == failing[0]).unwrap();
        assert_eq!(full, &entry(0, true));
        // Sorted by pod name.
        assert!(b.entries.windows(2).all(|w| w[0].pod_name < w[1].pod_name));
        assert_eq!(b.entries.len() + b.omitted, 2000);
        // Deterministic.
        assert_eq!(bound(pods(2000, 300)), b);
    }

    #[test]
    fn small_sets_are_kept_in_full() {
        let all = vec![entry(0, false), entry(1, true), entry(2, false)];
        let b = bound(all.clone());
        assert_eq!((b.full, b.compact, b.omitted), (3, 0, 0));
        assert_eq!(b.entries, all);
        // 1,000 passing pods, as many entries as allowed but over the size: compact.
        let b = bound(pods(1000, 0));
        assert_eq!((b.full, b.compact, b.omitted), (0, 1000, 0));
    }

    #[test]
    fn over_the_limits_only_passing_entries_are_compacted() {
        let all = vec![entry(0, false), entry(1, true), entry(2, false)];
        let b = bound_with(all.clone(), 3, json_len(&all) - 1);
        assert_eq!((b.full, b.compact, b.omitted), (1, 2, 0));
        assert_eq!(b.entries[1], all[1]);
        assert_eq!(b.entries[0], compact(all[0].clone()));
        assert_eq!(b.entries[2], compact(all[2].clone()));
        // Unknown probes are not passing: kept in full.
        let mut unknown = entry(3, false);
        unknown.probes.as_mut().unwrap()[1].state = v1beta1::ProbeState::Unknown;
        unknown.probes_successful = Some(false);
        assert!(!is_passing(&unknown));
        assert_eq!(bound_with(vec![unknown.clone()], 0, 0).entries, vec![]);
        assert_eq!(
            bound_with(vec![unknown.clone(), entry(4, false)], 1, usize::MAX).entries,
            vec![unknown]
        );
        // An empty set stays empty (it releases this node's entries).
        assert_eq!(bound(Vec::new()), Bounded::default());
    }

    #[test]
    fn limits_hold_for_any_count() {
        let b = bound_with(pods(50, 10), 20, usize::MAX);
        assert_eq!(b.entries.len(), 20);
        assert_eq!(b.entries.iter().filter(|e| !is_passing(e)).count(), 10);
        let b = bound_with(pods(50, 10), usize::MAX, 4096);
        assert!(json_len(&b.entries) <= 4096, "{}", json_len(&b.entries));
        assert!(b.omitted > 0);
    }

    #[test]
    fn json_len_is_the_serialized_length() {
        let e = entry(7, true);
        assert_eq!(json_len(&e), serde_json::to_vec(&e).unwrap().len());
        let es = vec![entry(1, false), entry(2, true)];
        assert_eq!(
            apply_body_len("web", &es),
            serde_json::to_vec(&apply_body("web", &es)).unwrap().len()
        );
    }

    #[test]
    fn too_large_requests_are_not_retried() {
        use kube::core::Status;
        let api = |code: u16, msg: &str| {
            kube::Error::Api(Status::failure(msg, "x").with_code(code).boxed())
        };
        assert_eq!(
            disposition(&api(500, "etcdserver: request is too large")),
            Disposition::TooLarge
        );
        assert_eq!(
            disposition(&api(413, "Request entity too large: limit is 3145728")),
            Disposition::TooLarge
        );
        assert_eq!(
            disposition(&api(500, "etcdserver: leader changed")),
            Disposition::Retry
        );
    }
}
