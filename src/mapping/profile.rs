//! Reading a profile: its TOML and the profiles it `extends`, parsed with every value's place kept,
//! merged into one resolved profile, and each piece deserialised on its own, so that one bad rule
//! never hides the next and every problem can be reported at its file, line and column.
//!
//! Merging, from the deepest base up: a key the profile leaves out is inherited; `[tables.NAME]`
//! merges entry by entry; `[search.KEY]` and `[lookup.KEY]` replace or add one key type each; the
//! other sections (`[voyado]`, `[redeem]`, ...) are replaced whole; an element of a rule list
//! replaces the inherited one with the same key (`spi` for `[[field]]`, `id` for `[[option]]`,
//! `name` for `[[example]]`, `to` for the others), in its place, or is appended after them; an
//! element with `remove = true` and only its key removes the inherited one.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use super::codec::{ConsentFields, MoneyFields, Table};
use super::diagnostic::{At, FileId, Problems, did_you_mean, serde_message};
use super::examples::ExampleSpec;
use super::options::OptionSpec;
use super::rules::RuleSpec;
use super::{
    AddSpec, FieldSpec, KeySpec, ReadProfile, RedeemNames, StatusSpec, TransactionsSpec, VoyadoSpec,
};

/// A chain longer than this is refused: a resolver that names one file two ways could otherwise
/// go round without the cycle being seen.
const MAX_CHAIN: usize = 16;

type Node<'a> = Spanned<DeValue<'a>>;

/// A value of the resolved profile and the file it was written in.
#[derive(Clone, Copy)]
pub(crate) struct Piece<'a> {
    pub(crate) file: FileId,
    pub(crate) node: &'a Node<'a>,
}

impl Piece<'_> {
    pub(crate) fn at(&self) -> At {
        At::of(self.file, self.node)
    }
}

/// A deserialised piece and the file it came from: its spans are offsets in that file.
#[derive(Debug)]
pub(crate) struct InFile<T> {
    pub(crate) file: FileId,
    pub(crate) spec: T,
}

/// A profile a profile extends, as its resolver read it.
pub(crate) struct Base {
    pub(crate) name: String,
    pub(crate) text: String,
}

/// Parses one file; syntax problems go in `found` at their places.
pub(crate) fn parse<'t>(
    text: &'t str,
    file: FileId,
    found: &mut Vec<(At, String)>,
) -> Spanned<DeTable<'t>> {
    let (table, errors) = DeTable::parse_recoverable(text);
    for e in errors {
        let offset = e.span().map_or(0, |s| s.start);
        found.push((At { file, offset }, e.message().trim_end().to_owned()));
    }
    table
}

/// The profile a file extends: its name and where the name is written.
fn extends(
    table: &Spanned<DeTable<'_>>,
    file: FileId,
    found: &mut Vec<(At, String)>,
) -> Option<(String, At)> {
    let value = table.get_ref().get("extends")?;
    let at = At::of(file, value);
    match value.get_ref().as_str() {
        Some(name) => Some((name.to_owned(), at)),
        None => {
            found.push((
                at,
                "'extends' names a profile: extends = \"default\"".to_owned(),
            ));
            None
        }
    }
}

/// Reads the profiles `top` extends, nearest first. A base that cannot be read, a chain that
/// comes back to a file already in it, and syntax errors in a base are problems in `found`.
pub(crate) fn read_bases(
    top: &Spanned<DeTable<'_>>,
    top_name: &str,
    resolve: &ReadProfile<'_>,
    found: &mut Vec<(At, String)>,
) -> Vec<Base> {
    let mut bases: Vec<Base> = Vec::new();
    let mut next = extends(top, FileId(0), found);
    while let Some((name, at)) = next.take() {
        if bases.len() == MAX_CHAIN {
            found.push((
                at,
                format!("extends = \"{name}\": more than {MAX_CHAIN} profiles deep"),
            ));
            break;
        }
        let (text, report) = match resolve(&name) {
            Ok(read) => read,
            Err(e) => {
                found.push((at, format!("extends = \"{name}\": {e}")));
                break;
            }
        };
        let chain: Vec<&str> = std::iter::once(top_name)
            .chain(bases.iter().map(|b| b.name.as_str()))
            .collect();
        if chain.contains(&report.as_str()) {
            found.push((
                at,
                format!(
                    "extends = \"{name}\" goes round in a circle: {} -> {report}",
                    chain.join(" -> ")
                ),
            ));
            break;
        }
        let file = FileId(bases.len() + 1);
        next = extends(&parse(&text, file, found), file, found);
        bases.push(Base { name: report, text });
    }
    bases
}

