//! The running agent: watches feed one engine task that owns all state ([`Index`], the
//! scheduled targets, the observed slices); it reconciles the SWHs an event touched and starts
//! the few API writes that close the gap. Writes run as tasks and report back; while one is in
//! flight for a slice or a status, later changes wait for it and then go out together.
//!
//! - Nothing is written before the pod, SWH and slice watches have all listed once: a restart
//!   sees the slices it wrote before, keeps their conditions until fresh results decide, and
//!   writes nothing when nothing changed.
//! - Events within [`COALESCE`] of each other are reconciled together.
//! - Slices are never deleted on shutdown: probing stops and the published state stays.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::core::DeserializeGuard;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use swh_api::labels;
use swh_api::v1beta1::{EndpointStatus, ServiceWithHealthchecks, ServiceWithHealthchecksStatus};
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::Args;
use crate::admin::{self, AdminState};
use crate::events::{self, Events, ProbeEvent};
use crate::index::{Index, ObjectKey, TargetKey, status_signature};
use crate::metrics::Metrics;
use crate::probe::{ProbeSpec, ProbeTarget, Prober};
use crate::schedule::{ProbeResult, Scheduler, SchedulerConfig, instant_from_system, resets};
use crate::secrets::SecretWatches;
use crate::slices;
use crate::status_writer::Disposition;
use crate::targets::{PodInfo, SecretState, mode_label};
use crate::threshold::ProbeState;
use crate::{slice_writer, status_writer};

/// Events closer together than this are reconciled in one pass.
pub const COALESCE: Duration = Duration::from_millis(5);
/// API writes in flight at most.
const MAX_WRITES: usize = 32;
/// Distinct probe specs shared per reconcile of one SWH, at most (bounds the lookups).
const MAX_SHARED_SPECS: usize = 16;
const RETRY_MIN: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(30);

/// A watch's news, re-lists collected into one message.
#[derive(Debug)]
pub enum WatchMsg<T> {
    Applied(T),
    Deleted(T),
    Relisted(Vec<T>),
}

/// An SWH that deserialised, or the key and error of one that didn't.
pub type SwhItem = Result<Arc<ServiceWithHealthchecks>, (ObjectKey, String)>;

/// Everything the engine reacts to (besides probe results). Messages are moved once through
/// a channel and never stored, so variant sizes don't matter.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Input {
    Pods(WatchMsg<PodInfo>),
    Swhs(WatchMsg<SwhItem>),
    Slices(WatchMsg<EndpointSlice>),
    Secret(ObjectKey, SecretState),
    SliceApplied {
        slice: ObjectKey,
        swh: ObjectKey,
        /// [`slice_fingerprint`] of what was applied.
        fingerprint: u64,
        /// Transitions (pod UID, decision time) this apply publishes.
        publishes: Vec<(String, SystemTime)>,
        result: Result<Box<EndpointSlice>, (String, Disposition)>,
    },
    SliceDeleted {
        slice: ObjectKey,
        swh: ObjectKey,
        uid: Option<String>,
        result: Result<(), String>,
    },
    StatusApplied {
        swh: ObjectKey,
        signature: Vec<EndpointStatus>,
        result: Result<(), (String, Disposition)>,
    },
    Retry(ObjectKey),
}

/// Runs the agent until SIGTERM/SIGINT.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let node = args.node_name.trim().to_string();
    anyhow::ensure!(
        !node.is_empty(),
        "NODE_NAME is empty: set it from the downward API (spec.nodeName)"
    );
    let clients = swh_runtime::client::clients(Duration::from_secs(args.api_timeout_seconds))
        .await
        .context("creating the Kubernetes client (KUBECONFIG or in-cluster service account)")?;
    let cancel = CancellationToken::new();
    tokio::spawn(shutdown_on_signal(cancel.clone()));

    let metrics = Arc::new(Metrics::new());
    let ready = Arc::new(AtomicBool::new(false));
    let listener = tokio::net::TcpListener::bind(args.admin_listen)
        .await
        .with_context(|| format!("binding the admin port {}", args.admin_listen))?;
    let admin = admin::router(AdminState {
        ready: ready.clone(),
        metrics: metrics.clone(),
    });
    let admin_cancel = cancel.clone();
    let admin_task = tokio::spawn(async move {
        axum::serve(listener, admin)
            .with_graceful_shutdown(admin_cancel.cancelled_owned())
            .await
    });
    tracing::info!(node = %node, admin = %args.admin_listen, "swh-agent starting");

    let (tx, rx) = mpsc::channel(4096);
    spawn_watches(&clients.watches, &node, &tx, &cancel);
    let (scheduler, results) = Scheduler::spawn(
        Prober::new(),
        SchedulerConfig {
            max_concurrency: usize::try_from(args.max_concurrency).unwrap_or(512),
            ..Default::default()
        },
    );
    let engine = Engine::new(clients, node, scheduler, tx, metrics, ready);
    engine.run(rx, results, cancel.clone()).await;
    cancel.cancel();
    match admin_task.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "admin server failed"),
        Err(e) => tracing::warn!(error = %e, "admin server task failed"),
    }
    tracing::info!("swh-agent stopped (slices left as published)");
    Ok(())
}

