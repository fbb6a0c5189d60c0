//! A Sitoo order as the facts of a Voyado receipt: the arithmetic and the checks a declarative
//! rule cannot do, pure (no I/O, no clock). The mapping's `[[receipt]]` rules then name the
//! fields; `events.rs` adds what only Voyado knows (a used bonus check's number) and sends it, and
//! `map --order` (`dryrun.rs`) shows it without Voyado.
//!
//! Signs follow Voyado's "Register a return": each row keeps its own sign, a returned row has a
//! negative `quantity` and a positive `grossPaidPrice` and `taxAmount`; the receipt's total and
//! payments carry the order's own signs, so a refund is negative and an exchange nets out. A row's
//! `direction` (`sale` or `return`) is what the rules turn into Voyado's row type.

use rust_decimal::Decimal;
use serde_json::{Map, Value, json};

use crate::mapping::{self, decimal};

/// Sitoo's `orderstateid` (REST API v2, "Orders").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderState {
    Open,
    Closed,
    Cancelled,
    Abandoned,
    /// Missing, or a code Sitoo does not document.
    Unknown,
}

impl OrderState {
    pub fn of(order: &Value) -> OrderState {
        match order.get("orderstateid").and_then(Value::as_i64) {
            Some(0) => OrderState::Open,
            Some(10) => OrderState::Closed,
            Some(20) => OrderState::Cancelled,
            Some(-1) => OrderState::Abandoned,
            _ => OrderState::Unknown,
        }
    }

    /// The state's name, as log lines give it.
    pub fn name(self) -> &'static str {
        match self {
            OrderState::Open => "Open",
            OrderState::Closed => "Closed",
            OrderState::Cancelled => "Cancelled",
            OrderState::Abandoned => "Abandoned",
            OrderState::Unknown => "Unknown",
        }
    }
}

/// Why an order cannot be booked as it stands. Voyado can never correct a receipt, so such an
/// order is refused for good rather than guessed at.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unbookable {
    #[error(
        "orderitems[{row}].quantity {quantity} is not a whole number: Voyado books whole units"
    )]
    FractionalQuantity { row: usize, quantity: String },
    #[error("orderitems[{row}].quantity is missing, zero, past Voyado's range or not a number")]
    NoQuantity { row: usize },
    #[error("orderitems[{row}]: the quantity and the amounts have opposite signs")]
    SignsDisagree { row: usize },
    #[error("the order has no rows")]
    NoRows,
    #[error("{field} is missing or not an amount")]
    NoAmount { field: String },
    #[error("orderdate is missing or not a time")]
    NoDate,
    #[error("the order names no store (additionaldata.store-externalid, eshopid)")]
    NoStore,
    #[error("moneytotal_gross_all's sign disagrees with the rows' or the payments'")]
    TotalsDisagree,
}

/// What the order gives the receipt besides the rules' own reading of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Derived {
    /// The `receipt` root without `bonus_checks` (their numbers are Voyado's).
    pub root: Map<String, Value>,
    /// The ids of the bonus checks the POS wrote on the rows, in order.
    pub bonus_check_ids: Vec<String>,
    /// Whether any row is a sale: a pure refund never creates a contact.
    pub sells: bool,
}

/// Where the receipt is booked and how its facts read, from the market and the account.
pub struct Context<'a> {
    pub account_id: u64,
    /// The event's order id (validated), never the order's own field: the receipt's id is made
    /// of it, and a wrong one would make every later order a "duplicate".
    pub order_id: u64,
    pub timezone: &'a jiff::tz::TimeZone,
    pub currency: &'a str,
}

