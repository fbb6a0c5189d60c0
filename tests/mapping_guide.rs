//! `docs/MAPPINGS.md`'s worked examples are real profiles: each block marked
//! `<!-- checked: NAME -->` is compiled on top of the repository's `mappings/default.toml`, and
//! loading runs its `[[example]]`s — so an example that no longer does what the guide says fails
//! here.

use sitoo_voyado_proxy::mapping::Plan;

const GUIDE: &str = include_str!("../docs/MAPPINGS.md");
const DEFAULT: &str = include_str!("../mappings/default.toml");

/// Each checked block: its name and its TOML.
fn checked_blocks() -> Vec<(String, String)> {
    let mut blocks = Vec::new();
    let mut lines = GUIDE.lines();
    while let Some(line) = lines.next() {
        let Some(name) = line
            .strip_prefix("<!-- checked: ")
            .and_then(|rest| rest.strip_suffix(" -->"))
        else {
            continue;
        };
        assert_eq!(
            lines.next(),
            Some("```toml"),
            "{name}: a toml block follows"
        );
        let text: Vec<&str> = lines.by_ref().take_while(|l| *l != "```").collect();
        blocks.push((name.to_owned(), text.join("\n") + "\n"));
    }
    blocks
}

#[test]
fn every_worked_example_of_the_guide_loads_and_its_examples_pass() {
    let blocks = checked_blocks();
    let names: Vec<&str> = blocks.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "rename-a-field",
            "card-section",
            "consent",
            "gender",
            "voucher-password",
            "additional-option"
        ]
    );
    let read = |name: &str| match name {
        "default" => Ok((DEFAULT.to_owned(), "mappings/default.toml".to_owned())),
        other => Err(format!("no profile '{other}'")),
    };
    for (name, text) in &blocks {
        assert!(text.contains("[[example]]"), "{name}: shows its effect");
        if let Err(e) = Plan::compile_with(text, &format!("{name}.toml"), &read) {
            panic!("{name}:\n{e}");
        }
    }
}