async fn shutdown_on_signal(cancel: CancellationToken) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops the agent");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!("shutting down");
    cancel.cancel();
}

fn spawn_watches(
    client: &Client,
    node: &str,
    tx: &mpsc::Sender<Input>,
    cancel: &CancellationToken,
) {
    let pods: Api<Pod> = Api::all(client.clone());
    let cfg = watcher::Config::default().fields(&format!("spec.nodeName={node}"));
    tokio::spawn(pump(
        "pods",
        watcher::watcher(pods, cfg).default_backoff(),
        |p: Pod| PodInfo::from_pod(&p),
        Input::Pods,
        tx.clone(),
        cancel.clone(),
    ));

    let swhs: Api<DeserializeGuard<ServiceWithHealthchecks>> = Api::all(client.clone());
    let own = node.to_string();
    tokio::spawn(pump(
        "servicewithhealthchecks",
        watcher::watcher(swhs, watcher::Config::default()).default_backoff(),
        move |g: DeserializeGuard<ServiceWithHealthchecks>| {
            Some(match g.0 {
                Ok(mut s) => {
                    strip_swh(&mut s, &own);
                    Ok(Arc::new(s))
                }
                Err(bad) => Err((
                    (
                        bad.metadata.namespace.unwrap_or_default(),
                        bad.metadata.name.unwrap_or_default(),
                    ),
                    bad.error,
                )),
            })
        },
        Input::Swhs,
        tx.clone(),
        cancel.clone(),
    ));

    let eps: Api<EndpointSlice> = Api::all(client.clone());
    let cfg = watcher::Config::default().labels(&slices::own_slices_selector(node));
    tokio::spawn(pump(
        "endpointslices",
        watcher::watcher(eps, cfg).default_backoff(),
        |mut s: EndpointSlice| {
            strip_slice(&mut s);
            Some(s)
        },
        Input::Slices,
        tx.clone(),
        cancel.clone(),
    ));
}

