//! swh-controller: turns each `ServiceWithHealthchecks` (v1beta1) into a selector-less child
//! Service, hands pre-existing Services over without dropping endpoints, writes the aggregate
//! status, deletes orphan agent EndpointSlices and flags foreign endpoints.
//!
//! All replicas watch; only the holder of the Lease writes. Module map:
//! - [`child`]: the desired Service, ownership (conflicts), change detection — pure;
//! - [`adoption`]: the handover decision — pure;
//! - [`status`]: counts, conditions, "needs a write" — pure;
//! - [`slices`]: agent/foreign/orphan slices — pure;
//! - [`reconcile`]: the reconcile and the janitor; [`leader`], [`admin`], [`metrics`];
//! - [`client`]: the bounded request and watch clients.

pub mod admin;
pub mod adoption;
pub mod child;
pub mod leader;
pub mod managed_fields;
pub mod metrics;
pub mod reconcile;
pub mod slices;
pub mod status;

use std::convert::Infallible;
use std::fmt::Debug;
use std::hash::Hash;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::{Parser, ValueEnum};
use futures::channel::mpsc;
use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{Endpoints, Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{self, Config as ControllerConfig};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use swh_api::v1beta1::ServiceWithHealthchecks;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::metrics::Metrics;
use crate::reconcile::{Context, Stores};

type Swh = ServiceWithHealthchecks;

/// Log output format.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    Plain,
    Json,
}

/// Command line (every flag also reads an environment variable).
#[derive(Parser, Debug, Clone)]
#[command(
    name = "swh-controller",
    version,
    about = "ServiceWithHealthchecks controller: child Services, adoption handover, aggregate status, orphan slice cleanup. Talks to the cluster from KUBECONFIG or the in-cluster service account."
)]
pub struct Args {
    /// Address of the plain-HTTP admin server (/livez, /readyz, /metrics).
    #[arg(long, env = "SWH_ADMIN_LISTEN", default_value = "127.0.0.1:9445")]
    pub admin_listen: SocketAddr,
    /// Namespace of the leader-election Lease.
    #[arg(long, env = "POD_NAMESPACE", default_value = "swh-system")]
    pub lease_namespace: String,
    /// Name of the leader-election Lease.
    #[arg(long, env = "SWH_LEASE_NAME", default_value = "swh-controller")]
    pub lease_name: String,
    /// Lease duration: how long a silent leader keeps the lease.
    #[arg(long, env = "SWH_LEASE_DURATION_SECONDS", default_value_t = 15)]
    pub lease_duration_seconds: u64,
    /// The leader renews this long before the lease expires.
    #[arg(long, env = "SWH_LEASE_GRACE_SECONDS", default_value_t = 5)]
    pub lease_grace_seconds: u64,
    /// Identity in the Lease (default: POD_NAME, else hostname-pid).
    #[arg(long, env = "SWH_IDENTITY")]
    pub identity: Option<String>,
    /// Log format.
    #[arg(long, env = "SWH_LOG_FORMAT", value_enum, default_value_t = LogFormat::Plain)]
    pub log_format: LogFormat,
    /// Log filter (tracing EnvFilter syntax); RUST_LOG wins when set.
    #[arg(long, env = "SWH_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
    /// Reconciles running at once.
    #[arg(long, env = "SWH_CONCURRENCY", default_value_t = 8)]
    pub concurrency: u16,
    /// Periodic re-check of every SWH (seconds).
    #[arg(long, env = "SWH_RESYNC_SECONDS", default_value_t = 300)]
    pub resync_seconds: u64,
    /// Only watch this namespace (default: all namespaces). Nodes are always cluster-wide.
    #[arg(long, env = "SWH_WATCH_NAMESPACE")]
    pub watch_namespace: Option<String>,
    /// How long an agent slice must look orphaned before it is deleted (milliseconds).
    #[arg(long, env = "SWH_ORPHAN_GRACE_MS", default_value_t = 2000)]
    pub orphan_grace_ms: u64,
    /// Timeout of one API request (connect, send, each wait for the response), in seconds. A
    /// timed-out write fails the reconcile, which is retried with backoff. Lists and watches
    /// use the connect/send part; their read timeout is beyond the server's watch timeout.
    #[arg(long, env = "SWH_API_TIMEOUT_SECONDS", default_value_t = swh_runtime::client::DEFAULT_API_TIMEOUT_SECS,
          value_parser = clap::value_parser!(u64).range(1..=300))]
    pub api_timeout_seconds: u64,
}

