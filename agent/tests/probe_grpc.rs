//! gRPC health probe against a real tonic health server on loopback.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use swh_agent::probe::{GrpcSpec, ProbeKind, ProbeOutcome, ProbeSpec, ProbeTarget, Prober};
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

async fn start(bind: &str) -> (SocketAddr, HealthReporter) {
    let (reporter, service) = tonic_health::server::health_reporter();
    let listener = tokio::net::TcpListener::bind(bind).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(TcpIncoming::from(listener)),
    );
    (addr, reporter)
}

async fn probe(addr: SocketAddr, service: Option<&str>) -> ProbeOutcome {
    let spec = ProbeSpec::new(
        "grpc",
        ProbeKind::Grpc(GrpcSpec {
            service: service.map(str::to_string),
        }),
    );
    Prober::new()
        .probe(&spec, ProbeTarget::new(addr.ip(), addr.port()))
        .await
}

#[tokio::test]
async fn serving_passes_everything_else_fails() {
    let (addr, reporter) = start("127.0.0.1:0").await;
    // The overall ("") service is SERVING by default.
    let out = probe(addr, None).await;
    assert!(out.ok, "{out:?}");
    assert_eq!(out.message, "SERVING");

    reporter
        .set_service_status("db", ServingStatus::Serving)
        .await;
    assert!(probe(addr, Some("db")).await.ok);

    reporter
        .set_service_status("db", ServingStatus::NotServing)
        .await;
    let out = probe(addr, Some("db")).await;
    assert!(!out.ok);
    assert_eq!(out.message, "NOT_SERVING");

    // Unknown service: the server answers NOT_FOUND.
    let out = probe(addr, Some("nope")).await;
    assert!(!out.ok);
    assert!(out.message.starts_with("gRPC NOT_FOUND"), "{out:?}");
}

#[tokio::test]
async fn ipv6_and_refused() {
    let (addr, _reporter) = start("[::1]:0").await;
    let out = probe(addr, None).await;
    assert!(out.ok, "{out:?}");
    let port = common::closed_port("127.0.0.1");
    let out = probe(SocketAddr::from(([127, 0, 0, 1], port)), None).await;
    assert!(!out.ok);
    assert_eq!(out.message, "connection refused");
}

#[tokio::test]
async fn a_plain_http_server_is_not_a_grpc_server() {
    let srv = common::start_http("127.0.0.1:0", None).await;
    let spec = ProbeSpec {
        timeout: Duration::from_secs(1),
        ..ProbeSpec::new("grpc", ProbeKind::Grpc(GrpcSpec::default()))
    };
    let out = Prober::new()
        .probe(&spec, ProbeTarget::new(srv.addr.ip(), srv.addr.port()))
        .await;
    assert!(!out.ok, "{out:?}");
}
