//! The config as an operator writes it: defaults filled in, `${ENV}` read, and every problem
//! reported at once, each at its file, line, column and key.

use super::*;
use crate::spi::error::Reason;

fn env(var: &str) -> Option<String> {
    (var == "SVP_TEST_CRM_KEY").then(|| "from-env".to_owned())
}

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, "test.toml", |_| MappingSource::BuiltIn, env)
}

/// Each problem as (key, line, column).
fn places(error: &ConfigError) -> Vec<(&str, usize, usize)> {
    error
        .problems
        .iter()
        .map(|p| {
            let at = p.place.position.unwrap_or(Position { line: 0, column: 0 });
            (p.place.path.as_str(), at.line, at.column)
        })
        .collect()
}

const GOOD: &str = r#"
    [[market]]
    tenant = "DevShop"
    market = "NOR"
    crm_api_keys = ["${SVP_TEST_CRM_KEY}"]
    voyado_url = "https://devshop.voyado.com"
    voyado_api_key = "k"
    default_country = "NO"
"#;

/// A market with nothing wrong, to put after other tables.
const MARKET: &str = "[[market]]\ntenant = \"DevShop\"\nmarket = \"NOR\"\ncrm_api_keys = [\"k\"]\n\
                      voyado_url = \"https://devshop.voyado.com\"\nvoyado_api_key = \"k\"\n\
                      default_country = \"NO\"\n";

#[test]
fn interpolates_env_and_fills_country_defaults() {
    let config = parse(GOOD).unwrap();
    let m = &config.markets[0];
    assert_eq!(m.crm_keys, vec![CrmKeyDigest::of("from-env")]);
    assert_eq!(m.currency, "NOK");
    assert_eq!(m.locale, "nb-NO");
    assert_eq!(m.contact_key, None);
    assert_eq!(config.listen.port(), 8080);
    assert_eq!(config.limits, Limits::default());
    assert_eq!(config.cache, CacheConfig::default());
    assert_eq!(m.cache, CacheTtlsMs::default());
}

#[test]
fn reports_every_error_with_its_key() {
    let text = r#"
        listen = "nowhere"
        [[market]]
        tenant = "a/b"
        market = "SE"
        crm_api_keys = []
        voyado_url = "ftp://x"
        voyado_api_key = "${SVP_SURELY_UNSET_VAR}"
        default_country = "XX"
    "#;
    let error = parse(text).unwrap_err();
    assert_eq!(
        places(&error),
        [("market[0].voyado_api_key", 8, 26)],
        "env errors come alone: {error}"
    );
    assert!(!error.to_string().contains("SVP_SURELY_UNSET_VAR}"));
    let errors = parse(&text.replace("${SVP_SURELY_UNSET_VAR}", "k"))
        .unwrap_err()
        .to_string();
    for line in [
        "test.toml:2:18: listen: 'nowhere' is not an address:port",
        "test.toml:4:18: market[0].tenant: must be letters, digits, '-' or '_'",
        "test.toml:6:24: market[0].crm_api_keys: needs at least one non-empty key",
        "test.toml:7:22: market[0].voyado_url: must be an http(s) URL with a host",
        "test.toml:9:27: market[0].default_country: is not an ISO 3166 country code",
    ] {
        assert!(errors.contains(line), "{line} missing in:\n{errors}");
    }
    assert!(
        !errors.contains("currency"),
        "no cascade from the bad country: {errors}"
    );
    let errors = parse(
        &text
            .replace("\"XX\"", "\"BR\"")
            .replace("${SVP_SURELY_UNSET_VAR}", "k"),
    )
    .unwrap_err()
    .to_string();
    // A key left out is placed at its `[[market]]`.
    assert!(
        errors.contains("test.toml:3:9: market[0].currency: is required for country 'BR'"),
        "{errors}"
    );
    assert!(
        errors.contains("test.toml:3:9: market[0].timezone: is required for country 'BR'"),
        "{errors}"
    );
}