impl Args {
    fn validate(&self) -> anyhow::Result<()> {
        if self.lease_grace_seconds == 0 || self.lease_grace_seconds >= self.lease_duration_seconds
        {
            anyhow::bail!(
                "--lease-grace-seconds ({}) must be at least 1 and less than --lease-duration-seconds ({})",
                self.lease_grace_seconds,
                self.lease_duration_seconds
            );
        }
        Ok(())
    }
}

/// Sets up tracing on stderr.
pub fn init_tracing(format: LogFormat, level: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Plain => b.init(),
        LogFormat::Json => b.json().flatten_event(true).init(),
    }
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => info!("SIGTERM: shutting down"),
                _ = tokio::signal::ctrl_c() => info!("SIGINT: shutting down"),
            }
        }
        Err(e) => {
            warn!(error = %e, "can't listen for SIGTERM; only SIGINT stops the controller");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

type Trigger = mpsc::UnboundedSender<ObjectRef<Swh>>;

fn swh_ref(ns: Option<String>, name: &str) -> Option<ObjectRef<Swh>> {
    Some(ObjectRef::new(name).within(&ns?))
}

/// Runs a reflector into `writer`, calling `on` for every object that changed or went away,
/// until `cancel`.
///
/// `synced` is set when the first full list has been applied to the store (`InitDone`). The
/// readiness check reads these flags instead of `Store::wait_until_ready`: that future keeps a
/// single waker per store, so a second task waiting on the same store (the applier waits on
/// the SWH store) can leave one of them asleep forever.
fn spawn_reflector<K>(
    what: &'static str,
    stream: impl Stream<Item = watcher::Result<watcher::Event<K>>> + Send + 'static,
    writer: reflector::store::Writer<K>,
    on: impl Fn(&K) + Send + 'static,
    synced: Arc<AtomicBool>,
    cancel: CancellationToken,
) -> tokio::task::JoinHandle<()>
where
    K: Resource + Clone + Debug + Send + Sync + 'static,
    K::DynamicType: Eq + Hash + Clone + Default + Send + Sync,
{
    tokio::spawn(async move {
        let s = stream.default_backoff().reflect(writer);
        let mut s = std::pin::pin!(s);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                item = s.next() => match item {
                    Some(Ok(watcher::Event::Apply(obj) | watcher::Event::InitApply(obj) | watcher::Event::Delete(obj))) => on(&obj),
                    Some(Ok(watcher::Event::InitDone)) => synced.store(true, Ordering::Release),
                    Some(Ok(watcher::Event::Init)) => {}
                    Some(Err(e)) => warn!(what, error = %e, "watch error; retrying"),
                    None => return,
                },
            }
        }
    })
}

fn strip_managed_fields<K: Resource>(o: &mut K) {
    o.managed_fields_mut().clear();
}

