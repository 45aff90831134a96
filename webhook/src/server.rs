//! HTTP layer: routes, body limit, metrics. The handlers only move bytes; decisions are made in
//! [`crate::admission`] and [`crate::conversion`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::admission::{self, Reply};
use crate::metrics::Metrics;
use crate::tls::CertStore;
use crate::{MAX_BODY_BYTES, conversion};

/// Shared state of both routers.
#[derive(Clone)]
pub struct AppState {
    pub ctx: Arc<admission::Context>,
    pub metrics: Arc<Metrics>,
    pub certs: Arc<CertStore>,
    /// Set on SIGTERM: `/readyz` turns 503 while in-flight requests drain.
    pub shutting_down: Arc<AtomicBool>,
}

/// Result label attached to a response by the handlers, read by the metrics middleware.
#[derive(Clone, Copy, Debug)]
struct ResultLabel(&'static str);

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let content_type = if self.status == StatusCode::INTERNAL_SERVER_ERROR {
            "text/plain; charset=utf-8"
        } else {
            "application/json"
        };
        let mut resp = (
            self.status,
            [(header::CONTENT_TYPE, content_type)],
            self.body,
        )
            .into_response();
        resp.extensions_mut().insert(ResultLabel(self.result));
        resp
    }
}

async fn validate_swh(State(st): State<AppState>, body: Bytes) -> Reply {
    admission::validate_swh(&body, &st.ctx).await
}

async fn validate_service(State(st): State<AppState>, body: Bytes) -> Reply {
    admission::validate_service(&body, &st.ctx).await
}

async fn convert(body: Bytes) -> Reply {
    conversion::convert(&body)
}

fn endpoint_label(path: &str) -> &'static str {
    match path {
        "/validate-swh" => "validate-swh",
        "/validate-service" => "validate-service",
        "/convert" => "convert",
        _ => "other",
    }
}

async fn track(State(metrics): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let endpoint = endpoint_label(req.uri().path());
    let resp = next.run(req).await;
    let result = match resp.extensions().get::<ResultLabel>() {
        Some(r) => r.0,
        None => match resp.status() {
            StatusCode::PAYLOAD_TOO_LARGE => "too_large",
            StatusCode::NOT_FOUND => "not_found",
            StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
            s if s.is_client_error() => "bad_request",
            _ => "error",
        },
    };
    metrics.observe(endpoint, result, started.elapsed());
    resp
}

/// The TLS router: `POST /validate-swh`, `POST /validate-service`, `POST /convert`.
/// Bodies over [`MAX_BODY_BYTES`] get 413.
pub fn router(state: AppState) -> Router {
    let metrics = state.metrics.clone();
    Router::new()
        .route("/validate-swh", post(validate_swh))
        .route("/validate-service", post(validate_service))
        .route("/convert", post(convert))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
        .layer(middleware::from_fn_with_state(metrics, track))
}

async fn livez() -> &'static str {
    "ok"
}

async fn readyz(State(st): State<AppState>) -> Response {
    if st.shutting_down.load(Ordering::SeqCst) {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response()
    } else if st.certs.ready() {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "no serving certificate loaded yet\n",
        )
            .into_response()
    }
}

async fn metrics(State(st): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        st.metrics.encode(),
    )
        .into_response()
}

/// The plain-HTTP admin router: `/livez`, `/readyz`, `/metrics`.
pub fn admin_router(state: AppState) -> Router {
    Router::new()
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}
