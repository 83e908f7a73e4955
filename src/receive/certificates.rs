//! The receiver's throwaway TLS identity: a CA made for this directory and a `localhost` / `127.0.0.1`
//! server certificate it signs. The CA's private key is dropped as soon as the leaf is signed, so nothing
//! on disk can vouch for any other name; the relay trusts the CA through `ca_file`.
//!
//! The leaf is a proper end-entity certificate (not a CA, serverAuth): the certificate most people make by
//! hand (`openssl req -x509 -subj /CN=localhost`) is a self-signed CA, which webpki refuses as a server
//! certificate (`CaUsedAsEndEntity`).

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// The files in the receiver's directory.
pub struct Identity {
    /// What the relay's `ca_file` names.
    pub ca_file: PathBuf,
    pub certificate: CertificateDer<'static>,
    pub key: PrivateKeyDer<'static>,
    /// Whether this run made them (first use) or found them.
    pub made: bool,
}

const CA_FILE: &str = "ca.pem";
const CERTIFICATE_FILE: &str = "localhost.pem";
const KEY_FILE: &str = "localhost-key.pem";

/// The identity in `dir`, made on first use (or when a file is missing or unreadable).
pub fn load_or_make(dir: &Path) -> Result<Identity, String> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let dir = dir.canonicalize().map_err(|e| format!("cannot resolve {}: {e}", dir.display()))?;
    let ca_file = dir.join(CA_FILE);
    if let Some((certificate, key)) = read_existing(&dir) {
        if ca_file.is_file() {
            return Ok(Identity { ca_file, certificate, key, made: false });
        }
    }
    let (ca_pem, certificate_pem, key_pem) = make().map_err(|e| format!("cannot make a test certificate: {e}"))?;
    write(&dir.join(KEY_FILE), &key_pem, 0o600)?;
    write(&dir.join(CERTIFICATE_FILE), &certificate_pem, 0o644)?;
    write(&ca_file, &ca_pem, 0o644)?;
    let (certificate, key) =
        read_existing(&dir).ok_or_else(|| format!("cannot read back the certificate written to {}", dir.display()))?;
    Ok(Identity { ca_file, certificate, key, made: true })
}

fn read_existing(dir: &Path) -> Option<(CertificateDer<'static>, PrivateKeyDer<'static>)> {
    let certificate = CertificateDer::from_pem_file(dir.join(CERTIFICATE_FILE)).ok()?;
    let key = PrivateKeyDer::from_pem_file(dir.join(KEY_FILE)).ok()?;
    Some((certificate, key))
}

/// A CA certificate, and a leaf for localhost, 127.0.0.1 and ::1 with its key, all PEM.
fn make() -> Result<(String, String, String), rcgen::Error> {
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.distinguished_name.push(DnType::CommonName, "hookrelay receive: throwaway test CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = ca.self_signed(&ca_key)?;

    let leaf_key = KeyPair::generate()?;
    let mut leaf = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()])?;
    leaf.is_ca = IsCa::ExplicitNoCa;
    leaf.distinguished_name.push(DnType::CommonName, "localhost");
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf = leaf.signed_by(&leaf_key, &ca, &ca_key)?;
    Ok((ca.pem(), leaf.pem(), leaf_key.serialize_pem()))
}

fn write(path: &Path, text: &str, mode: u32) -> Result<(), String> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    file.write_all(text.as_bytes()).map_err(|e| format!("cannot write {}: {e}", path.display()))
}