/// How a top-level key of a profile file merges with the one it extends.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Merge {
    /// Replaced whole.
    Whole,
    /// `[tables.NAME]`: entry by entry.
    Tables,
    /// `[search.KEY]`: key type by key type.
    Keyed,
    /// `[[NAME]]`: element by element, matched by the named key.
    List(&'static str),
}

const KEYS: &[(&str, Merge)] = &[
    ("version", Merge::Whole),
    ("tables", Merge::Tables),
    ("voyado", Merge::Whole),
    ("money", Merge::Whole),
    ("consent", Merge::Whole),
    ("status", Merge::Whole),
    ("add", Merge::Whole),
    ("redeem", Merge::Whole),
    ("transactions", Merge::Whole),
    ("search", Merge::Keyed),
    ("lookup", Merge::Keyed),
    ("field", Merge::List("spi")),
    ("option", Merge::List("id")),
    ("card", Merge::List("to")),
    ("transaction", Merge::List("to")),
    ("consent_definition", Merge::List("to")),
    ("person", Merge::List("to")),
    ("receipt", Merge::List("to")),
    ("example", Merge::List("name")),
];

/// The profile with its chain merged: each value still knows its file.
#[derive(Default)]
pub(crate) struct Resolved<'a> {
    whole: BTreeMap<&'static str, Piece<'a>>,
    tables: BTreeMap<&'a str, BTreeMap<&'a str, Piece<'a>>>,
    keyed: BTreeMap<&'static str, BTreeMap<&'a str, Piece<'a>>>,
    lists: BTreeMap<&'static str, Vec<(Option<&'a str>, Piece<'a>)>>,
}

/// Merges the files of a chain (`docs[0]` the profile, then its bases, nearest first).
pub(crate) fn resolve<'a>(
    docs: &[&'a Spanned<DeTable<'a>>],
    problems: &mut Problems<'_>,
) -> Resolved<'a> {
    let mut out = Resolved::default();
    for (i, doc) in docs.iter().enumerate().rev() {
        let file = FileId(i);
        // The deepest file extends nothing, so it has nothing to remove.
        let extends = i + 1 < docs.len();
        for (key, value) in doc.get_ref().iter() {
            let name: &str = key.get_ref();
            if name == "extends" {
                continue;
            }
            let Some(&(name, merge)) = KEYS.iter().find(|(k, _)| *k == name) else {
                let known = KEYS.iter().map(|(k, _)| *k).chain(["extends"]);
                problems.push(
                    At::of(file, key),
                    format!("unknown key '{name}'{}", did_you_mean(name, known)),
                );
                continue;
            };
            let piece = Piece { file, node: value };
            match merge {
                Merge::Whole => {
                    out.whole.insert(name, piece);
                }
                Merge::Tables => merge_tables(&mut out.tables, piece, problems),
                Merge::Keyed => {
                    let entries = out.keyed.entry(name).or_default();
                    merge_keyed(entries, name, piece, extends, problems);
                }
                Merge::List(key_field) => {
                    let list = out.lists.entry(name).or_default();
                    merge_list(list, name, key_field, piece, extends, problems);
                }
            }
        }
    }
    out
}

fn table<'a>(piece: Piece<'a>) -> Option<&'a DeTable<'a>> {
    piece.node.get_ref().as_table()
}

fn merge_tables<'a>(
    out: &mut BTreeMap<&'a str, BTreeMap<&'a str, Piece<'a>>>,
    piece: Piece<'a>,
    problems: &mut Problems<'_>,
) {
    let Some(tables) = table(piece) else {
        problems.push(piece.at(), "'tables' holds [tables.NAME] sections");
        return;
    };
    for (name, entries) in tables.iter() {
        let entries_piece = Piece {
            file: piece.file,
            node: entries,
        };
        let Some(entries) = table(entries_piece) else {
            problems.push(
                entries_piece.at(),
                "a table is a section of SPI value = \"Voyado value\" entries",
            );
            continue;
        };
        let into = out.entry(name.get_ref()).or_default();
        for (key, value) in entries.iter() {
            into.insert(
                key.get_ref(),
                Piece {
                    file: piece.file,
                    node: value,
                },
            );
        }
    }
}

