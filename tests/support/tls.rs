//! A throwaway certificate authority and server certificates signed by it (or not), for receivers that
//! the relay must trust, and for ones it must refuse (expired, self-signed, wrong host).

use std::path::Path;
use std::sync::Arc;

use rcgen::{BasicConstraints, Certificate, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

pub struct TestCa {
    pub ca_pem: String,
    /// A server config for 127.0.0.1 and localhost, signed by this CA.
    pub server: Arc<rustls::ServerConfig>,
    ca: Certificate,
    ca_key: KeyPair,
}

/// What a server certificate should get wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flaw {
    None,
    Expired,
    WrongHost,
}

impl TestCa {
    pub fn new() -> TestCa {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(DnType::CommonName, "hookrelay test CA");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let server = signed_server(&ca, &ca_key, Flaw::None);
        TestCa { ca_pem: ca.pem(), server, ca, ca_key }
    }

    /// A server config with a certificate from this CA, with `flaw`.
    pub fn server_config(&self, flaw: Flaw) -> Arc<rustls::ServerConfig> {
        signed_server(&self.ca, &self.ca_key, flaw)
    }

    /// A client certificate chain and its key from this CA, written as PEM to `cert` and `key` (for a
    /// config's `client_cert` / `client_key`).
    pub fn write_client_identity(&self, cert: &Path, key: &Path) {
        let pair = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, "clinic relay");
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let certificate = params.signed_by(&pair, &self.ca, &self.ca_key).unwrap();
        std::fs::write(cert, certificate.pem()).unwrap();
        std::fs::write(key, pair.serialize_pem()).unwrap();
    }

    /// A server config for 127.0.0.1 that requires a client certificate issued by this CA (mTLS).
    pub fn server_requiring_client_certificates(&self) -> Arc<rustls::ServerConfig> {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, "mtls receiver");
        let certificate = params.signed_by(&key, &self.ca, &self.ca_key).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.der().clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
                .build()
                .unwrap();
        let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let mut server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(vec![certificate.der().clone()], key_der)
            .unwrap();
        server.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(server)
    }

    /// Writes the CA certificate where a config's `ca_file` can point.
    pub fn write_ca(&self, path: &Path) {
        std::fs::write(path, &self.ca_pem).unwrap();
    }
}

fn signed_server(ca: &Certificate, ca_key: &KeyPair, flaw: Flaw) -> Arc<rustls::ServerConfig> {
    let names = match flaw {
        Flaw::WrongHost => vec!["other.example".to_owned()],
        _ => vec!["127.0.0.1".to_owned(), "localhost".to_owned()],
    };
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(names).unwrap();
    params.distinguished_name.push(DnType::CommonName, "test receiver");
    if flaw == Flaw::Expired {
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    }
    let certificate = params.signed_by(&key, ca, ca_key).unwrap();
    config(certificate.der().clone(), &key)
}

/// A server config whose certificate signs itself: no CA vouches for it.
pub fn self_signed_server() -> Arc<rustls::ServerConfig> {
    let key = KeyPair::generate().unwrap();
    let certificate = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap().self_signed(&key).unwrap();
    config(certificate.der().clone(), &key)
}

/// A server config whose certificate is a self-signed CA certificate, as `openssl req -x509` makes by
/// default, and that certificate's PEM (trusting it as a root still leaves it a CA, not a server).
pub fn ca_as_server_certificate() -> (Arc<rustls::ServerConfig>, String) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, "localhost");
    let certificate = params.self_signed(&key).unwrap();
    (config(certificate.der().clone(), &key), certificate.pem())
}

fn config(certificate: CertificateDer<'static>, key: &KeyPair) -> Arc<rustls::ServerConfig> {
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![certificate], key)
        .unwrap();
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(server)
}
