//! TCP probe against real loopback sockets (IPv4 and IPv6).

mod common;

use std::io::Read;
use std::time::Duration;

use swh_agent::probe::{ProbeKind, ProbeSpec, ProbeTarget, Prober};

fn tcp() -> ProbeSpec {
    ProbeSpec::new("tcp", ProbeKind::Tcp)
}

#[tokio::test]
async fn open_port_passes_and_nothing_is_written() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let out = Prober::new()
        .probe(&tcp(), ProbeTarget::new("127.0.0.1".parse().unwrap(), port))
        .await;
    assert!(out.ok, "{out:?}");
    assert_eq!(out.message, "connected");
    // The probe connected and closed without a byte: the server reads EOF immediately.
    let (mut conn, _) = listener.accept().unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut buf = Vec::new();
    let n = conn.read_to_end(&mut buf).unwrap();
    assert_eq!(n, 0, "probe wrote {buf:?}");
}

#[tokio::test]
async fn closed_port_fails_with_connection_refused() {
    let port = common::closed_port("127.0.0.1");
    let out = Prober::new()
        .probe(&tcp(), ProbeTarget::new("127.0.0.1".parse().unwrap(), port))
        .await;
    assert!(!out.ok);
    assert_eq!(out.message, "connection refused");
    assert!(out.signal, "a refused connect is an immediate signal");
}

#[tokio::test]
async fn only_a_refused_connect_is_a_signal() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let target = ProbeTarget::new("127.0.0.1".parse().unwrap(), port);
    let out = Prober::new().probe(&tcp(), target).await;
    assert!(out.ok && !out.signal, "{out:?}");
    drop(listener);
    let out = Prober::new().probe(&tcp(), target).await;
    assert!(!out.ok && out.signal, "{out:?}");
}

#[tokio::test]
async fn ipv6_loopback_works() {
    let listener = std::net::TcpListener::bind("[::1]:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let target = ProbeTarget::new("::1".parse().unwrap(), port);
    let out = Prober::new().probe(&tcp(), target).await;
    assert!(out.ok, "{out:?}");
    drop(listener);
    let out = Prober::new().probe(&tcp(), target).await;
    assert!(!out.ok);
    assert_eq!(out.message, "connection refused");
}
