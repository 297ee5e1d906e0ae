//! TLS: rustls with the `ring` provider, TLS 1.2 and 1.3 only, ALPN `h2` and
//! `http/1.1`. Certificates come from PEM files, or (`--dev` only) are
//! generated self-signed at start.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::TlsSource;

/// A certificate chain and its key.
pub struct Identity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl Identity {
    /// Reads a PEM certificate chain (leaf first) and a PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub fn from_pem_files(cert: &Path, key: &Path) -> anyhow::Result<Identity> {
        let chain = CertificateDer::pem_file_iter(cert)
            .with_context(|| format!("reading certificate {}", cert.display()))?
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("parsing certificate {}", cert.display()))?;
        if chain.is_empty() {
            bail!("{} holds no PEM certificate", cert.display());
        }
        let key = PrivateKeyDer::from_pem_file(key)
            .with_context(|| format!("reading private key {}", key.display()))?;
        Ok(Identity { chain, key })
    }

    /// A self-signed certificate for `localhost` and the loopback addresses (development only).
    pub fn self_signed() -> anyhow::Result<Identity> {
        let names = vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
        ];
        let certified =
            rcgen::generate_simple_self_signed(names).context("generating a dev certificate")?;
        Ok(Identity {
            chain: vec![certified.cert.der().clone()],
            key: PrivateKeyDer::Pkcs8(certified.key_pair.serialize_der().into()),
        })
    }

    pub fn load(source: &TlsSource) -> anyhow::Result<Identity> {
        match source {
            TlsSource::Files { cert, key } => Identity::from_pem_files(cert, key),
            TlsSource::SelfSigned => Identity::self_signed(),
        }
    }
}

/// The rustls server configuration hookbox serves with.
pub fn server_config(identity: Identity) -> anyhow::Result<Arc<ServerConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(identity.chain, identity.key)
        .context("the certificate and private key do not form a usable pair")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_certificate_makes_a_server_config_offering_h2_and_http11() {
        let config = server_config(Identity::self_signed().expect("generate")).expect("config");
        assert_eq!(
            config.alpn_protocols,
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );
    }

    #[test]
    fn unreadable_or_empty_pem_files_are_clear_errors() {
        let dir = std::env::temp_dir().join(format!("hookbox-tls-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "").expect("write");
        let missing = dir.join("missing.pem");
        let e = Identity::from_pem_files(&missing, &missing)
            .err()
            .expect("missing file");
        assert!(format!("{e:#}").contains("missing.pem"), "{e:#}");
        let e = Identity::from_pem_files(&empty, &empty)
            .err()
            .expect("empty file");
        assert!(format!("{e:#}").contains("no PEM certificate"), "{e:#}");
    }
}
