//! The SPI route table, loaded from `mappings/routes.toml`: which operation a method and path
//! (below `/{tenant_id}/{market_id}`) name. Unknown path: 404; known path, other method: 405.

use std::sync::Arc;

use http::Method;
use serde::Deserialize;

use super::Operation;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteFile {
    route: Vec<RouteSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteSpec {
    method: String,
    path: String,
    operation: Operation,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    /// A parameter, by name (the name is what error messages call it).
    Param(Arc<str>),
}

#[derive(Debug)]
struct Route {
    method: Method,
    parts: Vec<Part>,
    template: Arc<str>,
    operation: Operation,
}

impl Route {
    fn literals(&self) -> usize {
        self.parts
            .iter()
            .filter(|p| matches!(p, Part::Literal(_)))
            .count()
    }

    fn matches(&self, segments: &[&str]) -> bool {
        self.parts.len() == segments.len()
            && self.parts.iter().zip(segments).all(|(p, s)| {
                matches!(p, Part::Param(_)) || matches!(p, Part::Literal(l) if l == s)
            })
    }
}

/// A matched route: the operation, its template (what logs show) and the path parameter with
/// its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matched {
    pub operation: Operation,
    pub template: Arc<str>,
    pub param: Option<(Arc<str>, String)>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum RouteError {
    NotFound,
    /// The path exists with these methods.
    MethodNotAllowed(String),
}

#[derive(Debug)]
pub struct RouteTable {
    routes: Vec<Route>,
}

impl RouteTable {
    pub fn parse(text: &str) -> Result<RouteTable, String> {
        let file: RouteFile = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut routes = Vec::new();
        for (i, spec) in file.route.into_iter().enumerate() {
            let method = Method::from_bytes(spec.method.as_bytes())
                .map_err(|_| format!("route[{i}].method: '{}' is not a method", spec.method))?;
            let Some(relative) = spec.path.strip_prefix('/') else {
                return Err(format!("route[{i}].path: must start with '/'"));
            };
            let parts: Vec<Part> = relative
                .split('/')
                .map(
                    |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                        Some(name) => Part::Param(name.into()),
                        None => Part::Literal(s.to_owned()),
                    },
                )
                .collect();
            if parts.iter().filter(|p| matches!(p, Part::Param(_))).count() > 1 {
                return Err(format!("route[{i}].path: at most one parameter"));
            }
            routes.push(Route {
                method,
                parts,
                template: spec.path.into(),
                operation: spec.operation,
            });
        }
        // Most literal segments first: `/customers/lookup` before `/customers/{customer_id}`.
        routes.sort_by_key(|r| std::cmp::Reverse(r.literals()));
        Ok(RouteTable { routes })
    }

    /// Matches raw (still percent-encoded) segments; the parameter comes back decoded.
    pub fn find(&self, method: &Method, segments: &[&str]) -> Result<Matched, RouteError> {
        // Iterators, not collected lists: this runs on every request.
        let candidates = || self.routes.iter().filter(|r| r.matches(segments));
        let Some(best) = candidates().next() else {
            return Err(RouteError::NotFound);
        };
        let best_literals = best.literals();
        let same_path = || candidates().filter(move |r| r.literals() == best_literals);
        let Some(route) = same_path().find(|r| r.method == method) else {
            let mut allow: Vec<&str> = same_path().map(|r| r.method.as_str()).collect();
            allow.dedup();
            return Err(RouteError::MethodNotAllowed(allow.join(", ")));
        };
        let param = route.parts.iter().zip(segments).find_map(|(p, s)| match p {
            Part::Param(name) => Some((
                name.clone(),
                percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned(),
            )),
            Part::Literal(_) => None,
        });
        Ok(Matched {
            operation: route.operation,
            template: route.template.clone(),
            param,
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::collection::vec;
    use proptest::prelude::*;
    use proptest::sample::select;

    use super::*;

    fn table() -> &'static RouteTable {
        static TABLE: std::sync::LazyLock<RouteTable> = std::sync::LazyLock::new(|| {
            RouteTable::parse(include_str!("../../mappings/routes.toml")).unwrap()
        });
        &TABLE
    }

    #[test]
    fn lookup_alias_wins_over_the_customer_id() {
        let m = table()
            .find(&Method::GET, &["customers", "lookup"])
            .unwrap();
        assert_eq!(m.operation, Operation::Lookup);
        let m = table().find(&Method::GET, &["customers", "abc"]).unwrap();
        assert_eq!(m.operation, Operation::GetCustomer);
        assert_eq!(m.param, Some(("customer_id".into(), "abc".to_owned())));
    }

    #[test]
    fn undo_aliases_and_405() {
        for (method, path) in [
            (Method::DELETE, &["customers", "x", "redeem"][..]),
            (Method::POST, &["customers", "x", "undo-redeem"][..]),
            (Method::POST, &["customers", "x", "redeem", "undo"][..]),
        ] {
            assert_eq!(
                table().find(&method, path).unwrap().operation,
                Operation::UndoRedeem
            );
        }
        assert_eq!(
            table().find(&Method::DELETE, &["consents"]),
            Err(RouteError::MethodNotAllowed("GET".into()))
        );
        assert_eq!(
            table().find(&Method::GET, &["nope"]),
            Err(RouteError::NotFound)
        );
    }

    #[test]
    fn parameters_are_decoded() {
        let m = table().find(&Method::GET, &["customers", "..%2F"]).unwrap();
        assert_eq!(m.param, Some(("customer_id".into(), "../".to_owned())));
    }

    /// The table's methods, other standard ones, and any other token RFC 9110 allows as a method.
    fn methods() -> impl Strategy<Value = Method> {
        let routed = select(vec![
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ]);
        let other = select(vec![
            Method::HEAD,
            Method::OPTIONS,
            Method::TRACE,
            Method::CONNECT,
        ]);
        let token = "[-!#$%&'*+.^_`|~0-9A-Za-z]{1,12}"
            .prop_map(|t| Method::from_bytes(t.as_bytes()).expect("a token is a method"));
        prop_oneof![6 => routed, 1 => other, 1 => token]
    }

    /// Path segments as they arrive: the table's literals, traversal and escapes (valid, invalid,
    /// truncated, non-UTF-8), and any text.
    fn segment() -> BoxedStrategy<String> {
        let literals: &[&str] = &[
            "customers",
            "lookup",
            "redeem",
            "undo",
            "undo-redeem",
            "transactions",
            "consents",
            "Customers",
            "redeem%2Fundo",
        ];
        let odd: &[&str] = &[
            "",
            ".",
            "..",
            "..%2F",
            "%2e%2e",
            "%",
            "%F",
            "%G1",
            "%FF%C3",
            "%C3%A9",
            "%e2%82%ac",
            "%00",
            "a26d8975-3b86-43c0-9b12-a86401074770",
            "é",
            "{customer_id}",
        ];
        let escaped = vec(any::<u8>(), 1..6).prop_map(|bytes| {
            bytes
                .iter()
                .map(|b| format!("%{b:02X}"))
                .collect::<String>()
        });
        prop_oneof![
            4 => select(literals).prop_map(str::to_owned),
            3 => select(odd).prop_map(str::to_owned),
            2 => "\\PC{0,12}",
            1 => escaped,
            1 => ("\\PC{0,4}", select(odd), "\\PC{0,4}").prop_map(|(a, b, c)| format!("{a}{b}{c}")),
        ]
        .boxed()
    }

    /// Paths: a route's template with its parameter (and now and then a literal) replaced by any
    /// segment, or 0 to 6 segments of anything.
    fn paths() -> impl Strategy<Value = Vec<String>> {
        let templates: Vec<String> = table()
            .routes
            .iter()
            .map(|r| r.template.to_string())
            .collect();
        let templated = (select(templates), vec((segment(), 0..8u8), 6)).prop_map(|(t, fill)| {
            t[1..]
                .split('/')
                .zip(fill)
                .map(|(part, (other, dice))| {
                    if part.starts_with('{') || dice == 0 {
                        other
                    } else {
                        part.to_owned()
                    }
                })
                .collect()
        });
        prop_oneof![3 => templated, 2 => vec(segment(), 0..=6)]
    }

    /// Percent-decoding written out: `%` and two hex digits is a byte, anything else is itself;
    /// bytes that are no UTF-8 become U+FFFD.
    fn decoded(segment: &str) -> String {
        let digit = |b: Option<&u8>| b.and_then(|b| char::from(*b).to_digit(16));
        let bytes = segment.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match (bytes[i], digit(bytes.get(i + 1)), digit(bytes.get(i + 2))) {
                (b'%', Some(high), Some(low)) => {
                    out.push(u8::try_from(high * 16 + low).unwrap());
                    i += 3;
                }
                (b, _, _) => {
                    out.push(b);
                    i += 1;
                }
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Whether a template (`/customers/{customer_id}`) takes these raw segments.
    fn takes(template: &str, segments: &[&str]) -> bool {
        let parts: Vec<&str> = template[1..].split('/').collect();
        parts.len() == segments.len()
            && parts
                .iter()
                .zip(segments)
                .all(|(p, s)| p.starts_with('{') || p == s)
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 512,
            rng_algorithm: proptest::test_runner::RngAlgorithm::XorShift,
            ..ProptestConfig::default()
        })]

        #[test]
        fn any_method_and_path_routes_or_refuses(method in methods(), segments in paths()) {
            let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
            let routes = &table().routes;
            match table().find(&method, &segments) {
                Ok(m) => {
                    prop_assert!(takes(&m.template, &segments), "{} for {segments:?}", m.template);
                    prop_assert!(
                        routes.iter().any(|r| r.method == method
                            && r.template == m.template
                            && r.operation == m.operation),
                        "{method} {} is no route", m.template
                    );
                    // The parameter is named as in the template and is its segment, decoded.
                    let expected = m.template[1..].split('/').zip(&segments).find_map(|(p, s)| {
                        let name = p.strip_prefix('{')?.strip_suffix('}')?;
                        Some((Arc::from(name), decoded(s)))
                    });
                    prop_assert_eq!(m.param, expected);
                }
                Err(RouteError::MethodNotAllowed(allow)) => {
                    let listed: Vec<&str> = allow.split(", ").collect();
                    prop_assert!(!allow.is_empty());
                    for (i, name) in listed.iter().enumerate() {
                        prop_assert!(!listed[..i].contains(name), "{allow} repeats {name}");
                        let other = Method::from_bytes(name.as_bytes()).unwrap();
                        prop_assert_ne!(&other, &method);
                        // Every method offered routes this very path.
                        prop_assert!(
                            table().find(&other, &segments).is_ok(),
                            "{allow} offers {name} for {segments:?}, which it does not route"
                        );
                    }
                }
                Err(RouteError::NotFound) => {
                    prop_assert!(
                        !routes.iter().any(|r| takes(&r.template, &segments)),
                        "{segments:?} has a route"
                    );
                }
            }
        }
    }
}
