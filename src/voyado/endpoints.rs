//! Every Voyado call the proxy makes (v2, and v3 where only v3 is documented to work), in one table: method, path template, and the name that
//! appears in logs (the template, never the filled-in URL).

use http::Method;

use crate::cluster::Part;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC};

/// Everything but letters, digits, `-` and `_` is encoded in a path segment (`.` too: no `..`).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_');

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    ContactId,
    ContactByKey,
    Contact,
    CreateContact,
    UpdateContact,
    UpdateContactType,
    Preference,
    Promotions,
    RedeemPromotion,
    BonusChecks,
    AvailableBonusChecks,
    RedeemedBonusChecks,
    RedeemBonusCheck,
    ReactivateVoucher,
    PointAccounts,
    MemberStatus,
    Transactions,
    Consents,
    PersonLookup,
    Receipts,
}

impl Endpoint {
    /// Every call the proxy makes, in the order `docs/VOYADO.md` lists them.
    pub const ALL: [Endpoint; 20] = {
        use Endpoint::*;
        [
            ContactId,
            ContactByKey,
            Contact,
            CreateContact,
            UpdateContact,
            UpdateContactType,
            Preference,
            Promotions,
            RedeemPromotion,
            BonusChecks,
            AvailableBonusChecks,
            RedeemedBonusChecks,
            RedeemBonusCheck,
            ReactivateVoucher,
            PointAccounts,
            MemberStatus,
            Transactions,
            Consents,
            PersonLookup,
            Receipts,
        ]
    };

    /// Method and path template; each `{}` is filled with one percent-encoded segment.
    pub const fn route(self) -> (Method, &'static str) {
        use Endpoint::*;
        match self {
            ContactId => (Method::GET, "/api/v2/contacts/id"),
            ContactByKey => (Method::GET, "/api/v2/contacts/{}/bykey"),
            Contact => (Method::GET, "/api/v2/contacts/{}"),
            CreateContact => (Method::POST, "/api/v2/contacts"),
            UpdateContact => (Method::POST, "/api/v2/contacts/{}"),
            // v2's page says this does not work for `Member`; v3's makes it the only way.
            UpdateContactType => (Method::POST, "/api/v3/contacts/{}/updateContactType"),
            // `{}` is acceptsEmail, acceptsSms or acceptsPostal; it also approves the contact.
            Preference => (Method::POST, "/api/v2/contacts/{}/preferences/{}"),
            Promotions => (Method::GET, "/api/v2/contacts/{}/promotions"),
            RedeemPromotion => (Method::POST, "/api/v2/contacts/{}/promotions/{}/redeem"),
            BonusChecks => (Method::GET, "/api/v2/contacts/{}/bonuschecks"),
            AvailableBonusChecks => (Method::GET, "/api/v2/contacts/{}/bonuschecks/available"),
            RedeemedBonusChecks => (Method::GET, "/api/v2/contacts/{}/bonuschecks/redeemed"),
            RedeemBonusCheck => (Method::POST, "/api/v2/contacts/{}/bonuschecks/{}/redeem"),
            ReactivateVoucher => (
                Method::POST,
                "/api/v2/promotions/reward-vouchers/{}/reactivate",
            ),
            PointAccounts => (Method::GET, "/api/v2/point-accounts"),
            MemberStatus => (Method::GET, "/api/v2/memberstatus"),
            Transactions => (Method::GET, "/api/v2/contacts/{}/transactions"),
            Consents => (Method::GET, "/api/v2/consents"),
            PersonLookup => (Method::GET, "/api/v2/personlookup/getpersonlookup"),
            Receipts => (Method::POST, "/api/v2/receipts"),
        }
    }

    pub fn is_write(self) -> bool {
        self.route().0 != Method::GET
    }

    /// Whether the first path segment is a contact id (what a write to it changes, and what a
    /// cached answer is about).
    pub fn names_contact(self) -> bool {
        // `/contacts/{type}/bykey` names a contact type, not a contact.
        let path = self.route().1;
        self != Endpoint::ContactByKey
            && (path.starts_with("/api/v2/contacts/{}") || path.starts_with("/api/v3/contacts/{}"))
    }

    /// What of a contact this call reads, or — a write — changes: an edit the profile, a redeem
    /// the offers; a change of type, a create or a receipt, anything.
    pub fn part(self) -> Part {
        use Endpoint::*;
        match self {
            ContactId | ContactByKey | Contact | UpdateContact | Preference => Part::Profile,
            Promotions | RedeemPromotion | BonusChecks | AvailableBonusChecks
            | RedeemedBonusChecks | RedeemBonusCheck | ReactivateVoucher | PointAccounts
            | Transactions => Part::Offers,
            CreateContact | UpdateContactType | MemberStatus | Consents | PersonLookup
            | Receipts => Part::All,
        }
    }

    /// Whether a write's answer is the contact as it now is (`IApiContact`: create and update,
    /// per Voyado's API reference), so it can stand for a read of it.
    pub fn answers_with_contact(self) -> bool {
        matches!(self, Endpoint::CreateContact | Endpoint::UpdateContact)
    }

    /// Writes after which a key (email, mobile, ...) may point at another contact, or at one
    /// where there was none.
    pub fn may_move_keys(self) -> bool {
        use Endpoint::*;
        matches!(
            self,
            CreateContact | UpdateContact | UpdateContactType | Preference
        )
    }

    /// The path with `segments` filled in, each percent-encoded so no `/`, `?` or `#` survives.
    pub fn path(self, segments: &[&str]) -> String {
        let template = self.route().1;
        let mut out = String::with_capacity(template.len() + 40);
        let mut parts = template.split("{}");
        let mut segments = segments.iter();
        if let Some(first) = parts.next() {
            out.push_str(first);
        }
        for part in parts {
            if let Some(segment) = segments.next() {
                out.extend(percent_encoding::utf8_percent_encode(segment, SEGMENT));
            }
            out.push_str(part);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reviewer's table lists every call, with its method, in the code's order.
    #[test]
    fn docs_voyado_md_lists_every_call() {
        let doc = include_str!("../../docs/VOYADO.md");
        let rows: Vec<&str> = doc.lines().filter(|l| l.starts_with("| `")).collect();
        assert_eq!(rows.len(), Endpoint::ALL.len(), "one row per call");
        for (endpoint, row) in Endpoint::ALL.iter().zip(rows) {
            let (method, path) = endpoint.route();
            assert!(
                row.starts_with(&format!("| `{method}` | `{path}` |")),
                "{endpoint:?}: {row}"
            );
        }
    }

    #[test]
    fn segments_are_encoded_into_the_template() {
        assert_eq!(
            Endpoint::RedeemBonusCheck.path(&["a", "b"]),
            "/api/v2/contacts/a/bonuschecks/b/redeem"
        );
        assert_eq!(
            Endpoint::Contact.path(&["../x?y#z"]),
            "/api/v2/contacts/%2E%2E%2Fx%3Fy%23z"
        );
    }
}
