//! Queries (RFC 7644 §3.4.2, §3.4.3; RFC 9865): the parameters, how they are
//! planned over the host's indexes, and how they are executed with index or
//! cursor paging, sorting and projection.

pub mod cursor;
mod exec;
#[cfg(test)]
mod exec_tests;
pub mod plan;
#[cfg(test)]
mod proptests;
mod sort;

use serde_json::{Map, Value};

use crate::error::{ScimError, ScimResult};
use crate::message::check_schema;
use crate::schema::CAPABILITIES;

pub use exec::{LIST_RESPONSE, run};

pub const SEARCH_REQUEST: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";

/// How the client pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Paging {
    /// `startIndex` (1-based; below 1 is read as 1).
    Index(u64),
    /// `cursor`: `None` (empty or bare `cursor`) asks for the first page.
    Cursor(Option<String>),
}

/// The parameters of a query, from a query string or a SearchRequest.
#[derive(Debug, Clone)]
pub struct Query {
    pub filter: Option<String>,
    pub sort_by: Option<String>,
    pub descending: bool,
    pub paging: Paging,
    /// Page size, already capped at `maxResults`.
    pub count: u64,
    pub attributes: Option<String>,
    pub excluded_attributes: Option<String>,
}

impl Default for Query {
    fn default() -> Self {
        Query {
            filter: None,
            sort_by: None,
            descending: false,
            paging: Paging::Index(1),
            count: CAPABILITIES.default_page_size,
            attributes: None,
            excluded_attributes: None,
        }
    }
}

fn parse_int(name: &str, v: &str) -> ScimResult<i64> {
    v.trim().parse::<i64>().map_err(|_| {
        ScimError::invalid_value(format!(
            "Query parameter '{name}' must be an integer, got '{v}'"
        ))
    })
}

fn sort_order(v: &str) -> ScimResult<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "" | "ascending" => Ok(false),
        "descending" => Ok(true),
        _ => Err(ScimError::invalid_value(format!(
            "sortOrder must be 'ascending' or 'descending', got '{v}'"
        ))),
    }
}

impl Query {
    /// Reads a query string. Parameter names are case-insensitive; unknown
    /// parameters are ignored (Entra appends flags of its own).
    pub fn from_params(params: &[(String, String)]) -> ScimResult<Self> {
        let mut q = Query::default();
        let mut start_index = None;
        let mut cursor = None;
        for (k, v) in params {
            match k.to_ascii_lowercase().as_str() {
                "filter" => q.filter = Some(v.clone()),
                "sortby" => q.sort_by = Some(v.clone()),
                "sortorder" => q.descending = sort_order(v)?,
                "startindex" => start_index = Some(parse_int(k, v)?),
                "count" => q.count = parse_int(k, v)?.max(0) as u64,
                "cursor" => cursor = Some(v.clone()),
                "attributes" => q.attributes = Some(v.clone()),
                "excludedattributes" => q.excluded_attributes = Some(v.clone()),
                _ => {}
            }
        }
        q.set_paging(start_index, cursor)?;
        Ok(q.capped())
    }