/// One problem in each table, and in a market's own tables, each at its value.
#[test]
fn a_problem_in_each_table_is_placed_at_its_line_and_column() {
    let text = "listen = \"nowhere\"\n\
                [limits]\n\
                max_in_flight = 0\n\
                [cache]\n\
                offers_ms = 3600001\n\
                [voyado]\n\
                new_work_share = 1.5\n\
                [telemetry]\n\
                otlp_endpoint = \"ftp://x\"\n\
                [[market]]\n\
                tenant = \"DevShop\"\n\
                market = \"NOR\"\n\
                crm_api_keys = [\"k\"]\n\
                voyado_url = \"https://devshop.voyado.com\"\n\
                voyado_api_key = \"k\"\n\
                default_country = \"NO\"\n\
                timezone = \"Mars/Olympus\"\n\
                sitoo_api_user = \"u\"\n\
                [market.cache]\n\
                contact_ms = 4000000\n\
                [market.errors.customer_exists]\n\
                status = 200\n\
                error_code = \"ok\"\n";
    let error = parse(text).unwrap_err();
    assert_eq!(
        places(&error),
        [
            ("listen", 1, 10),
            ("limits.max_in_flight", 3, 17),
            ("cache.offers_ms", 5, 13),
            ("voyado.new_work_share", 7, 18),
            ("telemetry.otlp_endpoint", 9, 17),
            ("market[0].timezone", 17, 12),
            ("market[0].sitoo_api_user", 18, 18),
            ("market[0].cache.contact_ms", 20, 14),
            ("market[0].errors.customer_exists.status", 22, 10),
        ],
        "{error}"
    );
    assert!(
        error.problems.iter().all(|p| p.place.file == "test.toml"),
        "{error}"
    );
}

/// Vector's rule: every problem the checks can see after the parse, in one error.
#[test]
fn three_problems_in_three_tables_come_in_one_error() {
    let text = format!(
        "[limits]\nredeem_max_items = 0\n[voyado]\nburst = 0\n{}redeem_timeout_ms = 0\n",
        MARKET
    );
    let error = parse(&text).unwrap_err();
    assert_eq!(
        error.to_string(),
        "test.toml:2:20: limits.redeem_max_items: must be above 0\n\
         test.toml:4:9: voyado.burst: must be above 0\n\
         test.toml:12:21: market[0].redeem_timeout_ms: must be above 0 and at most 60000"
    );
}

#[test]
fn a_missing_variable_is_placed_at_its_string_and_named_without_a_value() {
    let text = format!("admin_listen = \"${{SVP_NOT_SET}}:9090\"\n{MARKET}");
    let error = parse(&text).unwrap_err();
    assert_eq!(
        error.to_string(),
        "test.toml:1:16: admin_listen: environment variable SVP_NOT_SET is not set"
    );
}

#[test]
fn unknown_keys_are_refused_at_the_key_with_a_hint() {
    let text = GOOD.replace("default_country", "voyado_timout_ms = 1\ndefault_country");
    let error = parse(&text).unwrap_err();
    assert_eq!(places(&error), [("", 8, 5)], "{error}");
    let message = &error.problems[0].message;
    assert!(
        message.starts_with("unknown field `voyado_timout_ms`")
            && message.ends_with("(did you mean 'voyado_timeout_ms'?)"),
        "{message}"
    );
    let text = format!("[cache]\nmax_bytes = 1\n{MARKET}[market.cache]\nmax_bytes = 2\n");
    assert_eq!(
        parse(&text).unwrap_err().to_string(),
        "test.toml:11:13: market[0].cache.max_bytes: is one bound for all markets: set it in \
         [cache]"
    );
}

#[test]
fn every_syntax_error_is_placed() {
    let error = parse("listen = \n[limits\nmax_in_flight = 1\n").unwrap_err();
    let lines: Vec<usize> = places(&error).iter().map(|(_, line, _)| *line).collect();
    assert!(
        lines.contains(&1) && lines.contains(&2),
        "both broken lines: {error}"
    );
}

#[test]
fn limits_count_from_their_defaults() {
    let config = parse(&format!("[limits]\nmax_in_flight = 3\n{GOOD}")).unwrap();
    assert_eq!(config.limits.max_in_flight, 3);
    assert_eq!(
        config.limits.max_connections,
        Limits::default().max_connections
    );
}

