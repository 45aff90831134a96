//! Memory held by the agent's steady-state structures for one SWH with 2,000 pods × 2 probes on
//! the node (the benchmark's scale case), as growth of this test process's RSS (the workspace
//! forbids the unsafe code a counting allocator needs). No watches, no probing, no API writes:
//! it keeps the per-pod cost of what the engine stores visible and bounded.

mod common_k8s;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use common_k8s::{pod, swh};
use serde_json::json;
use swh_agent::index::{Index, status_signature};
use swh_agent::probe::ProbeSpec;
use swh_agent::schedule::{Scheduler, SchedulerConfig, instant_from_system};
use swh_agent::status_writer;
use swh_agent::threshold::Threshold;

/// Resident set size in bytes (Linux), 0 elsewhere.
fn live() -> isize {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<isize>().ok())
        .map_or(0, |pages| pages * 4096)
}

const PODS: usize = 2000;

#[tokio::test(flavor = "current_thread")]
async fn steady_state_memory_per_pod_is_bounded() {
    let now = SystemTime::now();
    let infos: Vec<_> = (0..PODS)
        .map(|i| {
            pod("bench-scale", &format!("scale-{i:05}"))
                .uid(&format!("0d3c6f0e-8a3b-4c55-9a77-{i:012}"))
                .label("app", "scale")
                .label("pod-template-hash", "5d8f7c9b6d")
                .ips(&[&format!("10.251.{}.{}", i / 250, i % 250 + 1)])
                .port("tcp", 7000)
                .port("http", 8080)
                .info()
        })
        .collect();
    let s = swh(
        "bench-scale",
        "scale",
        json!({
            "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
            "selector": {"app": "scale"},
            "healthcheck": {"initialDelaySeconds": 3600, "periodSeconds": 1,
                "probes": [
                    {"name": "tcp", "mode": "TCP", "tcp": {"port": 7000}},
                    {"name": "http", "mode": "HTTP", "http": {"port": 8080, "path": "/healthz"}}
                ]},
        }),
    );
    let key = ("bench-scale".to_string(), "scale".to_string());

    let m0 = live();
    let mut index = Index::new("node-a");
    index.upsert_swh(s);
    index.replace_pods(infos);
    let m_pods = live();

    // The engine's targets (scheduled + targets_of hold each key and spec once more).
    let targets = index.targets(&key, now);
    assert_eq!(targets.len(), 2 * PODS);
    let (scheduler, _results) = Scheduler::spawn(
        |_spec, _target| -> futures::future::BoxFuture<'static, swh_agent::probe::ProbeOutcome> {
            Box::pin(futures::future::pending())
        },
        SchedulerConfig::default(),
    );
    let m_targets0 = live();
    let mut scheduled = HashMap::new();
    let mut targets_of = std::collections::BTreeSet::new();
    // As the engine does: one shared spec per distinct probe spec.
    let mut shared: Vec<Arc<ProbeSpec>> = Vec::new();
    for t in targets {
        let spec = match shared.iter().find(|a| ***a == t.spec) {
            Some(a) => a.clone(),
            None => {
                let a = Arc::new(t.spec);
                shared.push(a.clone());
                a
            }
        };
        scheduler.upsert(
            t.key.clone(),
            t.target,
            spec.clone(),
            instant_from_system(t.start),
        );
        targets_of.insert(t.key.clone());
        scheduled.insert(t.key, (spec, t.target, t.start));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let m_targets = live();

    // A passing result per target.
    for k in targets_of.iter() {
        let mut th = Threshold::new(now);
        th.record(true, "200 OK", now, 1, 1);
        index.record(k.clone(), th);
    }
    let m_results = live();

    // What reconcile keeps: the status signature and the observed slices.
    let bounded = status_writer::bound(index.statuses(&key, now));
    let signature = status_signature(&bounded.entries);
    drop(bounded);
    let owner = index.owner(&key).unwrap();
    let observed = swh_agent::slices::build(&owner, "node-a", &index.endpoints(&key));
    let m_kept = live();

    let per_pod = |a: isize, b: isize| (b - a) as f64 / PODS as f64 / 1024.0;
    println!(
        "RSS growth per pod (KiB): index pods+swh {:.2}, targets (engine + scheduler) {:.2}, results {:.2}, \
         status signature + slices {:.2}; total {:.2} KiB/pod, {:.1} MiB",
        per_pod(m0, m_pods),
        per_pod(m_targets0, m_targets),
        per_pod(m_targets, m_results),
        per_pod(m_results, m_kept),
        per_pod(m0, m_kept),
        (m_kept - m0) as f64 / 1048576.0
    );
    assert!(per_pod(m0, m_kept) < 16.0, "{}", per_pod(m0, m_kept));
    drop((signature, observed, scheduled, targets_of, scheduler));
}
