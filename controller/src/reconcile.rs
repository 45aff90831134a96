//! The reconcile of one SWH: child Service (create, update, conflict, adoption handover), then
//! the aggregate status; and the orphan-slice janitor.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Endpoints, Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;
use swh_api::v1beta1::{ServiceWithHealthchecks, ServiceWithHealthchecksStatus};
use swh_api::{API_VERSION_V1BETA1, KIND, annotations, conditions, labels};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::adoption::{self, BUILTIN_SLICE_MANAGER, Decision};
use crate::child::{self, FIELD_MANAGER, Ownership};
use crate::metrics::Metrics;
use crate::slices::{self, Orphan};
use crate::status::{self, ChildState, FOREIGN_ENDPOINTS, Observed};

type Swh = ServiceWithHealthchecks;

/// Errors of one reconcile.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("object has no {0}")]
    MissingMetadata(&'static str),
    #[error("creating Service {ns}/{name}: {source}")]
    CreateService {
        ns: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("applying Service {ns}/{name}: {source}")]
    ApplyService {
        ns: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("listing EndpointSlices of {ns}/{name}: {source}")]
    ListSlices {
        ns: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("patching status of {ns}/{name}: {source}")]
    PatchStatus {
        ns: String,
        name: String,
        #[source]
        source: kube::Error,
    },
}

impl Error {
    /// Label for the failures metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::MissingMetadata(_) => "missing_metadata",
            Error::CreateService { .. } => "create_service",
            Error::ApplyService { .. } => "apply_service",
            Error::ListSlices { .. } => "list_slices",
            Error::PatchStatus { .. } => "patch_status",
        }
    }

    fn is_conflict(&self) -> bool {
        let src = match self {
            Error::CreateService { source, .. }
            | Error::ApplyService { source, .. }
            | Error::PatchStatus { source, .. } => source,
            _ => return false,
        };
        matches!(src, kube::Error::Api(s) if s.is_conflict())
    }

    /// A failure without an answer from the API server (a timeout, a refused or broken
    /// connection): retried as soon as a conflict, since nothing was decided.
    fn is_transport(&self) -> bool {
        match self {
            Error::CreateService { source, .. }
            | Error::ApplyService { source, .. }
            | Error::ListSlices { source, .. }
            | Error::PatchStatus { source, .. } => !matches!(source, kube::Error::Api(_)),
            Error::MissingMetadata(_) => false,
        }
    }
}

/// What the watches hold.
#[derive(Clone)]
pub struct Stores {
    pub swh: Store<Swh>,
    pub services: Store<Service>,
    /// The agents' slices (full objects).
    pub agent_slices: Store<EndpointSlice>,
    /// Every other slice that names a service (metadata only).
    pub other_slices: Store<PartialObjectMeta<EndpointSlice>>,
    pub endpoints: Store<PartialObjectMeta<Endpoints>>,
    pub nodes: Store<PartialObjectMeta<Node>>,
}

/// Shared state of the reconciles.
pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    pub leader: watch::Receiver<bool>,
    pub stores: Stores,
    pub resync: Duration,
}

impl Context {
    pub fn is_leader(&self) -> bool {
        *self.leader.borrow()
    }

    async fn event(&self, swh: &Swh, type_: EventType, reason: &str, note: String) {
        let ev = Event {
            type_,
            reason: reason.into(),
            note: Some(note),
            action: "Reconcile".into(),
            secondary: None,
        };
        match self.recorder.publish(&ev, &swh.object_ref(&())).await {
            Ok(()) => self.metrics.write("event"),
            Err(e) => warn!(error = %e, reason, "publishing event"),
        }
    }
}

fn is_adopt_requested(swh: &Swh) -> bool {
    swh.annotations()
        .get(annotations::ADOPT_SERVICE)
        .is_some_and(|v| v == "true")
}