/// The receipt facts of `order`, or why it cannot be booked.
pub fn derive(order: &Value, at: &Context<'_>) -> Result<Derived, Unbookable> {
    let mut bonus_check_ids = Vec::new();
    let mut promotions = Vec::new();
    let mut items = Vec::new();
    let (mut sells, mut returns) = (false, false);
    for (row, item) in order["orderitems"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let extra = |name: &str| text(&item["additionaldata"][name]);
        bonus_check_ids.extend(extra("crm-bonuscheckid"));
        promotions.extend(extra("crm-promotionid"));
        let facts = row_facts(row, item)?;
        let returned = facts["direction"] == "return";
        // A free bag or gift beside a refund does not make the order a sale.
        let sold = !returned && facts["gross"] != json!(0);
        (sells, returns) = (sells || sold, returns || returned);
        items.push(facts);
    }
    if items.is_empty() {
        return Err(Unbookable::NoRows);
    }
    let total = amount(&order["moneytotal_gross_all"], "moneytotal_gross_all")?;
    let mut paid = Decimal::ZERO;
    let mut payments = Vec::new();
    for (i, p) in order["payments"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let value = amount(&p["moneyamount"], &format!("payments[{i}].moneyamount"))?;
        paid = paid
            .checked_add(value)
            .ok_or_else(|| Unbookable::NoAmount {
                field: format!("payments[{i}].moneyamount"),
            })?;
        let name = text(&p["name"]).unwrap_or_else(|| "other".into());
        payments.push(json!({
            "type": name.to_lowercase().replace(' ', ""),
            "value": number(value),
            "description": name,
        }));
    }
    // A refund that adds to a customer's purchases (or a sale that takes from them) would stay
    // wrong in Voyado for good.
    let opposed = |a: Decimal, b: Decimal| {
        (a > Decimal::ZERO && b < Decimal::ZERO) || (a < Decimal::ZERO && b > Decimal::ZERO)
    };
    if (returns && !sells && total > Decimal::ZERO)
        || (sells && !returns && total < Decimal::ZERO)
        || (!payments.is_empty() && opposed(paid, total))
    {
        return Err(Unbookable::TotalsDisagree);
    }
    let zone = text(&order["additionaldata"]["pos-timezone"])
        .and_then(|tz| jiff::tz::TimeZone::get(&tz).ok())
        .unwrap_or_else(|| at.timezone.clone());
    let created = order["orderdate"]
        .as_i64()
        .and_then(|s| jiff::Timestamp::from_second(s).ok())
        .ok_or(Unbookable::NoDate)?
        .to_zoned(zone)
        .strftime("%Y-%m-%dT%H:%M:%S%:z")
        .to_string();
    // A web order has no store of its own: its site (eshop) stands for it.
    let store = text(&order["additionaldata"]["store-externalid"])
        .or_else(|| order["eshopid"].as_u64().map(|id| id.to_string()))
        .ok_or(Unbookable::NoStore)?;
    let order_id = at.order_id;
    let facts = [
        (
            "unique_id",
            json!(format!("sitoo-{}-{order_id}", at.account_id)),
        ),
        (
            "number",
            json!(
                text(&order["additionaldata"]["pos-receiptid"])
                    .unwrap_or_else(|| order_id.to_string())
            ),
        ),
        ("created", json!(created)),
        ("store", json!(store)),
        (
            "currency",
            json!(text(&order["currencycode"]).unwrap_or_else(|| at.currency.to_owned())),
        ),
        ("total", number(total)),
        ("items", Value::Array(items)),
        ("payments", Value::Array(payments)),
        ("promotions", json!(promotions)),
    ];
    let root = facts
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect();
    Ok(Derived {
        root,
        bonus_check_ids,
        sells,
    })
}

/// One order row: its direction from its quantity's sign, the quantity as a whole number with
/// that sign, the row's gross and tax as positive amounts, and Sitoo's per-unit discount as the
/// row's discount (per unit × units), negative as Voyado's example shows a discount.
fn row_facts(row: usize, item: &Value) -> Result<Value, Unbookable> {
    let quantity = decimal(&item["quantity"]).ok_or(Unbookable::NoQuantity { row })?;
    if !quantity.fract().is_zero() {
        return Err(Unbookable::FractionalQuantity {
            row,
            quantity: quantity.normalize().to_string(),
        });
    }
    // Voyado's quantity is a 32-bit integer.
    let units: i32 = quantity
        .try_into()
        .ok()
        .filter(|u| *u != 0)
        .ok_or(Unbookable::NoQuantity { row })?;
    let field = |name: &str| format!("orderitems[{row}].{name}");
    let net = amount(&item["moneyitemtotal_net"], &field("moneyitemtotal_net"))?;
    let tax = amount(&item["moneyitemtotal_vat"], &field("moneyitemtotal_vat"))?;
    let tax_percent = amount(&item["vatvalue"], &field("vatvalue"))?;
    let discount = match &item["moneydiscount"] {
        Value::Null => Decimal::ZERO,
        given => amount(given, &field("moneydiscount"))?,
    };
    let returned = units < 0;
    // Each amount is zero or has the row's sign.
    let against = |d: Decimal| !d.is_zero() && (d.is_sign_negative() != returned);
    if against(net) || against(tax) {
        return Err(Unbookable::SignsDisagree { row });
    }
    let too_large = || Unbookable::NoAmount {
        field: field("moneyitemtotal_net"),
    };
    let gross = net.checked_add(tax).ok_or_else(too_large)?;
    let discount = discount
        .abs()
        .checked_mul(Decimal::from(units.unsigned_abs()))
        .ok_or_else(|| Unbookable::NoAmount {
            field: field("moneydiscount"),
        })?;
    let discounts: Vec<Value> = (!discount.is_zero())
        .then(|| json!({ "value": number(-discount) }))
        .into_iter()
        .collect();
    Ok(json!({
        "direction": if returned { "return" } else { "sale" },
        "sku": text(&item["sku"]).unwrap_or_default(),
        "name": text(&item["productname"]).unwrap_or_default(),
        "quantity": units,
        "gross": number(gross.abs()),
        "tax": number(tax.abs()),
        "tax_percent": number(tax_percent),
        "discounts": discounts,
    }))
}

