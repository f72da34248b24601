//! Per-node options: a file of `STREAMER_…=value` lines (the options' environment names), so a
//! DaemonSet can give each camera node its own meeting, source or resolution from one
//! ConfigMap (a key per node name). The file's values win over the environment's; flags on
//! the command line win over both. A missing file is a node without options of its own.

use std::path::{Path, PathBuf};

/// The environment variable naming the file.
pub const OPTIONS_FILE_ENV: &str = "STREAMER_OPTIONS_FILE";

/// Why an options file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum OptionsFileError {
    /// The file exists but cannot be read.
    #[error("cannot read the options file {path}: {error}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// A line is not `STREAMER_NAME=value`.
    #[error("{path} line {line}: expected STREAMER_NAME=value, got {text:?}")]
    Line {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The line.
        text: String,
    },
}

/// The `(name, value)` pairs of `text`; blank lines and `#` comments are skipped, and values
/// may be quoted.
pub fn parse(path: &Path, text: &str) -> Result<Vec<(String, String)>, OptionsFileError> {
    let mut options = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = || OptionsFileError::Line {
            path: path.to_owned(),
            line: index + 1,
            text: raw.to_owned(),
        };
        let (name, value) = line.split_once('=').ok_or_else(bad)?;
        let name = name.trim();
        let well_formed = name.len() > "STREAMER_".len()
            && name.starts_with("STREAMER_")
            && name
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
        if !well_formed || name == OPTIONS_FILE_ENV {
            return Err(bad());
        }
        let value = value.trim();
        let value = ['"', '\'']
            .iter()
            .find_map(|q| value.strip_prefix(*q).and_then(|v| v.strip_suffix(*q)))
            .unwrap_or(value);
        options.push((name.to_owned(), value.to_owned()));
    }
    Ok(options)
}

/// Reads `path`: its options, or none when there is no such file.
pub fn read(path: &Path) -> Result<Vec<(String, String)>, OptionsFileError> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(path, &text),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(error) => Err(OptionsFileError::Read {
            path: path.to_owned(),
            error,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_become_options_and_bad_lines_say_where() {
        let path = Path::new("pi-1");
        let text = "# the kitchen\nSTREAMER_MEETING_ID=kitchen\n\n STREAMER_RESOLUTION = \"640x480\"\nSTREAMER_FPS='15'\n";
        assert_eq!(
            parse(path, text).expect("parses"),
            [
                ("STREAMER_MEETING_ID".to_owned(), "kitchen".to_owned()),
                ("STREAMER_RESOLUTION".to_owned(), "640x480".to_owned()),
                ("STREAMER_FPS".to_owned(), "15".to_owned()),
            ]
        );
        for bad in [
            "MEETING_ID=x",
            "STREAMER_MEETING_ID",
            "STREAMER_=x",
            "streamer_fps=1",
            "STREAMER_OPTIONS_FILE=/etc/other",
        ] {
            let error = parse(path, &format!("STREAMER_FPS=1\n{bad}\n"))
                .expect_err(bad)
                .to_string();
            assert!(error.contains("pi-1 line 2"), "{bad}: {error}");
        }
    }

    #[test]
    fn a_missing_file_is_no_options() {
        let dir = tempfile::tempdir().expect("dir");
        assert!(read(&dir.path().join("no-such-node"))
            .expect("fine")
            .is_empty());
        let error = read(dir.path()).expect_err("a directory").to_string();
        assert!(error.contains("cannot read the options file"), "{error}");
    }
}
