//! Serving certificate that follows its files.
//!
//! [`CertStore`] is a rustls [`ResolvesServerCert`]: on every handshake it stats the certificate
//! and key files (following symlinks, so a Secret volume's `..data` swap is seen) and re-reads
//! them when their identity (device, inode, size, mtime) changed; a background poller calls
//! [`CertStore::refresh`] too, so `/readyz` and the logs follow even without traffic. A pair that
//! does not load (half-written, key mismatch) is logged once and the previous certificate stays
//! in service; the next change of either file is tried again.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tracing::{info, warn};

#[derive(Clone, Debug, PartialEq, Eq)]
struct FileStamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: Option<SystemTime>,
}

impl FileStamp {
    fn of(path: &Path) -> Option<FileStamp> {
        let m = std::fs::metadata(path).ok()?;
        Some(FileStamp {
            dev: m.dev(),
            ino: m.ino(),
            len: m.len(),
            mtime: m.modified().ok(),
        })
    }
}

type Stamp = (Option<FileStamp>, Option<FileStamp>);

#[derive(Default, Debug)]
struct State {
    /// Stamp of the files `current` was loaded from.
    loaded: Option<Stamp>,
    /// Stamp of the files that last failed to load (not retried until they change).
    failed: Option<Stamp>,
    current: Option<Arc<CertifiedKey>>,
    reloads: u64,
}

/// The serving certificate, re-read when its files change.
#[derive(Debug)]
pub struct CertStore {
    cert: PathBuf,
    key: PathBuf,
    state: RwLock<State>,
}

/// Why a certificate pair could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: no PEM certificate found ({detail})")]
    NoCert { path: PathBuf, detail: String },
    #[error("{path}: no PEM private key found ({detail})")]
    NoKey { path: PathBuf, detail: String },
    #[error("no default TLS provider installed")]
    NoProvider,
    #[error("certificate and key do not form a usable pair: {0}")]
    Pair(rustls::Error),
}

/// Reads a PEM chain and key into a rustls [`CertifiedKey`], checking that they match.
pub fn load_pair(cert: &Path, key: &Path) -> Result<CertifiedKey, LoadError> {
    let read = |p: &Path| {
        std::fs::read(p).map_err(|source| LoadError::Read {
            path: p.to_path_buf(),
            source,
        })
    };
    let cert_pem = read(cert)?;
    let key_pem = read(key)?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| LoadError::NoCert {
            path: cert.to_path_buf(),
            detail: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(LoadError::NoCert {
            path: cert.to_path_buf(),
            detail: "empty file".into(),
        });
    }
    let key_der = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| LoadError::NoKey {
        path: key.to_path_buf(),
        detail: e.to_string(),
    })?;
    let provider = CryptoProvider::get_default().ok_or(LoadError::NoProvider)?;
    CertifiedKey::from_der(chain, key_der, provider).map_err(LoadError::Pair)
}

impl CertStore {
    /// A store for the PEM files `cert` and `key`; nothing is read until [`refresh`](Self::refresh).
    pub fn new(cert: PathBuf, key: PathBuf) -> CertStore {
        CertStore {
            cert,
            key,
            state: RwLock::new(State::default()),
        }
    }

    fn stamp(&self) -> Stamp {
        (FileStamp::of(&self.cert), FileStamp::of(&self.key))
    }

    /// Re-reads the files if they changed since the last load (or failed load). Returns true
    /// when a new certificate was loaded.
    pub fn refresh(&self) -> bool {
        let stamp = self.stamp();
        {
            let st = self.state.read().unwrap_or_else(|e| e.into_inner());
            if st.loaded.as_ref() == Some(&stamp) || st.failed.as_ref() == Some(&stamp) {
                return false;
            }
        }
        let mut st = self.state.write().unwrap_or_else(|e| e.into_inner());
        // Another thread may have done it meanwhile.
        if st.loaded.as_ref() == Some(&stamp) || st.failed.as_ref() == Some(&stamp) {
            return false;
        }
        match load_pair(&self.cert, &self.key) {
            Ok(ck) => {
                st.reloads += 1;
                info!(
                    cert = %self.cert.display(),
                    loads = st.reloads,
                    "serving certificate loaded"
                );
                st.current = Some(Arc::new(ck));
                st.loaded = Some(stamp);
                st.failed = None;
                true
            }
            Err(e) => {
                if st.current.is_some() {
                    warn!(error = %e, "certificate files changed but do not load; still serving the previous certificate");
                } else {
                    warn!(error = %e, "no serving certificate yet");
                }
                st.failed = Some(stamp);
                false
            }
        }
    }

    /// The certificate in service, if one ever loaded.
    pub fn current(&self) -> Option<Arc<CertifiedKey>> {
        self.state
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .current
            .clone()
    }

    /// True once a certificate is loaded.
    pub fn ready(&self) -> bool {
        self.current().is_some()
    }

    /// How many times a certificate was (re)loaded.
    pub fn loads(&self) -> u64 {
        self.state.read().unwrap_or_else(|e| e.into_inner()).reloads
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.refresh();
        self.current()
    }
}

/// A rustls server config (default provider, h2 and http/1.1) that takes its certificate from
/// `store` on every handshake.
pub fn server_config(store: Arc<CertStore>) -> Result<Arc<rustls::ServerConfig>, rustls::Error> {
    let provider = CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(store);
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}
