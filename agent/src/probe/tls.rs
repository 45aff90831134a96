//! TLS client configurations for probes, built once per distinct setting and cached.
//!
//! Building a `rustls::ClientConfig` parses the CA bundle and the client key; doing that per probe
//! would dominate the cost of a TLS probe. The cache is keyed by the full setting (PEM text
//! included), so an updated Secret or spec simply gets a new entry.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

/// How the server certificate is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Verify {
    /// Chain to a trusted root and the name (SNI host or IP) matches: HTTPS default, `verify-full`.
    Full,
    /// Chain to a trusted root, any name: PostgreSQL `verify-ca`.
    ChainOnly,
    /// Encrypt but don't authenticate: `insecureSkipTLSVerify`, PostgreSQL `require`.
    None,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct TlsKey {
    pub verify: Verify,
    /// PEM bundle of trusted CAs; `None` = the system roots.
    pub ca_pem: Option<String>,
    pub client_cert_pem: Option<String>,
    pub client_key_pem: Option<String>,
    pub alpn: &'static [&'static [u8]],
}

/// Upper bound of cached configurations; the cache is emptied when exceeded (settings come from
/// SWH specs and Secrets, so in practice there are a handful).
const MAX_ENTRIES: usize = 512;

#[derive(Default)]
pub(crate) struct TlsCache {
    map: Mutex<HashMap<TlsKey, Result<Arc<ClientConfig>, String>>>,
}

impl TlsCache {
    pub fn get(&self, key: &TlsKey) -> Result<Arc<ClientConfig>, String> {
        let mut map = match self.map.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(hit) = map.get(key) {
            return hit.clone();
        }
        if map.len() >= MAX_ENTRIES {
            map.clear();
        }
        let built = build(key).map(Arc::new);
        map.insert(key.clone(), built.clone());
        built
    }

    pub fn len(&self) -> usize {
        self.map.lock().map(|m| m.len()).unwrap_or(0)
    }
}

fn provider() -> Arc<CryptoProvider> {
    static P: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    P.get_or_init(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .clone()
}

fn system_roots() -> Arc<RootCertStore> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let mut store = RootCertStore::empty();
            let loaded = rustls_native_certs::load_native_certs();
            let (added, ignored) = store.add_parsable_certificates(loaded.certs);
            tracing::debug!(
                added,
                ignored,
                errors = loaded.errors.len(),
                "loaded system CA roots"
            );
            Arc::new(store)
        })
        .clone()
}

fn parse_ca(pem: &str) -> Result<Arc<RootCertStore>, String> {
    let mut store = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        let cert = cert.map_err(|e| format!("tls: invalid CA certificate PEM: {e}"))?;
        store
            .add(cert)
            .map_err(|e| format!("tls: invalid CA certificate: {e}"))?;
    }
    if store.is_empty() {
        return Err("tls: CA certificate has no PEM certificate in it".to_string());
    }
    Ok(Arc::new(store))
}

fn build(key: &TlsKey) -> Result<ClientConfig, String> {
    let provider = provider();
    let roots = match &key.ca_pem {
        Some(pem) => parse_ca(pem)?,
        None => system_roots(),
    };
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("tls: {e}"))?;
    let verifier: Arc<dyn ServerCertVerifier> = match key.verify {
        Verify::None => Arc::new(NoVerify(provider.clone())),
        Verify::Full | Verify::ChainOnly => {
            let webpki = if roots.is_empty() {
                // WebPkiServerVerifier refuses an empty store; every chain is then untrusted.
                None
            } else {
                Some(
                    WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                        .build()
                        .map_err(|e| format!("tls: {e}"))?,
                )
            };
            Arc::new(Checked {
                inner: webpki,
                provider: provider.clone(),
                check_name: key.verify == Verify::Full,
            })
        }
    };
    let builder = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match (&key.client_cert_pem, &key.client_key_pem) {
        (Some(cert), Some(k)) => {
            let chain = CertificateDer::pem_slice_iter(cert.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("tls: invalid client certificate PEM: {e}"))?;
            if chain.is_empty() {
                return Err("tls: client certificate has no PEM certificate in it".to_string());
            }
            let key = PrivateKeyDer::from_pem_slice(k.as_bytes())
                .map_err(|e| format!("tls: invalid client key PEM: {e}"))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("tls: client certificate and key don't match: {e}"))?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => return Err("tls: client certificate and key must be given together".to_string()),
    };
    config.alpn_protocols = key.alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// Full or chain-only verification over webpki.
