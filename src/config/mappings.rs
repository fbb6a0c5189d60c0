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
            // A name is a file in the mappings directory, never a path: a draft in the workbench
            // names what it extends, and must not read files elsewhere on the host.
            MappingSource::Dir(_) if !is_profile_name(name) => Err(format!(
                "'{}' is not a mapping profile name (letters, digits, '-', '_', '.'; not \
                 starting with '.')",
                name.escape_debug()
            )),
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

/// A profile's name as `extends` and `profile` give it: a file name in the mappings directory.
fn is_profile_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_profile_name_never_reads_outside_the_mappings_directory() {
        let dir = std::env::temp_dir().join(format!("svp-names-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("inner")).unwrap();
        std::fs::write(dir.join("inner/secret.toml"), "key = 1").unwrap();
        std::fs::write(dir.join("se-market_v2.toml"), "key = 2").unwrap();
        let source = MappingSource::Dir(dir.join("inner"));
        assert_eq!(source.read("secret").unwrap().0, "key = 1");
        let outside = MappingSource::Dir(dir.join("inner"));
        for name in [
            "../se-market_v2",
            "/etc/hostname",
            ".hidden",
            "",
            "a/b",
            "..\\x",
        ] {
            let refused = outside.read(name).unwrap_err();
            assert!(
                refused.contains("not a mapping profile name"),
                "{name}: {refused}"
            );
        }
        let top = MappingSource::Dir(dir.clone());
        assert_eq!(top.read("se-market_v2").unwrap().0, "key = 2");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
