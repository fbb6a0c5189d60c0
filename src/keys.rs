//! Key normalisation, a leaf both the SPI input and the mapping use: phones, emails, personal ids of
//! every supported country, dates, country codes and GUIDs.
//!
//! Everything here is pure (the date is passed in, never read from a clock) and runs before any
//! Voyado call, so a bad value costs no upstream request.
//! Errors name the problem only; the caller adds the field name (values are personal data and never
//! appear in messages).

use jiff::civil::Date;
use phonenumber::{Mode, country};
use serde::Deserialize;

/// How a value is checked and normalised; named in the mapping files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Normalizer {
    Trim,
    Email,
    Phone,
    PersonalId,
    Country,
    Date,
}

impl Normalizer {
    /// Normalises `raw` for a market whose ISO region is `region`; `today` is the market's date
    /// (a two-digit Swedish birth year is read relative to it).
    pub fn apply(self, raw: &str, region: &str, today: Date) -> Result<String, &'static str> {
        match self {
            Normalizer::Trim => non_empty(raw.trim()).map(str::to_owned),
            Normalizer::Email => email(raw),
            Normalizer::Phone => phone(raw, region),
            Normalizer::PersonalId => personal_id(raw, region, today),
            Normalizer::Country => country_code(raw),
            Normalizer::Date => parse_date(raw)
                .map(|d| d.to_string())
                .ok_or("must be a date (YYYY-MM-DD)"),
        }
    }
}

fn non_empty(s: &str) -> Result<&str, &'static str> {
    if s.is_empty() {
        Err("must not be empty")
    } else {
        Ok(s)
    }
}

pub fn email(raw: &str) -> Result<String, &'static str> {
    let e = non_empty(raw.trim())?;
    let Some((local, domain)) = e.split_once('@') else {
        return Err("is not a valid email address");
    };
    let valid = e.len() <= 254
        && !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !e.chars().any(|c| c.is_whitespace() || c.is_control());
    if valid {
        Ok(e.to_owned())
    } else {
        Err("is not a valid email address")
    }
}

/// E.164 with the market's region. A leading space is a `+` that arrived unencoded in a query string.
///
/// ```
/// use sitoo_voyado_proxy::keys::phone;
/// assert_eq!(phone("070-111 22 33", "SE").unwrap(), "+46701112233");
/// assert_eq!(phone(" 4741234567", "NO").unwrap(), "+4741234567");
/// assert!(phone("12", "SE").is_err());
/// ```
pub fn phone(raw: &str, region: &str) -> Result<String, &'static str> {
    const BAD: &str = "is not a valid phone number";
    let text = if raw.starts_with(' ') {
        format!("+{}", raw.trim())
    } else {
        raw.trim().to_owned()
    };
    let text = match text.strip_prefix("00") {
        Some(rest) => format!("+{rest}"),
        None => text,
    };
    if text.is_empty() || text.len() > 32 {
        return Err(BAD);
    }
    let region: country::Id = region.parse().map_err(|_| BAD)?;
    let number = phonenumber::parse(Some(region), &text).map_err(|_| BAD)?;
    if !phonenumber::is_valid(&number) {
        return Err(BAD);
    }
    Ok(number.format().mode(Mode::E164).to_string())
}

/// Parses once so that the phone metadata is loaded before the first request needs it.
pub fn warm_up_phone_metadata() {
    let _ = phone("0701112233", "SE");
}

pub fn country_code(raw: &str) -> Result<String, &'static str> {
    let code = raw.trim().to_ascii_uppercase();
    if code.len() == 2 && code.parse::<country::Id>().is_ok() {
        Ok(code)
    } else {
        Err("is not an ISO 3166 country code")
    }
}

/// `YYYY-MM-DD` or `DD/MM/YYYY`, or the date part of a date-time.
pub fn parse_date(raw: &str) -> Option<Date> {
    let raw = raw.trim();
    if let Some((d, rest)) = raw.split_once('/') {
        let (m, y) = rest.split_once('/')?;
        let year: i16 = y.parse().ok()?;
        // A negative year would print as `-00YYYY-MM-DD`, which is no `YYYY-MM-DD`.
        if year < 0 {
            return None;
        }
        return Date::new(year, m.parse().ok()?, d.parse().ok()?).ok();
    }
    raw.get(..10)?.parse().ok()
}

