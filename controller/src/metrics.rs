//! Prometheus metrics (prefix `swh_controller`).

use std::collections::HashSet;
use std::sync::atomic::AtomicI64;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub error: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WriteLabels {
    pub kind: String,
}

/// The controller's metrics and their registry.
pub struct Metrics {
    pub registry: Registry,
    pub reconciles: Counter,
    pub failures: Family<ErrorLabels, Counter>,
    pub duration: Histogram,
    pub leader: Gauge<i64, AtomicI64>,
    pub writes: Family<WriteLabels, Counter>,
    pub orphans_deleted: Counter,
    /// Fail-open transitions by direction (`entered`, `exited`).
    pub fail_open: Family<TransitionLabels, Counter>,
    /// Per SWH: endpoints published (Ready in the agents' slices) and total (every pod the
    /// agents carry), as in the SWH's status. Set by the leader only.
    pub swh_endpoints: Family<SwhEndpointLabels, Gauge<i64, AtomicI64>>,
    /// The (namespace, name) pairs that have `swh_endpoints` series, to remove them.
    swh_endpoints_keys: Mutex<HashSet<(String, String)>>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SwhEndpointLabels {
    pub namespace: String,
    pub name: String,
    /// `published` or `total`.
    pub state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TransitionLabels {
    pub to: String,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("swh_controller");
        let reconciles = Counter::default();
        let failures = Family::<ErrorLabels, Counter>::default();
        let duration = Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        let leader = Gauge::<i64, AtomicI64>::default();
        let writes = Family::<WriteLabels, Counter>::default();
        let orphans_deleted = Counter::default();
        let fail_open = Family::<TransitionLabels, Counter>::default();
        registry.register(
            "fail_open_transitions",
            "SWHs entering or leaving fail-open (condition FailOpen), by direction",
            fail_open.clone(),
        );
        let swh_endpoints = Family::<SwhEndpointLabels, Gauge<i64, AtomicI64>>::default();
        registry.register(
            "swh_endpoints",
            "Endpoints of an SWH as in its status: published (Ready in the agents' slices) and \
             total (every pod the agents carry); only the leader exports them",
            swh_endpoints.clone(),
        );
        registry.register("reconciles", "Reconciles run", reconciles.clone());
        registry.register(
            "reconcile_failures",
            "Reconciles that failed, by error",
            failures.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Duration of reconciles",
            duration.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica holds the lease",
            leader.clone(),
        );
        registry.register(
            "api_writes",
            "API writes by kind (service_create, service_apply, status, event, slice_delete)",
            writes.clone(),
        );
        registry.register(
            "orphan_slices_deleted",
            "Orphan agent EndpointSlices deleted",
            orphans_deleted.clone(),
        );
        Metrics {
            registry,
            reconciles,
            failures,
            duration,
            leader,
            writes,
            orphans_deleted,
            fail_open,
            swh_endpoints,
            swh_endpoints_keys: Mutex::new(HashSet::new()),
        }
    }
}

impl Metrics {
    /// Counts a reconcile and observes its duration when the returned guard drops.
    pub fn reconcile(&self) -> ReconcileTimer<'_> {
        self.reconciles.inc();
        ReconcileTimer {
            start: Instant::now(),
            hist: &self.duration,
        }
    }

    pub fn failure(&self, error: &str) {
        self.failures
            .get_or_create(&ErrorLabels {
                error: error.to_string(),
            })
            .inc();
    }

    /// An SWH entered (`true`) or left fail-open.
    pub fn fail_open_transition(&self, entered: bool) {
        self.fail_open
            .get_or_create(&TransitionLabels {
                to: if entered { "entered" } else { "exited" }.into(),
            })
            .inc();
    }

    /// Sets the SWH's `swh_endpoints` series (published and total).
    pub fn set_swh_endpoints(&self, namespace: &str, name: &str, published: i32, total: i32) {
        for (state, v) in [("published", published), ("total", total)] {
            self.swh_endpoints
                .get_or_create(&SwhEndpointLabels {
                    namespace: namespace.into(),
                    name: name.into(),
                    state,
                })
                .set(i64::from(v));
        }
        self.swh_endpoints_keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert((namespace.into(), name.into()));
    }

    /// Removes the `swh_endpoints` series of every SWH for which `keep` is false.
    pub fn retain_swh_endpoints(&self, keep: impl Fn(&str, &str) -> bool) {
        let mut keys = self
            .swh_endpoints_keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        keys.retain(|(namespace, name)| {
            if keep(namespace, name) {
                return true;
            }
            for state in ["published", "total"] {
                self.swh_endpoints.remove(&SwhEndpointLabels {
                    namespace: namespace.clone(),
                    name: name.clone(),
                    state,
                });
            }
            false
        });
    }

    pub fn write(&self, kind: &str) {
        self.writes
            .get_or_create(&WriteLabels { kind: kind.into() })
            .inc();
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut s = String::new();
        if prometheus_client::encoding::text::encode(&mut s, &self.registry).is_err() {
            s.clear();
        }
        s
    }
}

pub struct ReconcileTimer<'a> {
    start: Instant,
    hist: &'a Histogram,
}

impl Drop for ReconcileTimer<'_> {
    fn drop(&mut self) {
        self.hist.observe(self.start.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn exposition_has_the_metrics() {
        let m = super::Metrics::default();
        {
            let _t = m.reconcile();
        }
        m.failure("apply_service");
        m.leader.set(1);
        let s = m.encode();
        for name in [
            "swh_controller_reconciles_total 1",
            "swh_controller_reconcile_failures_total{error=\"apply_service\"} 1",
            "swh_controller_reconcile_duration_seconds_count 1",
            "swh_controller_leader 1",
        ] {
            assert!(s.contains(name), "{name} missing in\n{s}");
        }
    }

    #[test]
    fn swh_endpoints_set_updated_and_removed() {
        let m = super::Metrics::default();
        m.set_swh_endpoints("ns1", "web", 0, 2);
        m.set_swh_endpoints("ns1", "smtp", 1, 1);
        m.set_swh_endpoints("ns1", "web", 1, 2);
        let s = m.encode();
        for line in [
            "swh_controller_swh_endpoints{namespace=\"ns1\",name=\"web\",state=\"published\"} 1",
            "swh_controller_swh_endpoints{namespace=\"ns1\",name=\"web\",state=\"total\"} 2",
            "swh_controller_swh_endpoints{namespace=\"ns1\",name=\"smtp\",state=\"published\"} 1",
        ] {
            assert!(s.contains(line), "{line} missing in\n{s}");
        }
        assert!(!s.contains("state=\"published\"} 0"), "stale value in\n{s}");
        // web deleted: its series go, smtp's stay.
        m.retain_swh_endpoints(|_, name| name != "web");
        let s = m.encode();
        assert!(!s.contains("name=\"web\""), "web still exported:\n{s}");
        assert!(s.contains("name=\"smtp\",state=\"total\"} 1"), "{s}");
        // Leadership lost: nothing left.
        m.retain_swh_endpoints(|_, _| false);
        assert!(!m.encode().contains("swh_controller_swh_endpoints{"));
    }
}
