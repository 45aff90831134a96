//! The two Kubernetes clients: one for requests, one for watches. Every API call is bounded.
//!
//! kube 5 sets no read timeout by default (a hung API server keeps a request, and whatever
//! waits for it, forever). A read timeout is an inactivity timeout on the connection, so:
//!
//! - **requests** (applies, patches, deletes, gets, events, the Lease) use
//!   `connect`/`read`/`write` timeouts of `--api-timeout-seconds` (default
//!   [`DEFAULT_API_TIMEOUT_SECS`]), the read timeout counted from when the request was sent
//!   (`reset_reader_on_write`), not from when its pooled connection went idle. A timed-out call
//!   fails like any transport error and its caller retries with backoff.
//! - **watches** (list + watch) share the connect and write timeouts, but a watch is silent
//!   while nothing changes: their read timeout is [`WATCH_READ_TIMEOUT`], beyond the server-side
//!   watch timeout kube asks for (290 s), so an idle watch is never cut, yet a list or watch
//!   on a dead connection ends. (kube's watcher also gives up on a watch idle for 295 s.)

use std::time::Duration;

use kube::{Client, Config};

/// Default timeout of one API request.
pub const DEFAULT_API_TIMEOUT_SECS: u64 = 5;
/// Read (inactivity) timeout of list and watch calls.
pub const WATCH_READ_TIMEOUT: Duration = Duration::from_secs(300);

/// The request and watch clients.
#[derive(Clone)]
pub struct Clients {
    pub requests: Client,
    pub watches: Client,
}

/// `base` with every timeout of a request set to `timeout`.
pub fn request_config(mut base: Config, timeout: Duration) -> Config {
    base.connect_timeout = Some(timeout);
    base.read_timeout = Some(timeout);
    base.write_timeout = Some(timeout);
    base.reset_reader_on_write = true;
    base
}

/// `base` for list and watch calls: connect and write timeouts `timeout`, read timeout
/// [`WATCH_READ_TIMEOUT`].
pub fn watch_config(mut base: Config, timeout: Duration) -> Config {
    base.connect_timeout = Some(timeout);
    base.read_timeout = Some(WATCH_READ_TIMEOUT.max(timeout));
    base.write_timeout = Some(timeout);
    base.reset_reader_on_write = true;
    base
}

/// Both clients from KUBECONFIG or the in-cluster environment.
pub async fn clients(timeout: Duration) -> Result<Clients, ClientError> {
    let base = Config::infer().await?;
    Ok(Clients {
        requests: Client::try_from(request_config(base.clone(), timeout))?,
        watches: Client::try_from(watch_config(base, timeout))?,
    })
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("no Kubernetes configuration (KUBECONFIG or in-cluster service account): {0}")]
    Infer(#[from] kube::config::InferConfigError),
    #[error("building the Kubernetes client: {0}")]
    Build(#[from] kube::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_call_is_bounded() {
        let base = Config::new("https://127.0.0.1:6443".parse().expect("uri"));
        assert_eq!(base.read_timeout, None, "kube's default: no read timeout");
        let t = Duration::from_secs(3);
        let r = request_config(base.clone(), t);
        assert_eq!(
            (r.connect_timeout, r.read_timeout, r.write_timeout),
            (Some(t), Some(t), Some(t))
        );
        assert!(r.reset_reader_on_write);
        let w = watch_config(base, t);
        assert_eq!((w.connect_timeout, w.write_timeout), (Some(t), Some(t)));
        // Longer than the server-side watch timeout (290 s): an idle watch is not cut.
        assert!(w.read_timeout.is_some_and(|d| d > Duration::from_secs(295)));
    }
}