/// Drops what the agent never reads from a watched SWH before it is kept: managedFields, the
/// last-applied annotation, and of the status all but the conditions and this node's
/// `endpointStatuses` (other nodes' entries can be thousands and are never read).
pub fn strip_swh(s: &mut ServiceWithHealthchecks, node: &str) {
    s.metadata.managed_fields = None;
    if let Some(a) = s.metadata.annotations.as_mut() {
        a.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
    if let Some(st) = s.status.take() {
        let own: Option<Vec<EndpointStatus>> = st.endpoint_statuses.map(|es| {
            es.into_iter()
                .filter(|e| e.node_name.as_deref() == Some(node))
                .collect()
        });
        s.status = Some(ServiceWithHealthchecksStatus {
            conditions: st.conditions,
            endpoint_statuses: own,
            ..Default::default()
        });
    }
}

/// Drops what the agent never reads from an EndpointSlice before it is kept (managedFields,
/// the last-applied annotation).
pub fn strip_slice(s: &mut EndpointSlice) {
    s.metadata.managed_fields = None;
    if let Some(a) = s.metadata.annotations.as_mut() {
        a.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
}

/// Forwards a watcher's events as [`WatchMsg`]s (a re-list as one message).
async fn pump<K, T, S>(
    what: &'static str,
    stream: S,
    conv: impl Fn(K) -> Option<T>,
    wrap: fn(WatchMsg<T>) -> Input,
    tx: mpsc::Sender<Input>,
    cancel: CancellationToken,
) where
    S: Stream<Item = Result<Event<K>, watcher::Error>> + Send,
{
    let mut stream = std::pin::pin!(stream);
    let mut buffer: Vec<T> = Vec::new();
    loop {
        let event = tokio::select! {
            _ = cancel.cancelled() => return,
            e = stream.next() => match e {
                Some(e) => e,
                None => return,
            },
        };
        let msg = match event {
            Ok(Event::Init) => {
                buffer.clear();
                continue;
            }
            Ok(Event::InitApply(k)) => {
                buffer.extend(conv(k));
                continue;
            }
            Ok(Event::InitDone) => WatchMsg::Relisted(std::mem::take(&mut buffer)),
            Ok(Event::Apply(k)) => match conv(k) {
                Some(t) => WatchMsg::Applied(t),
                None => continue,
            },
            Ok(Event::Delete(k)) => match conv(k) {
                Some(t) => WatchMsg::Deleted(t),
                None => continue,
            },
            Err(e) => {
                tracing::warn!(watch = what, error = %e, "watch failed; retrying with backoff");
                continue;
            }
        };
        if tx.send(wrap(msg)).await.is_err() {
            return;
        }
    }
}

/// A wall-clock time as RFC 3339 with microseconds, e.g. `2026-11-23T20:18:00.123456Z`.
pub fn rfc3339_micros(t: SystemTime) -> String {
    match k8s_openapi::jiff::Timestamp::try_from(t) {
        Ok(ts) => format!("{ts:.6}"),
        Err(_) => format!("{t:?}"),
    }
}

/// A stable hash of a slice as applied (what `applied` keeps instead of a copy).
fn slice_fingerprint(s: &EndpointSlice) -> u64 {
    slices::fnv64(&serde_json::to_vec(s).unwrap_or_default())
}

fn slice_key(s: &EndpointSlice) -> Option<ObjectKey> {
    Some((s.metadata.namespace.clone()?, s.metadata.name.clone()?))
}

/// The SWH a slice belongs to (its namespace and service-name label).
fn slice_owner(s: &EndpointSlice) -> Option<ObjectKey> {
    Some((
        s.metadata.namespace.clone()?,
        s.metadata
            .labels
            .as_ref()?
            .get(labels::SERVICE_NAME)?
            .clone(),
    ))
}

/// Whether `new` may replace `old` in the observed cache: a different object (UID), or not
/// older (generation, then resourceVersion).
fn not_older(new: &EndpointSlice, old: &EndpointSlice) -> bool {
    if new.metadata.uid != old.metadata.uid {
        return true;
    }
    if let (Some(n), Some(o)) = (new.metadata.generation, old.metadata.generation)
        && n != o
    {
        return n > o;
    }
    let rv = |s: &EndpointSlice| {
        s.metadata
            .resource_version
            .as_deref()
            .and_then(|v| v.parse::<u64>().ok())
    };
    match (rv(new), rv(old)) {
        (Some(n), Some(o)) => n >= o,
        _ => true,
    }
}

struct Scheduled {
    /// Shared with the scheduler, and between the pods of an SWH whose spec is the same (a
    /// spec can hold a CA bundle of up to 64 KiB).
    spec: Arc<ProbeSpec>,
    target: ProbeTarget,
    start: SystemTime,
}

pub struct Engine {
    client: Client,
    node: String,
    index: Index,
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
    scheduler: Scheduler<TargetKey>,
    scheduled: HashMap<TargetKey, Scheduled>,
    targets_of: HashMap<ObjectKey, BTreeSet<TargetKey>>,
    observed: BTreeMap<ObjectKey, EndpointSlice>,
    /// Last successful apply per slice: ([`slice_fingerprint`] of what we applied,
    /// resourceVersion it produced).
    applied: HashMap<ObjectKey, (u64, Option<String>)>,
    /// Per SWH: probe transitions (pod UID, decision time) not yet in a slice apply, for
    /// `swh_agent_transition_publish_seconds`.
    unpublished: HashMap<ObjectKey, Vec<(String, SystemTime)>>,
    /// SWHs this node publishes fail-open (`swh_agent_fail_open_swhs`).
    fail_open: HashSet<ObjectKey>,
    /// SWHs whose last status write was rejected as too large (logged once).
    status_too_large: HashSet<ObjectKey>,
    slice_inflight: HashSet<ObjectKey>,
    applies_inflight: HashMap<ObjectKey, usize>,
    status_applied: HashMap<ObjectKey, Vec<EndpointStatus>>,
    status_inflight: HashSet<ObjectKey>,
    backoff: HashMap<ObjectKey, Duration>,
    dirty: BTreeSet<ObjectKey>,
    /// SWHs whose probe results changed but nothing else: their targets need no re-planning.
    results_dirty: BTreeSet<ObjectKey>,
    swhs_changed: bool,
    synced: (bool, bool, bool),
    started: bool,
    secrets: SecretWatches,
    events: Events,
    events_dropped: u64,
    tx: mpsc::Sender<Input>,
    writes: Arc<Semaphore>,
}

impl Engine {
    fn new(
        clients: swh_runtime::client::Clients,
        node: String,
        scheduler: Scheduler<TargetKey>,
        tx: mpsc::Sender<Input>,
        metrics: Arc<Metrics>,
        ready: Arc<AtomicBool>,
    ) -> Engine {
        Engine {
            secrets: SecretWatches::new(clients.watches, tx.clone()),
            events: Events::spawn(clients.requests.clone(), &node),
            events_dropped: 0,
            client: clients.requests,
            index: Index::new(node.clone()),
            node,
            metrics,
            ready,
            scheduler,
            scheduled: HashMap::new(),
            targets_of: HashMap::new(),
            observed: BTreeMap::new(),
            applied: HashMap::new(),
            unpublished: HashMap::new(),
            status_too_large: HashSet::new(),
            fail_open: HashSet::new(),
            slice_inflight: HashSet::new(),
            applies_inflight: HashMap::new(),
            status_applied: HashMap::new(),
            status_inflight: HashSet::new(),
            backoff: HashMap::new(),
            dirty: BTreeSet::new(),
            results_dirty: BTreeSet::new(),
            swhs_changed: false,
            synced: (false, false, false),
            started: false,
            tx,
            writes: Arc::new(Semaphore::new(MAX_WRITES)),
        }
    }

    async fn run(
        mut self,
        mut rx: mpsc::Receiver<Input>,
        mut results: mpsc::Receiver<ProbeResult<TargetKey>>,
        cancel: CancellationToken,
    ) {
        let mut deadline: Option<Instant> = None;
        loop {
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                _ = cancel.cancelled() => break,
                Some(input) = rx.recv() => self.handle(input),
                Some(result) = results.recv() => self.on_result(result),
                _ = sleep => {
                    deadline = None;
                    self.flush();
                }
            }
            if !self.started && self.synced == (true, true, true) {
                self.start();
                deadline = None;
            }
            if self.started
                && deadline.is_none()
                && (!self.dirty.is_empty() || !self.results_dirty.is_empty() || self.swhs_changed)
            {
                deadline = Some(Instant::now() + COALESCE);
            }
        }
        self.ready.store(false, Ordering::Relaxed);
    }

    /// First full sync: reconcile everything once, then report ready.
    fn start(&mut self) {
        self.started = true;
        let mut all: BTreeSet<ObjectKey> = self.index.swh_keys().cloned().collect();
        all.extend(self.observed.values().filter_map(slice_owner));
        self.dirty.extend(all);
        self.swhs_changed = true;
        tracing::info!(
            swhs = self.index.swh_keys().count(),
            slices = self.observed.len(),
            seeded_endpoints = self.index.seeds_len(),
            "watches synced"
        );
        self.flush();
        self.index.settle_all_seeds();
        self.ready.store(true, Ordering::Relaxed);
    }

    fn handle(&mut self, input: Input) {
        match input {
            Input::Pods(msg) => {
                let dirty = match msg {
                    WatchMsg::Applied(p) => self.index.upsert_pod(p),
                    WatchMsg::Deleted(p) => self.index.remove_pod(&p.namespace, &p.name),
                    WatchMsg::Relisted(ps) => {
                        self.synced.0 = true;
                        self.index.replace_pods(ps)
                    }
                };
                self.dirty.extend(dirty);
            }
            Input::Swhs(msg) => {
                self.swhs_changed = true;
                match msg {
                    WatchMsg::Applied(Ok(s)) => self.dirty.extend(self.index.upsert_swh(s)),
                    WatchMsg::Applied(Err((key, error))) => {
                        tracing::warn!(ns = %key.0, name = %key.1, %error, "ignoring an SWH that does not deserialise; keeping its last good version");
                    }
                    WatchMsg::Deleted(item) => {
                        let key = match item {
                            Ok(s) => (
                                s.metadata.namespace.clone().unwrap_or_default(),
                                s.metadata.name.clone().unwrap_or_default(),
                            ),
                            Err((key, _)) => key,
                        };
                        self.index.remove_swh(&key);
                        self.dirty.insert(key);
                    }
                    WatchMsg::Relisted(items) => {
                        self.synced.1 = true;
                        let mut good = Vec::new();
                        for item in items {
                            match item {
                                Ok(s) => good.push(s),
                                Err((key, error)) => {
                                    tracing::warn!(ns = %key.0, name = %key.1, %error, "ignoring an SWH that does not deserialise; keeping its last good version");
                                    if let Some(old) = self.index.swh(&key) {
                                        good.push(old.clone());
                                    }
                                }
                            }
                        }
                        self.dirty.extend(self.index.replace_swhs(good));
                    }
                }
            }
            Input::Slices(msg) => match msg {
                WatchMsg::Applied(s) => self.observe_slice(s),
                WatchMsg::Deleted(s) => {
                    if let Some(k) = slice_key(&s) {
                        if self
                            .observed
                            .get(&k)
                            .is_some_and(|o| o.metadata.uid == s.metadata.uid)
                        {
                            self.observed.remove(&k);
                        }
                        self.dirty.extend(slice_owner(&s));
                    }
                }
                WatchMsg::Relisted(list) => {
                    self.synced.2 = true;
                    self.dirty
                        .extend(self.observed.values().filter_map(slice_owner));
                    self.observed.clear();
                    for s in list {
                        self.observe_slice(s);
                    }
                }
            },
            Input::Secret(key, state) => {
                if self.index.referenced_secrets().contains(&key) {
                    let dirty = self.index.set_secret(key, state);
                    self.dirty.extend(dirty);
                }
            }
            Input::SliceApplied {
                slice,
                swh,
                fingerprint,
                publishes,
                result,
            } => {
                self.slice_inflight.remove(&slice);
                self.done_apply(&swh);
                match result {
                    Ok(mut stored) => {
                        self.metrics.slice_write("apply", true);
                        let now = SystemTime::now();
                        for (_, since) in &publishes {
                            self.metrics.transition_published(
                                now.duration_since(*since).unwrap_or_default(),
                            );
                        }
                        self.backoff.remove(&swh);
                        self.applied.insert(
                            slice.clone(),
                            (fingerprint, stored.metadata.resource_version.clone()),
                        );
                        strip_slice(&mut stored);
                        self.observe_slice(*stored);
                        self.dirty.insert(swh);
                    }
                    Err((error, Disposition::Rejected | Disposition::TooLarge)) => {
                        self.metrics.slice_write("apply", false);
                        tracing::error!(ns = %slice.0, name = %slice.1, %error, "slice write rejected; not retrying until the next change");
                        // Remember it as applied against what is there now: no retry loop.
                        let rv = self
                            .observed
                            .get(&slice)
                            .and_then(|o| o.metadata.resource_version.clone());
                        self.applied.insert(slice, (fingerprint, rv));
                    }
                    Err((error, _)) => {
                        self.metrics.slice_write("apply", false);
                        tracing::warn!(ns = %slice.0, name = %slice.1, %error, "slice write failed; retrying");
                        // Not published yet: the retry carries them.
                        self.unpublished
                            .entry(swh.clone())
                            .or_default()
                            .extend(publishes);
                        self.retry_later(swh);
                    }
                }
            }
            Input::SliceDeleted {
                slice,
                swh,
                uid,
                result,
            } => {
                self.slice_inflight.remove(&slice);
                match result {
                    Ok(()) => {
                        self.metrics.slice_write("delete", true);
                        if self
                            .observed
                            .get(&slice)
                            .is_some_and(|o| uid.is_none() || o.metadata.uid == uid)
                        {
                            self.observed.remove(&slice);
                        }
                        self.applied.remove(&slice);
                        self.dirty.insert(swh);
                    }
                    Err(error) => {
                        self.metrics.slice_write("delete", false);
                        tracing::warn!(ns = %slice.0, name = %slice.1, %error, "slice delete failed; retrying");
                        self.retry_later(swh);
                    }
                }
            }
            Input::StatusApplied {
                swh,
                signature,
                result,
            } => {
                self.status_inflight.remove(&swh);
                match result {
                    Ok(()) => {
                        self.metrics.status_write(true);
                        self.status_too_large.remove(&swh);
                        self.status_applied.insert(swh.clone(), signature);
                        self.dirty.insert(swh);
                    }
                    Err((error, disposition)) => {
                        self.metrics.status_write(false);
                        match disposition {
                            Disposition::Gone => {
                                self.status_applied.remove(&swh);
                            }
                            Disposition::Rejected => {
                                tracing::error!(ns = %swh.0, name = %swh.1, %error, "status write rejected; not retrying until the next change");
                                self.status_applied.insert(swh, signature);
                            }
                            Disposition::TooLarge => {
                                if self.status_too_large.insert(swh.clone()) {
                                    tracing::warn!(ns = %swh.0, name = %swh.1, %error, entries = signature.len(), "status write rejected as too large; not retrying until the next change (logged once)");
                                } else {
                                    tracing::debug!(ns = %swh.0, name = %swh.1, %error, "status write rejected as too large again");
                                }
                                self.status_applied.insert(swh, signature);
                            }
                            Disposition::Retry => {
                                tracing::warn!(ns = %swh.0, name = %swh.1, %error, "status write failed; retrying");
                                self.retry_later(swh);
                            }
                        }
                    }
                }
            }
            Input::Retry(key) => {
                self.dirty.insert(key);
            }
        }
    }

    fn done_apply(&mut self, swh: &ObjectKey) {
        if let Some(n) = self.applies_inflight.get_mut(swh) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.applies_inflight.remove(swh);
            }
        }
    }

    fn observe_slice(&mut self, s: EndpointSlice) {
        let Some(k) = slice_key(&s) else {
            return;
        };
        if !self.started {
            self.index.seed(&k.0, &s);
        }
        if let Some(owner) = slice_owner(&s) {
            self.dirty.insert(owner);
        }
        match self.observed.get(&k) {
            Some(old) if !not_older(&s, old) => {}
            _ => {
                self.observed.insert(k, s);
            }
        }
    }

    fn retry_later(&mut self, key: ObjectKey) {
        let delay = self
            .backoff
            .get(&key)
            .map_or(RETRY_MIN, |d| (*d * 2).min(RETRY_MAX));
        self.backoff.insert(key.clone(), delay);
        let tx = self.tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = tx.send(Input::Retry(key)).await;
        });
    }

    fn on_result(&mut self, r: ProbeResult<TargetKey>) {
        self.metrics.probe(
            mode_label(&r.probe.kind),
            r.outcome.ok,
            r.outcome.duration,
            r.lag,
        );
        if !self.scheduled.contains_key(&r.key) {
            return;
        }
        if let Some(t) = &r.transition {
            self.metrics.transition();
            tracing::info!(
                ns = %r.key.namespace, swh = %r.key.swh, pod_uid = %r.key.pod_uid,
                probe = %r.key.probe, target = %r.target, from = %t.from, to = %t.to,
                since = %rfc3339_micros(t.since), reason = %t.message, "probe state changed"
            );
            let swh = (r.key.namespace.clone(), r.key.swh.clone());
            self.unpublished
                .entry(swh.clone())
                .or_default()
                .push((r.key.pod_uid.clone(), t.since));
            self.results_dirty.insert(swh);
            self.probe_event(&r.key, t.from, t.to, &t.message);
        }
        self.index.record(r.key, r.state);
    }

    /// Queues the event a transition gives, if any (see [`events`]).
    fn probe_event(&mut self, key: &TargetKey, from: ProbeState, to: ProbeState, message: &str) {
        let written = match from {
            ProbeState::Unknown => self.index.written_state(key),
            _ => None,
        };
        let Some(kind) = events::decide(from, to, written) else {
            return;
        };
        let Some(pod) = self.index.target_pod(key) else {
            return;
        };
        let swh_uid = self
            .index
            .swh(&(key.namespace.clone(), key.swh.clone()))
            .and_then(|s| s.metadata.uid.clone());
        let event = ProbeEvent {
            kind,
            namespace: key.namespace.clone(),
            swh: key.swh.clone(),
            swh_uid,
            pod: pod.name.clone(),
            pod_uid: key.pod_uid.clone(),
            probe: key.probe.clone(),
            message: message.to_string(),
        };
        if !self.events.send(event) {
            if self.events_dropped.is_multiple_of(100) {
                tracing::warn!(
                    dropped = self.events_dropped + 1,
                    "event queue full; dropping probe events"
                );
            }
            self.events_dropped += 1;
        }
    }

    fn flush(&mut self) {
        if !self.started {
            return;
        }
        if std::mem::take(&mut self.swhs_changed) {
            let wanted = self.index.referenced_secrets();
            for k in self.secrets.sync(&wanted) {
                self.index.forget_secret(&k);
            }
        }
        let planned = std::mem::take(&mut self.dirty);
        let mut keys = std::mem::take(&mut self.results_dirty);
        keys.extend(planned.iter().cloned());
        let now = SystemTime::now();
        for key in keys {
            // A probe transition alone changes no target: re-planning every pod of a large SWH
            // on each transition is the costly part of this pass.
            if planned.contains(&key) {
                self.reconcile_targets(&key, now);
            }
            self.index.settle_seeds(&key);
            self.reconcile_slices(&key);
            self.reconcile_status(&key, now);
        }
        self.metrics.set_targets(self.scheduled.len());
    }

    fn reconcile_targets(&mut self, key: &ObjectKey, now: SystemTime) {
        let desired = self.index.targets(key, now);
        let mut keep = BTreeSet::new();
        // Distinct specs of this pass (usually one per probe), shared by all its targets.
        let mut shared: Vec<Arc<ProbeSpec>> = Vec::new();
        for t in desired {
            keep.insert(t.key.clone());
            let (changed, reset) = match self.scheduled.get(&t.key) {
                Some(s) => (
                    *s.spec != t.spec || s.target != t.target || s.start != t.start,
                    resets(s.target, &s.spec, t.target, &t.spec),
                ),
                None => (true, true),
            };
            if !changed {
                if let Some(s) = self.scheduled.get(&t.key)
                    && shared.len() < MAX_SHARED_SPECS
                    && !shared
                        .iter()
                        .any(|a| Arc::ptr_eq(a, &s.spec) || **a == *s.spec)
                {
                    shared.push(s.spec.clone());
                }
                continue;
            }
            if reset {
                self.index.forget_target(&t.key);
            }
            let spec = match shared.iter().find(|a| ***a == t.spec) {
                Some(a) => a.clone(),
                None => {
                    let a = Arc::new(t.spec);
                    if shared.len() < MAX_SHARED_SPECS {
                        shared.push(a.clone());
                    }
                    a
                }
            };
            self.scheduler.upsert(
                t.key.clone(),
                t.target,
                spec.clone(),
                instant_from_system(t.start),
            );
            self.scheduled.insert(
                t.key,
                Scheduled {
                    spec,
                    target: t.target,
                    start: t.start,
                },
            );
        }
        let old = if keep.is_empty() {
            self.targets_of.remove(key).unwrap_or_default()
        } else {
            self.targets_of
                .insert(key.clone(), keep.clone())
                .unwrap_or_default()
        };
        for k in old.difference(&keep) {
            self.scheduler.remove(k.clone());
            self.scheduled.remove(k);
            self.index.forget_target(k);
        }
    }

    fn reconcile_slices(&mut self, key: &ObjectKey) {
        let open = self.index.fail_open(key);
        if open != self.fail_open.contains(key) {
            if open {
                tracing::warn!(ns = %key.0, name = %key.1, "fail-open: publishing every probed pod that is Ready and not terminating");
                self.fail_open.insert(key.clone());
            } else {
                tracing::info!(ns = %key.0, name = %key.1, "fail-open ended: publishing passing pods only");
                self.fail_open.remove(key);
            }
            self.metrics.set_fail_open(self.fail_open.len());
        }
        let desired: Vec<EndpointSlice> = match self.index.owner(key) {
            Some(owner) => slices::build(&owner, &self.node, &self.index.endpoints(key)),
            None => Vec::new(),
        };
        let mut names = BTreeSet::new();
        // Transitions not published yet: each goes with the apply of the slice that holds its
        // pod; one whose slice is in flight waits for the next pass; the rest changed nothing
        // to publish (or their pod is not published) and are dropped.
        let mut pending = self.unpublished.remove(key).unwrap_or_default();
        let mut waiting = Vec::new();
        for d in desired {
            let Some(sk) = slice_key(&d) else { continue };
            names.insert(sk.clone());
            let mut here = Vec::new();
            if !pending.is_empty() {
                let uids: HashSet<&str> = d
                    .endpoints
                    .iter()
                    .filter_map(|e| e.target_ref.as_ref()?.uid.as_deref())
                    .collect();
                let (mine, rest): (Vec<_>, Vec<_>) = pending
                    .into_iter()
                    .partition(|(uid, _)| uids.contains(uid.as_str()));
                pending = rest;
                here = mine;
            }
            if self.slice_inflight.contains(&sk) {
                waiting.extend(here);
                continue;
            }
            let need = match self.observed.get(&sk) {
                None => true,
                Some(o) => {
                    slices::needs_write(&d, o)
                        && !self.applied.get(&sk).is_some_and(|(a, rv)| {
                            *rv == o.metadata.resource_version && *a == slice_fingerprint(&d)
                        })
                }
            };
            if need {
                self.spawn_apply(key.clone(), sk, d, here);
            }
        }
        if !waiting.is_empty() {
            self.unpublished.insert(key.clone(), waiting);
        }
        // Deletions wait until the applies of this SWH are done, so that a renamed or split
        // slice never leaves a gap.
        if self.applies_inflight.contains_key(key) {
            return;
        }
        let stale: Vec<(ObjectKey, Option<String>)> = self
            .observed
            .iter()
            .filter(|(sk, s)| {
                sk.0 == key.0
                    && slice_owner(s).is_some_and(|o| o == *key)
                    && !names.contains(*sk)
                    && !self.slice_inflight.contains(*sk)
            })
            .map(|(sk, s)| (sk.clone(), s.metadata.uid.clone()))
            .collect();
        for (sk, uid) in stale {
            self.spawn_delete(key.clone(), sk, uid);
        }
    }

    fn spawn_apply(
        &mut self,
        swh: ObjectKey,
        slice: ObjectKey,
        desired: EndpointSlice,
        publishes: Vec<(String, SystemTime)>,
    ) {
        let fingerprint = slice_fingerprint(&desired);
        // kube-proxy's network-programming latency starts at the event that changed the
        // endpoints: the earliest probe transition this write publishes, else now.
        let mut desired = desired;
        slices::set_trigger_time(
            &mut desired,
            self.observed.get(&slice),
            publishes
                .iter()
                .map(|p| p.1)
                .min()
                .unwrap_or_else(SystemTime::now),
        );
        self.slice_inflight.insert(slice.clone());
        *self.applies_inflight.entry(swh.clone()).or_default() += 1;
        tracing::debug!(ns = %slice.0, name = %slice.1, endpoints = desired.endpoints.len(), "applying slice");
        let client = self.client.clone();
        let tx = self.tx.clone();
        let sem = self.writes.clone();
        let in_flight = self.metrics.write_started();
        tokio::spawn(async move {
            let _in_flight = in_flight;
            let _permit = sem.acquire_owned().await;
            let result = slice_writer::apply(&client, &desired)
                .await
                .map(Box::new)
                .map_err(|e| (e.to_string(), e.disposition()));
            let _ = tx
                .send(Input::SliceApplied {
                    slice,
                    swh,
                    fingerprint,
                    publishes,
                    result,
                })
                .await;
        });
    }

    fn spawn_delete(&mut self, swh: ObjectKey, slice: ObjectKey, uid: Option<String>) {
        self.slice_inflight.insert(slice.clone());
        tracing::debug!(ns = %slice.0, name = %slice.1, "deleting slice");
        let client = self.client.clone();
        let tx = self.tx.clone();
        let sem = self.writes.clone();
        let in_flight = self.metrics.write_started();
        tokio::spawn(async move {
            let _in_flight = in_flight;
            let _permit = sem.acquire_owned().await;
            let result = slice_writer::delete(&client, &slice.0, &slice.1)
                .await
                .map_err(|e| format!("{e}"));
            let _ = tx
                .send(Input::SliceDeleted {
                    slice,
                    swh,
                    uid,
                    result,
                })
                .await;
        });
    }

    fn reconcile_status(&mut self, key: &ObjectKey, now: SystemTime) {
        if self.index.swh(key).is_none() {
            self.status_applied.remove(key);
            self.status_too_large.remove(key);
            return;
        }
        // Bounded (see status_writer): compact entries for passing pods, a cap per node.
        let bounded = status_writer::bound(self.index.statuses(key, now));
        let entries = bounded.entries;
        let signature = status_signature(&entries);
        if !self.status_applied.contains_key(key) {
            let observed = status_writer::bound(self.index.observed_statuses(key)).entries;
            self.status_applied
                .insert(key.clone(), status_signature(&observed));
        }
        if self.status_applied.get(key) == Some(&signature) || self.status_inflight.contains(key) {
            return;
        }
        self.status_inflight.insert(key.clone());
        let client = self.client.clone();
        let tx = self.tx.clone();
        let sem = self.writes.clone();
        let in_flight = self.metrics.write_started();
        let node = self.node.clone();
        let swh = key.clone();
        tracing::debug!(
            ns = %swh.0, name = %swh.1, entries = entries.len(), full = bounded.full,
            compact = bounded.compact, omitted = bounded.omitted, "applying status"
        );
        tokio::spawn(async move {
            let _in_flight = in_flight;
            let _permit = sem.acquire_owned().await;
            let result = status_writer::apply(&client, &node, &swh.0, &swh.1, &entries)
                .await
                .map_err(|e| (e.to_string(), e.disposition()));
            let _ = tx
                .send(Input::StatusApplied {
                    swh,
                    signature,
                    result,
                })
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn transition_times_are_rfc3339_with_microseconds() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_micros(1_795_000_000_123_456);
        assert_eq!(rfc3339_micros(t), "2026-11-18T11:06:40.123456Z");
        let whole = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        assert_eq!(rfc3339_micros(whole), "2026-11-18T11:06:40.000000Z");
    }

    #[test]
    fn stored_swhs_keep_only_what_the_agent_reads() {
        let mut s: ServiceWithHealthchecks = serde_json::from_value(json!({
            "apiVersion": "network.deckhouse.io/v1beta1",
            "kind": "ServiceWithHealthchecks",
            "metadata": {
                "namespace": "ns", "name": "web", "uid": "u1",
                "annotations": {
                    "network.deckhouse.io/adopt-service": "true",
                    "kubectl.kubernetes.io/last-applied-configuration": "{...}"
                },
                "managedFields": [{"manager": "x", "operation": "Apply"}]
            },
            "spec": {"ports": [{"port": 80}], "selector": {"app": "web"}},
            "status": {
                "conditions": [{"type": "ChildServiceConflict", "status": "True",
                    "reason": "R", "message": "m", "lastTransitionTime": "2026-01-01T00:00:00Z"}],
                "observedGeneration": 3,
                "publishedEndpoints": 1,
                "totalEndpoints": 2,
                "ready": "1/2",
                "clusterIP": "10.0.0.1",
                "endpointStatuses": [
                    {"podName": "a", "nodeName": "node-a", "podIP": "10.1.0.1"},
                    {"podName": "b", "nodeName": "node-b", "podIP": "10.1.0.2"},
                    {"podName": "c", "podIP": "10.1.0.3"}
                ]
            }
        }))
        .unwrap();
        let spec = s.spec.clone();
        strip_swh(&mut s, "node-a");
        assert!(s.metadata.managed_fields.is_none());
        assert_eq!(
            s.metadata
                .annotations
                .as_ref()
                .unwrap()
                .keys()
                .collect::<Vec<_>>(),
            vec!["network.deckhouse.io/adopt-service"]
        );
        assert_eq!(s.spec, spec);
        let st = s.status.as_ref().unwrap();
        assert_eq!(st.conditions.as_ref().unwrap().len(), 1);
        let names: Vec<&str> = st
            .endpoint_statuses
            .iter()
            .flatten()
            .map(|e| e.pod_name.as_str())
            .collect();
        assert_eq!(names, vec!["a"]);
        assert_eq!(st.observed_generation, None);
        assert_eq!(st.cluster_ip, None);
        assert_eq!(st.total_endpoints, None);

        // No status stays no status.
        let mut bare = s.clone();
        bare.status = None;
        strip_swh(&mut bare, "node-a");
        assert!(bare.status.is_none());
    }
}
