//! `[admin]`: what guards the admin side's mapping workbench (`src/workbench/`). Its one key,
//! `token`, is the bearer token the workbench asks for (by `${ENV}`, a [`Secret`] that prints as
//! `***`); without it the workbench is off. Health, readiness and metrics stay open either way.

use serde::Deserialize;
use toml::Spanned;

use super::Secret;
use super::problem::Problems;

/// The shortest token taken: a shorter one could be guessed.
pub const TOKEN_MIN_CHARS: usize = 16;

/// The admin side as checked.
#[derive(Debug, Clone, Default)]
pub struct AdminConfig {
    /// The workbench's bearer token; `None`: the workbench is off.
    pub token: Option<Secret>,
    /// The workbench answers without a token. Never read from a file: only the demo sets it,
    /// and only when it listens on loopback.
    pub open_without_token: bool,
}

/// `[admin]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AdminFile {
    token: Option<Spanned<Secret>>,
}

impl AdminFile {
    /// The table; a token that is blank or too short is a problem at `admin.token` (its value
    /// is never quoted).
    pub(super) fn check(self, problems: &mut Problems<'_>) -> AdminConfig {
        let token = self.token.and_then(|token| {
            let text = token.get_ref().expose();
            let problem = if text.trim() != text || text.chars().any(char::is_whitespace) {
                Some("must have no spaces".to_owned())
            } else if text.chars().count() < TOKEN_MIN_CHARS {
                Some(format!("must be at least {TOKEN_MIN_CHARS} characters"))
            } else {
                None
            };
            match problem {
                Some(problem) => {
                    problems.push("admin.token", token.span(), problem);
                    None
                }
                None => Some(token.into_inner()),
            }
        });
        AdminConfig {
            token,
            open_without_token: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, ConfigError, MappingSource, Position};

    const MARKET: &str = "[[market]]\ntenant = \"t\"\nmarket = \"m\"\ncrm_api_keys = [\"k\"]\n\
                          voyado_url = \"https://t.voyado.com\"\nvoyado_api_key = \"k\"\n\
                          default_country = \"SE\"\n";

    fn parse(admin: &str) -> Result<Config, ConfigError> {
        let env = |var: &str| (var == "SVP_TEST_ADMIN").then(|| "s3cret-admin-token-42".to_owned());
        let text = format!("{admin}\n{MARKET}");
        Config::parse(&text, "test.toml", |_| MappingSource::BuiltIn, env)
    }

    #[test]
    fn the_token_comes_from_env_and_never_prints() {
        assert!(parse("").unwrap().admin.token.is_none(), "off by default");
        let config = parse("[admin]\ntoken = \"${SVP_TEST_ADMIN}\"").unwrap();
        let token = config.admin.token.as_ref().unwrap();
        assert_eq!(token.expose(), "s3cret-admin-token-42");
        assert!(!config.admin.open_without_token, "no file opens it");
        assert!(!format!("{config:?}").contains("s3cret"));
    }

    #[test]
    fn a_short_or_spaced_token_is_a_problem_at_its_key() {
        for (token, problem) in [
            ("short", "must be at least 16 characters"),
            ("a token with spaces in it", "must have no spaces"),
        ] {
            let error = parse(&format!("[admin]\ntoken = \"{token}\"")).unwrap_err();
            let first = &error.problems[0];
            assert_eq!(first.place.path, "admin.token");
            assert_eq!(first.place.position, Some(Position { line: 2, column: 9 }));
            assert_eq!(first.message, problem);
            assert!(
                !error.to_string().contains(token),
                "the token is not quoted"
            );
        }
        let unknown = parse("[admin]\ntokens = \"x\"").unwrap_err();
        assert!(unknown.to_string().contains("tokens"), "{unknown}");
    }
}