/// Voyado accepts Swedish and Finnish personal ids only.
pub fn personal_id(raw: &str, region: &str, today: Date) -> Result<String, &'static str> {
    match region {
        "SE" => swedish_personal_id(raw.trim(), today),
        "FI" => finnish_personal_id(raw.trim()),
        _ => Err("is not supported in this market"),
    }
}

const BAD_PERSONAL_ID: &str = "is not a valid personal id";

/// Normalises to 12 digits (`YYYYMMDDNNNN`); `+` in the 10-digit form means 100 years or older.
fn swedish_personal_id(raw: &str, today: Date) -> Result<String, &'static str> {
    let centenarian = raw.contains('+');
    let digits: String = raw.chars().filter(|c| !matches!(c, '-' | '+')).collect();
    if !digits.chars().all(|c| c.is_ascii_digit()) {
        return Err(BAD_PERSONAL_ID);
    }
    let full = match digits.len() {
        12 => digits,
        10 => {
            let yy: i16 = digits[..2].parse().map_err(|_| BAD_PERSONAL_ID)?;
            let this_year = today.year();
            let mut year = this_year - (this_year - yy).rem_euclid(100);
            if centenarian {
                year -= 100;
            }
            format!("{year:04}{}", &digits[2..])
        }
        _ => return Err(BAD_PERSONAL_ID),
    };
    let year: i16 = full[..4].parse().map_err(|_| BAD_PERSONAL_ID)?;
    let month: i8 = full[4..6].parse().map_err(|_| BAD_PERSONAL_ID)?;
    let mut day: i8 = full[6..8].parse().map_err(|_| BAD_PERSONAL_ID)?;
    if day > 60 {
        day -= 60; // samordningsnummer
    }
    Date::new(year, month, day).map_err(|_| BAD_PERSONAL_ID)?;
    if !luhn_valid(&full[2..]) {
        return Err(BAD_PERSONAL_ID);
    }
    Ok(full)
}

fn luhn_valid(digits: &str) -> bool {
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 1 {
                let doubled = d * 2;
                doubled / 10 + doubled % 10
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// Finnish HETU: `DDMMYYCZZZQ` with a mod-31 check character.
fn finnish_personal_id(raw: &str) -> Result<String, &'static str> {
    const CHECK: &[u8] = b"0123456789ABCDEFHJKLMNPRSTUVWXY";
    let id = raw.to_ascii_uppercase();
    let b = id.as_bytes();
    if b.len() != 11 || !b"+-ABCDEFYXWVU".contains(&b[6]) {
        return Err(BAD_PERSONAL_ID);
    }
    // Bytes, not `&id[..]`: caller text may put a multi-byte char across any index.
    let digits = b[..6].iter().chain(&b[7..10]);
    if !digits.clone().all(u8::is_ascii_digit) {
        return Err(BAD_PERSONAL_ID);
    }
    let n = digits.fold(0u32, |n, d| n * 10 + u32::from(d - b'0'));
    if CHECK[(n % 31) as usize] != b[10] {
        return Err(BAD_PERSONAL_ID);
    }
    Ok(id)
}

/// Every id that goes into a Voyado URL must be a GUID: no `/`, `..`, `?` or `#` reaches upstream.
pub fn guid(raw: &str) -> Result<String, &'static str> {
    if is_guid(raw) {
        Ok(raw.to_ascii_lowercase())
    } else {
        Err("must be a GUID")
    }
}