/// Sets `ready` once every reflector has applied its initial list.
fn spawn_readiness(
    synced: Vec<Arc<AtomicBool>>,
    ready: Arc<AtomicBool>,
    cancel: CancellationToken,
) {
    tokio::spawn(async move {
        loop {
            if synced.iter().all(|f| f.load(Ordering::Acquire)) {
                info!("watch caches synced");
                ready.store(true, Ordering::Release);
                return;
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
        }
    });
}

fn store<K>() -> (Store<K>, reflector::store::Writer<K>)
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + Hash + Clone + Default,
{
    reflector::store()
}

/// An Api over all namespaces, or over `ns` only.
fn scoped<K>(client: &Client, ns: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match ns {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Runs the controller until SIGTERM/SIGINT.
pub async fn run(args: Args) -> anyhow::Result<()> {
    args.validate()?;
    let api_timeout = Duration::from_secs(args.api_timeout_seconds);
    let clients = swh_runtime::client::clients(api_timeout).await?;
    // Requests (reconciles, status, janitor, events, the Lease) time out after `api_timeout`;
    // the reflectors use the watch client.
    let client = clients.requests.clone();
    let watch_client = clients.watches.clone();
    let cancel = CancellationToken::new();
    let metrics = Arc::new(Metrics::default());
    let ready = Arc::new(AtomicBool::new(false));
    let identity = args
        .identity
        .clone()
        .unwrap_or_else(leader::default_identity);
    info!(%identity, lease = %args.lease_name, namespace = %args.lease_namespace, "starting");

    // Admin server.
    let admin = tokio::spawn(admin::serve(
        args.admin_listen,
        admin::AdminState {
            ready: ready.clone(),
            metrics: metrics.clone(),
        },
        cancel.clone(),
    ));

    // Leader election.
    let (leader_tx, leader_rx) = watch::channel(false);
    let lease = tokio::spawn(leader::run(
        client.clone(),
        leader::LeaseConfig {
            name: args.lease_name.clone(),
            namespace: args.lease_namespace.clone(),
            identity: identity.clone(),
            duration_secs: args.lease_duration_seconds,
            grace_secs: args.lease_grace_seconds,
        },
        leader_tx,
        cancel.clone(),
    ));

    // Watches: each feeds a cache and maps its changes to the SWHs to reconcile.
    let (trigger, queue) = mpsc::unbounded::<ObjectRef<Swh>>();
    let (swh_store, swh_w) = store::<Swh>();
    let (svc_store, svc_w) = store::<Service>();
    let (agent_store, agent_w) = store::<EndpointSlice>();
    let (other_store, other_w) = store::<PartialObjectMeta<EndpointSlice>>();
    let (ep_store, ep_w) = store::<PartialObjectMeta<Endpoints>>();
    let (node_store, node_w) = store::<PartialObjectMeta<Node>>();
    let stores = Stores {
        swh: swh_store.clone(),
        services: svc_store,
        agent_slices: agent_store,
        other_slices: other_store,
        endpoints: ep_store,
        nodes: node_store,
    };
    let wc = || watcher::Config::default().any_semantic();
    let mut synced_flags: Vec<Arc<AtomicBool>> = Vec::new();
    let mut flag = || {
        let f = Arc::new(AtomicBool::new(false));
        synced_flags.push(f.clone());
        f
    };
    let scope = args.watch_namespace.as_deref();
    let t: Trigger = trigger.clone();
    spawn_reflector(
        "servicewithhealthchecks",
        watcher(scoped::<Swh>(&watch_client, scope), wc())
            .modify(managed_fields::strip_keeping_conversion_bound),
        swh_w,
        move |o: &Swh| {
            if let Some(r) = swh_ref(o.namespace(), &o.name_any()) {
                let _ = t.unbounded_send(r);
            }
        },
        flag(),
        cancel.clone(),
    );
    let t = trigger.clone();
    // Services keep managedFields: they tell which fields the controller owns.
    spawn_reflector(
        "services",
        watcher(scoped::<Service>(&watch_client, scope), wc()),
        svc_w,
        move |o: &Service| {
            if let Some(r) = swh_ref(o.namespace(), &o.name_any()) {
                let _ = t.unbounded_send(r);
            }
        },
        flag(),
        cancel.clone(),
    );
    let slice_trigger = |t: Trigger| {
        move |o: &dyn SliceLike| {
            if let Some(svc) = o.service_name()
                && let Some(r) = swh_ref(o.ns(), &svc)
            {
                let _ = t.unbounded_send(r);
            }
        }
    };
    let on_agent = slice_trigger(trigger.clone());
    spawn_reflector(
        "agent endpointslices",
        watcher(
            scoped::<EndpointSlice>(&watch_client, scope),
            wc().labels(&slices::agent_selector()),
        )
        .modify(strip_managed_fields),
        agent_w,
        move |o: &EndpointSlice| on_agent(o),
        flag(),
        cancel.clone(),
    );
    let on_other = slice_trigger(trigger.clone());
    spawn_reflector(
        "other endpointslices",
        watcher(
            scoped::<PartialObjectMeta<EndpointSlice>>(&watch_client, scope),
            wc().labels(&slices::non_agent_selector()),
        )
        .modify(strip_managed_fields),
        other_w,
        move |o: &PartialObjectMeta<EndpointSlice>| on_other(o),
        flag(),
        cancel.clone(),
    );
    let t = trigger.clone();
    spawn_reflector(
        "endpoints",
        watcher(
            Api::<PartialObjectMeta<Endpoints>>::all(watch_client.clone()),
            wc(),
        )
        .modify(strip_managed_fields),
        ep_w,
        move |o: &PartialObjectMeta<Endpoints>| {
            if let Some(r) = swh_ref(o.namespace(), &o.name_any()) {
                let _ = t.unbounded_send(r);
            }
        },
        flag(),
        cancel.clone(),
    );
    spawn_reflector(
        "nodes",
        watcher(
            Api::<PartialObjectMeta<Node>>::all(watch_client.clone()),
            wc(),
        )
        .modify(strip_managed_fields),
        node_w,
        |_: &PartialObjectMeta<Node>| {},
        flag(),
        cancel.clone(),
    );
    spawn_readiness(synced_flags, ready.clone(), cancel.clone());

    // On becoming leader, reconcile everything.
    {
        let mut rx = leader_rx.clone();
        let t = trigger.clone();
        let swhs = swh_store.clone();
        let metrics = metrics.clone();
        let cancel = cancel.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    r = rx.changed() => if r.is_err() { return },
                }
                let leader = *rx.borrow_and_update();
                metrics.leader.set(i64::from(leader));
                if leader {
                    for o in swhs.state() {
                        if let Some(r) = swh_ref(o.namespace(), &o.name_any()) {
                            let _ = t.unbounded_send(r);
                        }
                    }
                }
            }
        });
    }

    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "swh-controller".into(),
            instance: Some(identity.clone()),
        },
    );
    let ctx = Arc::new(Context {
        client: client.clone(),
        recorder,
        metrics: metrics.clone(),
        leader: leader_rx,
        stores: stores.clone(),
        resync: Duration::from_secs(args.resync_seconds),
    });
    let janitor = tokio::spawn(reconcile::janitor(
        ctx.clone(),
        Duration::from_millis(args.orphan_grace_ms),
        api_timeout,
        cancel.clone(),
    ));

    let stop = cancel.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        stop.cancel();
    });
    drop(trigger);
    let queue = queue
        .map(Ok::<_, Infallible>)
        .take_until(cancel.clone().cancelled_owned());
    let applier = controller::applier(
        |swh, ctx| Box::pin(reconcile::reconcile(swh, ctx)),
        reconcile::error_policy,
        ctx,
        swh_store,
        queue,
        ControllerConfig::default()
            .concurrency(args.concurrency)
            .debounce(Duration::from_millis(100)),
    );
    let mut applier = std::pin::pin!(applier);
    while let Some(r) = applier.next().await {
        if let Err(e) = r {
            match e {
                // Logged by the error policy already; a vanished object needs nothing.
                controller::Error::ReconcilerFailed(..) | controller::Error::ObjectNotFound(_) => {}
                e => warn!(error = %e, "controller"),
            }
        }
    }
    info!("reconciles finished");
    cancel.cancel();
    let _ = lease.await;
    let _ = janitor.await;
    match admin.await {
        Ok(Err(e)) => warn!(error = %e, "admin server"),
        Err(e) => warn!(error = %e, "admin server task"),
        Ok(Ok(())) => {}
    }
    info!("stopped");
    Ok(())
}