/// Reconciles one SWH. Only the leader acts; the others keep their caches warm.
pub async fn reconcile(swh: Arc<Swh>, ctx: Arc<Context>) -> Result<Action, Error> {
    if !ctx.is_leader() {
        return Ok(Action::await_change());
    }
    let _timer = ctx.metrics.reconcile();
    let ns = swh.namespace().ok_or(Error::MissingMetadata("namespace"))?;
    let name = swh
        .metadata
        .name
        .clone()
        .ok_or(Error::MissingMetadata("name"))?;
    if swh.metadata.deletion_timestamp.is_some() {
        // Garbage collection removes the child and the slices (owner references).
        return Ok(Action::await_change());
    }
    let client = ctx.client.clone();
    // Writes to an SWH with v1alpha1 Update entries in managedFields need the conversion
    // webhook; drop those entries while it is up (see managed_fields). Best effort: a failure
    // is retried on the next reconcile.
    match crate::managed_fields::release(&client, &swh).await {
        Ok(dropped) if !dropped.is_empty() => {
            info!(%ns, %name, managers = ?dropped, "dropped managedFields entries that bind every write to the conversion webhook");
        }
        Ok(_) => {}
        Err(e) => {
            warn!(%ns, %name, error = %e, "could not drop conversion-bound managedFields entries");
        }
    }
    let svc_api: Api<Service> = Api::namespaced(client.clone(), &ns);
    let live = ctx.stores.services.get(&ObjectRef::new(&name).within(&ns));
    let agent: Vec<Arc<EndpointSlice>> = ctx
        .stores
        .agent_slices
        .state_filter(|s| slices::belongs_to(s, &ns, &name));
    let agent_refs: Vec<&EndpointSlice> = agent.iter().map(AsRef::as_ref).collect();
    let (published, total) = status::endpoint_counts(agent_refs.iter().copied());
    ctx.metrics.set_swh_endpoints(&ns, &name, published, total);
    let other = ctx
        .stores
        .other_slices
        .state_filter(|s| slices::belongs_to(s, &ns, &name));
    let endpoints = ctx.stores.endpoints.get(&ObjectRef::new(&name).within(&ns));
    let foreign = slices::foreign_endpoints(
        &ns,
        &name,
        other.iter().map(AsRef::as_ref),
        endpoints.as_deref(),
    );
    let adopt = is_adopt_requested(&swh);

    let mut service: Option<Service> = None;
    let mut adopted = false;
    let mut created = false;
    let mut handed_over = false;
    let mut failure: Option<Error> = None;
    let apply_params = PatchParams::apply(FIELD_MANAGER).force();

    let child_state = match child::classify(&swh, live.as_deref()) {
        Ownership::Missing => {
            // Create, never apply: an apply would take over a Service the cache hasn't seen.
            let desired = child::desired_service(&swh);
            let pp = PostParams {
                field_manager: Some(FIELD_MANAGER.into()),
                ..Default::default()
            };
            match svc_api.create(&pp, &desired).await {
                Ok(s) => {
                    ctx.metrics.write("service_create");
                    info!(%ns, %name, "child Service created");
                    created = true;
                    service = Some(
                        match own_created_fields(&ctx, &svc_api, &s, &desired).await {
                            Ok(Some(moved)) => moved,
                            Ok(None) => s,
                            Err(e) => {
                                // The next reconcile retries (the Service is ours by then).
                                warn!(%ns, %name, error = %e, "moving field ownership to apply");
                                s
                            }
                        },
                    );
                    ChildState::Ready
                }
                Err(kube::Error::Api(s)) if s.is_already_exists() => {
                    debug!(%ns, %name, "Service appeared meanwhile; retrying from the cache");
                    return Ok(Action::requeue(Duration::from_secs(1)));
                }
                Err(source) => {
                    let msg = source.to_string();
                    failure = Some(Error::CreateService {
                        ns: ns.clone(),
                        name: name.clone(),
                        source,
                    });
                    ChildState::Failed(msg)
                }
            }
        }
        Ownership::Ours | Ownership::PreviousIncarnation => {
            let mut live = live.as_deref().cloned().unwrap_or_default();
            let mut desired = child::desired_service(&swh);
            child::preserve_immutable(&mut desired, &live);
            match own_created_fields(&ctx, &svc_api, &live, &desired).await {
                Ok(Some(moved)) => live = moved,
                Ok(None) => {}
                Err(kube::Error::Api(s)) if s.is_conflict() => {
                    return Ok(Action::requeue(Duration::from_secs(1)));
                }
                Err(e) => warn!(%ns, %name, error = %e, "moving field ownership to apply"),
            }
            adopted = adopt;
            let state = match child::cluster_ip_mismatch(&swh, &live) {
                Some(m) => ChildState::ClusterIpImmutable(m),
                None => ChildState::Ready,
            };
            if child::needs_apply(&desired, &live) {
                match svc_api
                    .patch(&name, &apply_params, &Patch::Apply(&desired))
                    .await
                {
                    Ok(s) => {
                        ctx.metrics.write("service_apply");
                        info!(%ns, %name, "child Service updated");
                        service = Some(s);
                        state
                    }
                    Err(source) => {
                        let msg = source.to_string();
                        service = Some(live);
                        failure = Some(Error::ApplyService {
                            ns: ns.clone(),
                            name: name.clone(),
                            source,
                        });
                        ChildState::Failed(msg)
                    }
                }
            } else {
                service = Some(live);
                state
            }
        }
        Ownership::OwnedByOther(who) => ChildState::Conflict(format!(
            "Service {name} already exists and is controlled by {who}; it is left untouched. Delete it or rename the ServiceWithHealthchecks"
        )),
        Ownership::Unowned if !adopt => ChildState::Conflict(format!(
            "Service {name} already exists and is not owned by this ServiceWithHealthchecks; it is left untouched. To adopt it keeping its ClusterIP, set the annotation {}: \"true\" (kubectl swh migrate does)",
            annotations::ADOPT_SERVICE
        )),
        Ownership::Unowned => {
            let live = live.as_deref().cloned().unwrap_or_default();
            let builtin = if child::has_selector(&live) {
                let api: Api<EndpointSlice> = Api::namespaced(client.clone(), &ns);
                let lp = ListParams::default().labels(&format!(
                    "{}={},{}={}",
                    labels::SERVICE_NAME,
                    name,
                    labels::MANAGED_BY,
                    BUILTIN_SLICE_MANAGER
                ));
                api.list(&lp)
                    .await
                    .map_err(|source| Error::ListSlices {
                        ns: ns.clone(),
                        name: name.clone(),
                        source,
                    })?
                    .items
            } else {
                Vec::new()
            };
            let builtin_refs: Vec<&EndpointSlice> = builtin.iter().collect();
            match adoption::decide(&live, &agent_refs, &builtin_refs) {
                Decision::HandOver => {
                    let mut desired = child::desired_service(&swh);
                    child::preserve_immutable(&mut desired, &live);
                    // Optimistic lock: hand over exactly the Service the decision was made on.
                    desired.metadata.resource_version = live.metadata.resource_version.clone();
                    match svc_api
                        .patch(&name, &apply_params, &Patch::Apply(&desired))
                        .await
                    {
                        Ok(s) => {
                            ctx.metrics.write("service_apply");
                            info!(%ns, %name, "Service handed over: selector cleared, owner reference added");
                            handed_over = true;
                            adopted = true;
                            service = Some(s);
                            ChildState::Ready
                        }
                        Err(kube::Error::Api(s)) if s.is_conflict() => {
                            debug!(%ns, %name, "Service changed during handover; retrying");
                            return Ok(Action::requeue(Duration::from_secs(1)));
                        }
                        Err(source) => {
                            let msg = source.to_string();
                            service = Some(live);
                            failure = Some(Error::ApplyService {
                                ns: ns.clone(),
                                name: name.clone(),
                                source,
                            });
                            ChildState::Failed(msg)
                        }
                    }
                }
                Decision::Wait {
                    covered,
                    required,
                    missing,
                } => {
                    debug!(%ns, %name, covered, required, "adoption waits for agent endpoints");
                    service = Some(live);
                    ChildState::Adopting {
                        covered,
                        required,
                        missing,
                    }
                }
            }
        }
    };

    // The built-in EndpointSlice controller leaves its slices behind when a selector is removed
    // (it ignores selector-less Services): after a handover they would keep stale endpoints in
    // the Service's traffic, so they go as soon as the Service is ours and has no selector.
    if let Some(svc) = service.as_ref()
        && matches!(
            child_state,
            ChildState::Ready | ChildState::ClusterIpImmutable(_)
        )
        && !child::has_selector(svc)
    {
        delete_builtin_slices(&ctx, &ns, &other).await;
    }

    let observed = Observed {
        child: child_state.clone(),
        service: service.as_ref(),
        adopted,
        published,
        total,
        foreign: foreign.clone(),
        fail_open: status::fail_open(&swh),
    };
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let observed_fail_open = observed.fail_open;
    let desired = status::desired_status(&swh, &observed, &now);
    if status::needs_write(swh.status.as_ref(), &desired) {
        write_status(&ctx, &ns, &name, &desired).await?;
        debug!(%ns, %name, ready = ?desired.ready, "status written");
    }
    publish_events(&ctx, &swh, &child_state, created, handed_over, &foreign).await;
    fail_open_event(&ctx, &swh, observed_fail_open).await;

    if let Some(e) = failure {
        return Err(e);
    }
    Ok(match child_state {
        ChildState::Adopting { .. } => Action::requeue(Duration::from_secs(10)),
        _ => Action::requeue(ctx.resync),
    })
}

