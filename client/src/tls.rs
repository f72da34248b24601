//! Trusted authorities for relays whose certificate is neither self-signed with a hash in the
//! grant nor signed by a public authority: a development CA, read from a PEM file.

use std::path::{Path, PathBuf};

use wtransport::tls::CertificateChain;

/// Why a CA file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CaFileError {
    /// Not readable, or not PEM certificates.
    #[error("CA file {path}: {error}")]
    Load {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        error: wtransport::tls::error::PemLoadError,
    },
    /// Readable, but without a certificate.
    #[error("CA file {path} holds no certificate")]
    Empty {
        /// The file.
        path: PathBuf,
    },
}

/// The DER certificates of the PEM file at `path`, for [`crate::ConnectOptions::ca_certificates`].
pub async fn read_ca_file(path: &Path) -> Result<Vec<Vec<u8>>, CaFileError> {
    let chain = CertificateChain::load_pemfile(path)
        .await
        .map_err(|error| CaFileError::Load {
            path: path.to_owned(),
            error,
        })?;
    let certificates: Vec<Vec<u8>> = chain
        .as_slice()
        .iter()
        .map(|certificate| certificate.der().to_vec())
        .collect();
    if certificates.is_empty() {
        return Err(CaFileError::Empty {
            path: path.to_owned(),
        });
    }
    Ok(certificates)
}