/// Whether an element asks to remove the inherited one with its key. `None`: it asks wrongly
/// (the problem is noted) and is left out.
fn removal(
    piece: Piece<'_>,
    key_field: Option<&str>,
    extends: bool,
    problems: &mut Problems<'_>,
) -> Option<bool> {
    let Some(element) = table(piece) else {
        return Some(false);
    };
    let Some(flag) = element.get("remove") else {
        return Some(false);
    };
    let at = At::of(piece.file, flag);
    if !extends {
        problems.push(at, "'remove' only goes in a profile that extends another");
        return None;
    }
    if flag.get_ref().as_bool() != Some(true) {
        problems.push(at, "'remove' takes true (leave it out to keep the element)");
        return None;
    }
    let extra = element
        .iter()
        .map(|(k, _)| k.get_ref().as_ref())
        .find(|k| *k != "remove" && Some(*k) != key_field);
    if let Some(extra) = extra {
        problems.push(
            at,
            format!("an element with remove = true holds nothing else ('{extra}' is here too)"),
        );
        return None;
    }
    Some(true)
}

fn merge_keyed<'a>(
    out: &mut BTreeMap<&'a str, Piece<'a>>,
    name: &str,
    piece: Piece<'a>,
    extends: bool,
    problems: &mut Problems<'_>,
) {
    let Some(entries) = table(piece) else {
        problems.push(piece.at(), format!("'{name}' holds [{name}.KEY] sections"));
        return;
    };
    for (key, value) in entries.iter() {
        let entry = Piece {
            file: piece.file,
            node: value,
        };
        let key: &'a str = key.get_ref();
        match removal(entry, None, extends, problems) {
            Some(true) => {
                let removed = out.remove(key);
                if removed.is_none() {
                    problems.push(
                        entry.at(),
                        format!("remove = true: no inherited [{name}.{key}] to remove"),
                    );
                }
            }
            Some(false) => {
                out.insert(key, entry);
            }
            None => {}
        }
    }
}

fn merge_list<'a>(
    out: &mut Vec<(Option<&'a str>, Piece<'a>)>,
    name: &str,
    key_field: &str,
    piece: Piece<'a>,
    extends: bool,
    problems: &mut Problems<'_>,
) {
    let Some(elements) = piece.node.get_ref().as_array() else {
        problems.push(piece.at(), format!("'{name}' holds [[{name}]] tables"));
        return;
    };
    // Keys this file has set already: a second element with one is a second rule, left for
    // the compiler to report, not a replacement of the first.
    let mut here: Vec<&str> = Vec::new();
    for node in elements.iter() {
        let element = Piece {
            file: piece.file,
            node,
        };
        let key: Option<&'a str> = table(element)
            .and_then(|t| t.get(key_field))
            .and_then(|k| k.get_ref().as_str());
        let inherited = key.filter(|k| !here.contains(k)).and_then(|k| {
            out.iter()
                .position(|(o, e)| *o == Some(k) && e.file != piece.file)
        });
        match removal(element, Some(key_field), extends, problems) {
            Some(true) => match inherited {
                Some(i) => {
                    out.remove(i);
                }
                None => problems.push(
                    element.at(),
                    format!(
                        "remove = true: no inherited [[{name}]] with {key_field} = \"{}\" to remove",
                        key.unwrap_or_default()
                    ),
                ),
            },
            Some(false) => {
                here.extend(key);
                match inherited {
                    Some(i) => out[i] = (key, element),
                    None => out.push((key, element)),
                }
            }
            None => {}
        }
    }
}

/// Deserialises one piece; a problem is noted at its place (serde stops at the first one a
/// piece has, but other pieces are still read).
fn read<T: DeserializeOwned>(piece: Piece<'_>, problems: &mut Problems<'_>) -> Option<InFile<T>> {
    match T::deserialize(ValueDeserializer::from(piece.node.clone())) {
        Ok(spec) => Some(InFile {
            file: piece.file,
            spec,
        }),
        Err(e) => {
            let offset = e.span().map_or(piece.node.span().start, |s| s.start);
            problems.push(
                At {
                    file: piece.file,
                    offset,
                },
                serde_message(&e),
            );
            None
        }
    }
}

/// Where a problem about something missing is reported: the profile's first line.
const TOP: At = At {
    file: FileId(0),
    offset: 0,
};

/// A required section (or `version`), deserialised whole.
fn section<T: DeserializeOwned>(
    resolved: &Resolved<'_>,
    name: &str,
    problems: &mut Problems<'_>,
) -> Option<InFile<T>> {
    let Some(piece) = resolved.whole.get(name) else {
        let what = match name {
            "version" => "version = 1".to_owned(),
            section => format!("the [{section}] section"),
        };
        problems.push(TOP, format!("missing {what}"));
        return None;
    };
    read(*piece, problems)
}

/// `[search.KEY]` or `[lookup.KEY]`, each key type deserialised on its own.
fn keyed(
    resolved: &Resolved<'_>,
    name: &str,
    problems: &mut Problems<'_>,
) -> BTreeMap<String, KeySpec> {
    let mut out = BTreeMap::new();
    for (key, piece) in resolved.keyed.get(name).into_iter().flatten() {
        if let Some(spec) = read::<KeySpec>(*piece, problems) {
            out.insert((*key).to_owned(), spec.spec);
        }
    }
    out
}