#[test]
fn a_market_keeps_where_its_mapping_and_fields_are_written() {
    let text = format!(
        "{MARKET}required_fields = [\"name_first\", \"shoe_size\"]\nmapping = \"se\"\n\
         [[market]]\ntenant = \"DevShop\"\nmarket = \"SE\"\ncrm_api_keys = [\"k\"]\n\
         voyado_url = \"https://devshop.voyado.com\"\nvoyado_api_key = \"k\"\n\
         default_country = \"SE\"\n"
    );
    let config = parse(&text).unwrap();
    fn at(place: &Place) -> (&str, usize, usize) {
        let p = place.position.unwrap();
        (place.path.as_str(), p.line, p.column)
    }
    let first = &config.markets[0].at;
    assert_eq!(
        at(&first.required_fields[1]),
        ("market[0].required_fields", 8, 34)
    );
    assert_eq!(at(&first.mapping), ("market[0].mapping", 9, 11));
    // Left out: the default profile and the mapping's key, at the `[[market]]`.
    let second = &config.markets[1].at;
    assert_eq!(at(&second.mapping), ("market[1].mapping", 10, 1));
    assert_eq!(at(&second.contact_key), ("market[1].contact_key", 10, 1));
}

#[test]
fn a_second_market_with_the_same_names_is_placed_at_its_table() {
    let error = parse(&format!("{MARKET}{MARKET}")).unwrap_err();
    assert_eq!(
        error.to_string(),
        "test.toml:8:1: market[1]: a second market DevShop/NOR"
    );
}

#[test]
fn error_overrides_name_known_reasons_only() {
    let text = format!(
        "{GOOD}\n[market.errors.customer_exists]\nstatus = 409\nerror_code = \"conflict\"\n"
    );
    let config = parse(&text).unwrap();
    assert_eq!(
        config.markets[0].errors[&Reason::CustomerExists].status,
        409
    );
    let text = text.replace("customer_exists", "customer_exist");
    assert!(
        parse(&text)
            .unwrap_err()
            .to_string()
            .contains("customer_exist")
    );
}

/// The error and route tables' problems are reported at the `mappings` key that names their
/// directory, or at the file when the default directory is meant.
#[test]
fn the_mappings_key_keeps_its_place() {
    let config = parse(&format!("mappings = \"elsewhere\"\n{MARKET}")).unwrap();
    assert_eq!(
        config.mappings_at.problem("x").to_string(),
        "test.toml:1:12: mappings: x"
    );
    let config = parse(MARKET).unwrap();
    assert_eq!(
        config.mappings_at.problem("x").to_string(),
        "test.toml: mappings: x"
    );
}

#[test]
fn the_cluster_table_is_optional_and_its_problems_are_placed_at_their_keys() {
    assert_eq!(
        parse(GOOD).unwrap().cluster,
        None,
        "one replica alone by default"
    );
    let env = |var: &str| (var == "SVP_TEST_REDIS_PASSWORD").then(|| "hunter2".to_owned());
    let text = format!(
        "[cluster]\nredis_url = \"rediss://:${{SVP_TEST_REDIS_PASSWORD}}@redis.internal:6380\"\n\
         {MARKET}"
    );
    let config = Config::parse(&text, "test.toml", |_| MappingSource::BuiltIn, env).unwrap();
    let cluster = config.cluster.as_ref().unwrap();
    assert_eq!(
        cluster.redis_url.expose(),
        "rediss://:hunter2@redis.internal:6380"
    );
    assert_eq!(cluster.key_prefix, "svp:");
    assert_eq!(cluster.timeout_ms, 50);
    assert!(!format!("{config:?}").contains("hunter2"), "never printed");

    let text = format!(
        "[cluster]\nredis_url = \"http://:hunter2@redis.internal\"\nkey_prefix = \"a {{b}}\"\n\
         timeout_ms = 5000\n{MARKET}"
    );
    let error = parse(&text).unwrap_err();
    assert_eq!(
        places(&error),
        [
            ("cluster.redis_url", 2, 13),
            ("cluster.key_prefix", 3, 14),
            ("cluster.timeout_ms", 4, 14),
        ],
        "{error}"
    );
    let shown = error.to_string();
    assert!(
        shown.starts_with("test.toml:2:13: cluster.redis_url: must start with redis://"),
        "{shown}"
    );
    assert!(!shown.contains("hunter2") && !shown.contains("redis.internal"));
    let unknown = parse(&format!(
        "[cluster]\nredis_url = \"redis://h\"\nreplicas = 2\n{MARKET}"
    ));
    assert_eq!(places(&unknown.unwrap_err()), [("", 3, 1)]);
}
