//! The plain-HTTP admin port: `/livez` (the process runs), `/readyz` (watches synced and the
//! first reconciliation done), `/metrics`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::metrics::Metrics;

#[derive(Clone)]
pub struct AdminState {
    pub ready: Arc<AtomicBool>,
    pub metrics: Arc<Metrics>,
}

pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/livez", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn readyz(State(s): State<AdminState>) -> impl IntoResponse {
    let ready = s.ready.load(Ordering::Relaxed);
    s.metrics.set_ready(ready);
    if ready {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "watches not synced yet")
    }
}

async fn metrics(State(s): State<AdminState>) -> impl IntoResponse {
    // swh_agent_ready: what /readyz would answer now.
    s.metrics.set_ready(s.ready.load(Ordering::Relaxed));
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.encode(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn scrape(s: &AdminState) -> String {
        let resp = metrics(State(s.clone())).await.into_response();
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap_or_default();
        String::from_utf8_lossy(&body).into_owned()
    }

    #[tokio::test]
    async fn ready_gauge_follows_readyz() {
        let s = AdminState {
            ready: Arc::new(AtomicBool::new(false)),
            metrics: Arc::new(Metrics::new()),
        };
        let r = readyz(State(s.clone())).await.into_response();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        let m = scrape(&s).await;
        assert!(m.contains("\nswh_agent_ready 0\n"), "{m}");
        s.ready.store(true, Ordering::Relaxed);
        let r = readyz(State(s.clone())).await.into_response();
        assert_eq!(r.status(), StatusCode::OK);
        let m = scrape(&s).await;
        assert!(m.contains("\nswh_agent_ready 1\n"), "{m}");
    }
}
