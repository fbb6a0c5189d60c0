//! The arrival schedule: till sessions start as a Poisson process and each plans its steps at
//! fixed offsets, all drawn up front from a seed, before a single answer is seen. The schedule is
//! a plain iterator, so the same seed gives the same traffic and a test can check its rate
//! without a socket.

use std::time::Duration;

use rand::distr::Distribution;
use rand::distr::weighted::WeightedIndex;
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use rand_distr::{Exp, Zipf};

use super::mix::{KnownCustomer, Mix, Step};

/// An SPI operation, as the report names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Operation {
    FindByMobile,
    FindByEmail,
    FindByMemberNumber,
    Card,
    History,
    Redeem,
    Edit,
    Consents,
    Create,
}

impl Operation {
    pub const ALL: [Operation; 9] = [
        Operation::FindByMobile,
        Operation::FindByEmail,
        Operation::FindByMemberNumber,
        Operation::Card,
        Operation::History,
        Operation::Redeem,
        Operation::Edit,
        Operation::Consents,
        Operation::Create,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Operation::FindByMobile => "find_by_mobile",
            Operation::FindByEmail => "find_by_email",
            Operation::FindByMemberNumber => "find_by_member_number",
            Operation::Card => "card",
            Operation::History => "history",
            Operation::Redeem => "redeem",
            Operation::Edit => "edit",
            Operation::Consents => "consents",
            Operation::Create => "create",
        }
    }

    pub fn is_write(self) -> bool {
        matches!(
            self,
            Operation::Redeem | Operation::Edit | Operation::Create
        )
    }
}

/// What a step sends; the customer id and redeemable items come from the session's earlier
/// answers.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// `key_type` and the key as a cashier types it.
    Find {
        key_type: &'static str,
        key: String,
    },
    Card,
    History,
    Redeem {
        promotion: bool,
        /// Which of the customer's open items (modulo their number): two tills serving the
        /// same customer seldom pick the same one.
        pick: u32,
    },
    Edit {
        name_last: String,
    },
    Consents,
    Create {
        email: String,
    },
}

impl Action {
    pub fn operation(&self) -> Operation {
        match self {
            Action::Find { key_type, .. } => match *key_type {
                "mobile" => Operation::FindByMobile,
                "email" => Operation::FindByEmail,
                _ => Operation::FindByMemberNumber,
            },
            Action::Card => Operation::Card,
            Action::History => Operation::History,
            Action::Redeem { .. } => Operation::Redeem,
            Action::Edit { .. } => Operation::Edit,
            Action::Consents => Operation::Consents,
            Action::Create { .. } => Operation::Create,
        }
    }
}

/// A step at its planned time, counted from the start of the run.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    pub at: Duration,
    pub action: Action,
}

/// One customer at one till.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    pub steps: Vec<Planned>,
}

impl Session {
    pub fn start(&self) -> Duration {
        self.steps.first().map(|s| s.at).unwrap_or_default()
    }
}

/// The sessions of one run, in order of their start, until `end`.
pub struct Schedule {
    rng: SmallRng,
    gaps: Exp<f64>,
    ranks: Zipf<f64>,
    find: WeightedIndex<f64>,
    mix: Mix,
    customers: Vec<KnownCustomer>,
    writes: bool,
    next_start: Duration,
    end: Duration,
    run: u64,
    made: u64,
}

impl Schedule {
    /// Sessions start at `rate` requests per second divided by the mix's requests per session;
    /// customers are drawn from `customers` (the most frequent first). Writes are left out of the
    /// plan when not allowed. `run` makes the e-mails of creates and the names of edits unique
    /// to the run.
    pub fn new(
        mix: &Mix,
        customers: Vec<KnownCustomer>,
        rate: f64,
        end: Duration,
        writes: bool,
        seed: u64,
        run: u64,
    ) -> Schedule {
        let sessions_per_second = rate / mix.requests_per_session(writes);
        let f = mix.find;
        let rng = SmallRng::seed_from_u64(seed);
        // The mix and the customer list were checked (a rate above 0, weights not all 0, at
        // least one customer), so these distributions exist.
        let gaps = Exp::new(sessions_per_second).unwrap_or_else(|e| unreachable!("{e}"));
        let ranks = Zipf::new(customers.len().max(1) as f64, mix.zipf_s)
            .unwrap_or_else(|e| unreachable!("{e}"));
        let find = WeightedIndex::new([f.mobile, f.email, f.member_number])
            .unwrap_or_else(|e| unreachable!("{e}"));
        let mut schedule = Schedule {
            rng,
            gaps,
            ranks,
            find,
            mix: mix.clone(),
            customers,
            writes,
            next_start: Duration::ZERO,
            end,
            run,
            made: 0,
        };
        schedule.next_start = schedule.gap();
        schedule
    }

    fn gap(&mut self) -> Duration {
        Duration::from_secs_f64(self.gaps.sample(&mut self.rng))
    }

    fn chance(&mut self, step: &Step) -> bool {
        step.chance > 0.0 && self.rng.random_bool(step.chance)
    }

    fn unique(&mut self) -> String {
        self.made += 1;
        format!("{:x}-{}", self.run, self.made)
    }