/// Rewrites the managed fields of a Service the controller created (see
/// [`child::managed_fields_as_apply`]); `None` when nothing needs moving.
async fn own_created_fields(
    ctx: &Context,
    api: &Api<Service>,
    svc: &Service,
    desired: &Service,
) -> Result<Option<Service>, kube::Error> {
    let Some(fields) = child::managed_fields_as_apply(svc, desired) else {
        return Ok(None);
    };
    let body = json!({"metadata": {
        "managedFields": fields,
        "resourceVersion": svc.metadata.resource_version,
    }});
    let pp = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    let s = api
        .patch(&svc.name_any(), &pp, &Patch::Merge(&body))
        .await?;
    ctx.metrics.write("service_managed_fields");
    Ok(Some(s))
}

/// Deletes the built-in controller's slices of a selector-less Service.
async fn delete_builtin_slices(
    ctx: &Context,
    ns: &str,
    other: &[Arc<PartialObjectMeta<EndpointSlice>>],
) {
    let api: Api<EndpointSlice> = Api::namespaced(ctx.client.clone(), ns);
    for s in other {
        if s.labels().get(labels::MANAGED_BY).map(String::as_str) != Some(BUILTIN_SLICE_MANAGER) {
            continue;
        }
        let dp = DeleteParams {
            preconditions: Some(Preconditions {
                uid: s.uid(),
                resource_version: None,
            }),
            ..Default::default()
        };
        match api.delete(&s.name_any(), &dp).await {
            Ok(_) => {
                ctx.metrics.write("slice_delete");
                info!(%ns, slice = %s.name_any(), "stale built-in EndpointSlice deleted");
            }
            Err(kube::Error::Api(e)) if e.is_not_found() || e.is_conflict() => {}
            Err(e) => {
                warn!(%ns, slice = %s.name_any(), error = %e, "deleting stale built-in EndpointSlice")
            }
        }
    }
}

