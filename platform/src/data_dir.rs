//! The one data directory of a local platform: signing key, certificate, relay info.

use std::path::{Path, PathBuf};

use anyhow::Context;
use videocall_relay::RelayInfo;
use videocall_token::TokenIssuer;

/// Key id of the development issuer's key.
pub const DEV_KID: &str = "dev-1";

/// Paths inside the data directory.
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// Opens (and creates) `root`.
    pub fn open(root: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(root).with_context(|| format!("creating {}", root.display()))?;
        Ok(DataDir {
            root: root.to_path_buf(),
        })
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the relay writes its self-signed certificate.
    pub fn tls_dir(&self) -> PathBuf {
        self.root.join("tls")
    }

    /// What the running relay advertises (written at start).
    pub fn relay_info_path(&self) -> PathBuf {
        self.root.join("relay.json")
    }

    /// The development token issuer, created on first use and kept across restarts.
    pub fn dev_issuer(&self) -> anyhow::Result<TokenIssuer> {
        let path = self.root.join("keys").join("dev-issuer.key");
        if let Ok(seed) = std::fs::read_to_string(&path) {
            return TokenIssuer::from_seed_base64(DEV_KID, &seed)
                .with_context(|| format!("reading signing key {}", path.display()));
        }
        let seed = videocall_token::generate_seed_base64();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        write_private(&path, &seed)?;
        TokenIssuer::from_seed_base64(DEV_KID, &seed).context("new signing key")
    }

    /// Info of the relay started from this data directory.
    pub fn relay_info(&self) -> anyhow::Result<RelayInfo> {
        let path = self.relay_info_path();
        let bytes = std::fs::read(&path).with_context(|| {
            format!(
                "{} not found: start the platform first (`videocall up`)",
                path.display()
            )
        })?;
        serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display()))
    }
}

#[cfg(unix)]
fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(contents.as_bytes())?;
    Ok(())
}

#[cfg(not(unix))]
fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    std::fs::write(path, contents).with_context(|| format!("creating {}", path.display()))
}