    /// Reads a SearchRequest body (RFC 7644 §3.4.3).
    pub fn from_search_request(body: Map<String, Value>) -> ScimResult<Self> {
        check_schema(&body, SEARCH_REQUEST)?;
        let mut q = Query::default();
        let mut start_index = None;
        let mut cursor = None;
        let bad = |name: &str, want: &str| {
            ScimError::invalid_syntax(format!("SearchRequest '{name}' must be {want}"))
        };
        for (k, v) in body {
            if v.is_null() {
                continue;
            }
            let as_str = |v: &Value| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| bad(&k, "a string"))
            };
            let as_int = |v: &Value| v.as_i64().ok_or_else(|| bad(&k, "an integer"));
            let as_list = |v: &Value| -> ScimResult<String> {
                match v {
                    Value::String(s) => Ok(s.clone()),
                    Value::Array(items) => items
                        .iter()
                        .map(|i| {
                            i.as_str()
                                .ok_or_else(|| bad(&k, "a list of attribute names"))
                        })
                        .collect::<ScimResult<Vec<_>>>()
                        .map(|v| v.join(",")),
                    _ => Err(bad(&k, "a list of attribute names")),
                }
            };
            match k.to_ascii_lowercase().as_str() {
                "filter" => q.filter = Some(as_str(&v)?),
                "sortby" => q.sort_by = Some(as_str(&v)?),
                "sortorder" => q.descending = sort_order(&as_str(&v)?)?,
                "startindex" => start_index = Some(as_int(&v)?),
                "count" => q.count = as_int(&v)?.max(0) as u64,
                "cursor" => cursor = Some(as_str(&v)?),
                "attributes" => q.attributes = Some(as_list(&v)?),
                "excludedattributes" => q.excluded_attributes = Some(as_list(&v)?),
                _ => {}
            }
        }
        q.set_paging(start_index, cursor)?;
        Ok(q.capped())
    }

    fn set_paging(&mut self, start_index: Option<i64>, cursor: Option<String>) -> ScimResult<()> {
        self.paging = match (start_index, cursor) {
            (Some(_), Some(_)) => {
                return Err(ScimError::invalid_value(
                    "Use either startIndex (index paging) or cursor (cursor paging), not both",
                ));
            }
            (Some(i), None) => Paging::Index(i.max(1) as u64),
            (None, Some(c)) if c.is_empty() => Paging::Cursor(None),
            (None, Some(c)) => Paging::Cursor(Some(c)),
            (None, None) => Paging::Index(1),
        };
        if matches!(self.paging, Paging::Cursor(_)) && self.sort_by.is_some() {
            return Err(ScimError::invalid_value(
                "Cursor paging walks resources in creation order and cannot be combined with sortBy; use startIndex to page sorted results",
            ));
        }
        Ok(())
    }

    /// `count` above `maxResults` is capped (advertised in
    /// /ServiceProviderConfig) rather than rejected.
    fn capped(mut self) -> Self {
        self.count = self.count.min(CAPABILITIES.max_results);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::parse_query;

    fn q(s: &str) -> ScimResult<Query> {
        Query::from_params(&parse_query(s))
    }

    #[test]
    fn paging_parameters() {
        assert_eq!(q("").unwrap().paging, Paging::Index(1));
        assert_eq!(q("startIndex=0").unwrap().paging, Paging::Index(1));
        assert_eq!(q("startindex=-5").unwrap().paging, Paging::Index(1));
        assert_eq!(q("cursor").unwrap().paging, Paging::Cursor(None));
        assert_eq!(q("cursor=").unwrap().paging, Paging::Cursor(None));
        assert_eq!(
            q("cursor=abc").unwrap().paging,
            Paging::Cursor(Some("abc".into()))
        );
        assert!(q("cursor=abc&startIndex=2").is_err());
        assert_eq!(q("count=100000").unwrap().count, CAPABILITIES.max_results);
        assert_eq!(q("count=-1").unwrap().count, 0);
        assert!(q("count=ten").is_err());
        assert!(q("sortOrder=sideways").is_err());
        assert!(q("sortOrder=DESCENDING").unwrap().descending);
        assert!(q("cursor&sortBy=userName").is_err());
    }

    #[test]
    fn search_request_bodies() {
        let body = serde_json::json!({
            "schemas": [SEARCH_REQUEST],
            "attributes": ["userName", "emails"],
            "filter": "userName sw \"a\"",
            "startIndex": 3, "count": 5, "sortOrder": "descending"
        });
        let q = Query::from_search_request(body.as_object().unwrap().clone()).unwrap();
        assert_eq!(q.attributes.as_deref(), Some("userName,emails"));
        assert_eq!(q.paging, Paging::Index(3));
        assert_eq!(q.count, 5);
        assert!(q.descending);
        for bad in [
            serde_json::json!({"schemas": ["urn:wrong"]}),
            serde_json::json!({"count": "5"}),
            serde_json::json!({"attributes": 5}),
        ] {
            let err = Query::from_search_request(bad.as_object().unwrap().clone()).unwrap_err();
            assert_eq!(err.scim_type, Some(crate::error::ScimType::InvalidSyntax));
        }
    }
}
