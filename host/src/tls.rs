//! TLS: rustls with the `ring` provider, TLS 1.2 and 1.3 only, ALPN `h2` and
//! `http/1.1`. Certificates come from PEM files, or (`--dev` only) are
//! generated self-signed at start.

use std::path::Path;
use std::sync::Arc;

use std::path::PathBuf;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::TlsSource;

/// Why the server's TLS configuration cannot be built (refused before binding).
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or parsed.
    #[error("{what} {}: {error}", path.display())]
    Pem {
        /// What was being done ("reading certificate", …).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        error: rustls::pki_types::pem::Error,
    },
    /// The certificate file holds no certificate.
    #[error("{} holds no PEM certificate", .0.display())]
    NoCertificate(PathBuf),
    /// A dev certificate could not be generated.
    #[error("generating a dev certificate: {0}")]
    Generate(rcgen::Error),
    /// rustls refused the protocol versions.
    #[error("TLS protocol versions: {0}")]
    Versions(rustls::Error),
    /// The certificate and key do not match, or rustls refused them.
    #[error("the certificate and private key do not form a usable pair: {0}")]
    Pair(rustls::Error),
}

/// A certificate chain and its key.
pub struct Identity {
    /// The chain, leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The leaf's private key.
    pub key: PrivateKeyDer<'static>,
}

impl Identity {
    /// Reads a PEM certificate chain (leaf first) and a PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Identity, TlsError> {
        let pem = |what: &'static str, path: &Path| {
            let path = path.to_owned();
            move |error| TlsError::Pem { what, path, error }
        };
        let chain = CertificateDer::pem_file_iter(cert)
            .map_err(pem("reading certificate", cert))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(pem("parsing certificate", cert))?;
        if chain.is_empty() {
            return Err(TlsError::NoCertificate(cert.to_owned()));
        }
        let key = PrivateKeyDer::from_pem_file(key).map_err(pem("reading private key", key))?;
        Ok(Identity { chain, key })
    }

    /// A self-signed certificate for `localhost` and the loopback addresses (development only).
    pub fn self_signed() -> Result<Identity, TlsError> {
        let names = vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
        ];
        let certified = rcgen::generate_simple_self_signed(names).map_err(TlsError::Generate)?;
        Ok(Identity {
            chain: vec![certified.cert.der().clone()],
            key: PrivateKeyDer::Pkcs8(certified.key_pair.serialize_der().into()),
        })
    }

    /// The identity `source` names.
    pub fn load(source: &TlsSource) -> Result<Identity, TlsError> {
        match source {
            TlsSource::Files { cert, key } => Identity::from_pem_files(cert, key),
            TlsSource::SelfSigned => Identity::self_signed(),
        }
    }
}

/// The rustls server configuration hookbox serves with.
pub fn server_config(identity: Identity) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(TlsError::Versions)?
        .with_no_client_auth()
        .with_single_cert(identity.chain, identity.key)
        .map_err(TlsError::Pair)?;
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
        assert!(e.to_string().contains("missing.pem"), "{e}");
        let e = Identity::from_pem_files(&empty, &empty)
            .err()
            .expect("empty file");
        assert!(e.to_string().contains("no PEM certificate"), "{e}");
    }
}