async fn write_status(
    ctx: &Context,
    ns: &str,
    name: &str,
    status: &ServiceWithHealthchecksStatus,
) -> Result<(), Error> {
    let api: Api<Swh> = Api::namespaced(ctx.client.clone(), ns);
    let body = json!({
        "apiVersion": API_VERSION_V1BETA1,
        "kind": KIND,
        "metadata": {"name": name, "namespace": ns},
        "status": status,
    });
    api.patch_status(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await
    .map_err(|source| Error::PatchStatus {
        ns: ns.into(),
        name: name.into(),
        source,
    })?;
    ctx.metrics.write("status");
    Ok(())
}

/// Events on transitions only (compared with the status before this reconcile), so a steady
/// state writes nothing.
async fn publish_events(
    ctx: &Context,
    swh: &Swh,
    state: &ChildState,
    created: bool,
    handed_over: bool,
    foreign: &[String],
) {
    let before = swh.status.as_ref();
    let name = swh.name_any();
    if created {
        ctx.event(
            swh,
            EventType::Normal,
            "ChildServiceCreated",
            format!("created Service {name} (no selector; endpoints come from swh agents)"),
        )
        .await;
    }
    if handed_over {
        ctx.event(
            swh,
            EventType::Normal,
            "HandedOver",
            format!("adopted Service {name}: selector cleared, ClusterIP kept"),
        )
        .await;
    }
    let reason_before = status::condition(before, conditions::CHILD_SERVICE_READY)
        .map(|c| c.reason.as_str())
        .unwrap_or("");
    match state {
        ChildState::Conflict(m) if !status::is_true(before, conditions::CHILD_SERVICE_CONFLICT) => {
            ctx.event(swh, EventType::Warning, "ChildServiceConflict", m.clone())
                .await;
        }
        ChildState::Failed(m) if reason_before != "ChildServiceWasNotCreated" => {
            ctx.event(
                swh,
                EventType::Warning,
                "ChildServiceWriteFailed",
                m.clone(),
            )
            .await;
        }
        ChildState::ClusterIpImmutable(m) if reason_before != "ChildServiceClusterIPImmutable" => {
            ctx.event(
                swh,
                EventType::Warning,
                "ChildServiceClusterIPImmutable",
                m.clone(),
            )
            .await;
        }
        ChildState::Adopting {
            covered, required, ..
        } if status::condition(before, conditions::ADOPTED).is_none() => {
            ctx.event(
                swh,
                EventType::Normal,
                "AdoptionStarted",
                format!("adopting Service {name}: waiting until agent EndpointSlices carry its ready endpoints ({covered}/{required})"),
            )
            .await;
        }
        _ => {}
    }
    if !foreign.is_empty() && !status::is_true(before, FOREIGN_ENDPOINTS) {
        ctx.event(
            swh,
            EventType::Warning,
            "ForeignEndpoints",
            format!(
                "endpoints not written by swh carry the service name {name}: {}",
                foreign.join(", ")
            ),
        )
        .await;
    }
}

/// `FailOpenEntered` (Warning) when fail-open starts, `FailOpenExited` (Normal) when it ends
/// (enough pods pass again, or `failOpen` was removed), compared with the status before.
async fn fail_open_event(ctx: &Context, swh: &Swh, verdict: Option<status::FailOpen>) {
    let before = status::is_true(swh.status.as_ref(), conditions::FAIL_OPEN);
    let now = verdict.is_some_and(|f| f.active());
    if before == now {
        return;
    }
    ctx.metrics.fail_open_transition(now);
    let note = match verdict {
        Some(f) if now => format!(
            "fail-open: {} of {} probed pods pass ({}%), below minPassingPercent {}%; publishing every probed pod that is Ready and not terminating",
            f.passing,
            f.decided,
            f.percent(),
            f.min_percent
        ),
        Some(f) => format!(
            "fail-open ended: {} of {} probed pods pass (minPassingPercent {}%); publishing passing pods only",
            f.passing, f.decided, f.min_percent
        ),
        None => "fail-open ended: failOpen was removed from the spec".to_string(),
    };
    info!(ns = swh.namespace().unwrap_or_default(), name = %swh.name_any(), fail_open = now, %note, "fail-open changed");
    let (type_, reason) = if now {
        (EventType::Warning, "FailOpenEntered")
    } else {
        (EventType::Normal, "FailOpenExited")
    };
    ctx.event(swh, type_, reason, note).await;
}

/// Requeue after a failure: soon for write conflicts, later otherwise.
pub fn error_policy(swh: Arc<Swh>, err: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.failure(err.metric_label());
    warn!(ns = swh.namespace().unwrap_or_default(), name = %swh.name_any(), error = %err, "reconcile failed");
    if err.is_conflict() || err.is_transport() {
        Action::requeue(Duration::from_secs(2))
    } else {
        Action::requeue(Duration::from_secs(15))
    }
}

/// Orphan slices checked and deleted at once, at most.
pub const JANITOR_CONCURRENCY: usize = 16;

/// Deletes orphan agent slices (their SWH or their node is gone) within seconds. A slice must
/// look orphaned for `grace` and the API must confirm the owner's absence before it goes, so a
/// cache that lags behind a new SWH or Node never deletes a live slice.
///
/// The slices of a pass are handled concurrently ([`JANITOR_CONCURRENCY`]) and each within
/// twice `api_timeout` (a check and a delete, each one bounded request): a hung API server
/// delays a pass by that much, never forever, and a failed slice is tried again next pass.
pub async fn janitor(
    ctx: Arc<Context>,
    grace: Duration,
    api_timeout: Duration,
    cancel: CancellationToken,
) {
    use futures::StreamExt as _;
    let mut seen: HashMap<String, (Instant, String)> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        if !ctx.is_leader() {
            seen.clear();
            // Only the leader exports per-SWH gauges (a former leader's would go stale).
            ctx.metrics.retain_swh_endpoints(|_, _| false);
            continue;
        }
        let swh = &ctx.stores.swh;
        // Deleted SWHs are never reconciled again: drop their series here.
        ctx.metrics
            .retain_swh_endpoints(|ns, n| swh.get(&ObjectRef::new(n).within(ns)).is_some());
        let nodes = &ctx.stores.nodes;
        let mut now_orphans: HashMap<String, (Arc<EndpointSlice>, Orphan)> = HashMap::new();
        for s in ctx.stores.agent_slices.state() {
            let reason = slices::orphan_reason(
                &s,
                |ns, n| swh.get(&ObjectRef::new(n).within(ns)).is_some(),
                |n| nodes.get(&ObjectRef::new(n)).is_some(),
            );
            if let (Some(r), Some(uid)) = (reason, s.uid()) {
                now_orphans.insert(uid, (s, r));
            }
        }
        seen.retain(|uid, _| now_orphans.contains_key(uid));
        let mut due = Vec::new();
        for (uid, (s, reason)) in now_orphans {
            let first = seen
                .entry(uid.clone())
                .or_insert_with(|| (Instant::now(), format!("{reason:?}")))
                .0;
            if first.elapsed() >= grace {
                due.push((uid, s, reason));
            }
        }
        if due.is_empty() {
            continue;
        }
        let limit = api_timeout * 2 + Duration::from_millis(500);
        let pass = futures::stream::iter(due)
            .map(|(uid, s, reason)| {
                let ctx = ctx.clone();
                async move {
                    let done = match tokio::time::timeout(limit, delete_orphan(&ctx, &uid, &s, &reason)).await {
                        Ok(done) => done,
                        Err(_) => {
                            warn!(slice = %s.name_any(), "orphan EndpointSlice: API timed out; trying again");
                            false
                        }
                    };
                    (uid, done)
                }
            })
            .buffer_unordered(JANITOR_CONCURRENCY)
            .collect::<Vec<_>>();
        let results = tokio::select! {
            _ = cancel.cancelled() => return,
            r = pass => r,
        };
        for (uid, done) in results {
            if done {
                seen.remove(&uid);
            }
        }
    }
}