/// A rule list, each element deserialised on its own.
fn list<T: DeserializeOwned>(
    resolved: &Resolved<'_>,
    name: &str,
    problems: &mut Problems<'_>,
) -> Vec<InFile<T>> {
    resolved
        .lists
        .get(name)
        .into_iter()
        .flatten()
        .filter_map(|(_, piece)| read(*piece, problems))
        .collect()
}

/// The resolved profile, deserialised. A required section that is missing or unreadable is
/// `None` and its problem noted.
pub(crate) struct ProfileSpec<'a> {
    pub(crate) version: Option<InFile<Spanned<u32>>>,
    pub(crate) tables: BTreeMap<String, Table>,
    pub(crate) voyado: Option<InFile<VoyadoSpec>>,
    pub(crate) money: Option<InFile<MoneyFields>>,
    pub(crate) consent: Option<InFile<ConsentFields>>,
    pub(crate) status: Option<InFile<StatusSpec>>,
    pub(crate) add: Option<InFile<AddSpec>>,
    pub(crate) redeem: Option<InFile<RedeemNames>>,
    pub(crate) transactions: Option<InFile<TransactionsSpec>>,
    pub(crate) search: BTreeMap<String, KeySpec>,
    pub(crate) lookup: BTreeMap<String, KeySpec>,
    pub(crate) field: Vec<InFile<FieldSpec>>,
    /// The `spi` of every `[[field]]`, read or not: what other parts may name.
    pub(crate) field_names: Vec<String>,
    pub(crate) option: Vec<InFile<OptionSpec>>,
    pub(crate) card: Vec<InFile<RuleSpec>>,
    pub(crate) transaction: Vec<InFile<RuleSpec>>,
    pub(crate) consent_definition: Vec<InFile<RuleSpec>>,
    pub(crate) person: Vec<InFile<RuleSpec>>,
    pub(crate) receipt: Vec<InFile<RuleSpec>>,
    /// Each example with the place it was written, to point into its `expect`.
    pub(crate) example: Vec<(Piece<'a>, ExampleSpec)>,
}

impl<'a> ProfileSpec<'a> {
    pub(crate) fn read(resolved: &Resolved<'a>, problems: &mut Problems<'_>) -> ProfileSpec<'a> {
        let version = section(resolved, "version", problems);
        let voyado = section(resolved, "voyado", problems);
        let money = section(resolved, "money", problems);
        let consent = section(resolved, "consent", problems);
        let status = section(resolved, "status", problems);
        let add = section(resolved, "add", problems);
        let redeem = section(resolved, "redeem", problems);
        let transactions = section(resolved, "transactions", problems);

        let mut tables = BTreeMap::new();
        for (name, entries) in &resolved.tables {
            let mut pairs = Vec::with_capacity(entries.len());
            for (spi, piece) in entries {
                match piece.node.get_ref().as_str() {
                    Some(voyado) => pairs.push(((*spi).to_owned(), voyado.to_owned())),
                    None => problems.push(
                        piece.at(),
                        "a table entry is SPI value = \"Voyado value\" (a string)",
                    ),
                }
            }
            tables.insert((*name).to_owned(), Table { pairs });
        }

        let search = keyed(resolved, "search", problems);
        let lookup = keyed(resolved, "lookup", problems);
        if !resolved.keyed.contains_key("search") {
            problems.push(TOP, "missing the [search.KEY] sections");
        }
        let field = list(resolved, "field", problems);
        if !resolved.lists.contains_key("field") {
            problems.push(TOP, "missing the [[field]] rules");
        }
        let example = resolved
            .lists
            .get("example")
            .into_iter()
            .flatten()
            .filter_map(|(_, piece)| {
                read::<ExampleSpec>(*piece, problems).map(|e| (*piece, e.spec))
            })
            .collect();
        let field_names = resolved
            .lists
            .get("field")
            .into_iter()
            .flatten()
            .filter_map(|(key, _)| key.map(str::to_owned))
            .collect();
        ProfileSpec {
            version,
            tables,
            voyado,
            money,
            consent,
            status,
            add,
            redeem,
            transactions,
            search,
            lookup,
            field,
            field_names,
            option: list(resolved, "option", problems),
            card: list(resolved, "card", problems),
            transaction: list(resolved, "transaction", problems),
            consent_definition: list(resolved, "consent_definition", problems),
            person: list(resolved, "person", problems),
            receipt: list(resolved, "receipt", problems),
            example,
        }
    }
}
