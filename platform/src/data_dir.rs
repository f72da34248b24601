//! The one data directory of a local platform: database, secrets, certificate, relay info.

use std::path::{Path, PathBuf};

use anyhow::Context;

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

    /// A secret kept in `<data>/keys/<name>`, generated on first use (mode 0600).
    pub fn secret(&self, name: &str) -> anyhow::Result<String> {
        let path = self.root.join("keys").join(name);
        if let Ok(secret) = std::fs::read_to_string(&path) {
            return Ok(secret.trim().to_owned());
        }
        let secret = videocall_control_plane::auth::random_token(18);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        write_private(&path, &secret)?;
        Ok(secret)
    }

    /// The embedded control plane's SQLite database.
    pub fn database_url(&self) -> String {
        format!(
            "sqlite://{}?mode=rwc",
            self.root.join("control-plane.db").display()
        )
    }

    /// What a running platform wrote at start.
    pub fn platform_info(&self) -> anyhow::Result<crate::PlatformInfo> {
        let path = self.root.join("platform.json");
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