/// What the slice triggers need from full and metadata-only slices.
trait SliceLike {
    fn service_name(&self) -> Option<String>;
    fn ns(&self) -> Option<String>;
}

impl<T: ResourceExt> SliceLike for T {
    fn service_name(&self) -> Option<String> {
        slices::service_name(self).map(str::to_string)
    }
    fn ns(&self) -> Option<String> {
        self.namespace()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_defaults_and_validation() {
        let a = Args::try_parse_from(["swh-controller"]).unwrap();
        assert_eq!(a.admin_listen.to_string(), "127.0.0.1:9445");
        assert_eq!(a.lease_name, "swh-controller");
        assert_eq!(a.log_format, LogFormat::Plain);
        assert_eq!(a.api_timeout_seconds, 5);
        assert!(a.validate().is_ok());
        assert!(Args::try_parse_from(["swh-controller", "--api-timeout-seconds=0"]).is_err());
        let a = Args::try_parse_from([
            "swh-controller",
            "--log-format=json",
            "--lease-namespace=x",
            "--lease-duration-seconds=5",
            "--lease-grace-seconds=5",
        ])
        .unwrap();
        assert_eq!(a.log_format, LogFormat::Json);
        assert_eq!(a.lease_namespace, "x");
        assert!(a.validate().is_err(), "grace must be below duration");
        assert!(Args::try_parse_from(["swh-controller", "--log-format=xml"]).is_err());
    }
}
