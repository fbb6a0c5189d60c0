//! `mappings`: where the mapping profiles, the error table and the route table come from — a
//! directory beside the config, or the files shipped in `mappings/` — and the digest a live reload
//! compares to see whether anything changed.

use std::path::PathBuf;

use sha2::{Digest, Sha256};

/// Where mapping profiles, the error table and the route table come from.
#[derive(Debug, Clone)]
pub enum MappingSource {
    Dir(PathBuf),
    /// The files shipped in `mappings/`, compiled into the binary (the demo uses them).
    BuiltIn,
}

const BUILT_IN_DEFAULT: &str = include_str!("../../mappings/default.toml");
const BUILT_IN_ERRORS: &str = include_str!("../../mappings/errors.toml");
const BUILT_IN_ROUTES: &str = include_str!("../../mappings/routes.toml");

impl MappingSource {
    /// A digest of every `.toml` file the source holds (by name and content, in name order): what
    /// a reload compares to see whether anything changed, and how the active set is named in the
    /// log and `/metrics`. A file that cannot be read counts by its name and the error's kind.
    pub fn digest(&self) -> String {
        let mut hasher = Sha256::new();
        match self {
            MappingSource::Dir(dir) => {
                let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
                    .into_iter()
                    .flatten()
                    .filter_map(Result::ok)
                    .map(|entry| entry.path())
                    .filter(|path| path.extension().is_some_and(|e| e == "toml"))
                    .collect();
                names.sort();
                for path in names {
                    hasher.update(path.file_name().unwrap_or_default().as_encoded_bytes());
                    match std::fs::read(&path) {
                        Ok(bytes) => hasher.update(&bytes),
                        Err(e) => hasher.update(format!("{:?}", e.kind())),
                    }
                }
            }
            MappingSource::BuiltIn => {
                for text in [BUILT_IN_DEFAULT, BUILT_IN_ERRORS, BUILT_IN_ROUTES] {
                    hasher.update(text);
                }
            }
        }
        hasher.finalize()[..6]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// The text of mapping file `name` and the name to report it by.
    pub fn read(&self, name: &str) -> Result<(String, String), String> {
        match self {
            MappingSource::Dir(dir) => {
                let file = dir.join(format!("{name}.toml"));
                let text = std::fs::read_to_string(&file)
                    .map_err(|e| format!("{}: cannot read: {e}", file.display()))?;
                Ok((text, file.display().to_string()))
            }
            MappingSource::BuiltIn => match name {
                "default" => Ok((BUILT_IN_DEFAULT.into(), "mappings/default.toml".into())),
                "errors" => Ok((BUILT_IN_ERRORS.into(), "mappings/errors.toml".into())),
                "routes" => Ok((BUILT_IN_ROUTES.into(), "mappings/routes.toml".into())),
                other => Err(format!("no built-in mapping profile '{other}'")),
            },
        }
    }
}
