//! Temporary directories for interop runs, kept for inspection when `SYNCML_KEEP_TMP` is
//! set (SQLite files, client logs, wire dumps).

use std::path::Path;

/// A temporary directory, removed on drop unless `SYNCML_KEEP_TMP` is set (then its path
/// is printed and it stays).
#[derive(Debug)]
pub struct Scratch(Option<tempfile::TempDir>);

impl Scratch {
    /// A new directory under the system temporary directory, named `PREFIX-...`.
    ///
    /// Panics when the directory cannot be created: a test cannot run without it.
    pub fn new(prefix: &str) -> Scratch {
        let dir = tempfile::Builder::new()
            .prefix(&format!("{prefix}-"))
            .tempdir()
            .unwrap_or_else(|e| panic!("creating a temporary directory: {e}"));
        Scratch(Some(dir))
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        match &self.0 {
            Some(d) => d.path(),
            None => Path::new(""),
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::env::var_os("SYNCML_KEEP_TMP").is_some() {
            if let Some(d) = self.0.take() {
                eprintln!("kept {}", d.keep().display());
            }
        }
    }
}