    fn plan(&mut self, start: Duration) -> Session {
        let mut steps = Vec::new();
        let mut at = start;
        let mut then = |steps: &mut Vec<Planned>, after: Duration, action: Action| {
            at += after;
            steps.push(Planned { at, action });
        };
        if self.rng.random_bool(self.mix.unknown) {
            let nobody = self.rng.random_range(0..1_000_000u32);
            let find = match self.find.sample(&mut self.rng) {
                0 => ("mobile", format!("0709{nobody:06}")),
                1 => ("email", format!("nobody-{nobody}@example.com")),
                _ => ("member_number", format!("9{nobody:09}")),
            };
            then(
                &mut steps,
                Duration::ZERO,
                Action::Find {
                    key_type: find.0,
                    key: find.1,
                },
            );
            let (consents, create) = (self.mix.consents, self.mix.create);
            if self.chance(&consents) {
                then(&mut steps, consents.after, Action::Consents);
                if self.writes && self.chance(&create) {
                    let email = format!("bench-{}@example.com", self.unique());
                    then(&mut steps, create.after, Action::Create { email });
                }
            }
            return Session { steps };
        }
        // Zipf draws ranks from 1; rank 1 is the most frequent customer.
        let rank = self.ranks.sample(&mut self.rng) as usize;
        let who = &self.customers[rank.clamp(1, self.customers.len()) - 1];
        let keys = [
            ("mobile", who.mobile.clone()),
            ("email", who.email.clone()),
            ("member_number", who.member_number.clone()),
        ];
        // The cashier asks for the kind of key the mix says, or else one the customer has.
        let wanted = self.find.sample(&mut self.rng);
        let (key_type, key) = std::iter::once(&keys[wanted])
            .chain(keys.iter())
            .find_map(|(t, k)| k.clone().map(|k| (*t, k)))
            .unwrap_or(("member_number", String::new()));
        then(&mut steps, Duration::ZERO, Action::Find { key_type, key });
        let mix = self.mix.clone();
        if self.chance(&mix.card) {
            then(&mut steps, mix.card.after, Action::Card);
        }
        if self.chance(&mix.history) {
            then(&mut steps, mix.history.after, Action::History);
        }
        if self.writes && self.chance(&mix.redeem) {
            let promotion = self.rng.random_bool(mix.promotion_share);
            let pick = self.rng.random();
            then(
                &mut steps,
                mix.redeem.after,
                Action::Redeem { promotion, pick },
            );
        }
        if self.writes && self.chance(&mix.edit) {
            let name_last = format!("Till{}", self.unique());
            then(&mut steps, mix.edit.after, Action::Edit { name_last });
        }
        Session { steps }
    }
}

impl Iterator for Schedule {
    type Item = Session;

    fn next(&mut self) -> Option<Session> {
        if self.next_start >= self.end {
            return None;
        }
        let start = self.next_start;
        let gap = self.gap();
        self.next_start += gap;
        let mut session = self.plan(start);
        // Steps planned after the end are not sent: the run stops on time.
        session.steps.retain(|s| s.at < self.end);
        Some(session)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn customers(n: usize) -> Vec<KnownCustomer> {
        (0..n)
            .map(|i| KnownCustomer {
                member_number: Some(format!("{i}")),
                email: None,
                mobile: None,
            })
            .collect()
    }

    #[test]
    fn requests_arrive_at_the_asked_rate_whatever_the_answers() {
        let mix = Mix::built_in();
        let end = Duration::from_secs(600);
        let schedule = Schedule::new(&mix, customers(1000), 50.0, end, true, 7, 1);
        let requests: usize = schedule.map(|s| s.steps.len()).sum();
        // 30,000 expected; Poisson noise is about ±1 % at this size.
        let rate = requests as f64 / end.as_secs_f64();
        assert!((47.0..53.0).contains(&rate), "{rate}");
    }

    #[test]
    fn the_same_seed_plans_the_same_traffic() {
        let mix = Mix::built_in();
        let end = Duration::from_secs(20);
        let a: Vec<Session> = Schedule::new(&mix, customers(50), 20.0, end, true, 3, 1).collect();
        let b: Vec<Session> = Schedule::new(&mix, customers(50), 20.0, end, true, 3, 1).collect();
        assert_eq!(a, b);
    }

    #[test]
    fn without_writes_no_write_is_planned() {
        let mut mix = Mix::built_in();
        mix.redeem.chance = 1.0;
        mix.edit.chance = 1.0;
        mix.create.chance = 1.0;
        let sessions = Schedule::new(
            &mix,
            customers(10),
            100.0,
            Duration::from_secs(30),
            false,
            1,
            1,
        );
        let ops: Vec<Operation> = sessions
            .flat_map(|s| s.steps)
            .map(|s| s.action.operation())
            .collect();
        assert!(ops.len() > 1000);
        assert!(ops.iter().all(|op| !op.is_write()));
    }

    #[test]
    fn returning_customers_are_skewed_towards_the_first() {
        let mut mix = Mix::built_in();
        mix.unknown = 0.0;
        mix.zipf_s = 1.0;
        let sessions: Vec<Session> = Schedule::new(
            &mix,
            customers(1000),
            200.0,
            Duration::from_secs(60),
            true,
            9,
            1,
        )
        .collect();
        let first = sessions
            .iter()
            .filter(|s| matches!(&s.steps[0].action, Action::Find { key, .. } if key == "0"))
            .count();
        // Zipf with s = 1 over 1,000: the first customer takes 1 / H(1000) ≈ 13 % of draws.
        let share = first as f64 / sessions.len() as f64;
        assert!((0.10..0.17).contains(&share), "{share}");
    }
}
