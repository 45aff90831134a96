//! The real server on loopback TLS: certificate rotation is seen on the next handshake, a review
//! round-trips over HTTPS, and shutdown is graceful.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

fn connector(ca_pem: &str) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.expect("ca pem")).expect("add root");
    }
    let mut cfg = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    TlsConnector::from(Arc::new(cfg))
}

async fn served_cert(addr: SocketAddr, ca_pem: &str) -> Vec<u8> {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let tls = connector(ca_pem)
        .connect(
            ServerName::try_from("127.0.0.1").expect("name").to_owned(),
            tcp,
        )
        .await
        .expect("handshake verifies against the CA");
    let (_, conn) = tls.get_ref();
    conn.peer_certificates().expect("peer certs")[0].to_vec()
}

async fn post(
    addr: SocketAddr,
    ca_pem: &str,
    path: &str,
    body: Vec<u8>,
) -> (u16, serde_json::Value) {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let tls = connector(ca_pem)
        .connect(
            ServerName::try_from("localhost").expect("name").to_owned(),
            tcp,
        )
        .await
        .expect("handshake");
    let (mut send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
        .await
        .expect("http1");
    tokio::spawn(conn);
    let req = hyper::Request::post(path)
        .header("host", "localhost")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .expect("request");
    let resp = send.send_request(req).await.expect("response");
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_is_served_on_the_next_handshake_and_shutdown_is_graceful() {
    provider();
    let dir = std::env::temp_dir().join(format!("swh-webhook-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let (cert, key) = (dir.join("tls.crt"), dir.join("tls.key"));
    let ca = TestCa::new();
    let first = ca.issue(&cert, &key);

    let args = swh_webhook::Args {
        listen: "127.0.0.1:0".parse().expect("addr"),
        tls_cert_file: cert.clone(),
        tls_key_file: key.clone(),
        admin_listen: "127.0.0.1:0".parse().expect("addr"),
        log_format: swh_webhook::LogFormat::Plain,
        controller_username: CONTROLLER.into(),
        cert_poll_interval: Duration::from_secs(3600),
        no_api: true,
    };
    let bound = swh_webhook::bind(&args).await.expect("bind");
    let addr = bound.local_addr().expect("addr");
    let admin = bound.admin_addr().expect("admin addr");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(bound.serve(async move {
        let _ = stop_rx.await;
    }));

    assert_eq!(served_cert(addr, &ca.pem).await, first);
    let (status, v) = post(
        addr,
        &ca.pem,
        "/validate-swh",
        serde_json::to_vec(&swh_review("tls-1", "CREATE", alpha_web(), None)).expect("json"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(v["response"]["allowed"], true, "{v}");

    // Rotate: new key and certificate. No poller runs (1 h); the handshake itself notices.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let second = ca.issue(&cert, &key);
    assert_ne!(first, second);
    assert_eq!(served_cert(addr, &ca.pem).await, second);

    // A broken write keeps the previous certificate in service.
    tokio::time::sleep(Duration::from_millis(50)).await;
    std::fs::write(&cert, "garbage").expect("write");
    assert_eq!(served_cert(addr, &ca.pem).await, second);

    // Admin port over plain HTTP.
    let body = reqwest_like_get(admin, "/readyz").await;
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");

    stop_tx.send(()).expect("stop");
    tokio::time::timeout(Duration::from_secs(15), server)
        .await
        .expect("server stops")
        .expect("join")
        .expect("clean exit");
    let _ = std::fs::remove_dir_all(&dir);
}

async fn reqwest_like_get(addr: SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).await.expect("read");
    out
}
