//! Test PKI for the local control plane: one CA, serving certificates with IP SANs, an admin
//! client certificate in `system:masters`, and the service-account signing key pair.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("generating certificate {name}: {source}")]
    Generate {
        name: String,
        #[source]
        source: rcgen::Error,
    },
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Paths of the PEM files written by [`Pki::create`].
#[derive(Debug, Clone)]
pub struct Pki {
    pub dir: PathBuf,
}

impl Pki {
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }
    pub fn ca_key(&self) -> PathBuf {
        self.dir.join("ca.key")
    }
    pub fn cert(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.crt"))
    }
    pub fn key(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.key"))
    }
    pub fn sa_pub(&self) -> PathBuf {
        self.dir.join("sa.pub")
    }
    pub fn sa_key(&self) -> PathBuf {
        self.dir.join("sa.key")
    }

    /// Creates the CA, `apiserver` (with `service_ip`, the `kubernetes` Service's ClusterIP,
    /// among its SANs), `admin` and `webhook` certificates, the identities of real nodes
    /// (`kubelet-<node>` in `system:nodes`, `kube-proxy`), the in-cluster webhook's serving
    /// certificate `webhook-svc` (the Service's DNS names) and the SA key pair.
    pub fn create(dir: &Path, service_ip: IpAddr, nodes: &[&str]) -> Result<Pki, PkiError> {
        std::fs::create_dir_all(dir).map_err(|source| PkiError::Write {
            path: dir.to_path_buf(),
            source,
        })?;
        let pki = Pki {
            dir: dir.to_path_buf(),
        };
        let gen_err = |name: &str| {
            let name = name.to_string();
            move |source| PkiError::Generate { name, source }
        };

        let ca_key = KeyPair::generate().map_err(gen_err("ca"))?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(gen_err("ca"))?;
        ca_params.distinguished_name = dn(&[(DnType::CommonName, "swh-e2e-ca")]);
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca_params.self_signed(&ca_key).map_err(gen_err("ca"))?;
        write(&pki.ca_cert(), ca_cert.pem())?;
        write(&pki.ca_key(), ca_key.serialize_pem())?;
        let issuer = Issuer::new(ca_params, ca_key);

        let loopback: Vec<IpAddr> = vec![
            IpAddr::from([127, 0, 0, 1]),
            IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1]),
        ];
        let mut api_ips = loopback.clone();
        api_ips.push(service_ip);
        let node_cns: Vec<(String, String)> = nodes
            .iter()
            .map(|n| (format!("kubelet-{n}"), format!("system:node:{n}")))
            .collect();
        let mut leaves: Vec<Leaf> = vec![
            (
                "apiserver",
                vec![(DnType::CommonName, "kube-apiserver")],
                vec![
                    "localhost",
                    "kubernetes",
                    "kubernetes.default",
                    "kubernetes.default.svc",
                ],
                api_ips,
                ExtendedKeyUsagePurpose::ServerAuth,
            ),
            (
                "admin",
                vec![
                    (DnType::OrganizationName, "system:masters"),
                    (DnType::CommonName, "swh-e2e-admin"),
                ],
                vec![],
                vec![],
                ExtendedKeyUsagePurpose::ClientAuth,
            ),
            (
                "webhook",
                vec![(DnType::CommonName, "swh-webhook")],
                vec!["localhost"],
                loopback,
                ExtendedKeyUsagePurpose::ServerAuth,
            ),
            (
                "kube-proxy",
                vec![(DnType::CommonName, "system:kube-proxy")],
                vec![],
                vec![],
                ExtendedKeyUsagePurpose::ClientAuth,
            ),
            (
                "webhook-svc",
                vec![(DnType::CommonName, "swh-webhook.swh-system.svc")],
                vec![
                    "swh-webhook.swh-system.svc",
                    "swh-webhook.swh-system.svc.cluster.local",
                ],
                vec![],
                ExtendedKeyUsagePurpose::ServerAuth,
            ),
        ];
        for (file, cn) in &node_cns {
            leaves.push((
                file.as_str(),
                vec![
                    (DnType::OrganizationName, "system:nodes"),
                    (DnType::CommonName, cn.as_str()),
                ],
                vec![],
                vec![],
                ExtendedKeyUsagePurpose::ClientAuth,
            ));
        }
        for (name, subject, dns, ips, usage) in leaves {
            let key = KeyPair::generate().map_err(gen_err(name))?;
            let mut params =
                CertificateParams::new(dns.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                    .map_err(gen_err(name))?;
            params.distinguished_name = dn(&subject);
            params
                .subject_alt_names
                .extend(ips.into_iter().map(SanType::IpAddress));
            params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            params.extended_key_usages = vec![usage];
            let cert = params.signed_by(&key, &issuer).map_err(gen_err(name))?;
            write(&pki.cert(name), cert.pem())?;
            write(&pki.key(name), key.serialize_pem())?;
        }

        let sa = KeyPair::generate().map_err(gen_err("sa"))?;
        write(&pki.sa_key(), sa.serialize_pem())?;
        write(&pki.sa_pub(), sa.public_key_pem())?;
        Ok(pki)
    }
}

/// A leaf certificate to issue: file name, subject, DNS SANs, IP SANs, usage.
type Leaf<'a> = (
    &'a str,
    Vec<(DnType, &'a str)>,
    Vec<&'a str>,
    Vec<IpAddr>,
    ExtendedKeyUsagePurpose,
);

fn dn(parts: &[(DnType, &str)]) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    for (t, v) in parts {
        dn.push(t.clone(), *v);
    }
    dn
}

fn write(path: &Path, contents: String) -> Result<(), PkiError> {
    std::fs::write(path, contents).map_err(|source| PkiError::Write {
        path: path.to_path_buf(),
        source,
    })
}
