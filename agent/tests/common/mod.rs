//! Real loopback servers for the probe tests: a hyper HTTP/1.1 + h2c server (optionally behind
//! rustls) and an rcgen PKI. Only 127.0.0.0/8 and [::1] are ever used.
#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

pub struct Pki {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

/// A CA and a leaf for `names` (DNS names or IPs) signed by it.
pub fn pki(names: &[&str]) -> Pki {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "swh test CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    let leaf = rcgen::CertificateParams::new(names)
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    Pki {
        ca_pem: ca_cert.pem(),
        cert_pem: leaf.pem(),
        key_pem: leaf_key.serialize_pem(),
    }
}

pub fn server_config(pki: &Pki, alpn: &[&[u8]]) -> Arc<ServerConfig> {
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(pki.cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .unwrap();
    let key = PrivateKeyDer::from_pem_slice(pki.key_pem.as_bytes()).unwrap();
    let mut config = ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// What the server saw, for assertions.
#[derive(Default)]
pub struct Seen {
    pub connections: AtomicUsize,
    pub requests: AtomicUsize,
    pub sni: Mutex<Vec<Option<String>>>,
    pub hosts: Mutex<Vec<String>>,
    pub user_agents: Mutex<Vec<String>>,
    pub custom: Mutex<Vec<String>>,
}

pub struct HttpServer {
    pub addr: SocketAddr,
    pub seen: Arc<Seen>,
}

/// Routes:
/// `/ok` 200 "hello world"; `/fail` 503; `/missing` 404; `/nocontent` 204;
/// `/redirect-same` 302 → `/ok`; `/redirect-abs` 302 → `http://<Host header>/ok`;
/// `/redirect-to?<url>` 302 → `<url>`; `/loop` 302 → `/loop`; `/slow` 200 after 3 s;
/// `/host` 200 with the Host header as body; `/big` 200 with the word "needle" after 20 KiB.
pub async fn start_http(bind: &str, tls: Option<Arc<ServerConfig>>) -> HttpServer {
    let listener = TcpListener::bind(bind).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let s = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            s.connections.fetch_add(1, Ordering::SeqCst);
            let s = s.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                let svc = {
                    let s = s.clone();
                    service_fn(move |req| handle(s.clone(), req))
                };
                match tls {
                    None => {
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), svc)
                            .await;
                    }
                    Some(cfg) => {
                        let Ok(stream) = TlsAcceptor::from(cfg).accept(stream).await else {
                            return;
                        };
                        let sni = stream.get_ref().1.server_name().map(str::to_string);
                        s.sni.lock().unwrap().push(sni);
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), svc)
                            .await;
                    }
                }
            });
        }
    });
    HttpServer { addr, seen }
}

async fn handle(
    seen: Arc<Seen>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    seen.requests.fetch_add(1, Ordering::SeqCst);
    let host = req
        .headers()
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    seen.hosts.lock().unwrap().push(host.clone());
    if let Some(ua) = req.headers().get(http::header::USER_AGENT) {
        seen.user_agents
            .lock()
            .unwrap()
            .push(ua.to_str().unwrap_or_default().to_string());
    }
    if let Some(v) = req.headers().get("x-custom") {
        seen.custom
            .lock()
            .unwrap()
            .push(v.to_str().unwrap_or_default().to_string());
    }
    let redirect = |to: &str| {
        Response::builder()
            .status(StatusCode::FOUND)
            .header(http::header::LOCATION, to)
            .body(Full::new(Bytes::from_static(b"moved")))
            .unwrap()
    };
    let ok = |body: Bytes| Response::new(Full::new(body));
    let status = |code: u16| {
        Response::builder()
            .status(code)
            .body(Full::new(Bytes::from_static(b"status")))
            .unwrap()
    };
    let resp = match req.uri().path() {
        "/ok" => ok(Bytes::from_static(b"hello world")),
        "/fail" => status(503),
        "/missing" => status(404),
        "/nocontent" => status(204),
        "/redirect-same" => redirect("/ok"),
        "/redirect-abs" => redirect(&format!("http://{host}/ok")),
        "/redirect-to" => redirect(req.uri().query().unwrap_or("/")),
        "/loop" => redirect("/loop"),
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            ok(Bytes::from_static(b"late"))
        }
        "/host" => ok(Bytes::from(host)),
        "/big" => {
            let mut body = vec![b'x'; 20 * 1024];
            body.extend_from_slice(b"needle");
            ok(Bytes::from(body))
        }
        _ => status(404),
    };
    Ok(resp)
}

/// A listener that only counts connections: proves nothing was dialed there.
pub async fn counting_listener(bind: &str) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind(bind).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            c.fetch_add(1, Ordering::SeqCst);
            drop(s);
        }
    });
    (addr, count)
}

/// A port on `ip` with nothing listening (bound then released).
pub fn closed_port(ip: &str) -> u16 {
    let l = std::net::TcpListener::bind((ip, 0)).unwrap();
    l.local_addr().unwrap().port()
}
