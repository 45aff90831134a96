//! HTTP(S) probe against a real hyper server on loopback.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{closed_port, counting_listener, pki, server_config, start_http};
use swh_agent::probe::{
    HttpMethod, HttpScheme, HttpSpec, ProbeKind, ProbeOutcome, ProbeSpec, ProbeTarget, Prober,
    StatusRange,
};

fn spec(http: HttpSpec) -> ProbeSpec {
    ProbeSpec::new("web", ProbeKind::Http(http))
}

fn get(path: &str) -> HttpSpec {
    HttpSpec {
        path: path.to_string(),
        ..Default::default()
    }
}

async fn probe(http: HttpSpec, addr: std::net::SocketAddr) -> ProbeOutcome {
    Prober::new()
        .probe(&spec(http), ProbeTarget::new(addr.ip(), addr.port()))
        .await
}

#[tokio::test]
async fn status_200_passes_503_and_404_fail() {
    let srv = start_http("127.0.0.1:0", None).await;
    let out = probe(get("/ok"), srv.addr).await;
    assert!(out.ok, "{out:?}");
    assert_eq!(out.message, "200 OK");
    let out = probe(get("/fail"), srv.addr).await;
    assert!(!out.ok);
    assert_eq!(out.message, "503 Service Unavailable");
    let out = probe(get("/missing"), srv.addr).await;
    assert!(!out.ok);
    assert_eq!(out.message, "404 Not Found");
    // One fresh connection per probe: nothing pooled.
    assert_eq!(srv.seen.connections.load(Ordering::SeqCst), 3);
    // Default Host is the pod address, with the port (like the kubelet's URL host).
    assert_eq!(
        srv.seen.hosts.lock().unwrap()[0],
        format!("127.0.0.1:{}", srv.addr.port())
    );
    assert!(srv.seen.user_agents.lock().unwrap()[0].starts_with("swh-agent/"));
}

#[tokio::test]
async fn expected_status_ranges() {
    let srv = start_http("127.0.0.1:0", None).await;
    let mut h = get("/missing");
    h.expected_statuses = vec![StatusRange::single(404)];
    assert!(probe(h, srv.addr).await.ok);
    let mut h = get("/ok");
    h.expected_statuses = vec![StatusRange::single(204), StatusRange::new(500, 599)];
    let out = probe(h, srv.addr).await;
    assert!(!out.ok);
    assert_eq!(out.message, "200 OK (expected 204, 500-599)");
}

#[tokio::test]
async fn head_method() {
    let srv = start_http("127.0.0.1:0", None).await;
    let mut h = get("/ok");
    h.method = HttpMethod::Head;
    let out = probe(h, srv.addr).await;
    assert!(out.ok, "{out:?}");
}

#[tokio::test]
async fn same_host_redirects_are_followed() {
    let srv = start_http("127.0.0.1:0", None).await;
    let out = probe(get("/redirect-same"), srv.addr).await;
    assert!(out.ok, "{out:?}");
    assert_eq!(out.message, "200 OK");
    // Absolute URL naming the pod address.
    let out = probe(get("/redirect-abs"), srv.addr).await;
    assert!(out.ok, "{out:?}");
    assert_eq!(out.message, "200 OK");
    // Absolute URL naming the probe's host: still dials the pod IP.
    let mut h = get("/redirect-abs");
    h.host = Some(format!("app.example:{}", srv.addr.port()));
    let out = probe(h, srv.addr).await;
    assert_eq!(out.message, "200 OK");
    // Redirect to a failing page fails.
    let out = probe(get("/redirect-to?/fail"), srv.addr).await;
    assert!(!out.ok);
    assert_eq!(out.message, "503 Service Unavailable");
}