#[derive(Debug)]
struct Checked {
    inner: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
    check_name: bool,
}

impl ServerCertVerifier for Checked {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(inner) = &self.inner else {
            return Err(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer,
            ));
        };
        match inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.check_name => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Accepts any certificate (the handshake signature is still checked, so the peer holds the
/// key of the certificate it sent). Used only when the probe opts in.
#[derive(Debug)]
struct NoVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The server name to verify and send as SNI: the probe's host if set, else the pod IP
/// (rustls sends no SNI for an IP and checks the certificate's IP SANs).
pub(crate) fn server_name(
    host: Option<&str>,
    ip: std::net::IpAddr,
) -> Result<ServerName<'static>, String> {
    match host {
        Some(h) if !h.is_empty() => {
            // A `host` may carry a port (`example.com:8443`); SNI never does.
            let name = strip_port(h);
            ServerName::try_from(name.to_string())
                .map_err(|_| format!("tls: invalid server name {name:?}"))
        }
        _ => Ok(ServerName::IpAddress(ip.into())),
    }
}

fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') && p.chars().all(|c| c.is_ascii_digit()) => h,
        _ => host,
    }
}

/// A TLS error in words, e.g. `tls: certificate verify failed: unknown issuer`.
pub(crate) fn describe(e: &rustls::Error) -> String {
    match e {
        rustls::Error::InvalidCertificate(c) => {
            format!("tls: certificate verify failed: {}", describe_cert(c))
        }
        rustls::Error::AlertReceived(a) => format!("tls: server sent alert {a:?}"),
        rustls::Error::InvalidMessage(_) => {
            format!("tls: {e} (is the server speaking TLS on this port?)")
        }
        other => format!("tls: {other}"),
    }
}

fn describe_cert(c: &CertificateError) -> String {
    match c {
        CertificateError::UnknownIssuer => "unknown issuer (not signed by a trusted CA)".into(),
        CertificateError::NotValidForName => "certificate is not valid for the server name".into(),
        CertificateError::NotValidForNameContext {
            expected,
            presented,
        } => format!(
            "certificate is valid for {}, not {}",
            if presented.is_empty() {
                "no names".to_string()
            } else {
                presented
                    .iter()
                    .map(|p| presented_name(p))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            expected.to_str()
        ),
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            "certificate has expired".into()
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            "certificate is not valid yet".into()
        }
        CertificateError::BadEncoding => "certificate is malformed".into(),
        CertificateError::BadSignature => "certificate signature is invalid".into(),
        CertificateError::Revoked => "certificate is revoked".into(),
        other => format!("{other:?}"),
    }
}

/// rustls reports presented names in Debug form (`DnsName("a.example")`); show the name.
fn presented_name(p: &str) -> &str {
    p.strip_prefix("DnsName(\"")
        .and_then(|r| r.strip_suffix("\")"))
        .unwrap_or(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presented_names_read_well() {
        assert_eq!(presented_name("DnsName(\"a.example\")"), "a.example");
        assert_eq!(presented_name("10.0.0.1"), "10.0.0.1");
    }

    #[test]
    fn sni_strips_port() {
        assert_eq!(strip_port("example.com:8443"), "example.com");
        assert_eq!(strip_port("example.com"), "example.com");
        assert_eq!(strip_port("[::1]:443"), "::1");
        assert_eq!(strip_port("::1"), "::1");
    }

    #[test]
    fn bad_ca_is_an_error_not_a_panic() {
        let cache = TlsCache::default();
        let key = TlsKey {
            verify: Verify::Full,
            ca_pem: Some("not a pem".into()),
            client_cert_pem: None,
            client_key_pem: None,
            alpn: &[],
        };
        let err = cache.get(&key).unwrap_err();
        assert!(err.contains("CA certificate"), "{err}");
        // Cached: same answer without rebuilding.
        assert_eq!(cache.len(), 1);
        assert!(cache.get(&key).is_err());
    }
}
