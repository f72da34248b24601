//! A relay with a certificate from an authority of its own (`--tls-cert`, `--tls-key`): a
//! client that trusts that authority (`ConnectOptions::ca_certificates`, the streamer's
//! `--ca-file`) joins over WebTransport; one that trusts only the system's roots is refused at
//! the handshake; a CA file that is no certificate is refused before any network.

mod common;

use common::RelayProcess;
use videocall_client::tls::read_ca_file;
use videocall_client::{Client, ConnectOptions, Transport};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_signed_by_a_trusted_authority_admits_and_an_unknown_one_is_refused() {
    let files = tempfile::tempdir().expect("dir");
    let pki = videocall_testkit::pki::write_test_pki(files.path());
    let (ca_pem, cert_pem, key_pem) = (pki.ca, pki.cert, pki.key);
    let not_pem = files.path().join("not.pem");
    std::fs::write(&not_pem, "no certificate here\n").expect("junk");

    let relay = RelayProcess::start(&[
        "--tls-cert",
        cert_pem.to_str().expect("path"),
        "--tls-key",
        key_pem.to_str().expect("path"),
    ])
    .await;
    let token = relay.token("alice", "ca-room");
    let mut address = relay.address();
    // Not self-signed: a grant would carry no hash.
    address.certificate_sha256 = None;
    let options = |ca_certificates: Vec<Vec<u8>>| ConnectOptions {
        ca_certificates,
        ..ConnectOptions::new(Transport::WebTransport, address.clone(), "ca-room", &token)
    };

    let trusted = read_ca_file(&ca_pem).await.expect("the CA file reads");
    assert_eq!(trusted.len(), 1);
    let client = Client::connect(options(trusted)).await;
    assert!(client.is_ok(), "trusting the CA: {:?}", client.err());

    let refused = Client::connect(options(Vec::new()))
        .await
        .err()
        .expect("the system's roots do not know this CA");
    assert!(
        refused.to_string().to_lowercase().contains("certificate"),
        "{refused}"
    );

    let error = read_ca_file(&not_pem).await.expect_err("junk").to_string();
    assert!(error.starts_with("CA file "), "{error}");
    assert!(read_ca_file(&files.path().join("missing.pem"))
        .await
        .is_err());
}