#[tokio::test]
async fn cross_host_redirect_is_not_followed_and_judged_as_3xx() {
    let srv = start_http("127.0.0.1:0", None).await;
    // Another loopback address with a listener that counts connections: it must see none.
    let (other, dialed) = counting_listener("127.0.0.2:0").await;
    let h = get(&format!("/redirect-to?http://{other}/ok"));
    let out = probe(h.clone(), srv.addr).await;
    // kubelet: a redirect to another host ends the probe with the 3xx, which passes (200-399).
    assert!(out.ok, "{out:?}");
    assert_eq!(
        out.message,
        "302 Found, redirect to other host 127.0.0.2 not followed"
    );
    let out = probe(get("/redirect-to?http://other.example/"), srv.addr).await;
    assert!(out.ok, "{out:?}");
    // With an explicit 200-only expectation the 3xx fails.
    let mut strict = h;
    strict.expected_statuses = vec![StatusRange::single(200)];
    let out = probe(strict, srv.addr).await;
    assert!(!out.ok);
    assert_eq!(dialed.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn redirect_loops_stop_after_ten() {
    let srv = start_http("127.0.0.1:0", None).await;
    let out = probe(get("/loop"), srv.addr).await;
    assert!(!out.ok);
    assert_eq!(out.message, "stopped after 10 redirects");
    assert_eq!(srv.seen.requests.load(Ordering::SeqCst), 11);
}

#[tokio::test]
async fn slow_server_times_out() {
    let srv = start_http("127.0.0.1:0", None).await;
    let started = std::time::Instant::now();
    let mut s = spec(get("/slow"));
    s.timeout = Duration::from_secs(1);
    let out = Prober::new()
        .probe(&s, ProbeTarget::new(srv.addr.ip(), srv.addr.port()))
        .await;
    assert!(!out.ok);
    assert_eq!(out.message, "timeout after 1s");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(2),
        "{took:?}"
    );
}

#[tokio::test]
async fn connection_refused() {
    let port = closed_port("127.0.0.1");
    let out = Prober::new()
        .probe(
            &spec(get("/")),
            ProbeTarget::new("127.0.0.1".parse().unwrap(), port),
        )
        .await;
    assert!(!out.ok);
    assert_eq!(out.message, "connection refused");
}

#[tokio::test]
async fn body_match_within_first_10_kib() {
    let srv = start_http("127.0.0.1:0", None).await;
    let mut h = get("/ok");
    h.body_contains = Some("world".into());
    assert!(probe(h.clone(), srv.addr).await.ok);
    h.body_contains = Some("mars".into());
    let out = probe(h, srv.addr).await;
    assert!(!out.ok);
    assert_eq!(
        out.message,
        "200 OK, body does not contain \"mars\" (first 10 KiB read)"
    );
    // The needle sits after 20 KiB: beyond the cap, so not found (and no error for truncation).
    let mut h = get("/big");
    h.body_contains = Some("needle".into());
    let out = probe(h, srv.addr).await;
    assert!(!out.ok);
    assert!(out.message.contains("does not contain"), "{out:?}");
}

#[tokio::test]
async fn host_header_and_custom_headers() {
    let srv = start_http("127.0.0.1:0", None).await;
    let mut h = get("/host");
    h.host = Some("app.example".into());
    h.body_contains = Some("app.example".into());
    h.headers = vec![
        ("X-Custom".into(), "one".into()),
        ("User-Agent".into(), "kube-probe/1.33".into()),
    ];
    let out = probe(h, srv.addr).await;
    assert!(out.ok, "{out:?}");
    assert_eq!(srv.seen.hosts.lock().unwrap()[0], "app.example");
    assert_eq!(srv.seen.custom.lock().unwrap()[0], "one");
    assert_eq!(srv.seen.user_agents.lock().unwrap()[0], "kube-probe/1.33");
}

#[tokio::test]
async fn ipv6_target() {
    let srv = start_http("[::1]:0", None).await;
    let out = probe(get("/host"), srv.addr).await;
    assert!(out.ok, "{out:?}");
    assert_eq!(
        srv.seen.hosts.lock().unwrap()[0],
        format!("[::1]:{}", srv.addr.port())
    );
}

fn https(path: &str) -> HttpSpec {
    HttpSpec {
        scheme: HttpScheme::Https,
        ..get(path)
    }
}

#[tokio::test]
async fn https_verifies_against_the_given_ca_with_host_as_sni() {
    let pki = pki(&["app.example", "127.0.0.1"]);
    let srv = start_http("127.0.0.1:0", Some(server_config(&pki, &[b"http/1.1"]))).await;
    let mut h = https("/host");
    h.ca_pem = Some(pki.ca_pem.clone());
    h.host = Some("app.example".into());
    let out = probe(h, srv.addr).await;
    assert!(out.ok, "{out:?}");
    assert_eq!(
        srv.seen.sni.lock().unwrap()[0].as_deref(),
        Some("app.example")
    );
    // Without a host, the certificate must carry the pod IP (it does here); no SNI is sent.
    let mut h = https("/ok");
    h.ca_pem = Some(pki.ca_pem.clone());
    let out = probe(h, srv.addr).await;
    assert!(out.ok, "{out:?}");
    assert_eq!(srv.seen.sni.lock().unwrap()[1], None);
}

#[tokio::test]
async fn https_verification_failures_are_readable() {
    let pki = pki(&["app.example"]);
    let srv = start_http("127.0.0.1:0", Some(server_config(&pki, &[]))).await;
    // Unknown CA (system roots don't know the test CA).
    let mut h = https("/ok");
    h.host = Some("app.example".into());
    let out = probe(h, srv.addr).await;
    assert!(!out.ok);
    assert!(
        out.message
            .starts_with("tls: certificate verify failed: unknown issuer"),
        "{out:?}"
    );
    // Right CA, wrong name.
    let mut h = https("/ok");
    h.ca_pem = Some(pki.ca_pem.clone());
    h.host = Some("other.example".into());
    let out = probe(h, srv.addr).await;
    assert!(!out.ok);
    assert_eq!(
        out.message,
        "tls: certificate verify failed: certificate is valid for app.example, not other.example"
    );
    // A CA that isn't PEM.
    let mut h = https("/ok");
    h.ca_pem = Some("garbage".into());
    let out = probe(h, srv.addr).await;
    assert!(!out.ok);
    assert!(out.message.contains("CA certificate"), "{out:?}");
    // Plain HTTP against the TLS port fails rather than hanging.
    let out = probe(get("/ok"), srv.addr).await;
    assert!(!out.ok, "{out:?}");
    assert!(
        out.message.starts_with("not a valid HTTP response"),
        "{out:?}"
    );
    // And HTTPS against a plain port says so.
    let plain = start_http("127.0.0.1:0", None).await;
    let mut h = https("/ok");
    h.insecure_skip_verify = true;
    let out = probe(h, plain.addr).await;
    assert!(!out.ok);
    assert!(
        out.message.contains("is the server speaking TLS"),
        "{out:?}"
    );
}

#[tokio::test]
async fn https_skip_verify_accepts_any_certificate() {
    let pki = pki(&["somewhere.example"]);
    let srv = start_http("127.0.0.1:0", Some(server_config(&pki, &[]))).await;
    let mut h = https("/ok");
    h.insecure_skip_verify = true;
    let out = probe(h, srv.addr).await;
    assert!(out.ok, "{out:?}");
    assert_eq!(out.message, "200 OK");
}

#[tokio::test]
async fn tls_configs_are_cached_across_probes() {
    let pki = pki(&["127.0.0.1"]);
    let srv = start_http("127.0.0.1:0", Some(server_config(&pki, &[]))).await;
    let prober = Prober::new();
    let mut h = https("/ok");
    h.ca_pem = Some(pki.ca_pem.clone());
    let s = spec(h);
    for _ in 0..5 {
        let out = prober
            .probe(&s, ProbeTarget::new(srv.addr.ip(), srv.addr.port()))
            .await;
        assert!(out.ok, "{out:?}");
    }
    assert!(
        format!("{prober:?}").contains("tls_configs: 1"),
        "{prober:?}"
    );
    assert_eq!(srv.seen.connections.load(Ordering::SeqCst), 5);
}