/// Confirms and deletes one orphan candidate; whether it is settled (deleted, gone, or not an
/// orphan after all), so that it is forgotten.
async fn delete_orphan(ctx: &Context, uid: &str, s: &EndpointSlice, reason: &Orphan) -> bool {
    match confirm_orphan(&ctx.client, s, reason).await {
        Ok(true) => {}
        Ok(false) => return true,
        Err(e) => {
            warn!(error = %e, slice = %s.name_any(), "checking an orphan slice");
            return false;
        }
    }
    let ns = s.namespace().unwrap_or_default();
    let api: Api<EndpointSlice> = Api::namespaced(ctx.client.clone(), &ns);
    let dp = DeleteParams {
        preconditions: Some(Preconditions {
            uid: Some(uid.to_string()),
            resource_version: None,
        }),
        ..Default::default()
    };
    match api.delete(&s.name_any(), &dp).await {
        Ok(_) => {
            ctx.metrics.write("slice_delete");
            ctx.metrics.orphans_deleted.inc();
            info!(%ns, slice = %s.name_any(), ?reason, "orphan EndpointSlice deleted");
        }
        Err(kube::Error::Api(e)) if e.is_not_found() || e.is_conflict() => {}
        Err(e) => {
            warn!(%ns, slice = %s.name_any(), error = %e, "deleting orphan EndpointSlice")
        }
    }
    true
}

/// Asks the API server whether the owner of an orphan candidate is really gone.
async fn confirm_orphan(
    client: &Client,
    s: &EndpointSlice,
    reason: &Orphan,
) -> Result<bool, kube::Error> {
    match reason {
        Orphan::SwhGone => {
            let ns = s.namespace().unwrap_or_default();
            let name = slices::service_name(s).unwrap_or_default().to_string();
            let api: Api<Swh> = Api::namespaced(client.clone(), &ns);
            Ok(api.get_metadata_opt(&name).await?.is_none())
        }
        Orphan::NodeGone(node) => {
            let api: Api<Node> = Api::all(client.clone());
            let lp = ListParams::default().fields(&format!("metadata.name={node}"));
            Ok(api.list_metadata(&lp).await?.items.is_empty())
        }
    }
}
