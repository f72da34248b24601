//! A certificate authority of a test's own and a loopback server certificate it signed, as PEM
//! files: for servers that must be verified against a CA rather than by a pinned hash.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

/// The files of a test PKI.
pub struct TestPki {
    /// The CA's certificate.
    pub ca: PathBuf,
    /// The server's certificate, for `127.0.0.1` and `localhost`, signed by the CA.
    pub cert: PathBuf,
    /// The server's private key.
    pub key: PathBuf,
}

/// Makes a CA and a server certificate for `127.0.0.1`/`localhost`, and writes them under `dir`.
pub fn write_test_pki(dir: &Path) -> TestPki {
    let ca_key = KeyPair::generate().expect("ca key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).expect("ca");
    let issuer = Issuer::from_params(&ca_params, &ca_key);
    let leaf_key = KeyPair::generate().expect("leaf key");
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .expect("leaf params")
        .signed_by(&leaf_key, &issuer)
        .expect("leaf");
    let pki = TestPki {
        ca: dir.join("ca.pem"),
        cert: dir.join("server.pem"),
        key: dir.join("server-key.pem"),
    };
    std::fs::write(&pki.ca, ca.pem()).expect("write the CA");
    std::fs::write(&pki.cert, leaf.pem()).expect("write the certificate");
    std::fs::write(&pki.key, leaf_key.serialize_pem()).expect("write the key");
    pki
}
