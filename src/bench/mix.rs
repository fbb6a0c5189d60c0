//! The traffic mix: what a till session does, as a small TOML file (`store.toml` is the built-in
//! one and documents the fields). Parsed into plain data and checked at once, every problem
//! reported together, so a typo in a chance or a duration never starts a run.

use std::time::Duration;

use serde::Deserialize;

use super::args::parse_duration;

const BUILT_IN: &str = include_str!("store.toml");

#[derive(Debug, Clone, PartialEq)]
pub struct Mix {
    pub sessions_per_hour: f64,
    pub generate: usize,
    pub zipf_s: f64,
    pub unknown: f64,
    /// Weights of finding by mobile, email and member number.
    pub find: FindWeights,
    pub card: Step,
    pub history: Step,
    pub redeem: Step,
    /// Of the redeems, the share that redeems a promotion (the rest a bonus check).
    pub promotion_share: f64,
    pub edit: Step,
    pub consents: Step,
    pub create: Step,
    /// The customers of a `--target`.
    pub customers: Vec<KnownCustomer>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step {
    pub chance: f64,
    pub after: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FindWeights {
    pub mobile: f64,
    pub email: f64,
    pub member_number: f64,
}

/// A customer by the keys a cashier can type; at least one is given.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KnownCustomer {
    pub member_number: Option<String>,
    pub email: Option<String>,
    pub mobile: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    till: Till,
    customers: Customers,
    find: FindWeights,
    steps: Steps,
    #[serde(default)]
    customer: Vec<KnownCustomer>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Till {
    sessions_per_hour: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Customers {
    generate: usize,
    zipf_s: f64,
    unknown: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Steps {
    card: StepFile,
    history: StepFile,
    redeem: RedeemFile,
    edit: StepFile,
    consents: StepFile,
    create: StepFile,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StepFile {
    chance: f64,
    after: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RedeemFile {
    chance: f64,
    after: String,
    promotion_share: f64,
}

impl Mix {
    pub fn built_in() -> Mix {
        // The file is part of the binary and a unit test parses it.
        Mix::parse(BUILT_IN, "built-in store mix").unwrap_or_else(|e| unreachable!("{e}"))
    }

    /// Parses and checks a mix; `name` is the file, for messages.
    pub fn parse(text: &str, name: &str) -> Result<Mix, String> {
        let file: File = toml::from_str(text).map_err(|e| format!("{name}: {e}"))?;
        let mut problems = Vec::new();
        share(&mut problems, "customers.unknown", file.customers.unknown);
        share(
            &mut problems,
            "steps.redeem.promotion_share",
            file.steps.redeem.promotion_share,
        );
        let s = &file.steps;
        let card = step(&mut problems, "card", s.card.chance, &s.card.after);
        let history = step(&mut problems, "history", s.history.chance, &s.history.after);
        let redeem = step(&mut problems, "redeem", s.redeem.chance, &s.redeem.after);
        let edit = step(&mut problems, "edit", s.edit.chance, &s.edit.after);
        let consents = step(
            &mut problems,
            "consents",
            s.consents.chance,
            &s.consents.after,
        );
        let create = step(&mut problems, "create", s.create.chance, &s.create.after);
        let f = file.find;
        if [f.mobile, f.email, f.member_number]
            .iter()
            .any(|w| !w.is_finite() || *w < 0.0)
            || f.mobile + f.email + f.member_number <= 0.0
        {
            problems.push("find: weights are 0 or more, and not all 0".into());
        }
        if !(file.till.sessions_per_hour.is_finite() && file.till.sessions_per_hour > 0.0) {
            problems.push("till.sessions_per_hour: must be above 0".into());
        }
        if !(file.customers.zipf_s.is_finite() && file.customers.zipf_s > 0.0) {
            problems.push("customers.zipf_s: must be above 0".into());
        }
        if !(1..=1_000_000).contains(&file.customers.generate) {
            problems.push("customers.generate: from 1 to 1000000".into());
        }
        for (i, c) in file.customer.iter().enumerate() {
            if c.member_number.is_none() && c.email.is_none() && c.mobile.is_none() {
                problems.push(format!(
                    "customer[{i}]: needs a member_number, email or mobile"
                ));
            }
        }
        if !problems.is_empty() {
            return Err(problems
                .iter()
                .map(|p| format!("{name}: {p}"))
                .collect::<Vec<_>>()
                .join("\n"));
        }
        Ok(Mix {
            sessions_per_hour: file.till.sessions_per_hour,
            generate: file.customers.generate,
            zipf_s: file.customers.zipf_s,
            unknown: file.customers.unknown,
            find: file.find,
            card,
            history,
            redeem,
            promotion_share: file.steps.redeem.promotion_share,
            edit,
            consents,
            create,
            customers: file.customer,
        })
    }

    /// Requests one session makes on average, with or without the writes. A redeem is counted
    /// as planned; one whose customer has nothing left to redeem is skipped, so the real figure
    /// can be a little lower.
    pub fn requests_per_session(&self, writes: bool) -> f64 {
        let write = |step: &Step| if writes { step.chance } else { 0.0 };
        let known =
            self.card.chance + self.history.chance + write(&self.redeem) + write(&self.edit);
        let unknown = self.consents.chance * (1.0 + write(&self.create));
        1.0 + (1.0 - self.unknown) * known + self.unknown * unknown
    }

    /// One till's requests per second.
    pub fn till_rate(&self, writes: bool) -> f64 {
        self.sessions_per_hour / 3600.0 * self.requests_per_session(writes)
    }
}

fn share(problems: &mut Vec<String>, what: &str, value: f64) {
    if !(0.0..=1.0).contains(&value) {
        problems.push(format!("{what}: must be between 0 and 1 (got {value})"));
    }
}

fn step(problems: &mut Vec<String>, what: &str, chance: f64, after: &str) -> Step {
    share(problems, &format!("steps.{what}.chance"), chance);
    let after = parse_duration(after).unwrap_or_else(|e| {
        problems.push(format!("steps.{what}.after: {e}"));
        Duration::ZERO
    });
    Step { chance, after }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_mix_parses_and_makes_about_two_requests_a_session() {
        let mix = Mix::built_in();
        assert_eq!(mix.customers.len(), 4);
        let with = mix.requests_per_session(true);
        let without = mix.requests_per_session(false);
        assert!((2.0..3.0).contains(&with), "{with}");
        assert!(without < with);
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let text = BUILT_IN
            .replace(
                "chance = 0.2, after = \"2s\"",
                "chance = 2.0, after = \"soon\"",
            )
            .replace("zipf_s = 0.8", "zipf_s = 0.0");
        let err = Mix::parse(&text, "mine.toml").unwrap_err();
        for expected in [
            "mine.toml: steps.history.chance",
            "mine.toml: steps.history.after",
            "mine.toml: customers.zipf_s",
        ] {
            assert!(err.contains(expected), "{err}");
        }
        let unknown = BUILT_IN.replace("[till]", "[till]\nregisters = 3");
        assert!(
            Mix::parse(&unknown, "mine.toml")
                .unwrap_err()
                .contains("registers")
        );
    }
}
