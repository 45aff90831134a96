//! Leader election on a Lease (kube-lease-manager): every replica watches, only the holder
//! writes. The current state is published on a `watch` channel.

use std::time::Duration;

use kube::Client;
use kube_lease_manager::LeaseManagerBuilder;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Where and how long to hold the lease.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    pub name: String,
    pub namespace: String,
    pub identity: String,
    pub duration_secs: u64,
    pub grace_secs: u64,
}

/// Competes for the lease until `cancel`, publishing leadership on `tx`; releases the lease on
/// the way out so another replica takes over at once.
pub async fn run(
    client: Client,
    cfg: LeaseConfig,
    tx: watch::Sender<bool>,
    cancel: CancellationToken,
) {
    loop {
        let built = LeaseManagerBuilder::new(client.clone(), &cfg.name)
            .with_namespace(&cfg.namespace)
            .with_identity(&cfg.identity)
            .with_duration(cfg.duration_secs)
            .with_grace(cfg.grace_secs)
            .build()
            .await;
        let manager = match built {
            Ok(m) => m,
            Err(e) => {
                warn!(error = %e, lease = %cfg.name, namespace = %cfg.namespace, "can't set up the lease; retrying");
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(5)) => continue,
                }
            }
        };
        let (mut rx, task) = manager.watch().await;
        loop {
            tokio::select! {
                _ = cancel.cancelled() => {
                    tx.send_replace(false);
                    drop(rx);
                    // The manager releases the lease when its channel closes.
                    match tokio::time::timeout(Duration::from_secs(5), task).await {
                        Ok(Ok(Ok(_))) => info!("lease released"),
                        Ok(Ok(Err(e))) => warn!(error = %e, "releasing the lease"),
                        Ok(Err(e)) => warn!(error = %e, "lease task failed"),
                        Err(_) => warn!("timed out releasing the lease"),
                    }
                    return;
                }
                changed = rx.changed() => {
                    if changed.is_err() {
                        warn!("lease manager stopped; starting over");
                        tx.send_replace(false);
                        break;
                    }
                    let leader = *rx.borrow_and_update();
                    info!(leader, identity = %cfg.identity, "leadership changed");
                    tx.send_replace(leader);
                }
            }
        }
    }
}

/// This replica's identity: `POD_NAME`, else `<hostname>-<pid>`.
pub fn default_identity() -> String {
    if let Ok(p) = std::env::var("POD_NAME")
        && !p.is_empty()
    {
        return p;
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "swh-controller".into());
    format!("{host}-{}", std::process::id())
}
