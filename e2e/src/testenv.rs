//! What an e2e test needs from the shared local cluster that `make test` (or `make up`) started.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use crate::controlplane::{ClusterError, LocalCluster};

/// The workspace root (parent of the e2e crate).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The work directory of the shared local cluster: `$SWH_LOCAL_DIR` or `target/swh-local`.
pub fn shared_dir() -> PathBuf {
    std::env::var_os("SWH_LOCAL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/swh-local"))
}

/// Loads the shared cluster's state; fails with a hint when it is not up.
pub fn shared_cluster() -> Result<LocalCluster, ClusterError> {
    LocalCluster::load(&shared_dir())
}

/// A client with the admin kubeconfig of `cluster`.
pub async fn admin_client(cluster: &LocalCluster) -> Result<Client, kube::Error> {
    let kc = Kubeconfig::read_from(&cluster.kubeconfig).map_err(kube::Error::InferKubeconfig)?;
    let cfg = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .map_err(kube::Error::InferKubeconfig)?;
    Client::try_from(cfg)
}

/// A namespace name unique within this test run: `<prefix>-<pid>-<n>`.
pub fn unique_name(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Polls `f` every 100 ms until it returns `Some`, panicking after `limit` (a bound against
/// hanging, not a timing assertion).
pub async fn wait_for<T, F, Fut>(what: &str, limit: std::time::Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = std::time::Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Binaries built by `cargo build --workspace` (swh-controller, swh-agent, swh-webhook, ...).
pub fn workspace_bin(name: &str) -> PathBuf {
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    dir.join("debug").join(name)
}
