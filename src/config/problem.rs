//! The config's problems as data: each at its file, line and column and the key it is about, placed
//! from the spans `toml` keeps (as `mapping::diagnostic` places a profile's), never by searching
//! the text again. All are kept, so an operator sees every problem at once, one a line:
//! `config.toml:12:12: market[0].timezone: is not an IANA time zone`.

use std::fmt;
use std::ops::Range;

use crate::mapping::{line_and_column, serde_message};

/// A 1-based line and column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

/// Where a problem is: a file, the line and column of the value in it, and the config key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    pub file: String,
    /// `None`: the file as a whole (it cannot be read, or something is missing from it).
    pub position: Option<Position>,
    /// The key's path, such as `market[0].timezone`; empty for a problem of no one key (a TOML
    /// syntax error).
    pub path: String,
}

impl Place {
    /// A file (or another source, such as a simulator) as a whole, with no line or key.
    pub fn whole(file: impl Into<String>) -> Place {
        Place {
            file: file.into(),
            position: None,
            path: String::new(),
        }
    }

    pub fn problem(&self, message: impl Into<String>) -> Problem {
        Problem {
            place: self.clone(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(Position { line, column }) = self.position {
            write!(f, ":{line}:{column}")?;
        }
        if !self.path.is_empty() {
            write!(f, ": {}", self.path)?;
        }
        Ok(())
    }
}

/// One problem, at its place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub place: Place,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.place, self.message)
    }
}

/// Every problem found in a config (and, by `check`, in the mappings it names), in the order they
/// stand in the file — those of the file as a whole first — one a line.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    pub problems: Vec<Problem>,
}

impl ConfigError {
    pub fn new(mut problems: Vec<Problem>) -> ConfigError {
        // Stable: problems at one place keep the order they were found in.
        problems.sort_by_key(|p| p.place.position);
        ConfigError { problems }
    }
}

impl From<Problem> for ConfigError {
    fn from(problem: Problem) -> ConfigError {
        ConfigError::new(vec![problem])
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

/// The problems noted while a config file is read: a key's path and the span of its value become
/// a [`Place`] in the file.
pub(super) struct Problems<'t> {
    file: &'t str,
    text: &'t str,
    found: Vec<Problem>,
}

impl<'t> Problems<'t> {
    pub(super) fn new(file: &'t str, text: &'t str) -> Problems<'t> {
        Problems {
            file,
            text,
            found: Vec::new(),
        }
    }

    /// The place of the value at `span`, known as `path`.
    pub(super) fn place(&self, path: impl Into<String>, span: Range<usize>) -> Place {
        let (line, column) = line_and_column(self.text, span.start);
        Place {
            file: self.file.to_owned(),
            position: Some(Position { line, column }),
            path: path.into(),
        }
    }

    /// A problem of the value at `span`, known as `path`.
    pub(super) fn push(
        &mut self,
        path: impl Into<String>,
        span: Range<usize>,
        message: impl Into<String>,
    ) {
        let problem = self.place(path, span).problem(message);
        self.add(problem);
    }

    pub(super) fn add(&mut self, problem: Problem) {
        self.found.push(problem);
    }

    /// The place of a key that is not in the file at all: the file as a whole.
    pub(super) fn absent(&self, path: impl Into<String>) -> Place {
        Place {
            path: path.into(),
            ..Place::whole(self.file)
        }
    }

    /// A problem of a key that is not in the file at all.
    pub(super) fn missing(&mut self, path: impl Into<String>, message: impl Into<String>) {
        let problem = self.absent(path).problem(message);
        self.add(problem);
    }

    /// A TOML syntax error or a value of the wrong shape (a wrong type, an unknown key), with a
    /// "did you mean" hint when a known key is close.
    pub(super) fn toml(&mut self, error: &toml::de::Error) {
        let message = serde_message(error);
        match error.span() {
            Some(span) => self.push(String::new(), span, message),
            None => self.add(Place::whole(self.file).problem(message)),
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.found.is_empty()
    }

    pub(super) fn into_vec(self) -> Vec<Problem> {
        self.found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_problem_prints_file_line_column_key_and_message() {
        let text = "listen = \"x\"\n[limits]\nmax_in_flight = 0\n";
        let mut problems = Problems::new("config.toml", text);
        problems.push("limits.max_in_flight", 38..39, "must be above 0");
        problems.missing("market", "at least one [[market]] is needed");
        let error = ConfigError::new(problems.into_vec());
        assert_eq!(
            error.problems[1].place.position,
            Some(Position {
                line: 3,
                column: 17
            })
        );
        assert_eq!(
            error.to_string(),
            "config.toml: market: at least one [[market]] is needed\n\
             config.toml:3:17: limits.max_in_flight: must be above 0"
        );
    }
}
