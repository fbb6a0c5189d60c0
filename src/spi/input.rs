//! Validation and normalisation of what the POS sends: search keys, ids and editable fields.
//!
//! Everything here is pure and runs before any Voyado call, so a bad value costs no upstream request.
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
    /// Normalises `raw` for a market whose ISO region is `region`.
    pub fn apply(self, raw: &str, region: &str) -> Result<String, &'static str> {
        match self {
            Normalizer::Trim => non_empty(raw.trim()).map(str::to_owned),
            Normalizer::Email => email(raw),
            Normalizer::Phone => phone(raw, region),
            Normalizer::PersonalId => personal_id(raw, region),
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
/// use sitoo_voyado_proxy::spi::input::phone;
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
        return Date::new(y.parse().ok()?, m.parse().ok()?, d.parse().ok()?).ok();
    }
    raw.get(..10)?.parse().ok()
}

/// Voyado accepts Swedish and Finnish personal ids only.
pub fn personal_id(raw: &str, region: &str) -> Result<String, &'static str> {
    match region {
        "SE" => swedish_personal_id(raw.trim(), jiff::Zoned::now().date()),
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
    let number: String = format!("{}{}", &id[..6], &id[7..10]);
    let n: u64 = number.parse().map_err(|_| BAD_PERSONAL_ID)?;
    if CHECK[(n % 31) as usize] != b[10] {
        return Err(BAD_PERSONAL_ID);
    }
    Ok(id)
}

/// Every id that goes into a Voyado URL must be a GUID: no `/`, `..`, `?` or `#` reaches upstream.
pub fn guid(raw: &str) -> Result<String, &'static str> {
    if raw.len() == 36 && uuid::Uuid::try_parse(raw).is_ok() {
        Ok(raw.to_ascii_lowercase())
    } else {
        Err("must be a GUID")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_become_e164_in_the_market_region() {
        assert_eq!(phone("0701112233", "SE").unwrap(), "+46701112233");
        assert_eq!(phone("0046701112233", "SE").unwrap(), "+46701112233");
        assert_eq!(phone(" 46701112233", "SE").unwrap(), "+46701112233");
        assert_eq!(phone("070-111 22 33", "SE").unwrap(), "+46701112233");
        assert_eq!(phone("41234567", "NO").unwrap(), "+4741234567");
        assert!(phone("12", "SE").is_err());
        assert!(phone("not a phone", "SE").is_err());
    }

    #[test]
    fn swedish_personal_ids_become_twelve_digits() {
        let today = Date::constant(2026, 11, 27);
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
    }

    #[test]
    fn finnish_ids_check_their_control_character() {
        assert_eq!(finnish_personal_id("131052-308t").unwrap(), "131052-308T");
        assert!(finnish_personal_id("131052-308U").is_err());
    }

    #[test]
    fn guids_only() {
        assert!(guid("a26d8975-3b86-43c0-9b12-a86401074770").is_ok());
        for bad in [
            "..%2F",
            "../x",
            "a26d8975-3b86-43c0-9b12-a8640107477",
            "{a26d8975-3b86-43c0-9b12-a86401074770}",
            "a26d89753b8643c09b12a86401074770",
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
        assert!(parse_date("1970-02-31").is_none());
    }
}
