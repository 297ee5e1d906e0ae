//! A certificate authority made for one test run.

use rustls::pki_types::CertificateDer;

/// A certificate authority made for one test run, and a server certificate it signed for 127.0.0.1.
pub struct Pki {
    pub ca_der: CertificateDer<'static>,
    pub server_cert_pem: String,
    pub server_key_pem: String,
}

impl Pki {
    pub fn new() -> Pki {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "hookbox test CA");
        let ca = ca_params.self_signed(&ca_key).unwrap();

        let key = rcgen::KeyPair::generate().unwrap();
        let params =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
                .unwrap();
        let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
        Pki {
            ca_der: ca.der().clone(),
            server_cert_pem: cert.pem(),
            server_key_pem: key.serialize_pem(),
        }
    }
}

impl Default for Pki {
    fn default() -> Self {
        Pki::new()
    }
}
