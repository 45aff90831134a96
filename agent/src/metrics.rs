//! Prometheus metrics (prometheus-client), served on the admin port at `/metrics`, prefix
//! `swh_agent_`.

use std::sync::atomic::AtomicI64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProbeLabels {
    /// `tcp`, `http`, `postgresql`, `grpc`.
    pub mode: &'static str,
    /// `success` or `failure`.
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WriteLabels {
    /// `apply`, `delete` (slices) or `apply` (status).
    pub op: String,
    /// `ok` or `error`.
    pub result: String,
}

fn probe_histogram() -> Histogram {
    // 100 µs .. ~13 s
    Histogram::new(exponential_buckets(0.0001, 2.0, 18))
}

fn lag_histogram() -> Histogram {
    // 100 µs .. ~6.5 s
    Histogram::new(exponential_buckets(0.0001, 2.0, 17))
}

fn publish_histogram() -> Histogram {
    // 500 µs .. ~16 s
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

pub struct Metrics {
    registry: Registry,
    probe_duration: Family<ProbeLabels, Histogram, fn() -> Histogram>,
    probe_results: Family<ProbeLabels, Counter>,
    slice_writes: Family<WriteLabels, Counter>,
    status_writes: Family<WriteLabels, Counter>,
    lag: Histogram,
    targets: Gauge<i64, AtomicI64>,
    transitions: Counter,
    transition_publish: Histogram,
    writes_in_flight: Gauge<i64, AtomicI64>,
    fail_open: Gauge<i64, AtomicI64>,
    ready: Gauge<i64, AtomicI64>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("swh_agent");
        let probe_duration =
            Family::<ProbeLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                probe_histogram,
            );
        let probe_results = Family::<ProbeLabels, Counter>::default();
        let slice_writes = Family::<WriteLabels, Counter>::default();
        let status_writes = Family::<WriteLabels, Counter>::default();
        let lag = lag_histogram();
        let targets = Gauge::<i64, AtomicI64>::default();
        let transitions = Counter::default();
        let transition_publish = publish_histogram();
        let writes_in_flight = Gauge::<i64, AtomicI64>::default();
        let fail_open = Gauge::<i64, AtomicI64>::default();
        let ready = Gauge::<i64, AtomicI64>::default();
        registry.register(
            "ready",
            "1 while /readyz answers ok (watches synced, first reconciliation done), else 0",
            ready.clone(),
        );
        registry.register(
            "fail_open_swhs",
            "SWHs this node publishes fail-open (condition FailOpen True): probed pods that are \
             Ready and not terminating are published whatever their probes say",
            fail_open.clone(),
        );
        registry.register(
            "probe_duration_seconds",
            "Duration of probe attempts by mode and result",
            probe_duration.clone(),
        );
        registry.register(
            "probe_results",
            "Probe attempts by mode and result",
            probe_results.clone(),
        );
        registry.register(
            "slice_writes",
            "EndpointSlice writes by operation and result",
            slice_writes.clone(),
        );
        registry.register(
            "status_writes",
            "SWH status writes (server-side apply of this node's entries) by result",
            status_writes.clone(),
        );
        registry.register(
            "scheduling_lag_seconds",
            "Time a probe waited past its due time (driver or concurrency limit)",
            lag.clone(),
        );
        registry.register(
            "targets",
            "Scheduled (SWH, pod, probe) targets",
            targets.clone(),
        );
        registry.register(
            "probe_transitions",
            "Probe state changes (hysteresis thresholds reached)",
            transitions.clone(),
        );
        registry.register(
            "transition_publish_seconds",
            "From a probe transition's deciding result (wall clock) to the successful \
             EndpointSlice apply that published it",
            transition_publish.clone(),
        );
        registry.register(
            "writes_in_flight",
            "API writes (slices, statuses) started and not finished: waiting for or holding a \
             write permit; each is bounded by --api-timeout-seconds",
            writes_in_flight.clone(),
        );
        Metrics {
            registry,
            probe_duration,
            probe_results,
            slice_writes,
            status_writes,
            lag,
            targets,
            transitions,
            transition_publish,
            writes_in_flight,
            fail_open,
            ready,
        }
    }

    /// Counts one API write in flight until the guard is dropped.
    pub fn write_started(self: &std::sync::Arc<Self>) -> WriteInFlight {
        self.writes_in_flight.inc();
        WriteInFlight(self.clone())
    }

    /// Called for every probe result: no allocation (static labels).
    pub fn probe(&self, mode: &'static str, ok: bool, took: Duration, lag: Duration) {
        let labels = ProbeLabels {
            mode,
            result: if ok { "success" } else { "failure" },
        };
        self.probe_results.get_or_create(&labels).inc();
        self.probe_duration
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
        self.lag.observe(lag.as_secs_f64());
    }

    pub fn transition(&self) {
        self.transitions.inc();
    }

    /// A transition reached a successfully applied slice `took` after its deciding result.
    pub fn transition_published(&self, took: Duration) {
        self.transition_publish.observe(took.as_secs_f64());
    }

    pub fn slice_write(&self, op: &str, ok: bool) {
        self.slice_writes
            .get_or_create(&WriteLabels {
                op: op.to_string(),
                result: if ok { "ok" } else { "error" }.to_string(),
            })
            .inc();
    }

    pub fn status_write(&self, ok: bool) {
        self.status_writes
            .get_or_create(&WriteLabels {
                op: "apply".to_string(),
                result: if ok { "ok" } else { "error" }.to_string(),
            })
            .inc();
    }

    pub fn set_fail_open(&self, n: usize) {
        self.fail_open.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// What `/readyz` decides (1 ready, 0 not).
    pub fn set_ready(&self, ready: bool) {
        self.ready.set(i64::from(ready));
    }

    pub fn set_targets(&self, n: usize) {
        self.targets.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// An API write in flight (see [`Metrics::write_started`]).
pub struct WriteInFlight(std::sync::Arc<Metrics>);

impl Drop for WriteInFlight {
    fn drop(&mut self) {
        self.0.writes_in_flight.dec();
    }
}