/// Whether `raw` is a hyphenated GUID, as [`guid`] takes it, without making its lower-case copy.
pub fn is_guid(raw: &str) -> bool {
    raw.len() == 36 && uuid::Uuid::try_parse(raw).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use proptest::sample::{Index, select};

    const TODAY: Date = Date::constant(2026, 11, 27);

    #[test]
    fn phones_become_e164_in_the_market_region() {
        assert_eq!(phone("0701112233", "SE").unwrap(), "+46701112233");
        assert_eq!(phone("0046701112233", "SE").unwrap(), "+46701112233");
        assert_eq!(phone(" 46701112233", "SE").unwrap(), "+46701112233");
        assert_eq!(phone("070-111 22 33", "SE").unwrap(), "+46701112233");
        assert_eq!(phone("41234567", "NO").unwrap(), "+4741234567");
        assert!(phone("12", "SE").is_err());
        assert!(phone("not a phone", "SE").is_err());
        assert!(phone("0701112233", "XX").is_err());
        assert!(phone("0701112233é", "SE").is_err());
    }

    #[test]
    fn swedish_personal_ids_become_twelve_digits() {
        let today = TODAY;
        assert_eq!(
            swedish_personal_id("700101-1234", today),
            Err(BAD_PERSONAL_ID)
        );
        assert_eq!(
            swedish_personal_id("811218-9876", today).unwrap(),
            "198112189876"
        );
        assert_eq!(
            swedish_personal_id("19811218-9876", today).unwrap(),
            "198112189876"
        );
        assert_eq!(
            swedish_personal_id("811218+9876", today).unwrap(),
            "188112189876"
        );
        assert!(swedish_personal_id("811318-9876", today).is_err());
        assert!(swedish_personal_id("811218-987é", today).is_err());
        assert!(swedish_personal_id("8112189876\u{0663}", today).is_err());
    }

    #[test]
    fn finnish_ids_check_their_control_character() {
        assert_eq!(finnish_personal_id("131052-308t").unwrap(), "131052-308T");
        assert!(finnish_personal_id("131052-308U").is_err());
        // Check character right for 31052308: `u64::from_str` took the `+` for a sign.
        assert!(finnish_personal_id("+31052-308B").is_err());
    }

    /// A GET `...customers?key_type=personal_id&key=131052-30%C3%A9` in a Finnish market panicked:
    /// the id was sliced by byte index and `é` is two bytes.
    #[test]
    fn finnish_id_with_a_multibyte_char_is_an_error_not_a_panic() {
        assert_eq!(personal_id("131052-30é", "FI", TODAY), Err(BAD_PERSONAL_ID));
        assert_eq!(
            Normalizer::PersonalId.apply("131052-30é", "FI", TODAY),
            Err(BAD_PERSONAL_ID)
        );
        assert_eq!(personal_id("1310é-308T", "FI", TODAY), Err(BAD_PERSONAL_ID));
        assert_eq!(
            personal_id(" 131052-308T ", "FI", TODAY).unwrap(),
            "131052-308T"
        );
        assert_eq!(
            Normalizer::PersonalId
                .apply("131052a308t", "FI", TODAY)
                .unwrap(),
            "131052A308T"
        );
    }

    #[test]
    fn guids_only() {
        assert!(guid("a26d8975-3b86-43c0-9b12-a86401074770").is_ok());
        assert_eq!(
            guid("A26D8975-3B86-43C0-9B12-A86401074770").unwrap(),
            "a26d8975-3b86-43c0-9b12-a86401074770"
        );
        for bad in [
            "..%2F",
            "../x",
            "a26d8975-3b86-43c0-9b12-a8640107477",
            "{a26d8975-3b86-43c0-9b12-a86401074770}",
            "a26d89753b8643c09b12a86401074770",
            "a26d8975-3b86-43c0-9b12-a8640107477é",
        ] {
            assert!(guid(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn emails_and_dates() {
        assert_eq!(email("  a@b.se ").unwrap(), "a@b.se");
        for bad in ["a", "a@b", "a@@b.se", "a b@c.se", "@b.se"] {
            assert!(email(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_date("01/02/1970").unwrap().to_string(), "1970-02-01");
        assert_eq!(parse_date("1970-02-01").unwrap().to_string(), "1970-02-01");
        assert_eq!(
            parse_date("1970-02-01T10:00:00Z").unwrap().to_string(),
            "1970-02-01"
        );
        assert!(parse_date("1970-02-31").is_none());
        assert!(parse_date("01/02/-5").is_none());
        assert!(parse_date("1970-02-é1").is_none());
        assert!(parse_date("01/02/197é").is_none());
    }

    #[test]
    fn country_codes() {
        assert_eq!(country_code(" se ").unwrap(), "SE");
        for bad in ["", "S", "SWE", "XX", "é", "sé"] {
            assert!(country_code(bad).is_err(), "{bad}");
        }
    }

    // ---- property tests ----

    /// Every message a parser may return; none carries the caller's value.
    const MESSAGES: &[&str] = &[
        "must not be empty",
        "is not a valid email address",
        "is not a valid phone number",
        "is not an ISO 3166 country code",
        "must be a date (YYYY-MM-DD)",
        "is not supported in this market",
        BAD_PERSONAL_ID,
        "must be a GUID",
    ];

    const NORMALIZERS: [Normalizer; 6] = [
        Normalizer::Trim,
        Normalizer::Email,
        Normalizer::Phone,
        Normalizer::PersonalId,
        Normalizer::Country,
        Normalizer::Date,
    ];

    const HETU_CHECK: &[u8] = b"0123456789ABCDEFHJKLMNPRSTUVWXY";

    fn odd_char() -> impl Strategy<Value = char> {
        prop_oneof![
            select(vec![
                'é', 'ö', '€', '😀', '\u{a0}', '\u{ff11}', '\u{663}', '\u{301}'
            ]),
            any::<char>(),
        ]
    }

    /// Inserts `c`, or replaces as many chars as `c` has UTF-8 bytes (an ASCII string keeps its
    /// byte length, so length checks pass and a byte index lands inside `c`).
    fn splice(s: &str, insert: bool, at: Index, c: char) -> String {
        let mut chars: Vec<char> = s.chars().collect();
        let i = at.index(chars.len() + 1);
        if insert {
            chars.insert(i, c);
        } else {
            let end = (i + c.len_utf8()).min(chars.len());
            chars.splice(i..end, [c]);
        }
        chars.into_iter().collect()
    }

    /// `base` as is, or with a non-ASCII char spliced in.
    fn near(base: BoxedStrategy<String>) -> BoxedStrategy<String> {
        prop_oneof![
            base.clone(),
            (base, any::<bool>(), any::<Index>(), odd_char())
                .prop_map(|(s, insert, at, c)| splice(&s, insert, at, c)),
        ]
        .boxed()
    }

    fn digits_with_separators() -> BoxedStrategy<String> {
        near("[0-9 +\\-/().]{0,16}".boxed())
    }

    fn finnish_ids() -> BoxedStrategy<String> {
        let sign = "[+\\-A-FU-Ya-fu-yGZ ]";
        let parts = ("[0-3][0-9][01][0-9][0-9]{2}", sign, "[0-9]{3}");
        let right = parts.prop_map(|(date, sign, ind)| {
            let n: u64 = format!("{date}{ind}").parse().unwrap();
            let check = HETU_CHECK[(n % 31) as usize] as char;
            format!("{date}{sign}{ind}{check}")
        });
        let random = (parts, "[0-9A-Za-z]")
            .prop_map(|((date, sign, ind), check)| format!("{date}{sign}{ind}{check}"));
        near(prop_oneof![right, random].boxed())
    }

    fn luhn_digit(nine: &str) -> u32 {
        let sum: u32 = nine
            .chars()
            .enumerate()
            .map(|(i, c)| {
                let d = c.to_digit(10).unwrap() * if i % 2 == 0 { 2 } else { 1 };
                d / 10 + d % 10
            })
            .sum();
        (10 - sum % 10) % 10
    }

    fn swedish_ids() -> BoxedStrategy<String> {
        (
            1850..2100u32,
            0..14u32,
            0..33u32,
            any::<bool>(),
            0..1000u32,
            prop::option::weighted(0.8, Just(())),
            any::<bool>(),
            select(vec!["", "-", "+"]),
        )
            .prop_map(
                |(year, month, day, coordination, serial, luhn, long, sep)| {
                    let day = if coordination { day + 60 } else { day };
                    let nine = format!("{:02}{month:02}{day:02}{serial:03}", year % 100);
                    let check = if luhn.is_some() {
                        luhn_digit(&nine)
                    } else {
                        (luhn_digit(&nine) + 1) % 10
                    };
                    let (date, serial) = if long {
                        (format!("{year}{month:02}{day:02}"), &nine[6..])
                    } else {
                        (nine[..6].to_owned(), &nine[6..])
                    };
                    format!("{date}{sep}{serial}{check}")
                },
            )
            .prop_flat_map(|s| near(Just(s).boxed()))
            .boxed()
    }

    fn phones() -> BoxedStrategy<String> {
        near(
            prop_oneof![
                "0[1-9][0-9 \\-]{5,12}",
                "\\+(46|47|358|45|44|1)[0-9 ]{5,12}",
                "00(46|47|358|45|44|1)[0-9]{5,12}",
                " (46|47|358|45|44|1)[0-9]{5,12}",
                "[ +0]{0,3}[0-9]{0,3}",
            ]
            .boxed(),
        )
    }

    fn dates() -> BoxedStrategy<String> {
        let years = prop_oneof![-20..0i32, 0..100, 1900..2100, 9990..10020];
        (years, 0..15u32, 0..41u32, 0..4u8)
            .prop_map(|(y, m, d, form)| match form {
                0 => format!("{y:04}-{m:02}-{d:02}"),
                1 => format!("{d:02}/{m:02}/{y:04}"),
                2 => format!("{y:04}-{m:02}-{d:02}T12:30:00+01:00"),
                _ => format!("{d}/{m}/{y}"),
            })
            .prop_flat_map(|s| near(Just(s).boxed()))
            .boxed()
    }

    fn guids() -> BoxedStrategy<String> {
        (any::<u128>(), any::<bool>(), 0..4u8, 0..40usize)
            .prop_map(|(n, upper, form, cut)| {
                let u = uuid::Uuid::from_u128(n);
                let s = match form {
                    0 => u.hyphenated().to_string(),
                    1 => u.braced().to_string(),
                    2 => u.simple().to_string(),
                    _ => u.hyphenated().to_string().chars().take(cut).collect(),
                };
                if upper { s.to_uppercase() } else { s }
            })
            .prop_flat_map(|s| near(Just(s).boxed()))
            .boxed()
    }

    fn emails() -> BoxedStrategy<String> {
        near("[ ]?[a-zA-Z0-9.+ ]{0,6}@{0,2}[a-z0-9.\\-]{0,6}[ ]?".boxed())
    }

    fn countries() -> BoxedStrategy<String> {
        near("[ ]?[a-zA-Z]{0,3}[ ]?".boxed())
    }

    /// Arbitrary text and every near-valid shape.
    fn any_input() -> BoxedStrategy<String> {
        prop_oneof![
            any::<String>(),
            "\\PC*",
            digits_with_separators(),
            finnish_ids(),
            swedish_ids(),
            phones(),
            dates(),
            guids(),
            emails(),
            countries(),
        ]
        .boxed()
    }

    fn regions() -> BoxedStrategy<String> {
        prop_oneof![
            4 => select(vec!["SE", "NO", "FI", "DK", "GB"]).prop_map(str::to_owned),
            1 => "[A-Za-z]{0,3}",
            1 => "\\PC{0,3}",
        ]
        .boxed()
    }

    /// Market dates: a two-digit Swedish year is read relative to it.
    fn todays() -> impl Strategy<Value = Date> {
        (1990..2200i16, 1..=12i8, 1..=28i8).prop_map(|(y, m, d)| Date::constant(y, m, d))
    }

    fn known<T>(r: &Result<T, &'static str>) -> Result<(), TestCaseError> {
        if let Err(m) = r {
            prop_assert!(MESSAGES.contains(m), "unknown message {m:?}");
        }
        Ok(())
    }

    fn is_e164(s: &str) -> bool {
        s.strip_prefix('+')
            .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
    }

    fn is_iso_date(s: &str) -> bool {
        let b = s.as_bytes();
        b.len() == 10
            && b.iter().enumerate().all(|(i, c)| match i {
                4 | 7 => *c == b'-',
                _ => c.is_ascii_digit(),
            })
    }

    fn is_lower_guid(s: &str) -> bool {
        s.len() == 36
            && s.bytes().enumerate().all(|(i, c)| match i {
                8 | 13 | 18 | 23 => c == b'-',
                _ => matches!(c, b'0'..=b'9' | b'a'..=b'f'),
            })
    }

    fn check_apply(
        n: Normalizer,
        raw: &str,
        region: &str,
        today: Date,
    ) -> Result<(), TestCaseError> {
        let r = n.apply(raw, region, today);
        known(&r)?;
        let Ok(out) = r else { return Ok(()) };
        // Normalised output is a fixed point.
        prop_assert_eq!(n.apply(&out, region, today), Ok(out.clone()));
        match n {
            Normalizer::Trim => prop_assert!(!out.is_empty() && out.trim() == out),
            Normalizer::Email => prop_assert!(out.contains('@') && out.trim() == out),
            Normalizer::Phone => prop_assert!(is_e164(&out), "{out}"),
            Normalizer::PersonalId if region == "SE" => {
                prop_assert!(out.len() == 12 && out.bytes().all(|b| b.is_ascii_digit()))
            }
            Normalizer::PersonalId => {
                prop_assert_eq!(region, "FI");
                prop_assert!(out.len() == 11 && out.is_ascii() && out == out.to_uppercase());
            }
            Normalizer::Country => prop_assert!(
                out.len() == 2 && out.bytes().all(|b| b.is_ascii_uppercase()),
                "{out}"
            ),
            Normalizer::Date => prop_assert!(is_iso_date(&out), "{out}"),
        }
        Ok(())
    }

    proptest! {
        // Phone parsing is slow in a debug build; these counts keep the run to a few seconds.
        #![proptest_config(ProptestConfig::with_cases(400))]

        #[test]
        fn apply_never_panics_and_normalises(
            raw in any_input(),
            region in regions(),
            today in todays(),
        ) {
            for n in NORMALIZERS {
                check_apply(n, &raw, &region, today)?;
            }
        }

        #[test]
        fn personal_ids_never_panic(
            raw in prop_oneof![finnish_ids(), swedish_ids(), digits_with_separators()],
            region in regions(),
            today in todays(),
            any_today in (-9999..=9999i16, 1..=12i8, 1..=28i8).prop_map(|(y, m, d)| Date::constant(y, m, d)),
        ) {
            check_apply(Normalizer::PersonalId, &raw, &region, today)?;
            for region in ["SE", "FI"] {
                check_apply(Normalizer::PersonalId, &raw, region, today)?;
                // Any date the type allows: no overflow, though far from today the shape may differ.
                known(&personal_id(&raw, region, any_today))?;
            }
        }

        #[test]
        fn phones_never_panic(raw in prop_oneof![phones(), digits_with_separators()], region in regions()) {
            let r = phone(&raw, &region);
            known(&r)?;
            if let Ok(out) = r {
                prop_assert!(is_e164(&out), "{out}");
                prop_assert_eq!(phone(&out, &region), Ok(out.clone()));
            }
        }

        #[test]
        fn emails_never_panic(raw in prop_oneof![emails(), any::<String>()]) {
            let r = email(&raw);
            known(&r)?;
            if let Ok(out) = r {
                prop_assert_eq!(email(&out), Ok(out.clone()));
            }
        }

        #[test]
        fn country_codes_never_panic(raw in prop_oneof![countries(), any::<String>()]) {
            let r = country_code(&raw);
            known(&r)?;
            if let Ok(out) = r {
                prop_assert!(out.len() == 2 && out.bytes().all(|b| b.is_ascii_uppercase()));
                prop_assert_eq!(country_code(&out), Ok(out.clone()));
            }
        }

        #[test]
        fn dates_never_panic(raw in prop_oneof![dates(), any::<String>()]) {
            if let Some(d) = parse_date(&raw) {
                let iso = d.to_string();
                prop_assert!(is_iso_date(&iso), "{iso}");
                prop_assert_eq!(parse_date(&iso), Some(d));
            }
        }

        #[test]
        fn guids_never_panic(raw in prop_oneof![guids(), any::<String>()]) {
            let r = guid(&raw);
            known(&r)?;
            if let Ok(out) = r {
                prop_assert!(is_lower_guid(&out), "{out}");
                prop_assert_eq!(guid(&out), Ok(out.clone()));
                prop_assert_eq!(out, raw.to_ascii_lowercase());
            }
        }
    }
}
