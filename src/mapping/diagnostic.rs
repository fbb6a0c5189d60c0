//! Load-time problems of a mapping profile, each reported at its file, line and column.
//!
//! The loader notes every problem of a profile (and of the profiles it extends) as a byte offset
//! in one of the files; rendering turns the offset into `file:line:col`. Hints name the closest
//! known spelling of a mistyped name, by edit distance.

use std::fmt;

use toml::Spanned;

/// Which file of a profile's chain: 0 is the profile itself, then what it extends, nearest first.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct FileId(pub(crate) usize);

/// A place in one of a profile's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct At {
    pub(crate) file: FileId,
    pub(crate) offset: usize,
}

impl At {
    /// Where a value read from `file` was written.
    pub(crate) fn of<T>(file: FileId, spanned: &Spanned<T>) -> At {
        At {
            file,
            offset: spanned.span().start,
        }
    }
}

/// The texts of one profile's chain, by the names they are reported by.
pub(crate) struct Files<'a> {
    list: Vec<(&'a str, &'a str)>,
}

impl<'a> Files<'a> {
    pub(crate) fn new(list: Vec<(&'a str, &'a str)>) -> Files<'a> {
        Files { list }
    }

    fn name(&self, file: FileId) -> &'a str {
        self.list.get(file.0).map_or("", |(name, _)| name)
    }

    /// The 1-based line and column (in characters) of a place.
    fn position(&self, at: At) -> (usize, usize) {
        let text = self.list.get(at.file.0).map_or("", |(_, text)| text);
        line_and_column(text, at.offset)
    }
}

/// The 1-based line and column (in characters) of a byte offset in `text`; an offset inside a
/// character counts from its start, one past the end is the end. The config's problems are
/// placed with it too.
pub(crate) fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (
        before.matches('\n').count() + 1,
        before[line_start..].chars().count() + 1,
    )
}

/// One problem of a mapping profile, at the place it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

/// Every problem found while loading a profile, in file and line order, one a line.
#[derive(Debug, thiserror::Error)]
pub struct MappingError {
    pub diagnostics: Vec<Diagnostic>,
}

impl fmt::Display for MappingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

/// The problems noted while a profile loads.
pub(crate) struct Problems<'a> {
    files: &'a Files<'a>,
    found: Vec<(At, String)>,
}

impl<'a> Problems<'a> {
    pub(crate) fn new(files: &'a Files<'a>, found: Vec<(At, String)>) -> Problems<'a> {
        Problems { files, found }
    }

    pub(crate) fn push(&mut self, at: At, message: impl Into<String>) {
        self.found.push((at, message.into()));
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.found.is_empty()
    }

    /// How a message written at a place in `from` names another place: `line 12` in the same
    /// file, `default.toml:12` in another.
    pub(crate) fn place(&self, at: At, from: FileId) -> String {
        let (line, _) = self.files.position(at);
        if at.file == from {
            format!("line {line}")
        } else {
            format!("{}:{line}", self.files.name(at.file))
        }
    }

    /// `file:line` of a place, whatever file it is in: where provenance says a rule is written.
    pub(crate) fn line_of(&self, at: At) -> String {
        let (line, _) = self.files.position(at);
        format!("{}:{line}", self.files.name(at.file))
    }

    /// The text of one of the profile's files.
    pub(crate) fn text(&self, file: FileId) -> &'a str {
        self.files.list.get(file.0).map_or("", |(_, text)| text)
    }

    pub(crate) fn into_error(mut self) -> MappingError {
        // Stable: problems at one place keep the order they were found in.
        self.found.sort_by_key(|(at, _)| *at);
        self.found.dedup();
        MappingError {
            diagnostics: self
                .found
                .into_iter()
                .map(|(at, message)| {
                    let (line, column) = self.files.position(at);
                    Diagnostic {
                        file: self.files.name(at.file).to_owned(),
                        line,
                        column,
                        message,
                    }
                })
                .collect(),
        }
    }
}

/// ` (did you mean 'x'?)` when a known name is close to `name`, else nothing.
pub(crate) fn did_you_mean<'n>(name: &str, known: impl IntoIterator<Item = &'n str>) -> String {
    closest(name, known).map_or_else(String::new, |k| format!(" (did you mean '{k}'?)"))
}

/// The known name nearest to `name` by edit distance, if it is near enough to be a typo of it:
/// at most a third of the name's length, and never fewer than two edits allowed.
fn closest<'n>(name: &str, known: impl IntoIterator<Item = &'n str>) -> Option<&'n str> {
    let most = (name.chars().count() / 3).max(2);
    known
        .into_iter()
        .filter(|k| *k != name)
        .map(|k| (distance(name, k), k))
        .filter(|(d, _)| *d <= most)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Levenshtein distance over characters. The names compared are a few dozen characters, so the
/// two-row table costs nothing worth a crate.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        current[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitute.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

/// A TOML or serde error's message, with a hint when it names an unknown key or value and the
/// ones it expected (serde's wording: "unknown field `form`, expected one of `to`, `from`").
pub(crate) fn serde_message(error: &toml::de::Error) -> String {
    let message = error.message().trim_end().to_owned();
    let unknown = ["unknown field `", "unknown variant `"]
        .iter()
        .find_map(|prefix| message.strip_prefix(prefix));
    let Some(rest) = unknown else {
        return message;
    };
    let Some((name, expected)) = rest.split_once('`') else {
        return message;
    };
    let known = expected.split('`').skip(1).step_by(2);
    let hint = did_you_mean(name, known);
    format!("{message}{hint}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_counts_edits() {
        assert_eq!(distance("table", "table"), 0);
        assert_eq!(distance("tabel", "table"), 2);
        assert_eq!(distance("unix_secs", "unix_seconds"), 3);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("contcat", "contact"), 2);
    }

    #[test]
    fn hints_name_only_near_names() {
        let known = ["gender", "channels"];
        assert_eq!(did_you_mean("genders", known), " (did you mean 'gender'?)");
        assert_eq!(did_you_mean("colour", known), "");
        assert_eq!(did_you_mean("gender", known), "");
    }

    #[test]
    fn positions_are_lines_and_characters() {
        let files = Files::new(vec![("a.toml", "x = 1\nö = \"é\"\n")]);
        let at = |offset| {
            files.position(At {
                file: FileId(0),
                offset,
            })
        };
        assert_eq!(at(0), (1, 1));
        assert_eq!(at(6), (2, 1));
        // "ö" is two bytes and one column; an offset inside a character counts from its start.
        assert_eq!(at(10), (2, 4));
        assert_eq!(at(7), (2, 1));
        assert_eq!(at(1000), (3, 1));
    }
}