/// The rules' source document: the order, the derived facts (with the bonus checks' numbers),
/// and the contact it is booked on (`type` as Voyado names it, when known).
pub fn source(
    order: &Value,
    mut derived: Derived,
    check_numbers: Vec<String>,
    contact_id: &str,
    contact_type: Option<&str>,
) -> Value {
    derived
        .root
        .insert("bonus_checks".into(), json!(check_numbers));
    let mut source = Map::with_capacity(3);
    source.insert(mapping::ORDER.into(), order.clone());
    source.insert(mapping::RECEIPT.into(), Value::Object(derived.root));
    source.insert(
        mapping::CONTACT.into(),
        json!({ "id": contact_id, "type": contact_type }),
    );
    Value::Object(source)
}

/// A non-empty string (Sitoo writes absent values as `""`).
pub fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A Sitoo money value with its sign (a decimal string, or a number), which must be there.
fn amount(value: &Value, field: &str) -> Result<Decimal, Unbookable> {
    decimal(value).ok_or_else(|| Unbookable::NoAmount {
        field: field.to_owned(),
    })
}

/// A decimal as a JSON number (two places; exact for money).
fn number(d: Decimal) -> Value {
    let text = d.round_dp(2).normalize().to_string();
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn context() -> (jiff::tz::TimeZone, u64) {
        (jiff::tz::TimeZone::UTC, 1500)
    }

    /// An order with these rows (each given a VAT rate unless it has one), total and payments.
    fn order(mut rows: Value, total: &str, payments: Value) -> Value {
        for row in rows.as_array_mut().into_iter().flatten() {
            if let Some(row) = row.as_object_mut() {
                row.entry("vatvalue").or_insert(json!(25));
            }
        }
        json!({"orderid": 9, "eshopid": 1, "orderdate": 1_795_001_001, "orderstateid": 10,
               "currencycode": "SEK", "moneytotal_gross_all": total,
               "additionaldata": {"store-externalid": "200"},
               "orderitems": rows, "payments": payments})
    }

    fn derived(order: &Value) -> Result<Derived, Unbookable> {
        let (zone, account) = context();
        derive(
            order,
            &Context {
                account_id: account,
                order_id: 9,
                timezone: &zone,
                currency: "SEK",
            },
        )
    }

    #[test]
    fn a_refund_keeps_its_signs_as_voyado_books_a_return() {
        let refund = order(
            json!([{"sku": "T", "quantity": -2, "moneyitemtotal_net": "-320.00",
                    "moneyitemtotal_vat": "-80.00", "vatvalue": 25, "moneydiscount": "10.00"}]),
            "-400.00",
            json!([{"name": "Card", "moneyamount": "-400.00"}]),
        );
        let d = derived(&refund).unwrap();
        assert_eq!(d.root["total"], json!(-400));
        assert_eq!(d.root["payments"][0]["value"], json!(-400));
        assert_eq!(
            d.root["items"][0],
            json!({"direction": "return", "sku": "T", "name": "", "quantity": -2,
                   "gross": 400, "tax": 80, "tax_percent": 25,
                   "discounts": [{"value": -20}]})
        );
    }

    #[test]
    fn an_exchange_has_a_sale_and_a_return_and_the_net_total() {
        let exchange = order(
            json!([{"sku": "CAP", "quantity": "1.000", "moneyitemtotal_net": "160.00",
                    "moneyitemtotal_vat": "40.00", "moneydiscount": "0.00"},
                   {"sku": "SOCKS", "quantity": "-1.000", "moneyitemtotal_net": "-80.00",
                    "moneyitemtotal_vat": "-20.00"}]),
            "100.00",
            json!([{"name": "Card", "moneyamount": "100.00"}]),
        );
        let d = derived(&exchange).unwrap();
        let items = d.root["items"].as_array().unwrap();
        assert_eq!(
            (&items[0]["direction"], &items[0]["quantity"]),
            (&json!("sale"), &json!(1))
        );
        assert_eq!(
            (&items[1]["direction"], &items[1]["quantity"]),
            (&json!("return"), &json!(-1))
        );
        assert_eq!(items[1]["gross"], json!(100));
        assert_eq!(d.root["total"], json!(100));
    }

    #[test]
    fn a_row_that_cannot_be_booked_is_named() {
        let refused = |rows: Value| derived(&order(rows, "0", json!([]))).unwrap_err();
        let row = |quantity: Value, net: &str| json!({"quantity": quantity, "moneyitemtotal_net": net, "moneyitemtotal_vat": "0"});
        assert_eq!(
            refused(json!([row(json!(1), "0"), row(json!("0.350"), "0")])).to_string(),
            "orderitems[1].quantity 0.35 is not a whole number: Voyado books whole units"
        );
        assert_eq!(
            refused(json!([row(json!(1), "-10.00")])),
            Unbookable::SignsDisagree { row: 0 }
        );
        assert_eq!(
            refused(json!([row(json!(-1), "10.00")])),
            Unbookable::SignsDisagree { row: 0 }
        );
        assert_eq!(
            refused(json!([{"quantity": -1, "moneyitemtotal_net": "-100.00",
                            "moneyitemtotal_vat": "20.00"}])),
            Unbookable::SignsDisagree { row: 0 }
        );
        assert_eq!(
            refused(json!([row(json!(0), "10.00")])),
            Unbookable::NoQuantity { row: 0 }
        );
        assert_eq!(
            refused(json!([{"sku": "X"}])),
            Unbookable::NoQuantity { row: 0 }
        );
        assert_eq!(
            refused(json!([row(json!("3000000000"), "1.00")])),
            Unbookable::NoQuantity { row: 0 }
        );
        assert_eq!(
            refused(
                json!([{"quantity": 1, "moneyitemtotal_net": "1", "moneyitemtotal_vat": "0",
                            "vatvalue": "x"}])
            )
            .to_string(),
            "orderitems[0].vatvalue is missing or not an amount"
        );
        assert_eq!(refused(json!([])), Unbookable::NoRows);
        assert_eq!(
            refused(
                json!([{"quantity": 1, "moneyitemtotal_net": "abc", "moneyitemtotal_vat": "0"}])
            )
            .to_string(),
            "orderitems[0].moneyitemtotal_net is missing or not an amount"
        );
    }

    #[test]
    fn an_order_whose_facts_are_missing_or_contradict_is_refused() {
        let sale =
            json!([{"quantity": 1, "moneyitemtotal_net": "80.00", "moneyitemtotal_vat": "20.00"}]);
        let refund = json!([{"quantity": -1, "moneyitemtotal_net": "-80.00", "moneyitemtotal_vat": "-20.00"}]);
        let card = |v: &str| json!([{"name": "Card", "moneyamount": v}]);
        let refused = |o: Value| derived(&o).unwrap_err();
        assert_eq!(
            refused(order(refund.clone(), "100.00", card("100.00"))),
            Unbookable::TotalsDisagree
        );
        assert_eq!(
            refused(order(sale.clone(), "-100.00", card("-100.00"))),
            Unbookable::TotalsDisagree
        );
        assert_eq!(
            refused(order(sale.clone(), "100.00", card("-100.00"))),
            Unbookable::TotalsDisagree
        );
        let mut undated = order(sale.clone(), "100.00", card("100.00"));
        undated.as_object_mut().unwrap().remove("orderdate");
        assert_eq!(refused(undated), Unbookable::NoDate);
        let mut untotalled = order(sale.clone(), "100.00", card("100.00"));
        untotalled
            .as_object_mut()
            .unwrap()
            .remove("moneytotal_gross_all");
        assert_eq!(
            refused(untotalled).to_string(),
            "moneytotal_gross_all is missing or not an amount"
        );
        let mut nowhere = order(sale.clone(), "100.00", card("100.00"));
        nowhere.as_object_mut().unwrap().remove("eshopid");
        nowhere["additionaldata"] = json!({});
        assert_eq!(refused(nowhere), Unbookable::NoStore);
        // Amounts past what a decimal holds are refused, never a panic.
        let huge = "79228162514264337593543950335";
        let overflowing = json!([{"quantity": 2, "moneyitemtotal_net": huge,
                                  "moneyitemtotal_vat": huge, "moneydiscount": huge}]);
        assert!(matches!(
            refused(order(overflowing, "1", card("1"))),
            Unbookable::NoAmount { .. }
        ));
        // A free row beside a refund does not make it a sale (no contact is created for it).
        let refund_with_bag = json!([
            {"quantity": -1, "moneyitemtotal_net": "-80.00", "moneyitemtotal_vat": "-20.00"},
            {"quantity": 1, "moneyitemtotal_net": "0.00", "moneyitemtotal_vat": "0.00"}]);
        assert!(
            !derived(&order(refund_with_bag, "-100.00", card("-100.00")))
                .unwrap()
                .sells
        );
        assert!(
            derived(&order(sale.clone(), "100.00", card("100.00")))
                .unwrap()
                .sells
        );
        // A web order without a store of its own is booked on its site.
        let mut web = order(sale, "100.00", card("100.00"));
        web["additionaldata"] = json!({});
        assert_eq!(derived(&web).unwrap().root["store"], "1");
    }

    #[test]
    fn sitoo_order_states_are_its_codes() {
        let state = |id: Value| OrderState::of(&json!({ "orderstateid": id }));
        assert_eq!(state(json!(0)), OrderState::Open);
        assert_eq!(state(json!(10)), OrderState::Closed);
        assert_eq!(state(json!(20)), OrderState::Cancelled);
        assert_eq!(state(json!(-1)), OrderState::Abandoned);
        assert_eq!(state(json!("10")), OrderState::Unknown);
        assert_eq!(OrderState::of(&json!({})), OrderState::Unknown);
    }

    #[test]
    fn money_keeps_its_sign_and_is_exact() {
        let money = |v: Value| amount(&v, "x").unwrap();
        assert_eq!(
            number(money(json!("-160.00")) + money(json!("-40.00"))),
            json!(-200)
        );
        assert_eq!(number(money(json!("99.99"))), json!(99.99));
        assert_eq!(number(money(json!(12.5))), json!(12.5));
        assert!(amount(&json!("x"), "x").is_err());
    }

    /// A Sitoo amount or quantity as it may come: a decimal string of any size and sign, a JSON
    /// number, or something else.
    fn sitoo_number() -> impl Strategy<Value = Value> {
        prop_oneof![
            "-?[0-9]{1,30}(\\.[0-9]{1,3})?".prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(|f| json!(f)),
            crate::ops::tests::json_values(),
        ]
    }

    fn orders() -> impl Strategy<Value = Value> {
        let row = (
            sitoo_number(),
            sitoo_number(),
            sitoo_number(),
            sitoo_number(),
        )
            .prop_map(|(q, net, vat, discount)| {
                json!({"quantity": q, "moneyitemtotal_net": net, "moneyitemtotal_vat": vat,
                       "moneydiscount": discount})
            });
        let payment = sitoo_number().prop_map(|v| json!({"name": "Card", "moneyamount": v}));
        (
            proptest::collection::vec(row, 0..4),
            sitoo_number(),
            proptest::collection::vec(payment, 0..3),
            any::<bool>(),
        )
            .prop_map(|(rows, total, payments, as_paid)| {
                let mut o = order(json!(rows), "0", json!(payments));
                // Often the total is what was paid, so that booked orders are generated too.
                o["moneytotal_gross_all"] = match o["payments"][0]["moneyamount"].clone() {
                    Value::Null => total,
                    paid if as_paid => paid,
                    _ => total,
                };
                o
            })
    }

    proptest! {
        /// Any order is booked or refused, never a panic; a booked row's quantity is whole and
        /// carries the row's direction, its amounts are positive, and the total's sign agrees.
        #[test]
        fn any_order_is_receipt_facts_or_a_refusal(
            order in prop_oneof![orders(), crate::ops::tests::json_values()]
        ) {
            if let Ok(d) = derived(&order) {
                for item in d.root["items"].as_array().unwrap() {
                    let quantity = item["quantity"].as_i64();
                    prop_assert!(quantity.is_some(), "{item}");
                    prop_assert_eq!(item["direction"] == "return", quantity < Some(0));
                    prop_assert!(item["gross"].as_f64().is_some_and(|g| g >= 0.0), "{item}");
                }
            }
        }

        #[test]
        fn a_whole_quantity_in_any_form_is_booked_as_an_integer(
            units in -1_000i64..1_000, as_text in any::<bool>()
        ) {
            let quantity = if as_text { json!(format!("{units}.000")) } else { json!(units) };
            prop_assume!(units != 0);
            let net = format!("{}.00", units * 10);
            let d = derived(&order(
                json!([{"quantity": quantity, "moneyitemtotal_net": net, "moneyitemtotal_vat": "0"}]),
                "0", json!([]),
            )).unwrap();
            prop_assert_eq!(&d.root["items"][0]["quantity"], &json!(units));
        }
    }
}
