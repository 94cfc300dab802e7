//! Config errors that name the file and the field, and the strict
//! deserialisation that produces them.

use std::fmt;

/// A config error, shown as `config error in FILE: FIELD: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The config file (or a label for in-memory text).
    pub file: String,
    /// The offending field, e.g. `validators[1].trustRoots[0].key`, or ""
    /// for errors about the whole document.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl ConfigError {
    /// An error about `field` of `file`.
    pub fn new(file: &str, field: &str, message: impl Into<String>) -> Self {
        ConfigError {
            file: file.to_string(),
            field: field.to_string(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "config error in {}: {}", self.file, self.message)
        } else {
            write!(
                f,
                "config error in {}: {}: {}",
                self.file, self.field, self.message
            )
        }
    }
}

impl std::error::Error for ConfigError {}

/// Reads a config file's text; an unreadable file is an error naming it.
pub fn read_file(path: &std::path::Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| {
        ConfigError::new(
            &path.display().to_string(),
            "",
            format!("cannot read the file: {e}"),
        )
    })
}

/// Deserialises with the failing field's path, prefixed by `at` (the
/// position of the value in the document, "" for the whole document).
pub fn deserialize_at<'de, D, T>(deserializer: D, at: &str, file: &str) -> Result<T, ConfigError>
where
    D: serde::Deserializer<'de>,
    D::Error: fmt::Display,
    T: serde::de::DeserializeOwned,
{
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let path = e.path().to_string();
        let field = match (at.is_empty(), path == ".") {
            (true, true) => String::new(),
            (true, false) => path,
            (false, true) => at.to_string(),
            (false, false) => format!("{at}.{path}"),
        };
        ConfigError::new(file, &field, e.into_inner().to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Doc {
        #[allow(dead_code)]
        a: Vec<Inner>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        #[allow(dead_code)]
        b: u32,
    }

    #[test]
    fn names_file_and_field() {
        let e = deserialize_at::<_, Doc>(
            serde_yaml_ng::Deserializer::from_str("a: [{b: 1}, {c: 2}]"),
            "",
            "f.yaml",
        )
        .unwrap_err();
        assert_eq!(e.file, "f.yaml");
        assert_eq!(e.field, "a[1].c");
        assert!(
            e.to_string()
                .starts_with("config error in f.yaml: a[1].c: "),
            "{e}"
        );
        assert!(e.message.contains("unknown field `c`"), "{e}");
        let e = deserialize_at::<_, Inner>(
            serde_yaml_ng::Deserializer::from_str("b: x"),
            "validators[0]",
            "f.yaml",
        )
        .unwrap_err();
        assert_eq!(e.field, "validators[0].b");
        let e = read_file(std::path::Path::new("/nonexistent/x.yaml")).unwrap_err();
        assert_eq!(
            e.to_string().split(':').next(),
            Some("config error in /nonexistent/x.yaml")
        );
    }
}
