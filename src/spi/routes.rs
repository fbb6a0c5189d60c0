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
        let candidates: Vec<&Route> = self.routes.iter().filter(|r| r.matches(segments)).collect();
        let Some(best) = candidates.first() else {
            return Err(RouteError::NotFound);
        };
        let best_literals = best.literals();
        let same_path: Vec<&&Route> = candidates
            .iter()
            .filter(|r| r.literals() == best_literals)
            .collect();
        let Some(route) = same_path.iter().find(|r| r.method == method) else {
            let mut allow: Vec<&str> = same_path.iter().map(|r| r.method.as_str()).collect();
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
}
