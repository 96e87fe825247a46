//! The request and response the engine sees: a native mirror of the WIT
//! `types` interface, plus helpers for headers, query strings and SCIM JSON.

use percent_encoding::percent_decode_str;

use crate::error::ScimError;

pub const SCIM_CONTENT_TYPE: &str = "application/scim+json";

/// Host-supplied context of a request (see the WIT `request-context`).
#[derive(Debug, Clone, Default)]
pub struct Context {
    pub tenant: String,
    pub base_url: String,
    pub request_id: String,
    pub subject: Option<String>,
    pub max_payload_bytes: u64,
    pub signing_key: Vec<u8>,
}

/// One HTTP request below the SCIM base.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub context: Context,
}

impl Request {
    /// First value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Decoded query parameters in order; `+` means space.
    pub fn query_params(&self) -> Vec<(String, String)> {
        parse_query(&self.query)
    }

    /// The body parsed as a JSON object.
    pub fn json_object(&self) -> Result<serde_json::Map<String, serde_json::Value>, ScimError> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Err(ScimError::invalid_syntax(
                "The request body is empty; a JSON object is required",
            ));
        }
        match serde_json::from_slice::<serde_json::Value>(&self.body) {
            Ok(serde_json::Value::Object(map)) => Ok(map),
            Ok(_) => Err(ScimError::invalid_syntax(
                "The request body must be a JSON object",
            )),
            Err(e) => Err(ScimError::invalid_syntax(format!(
                "The request body is not valid JSON: {e}"
            ))),
        }
    }
}

/// Decodes an `application/x-www-form-urlencoded` style query string.
pub fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode_component(k), decode_component(v))
        })
        .collect()
}

/// Percent-decodes one query component, with `+` as space. Invalid UTF-8 is
/// replaced rather than rejected; the filter parser reports what it cannot read.
pub fn decode_component(s: &str) -> String {
    let spaced = s.replace('+', " ");
    percent_decode_str(&spaced).decode_utf8_lossy().into_owned()
}

/// One HTTP response.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Key/value pairs for the host's request log, never sent to the client.
    pub log: Vec<(String, String)>,
}

impl Response {
    /// A SCIM JSON response.
    pub fn json(status: u16, body: &serde_json::Value) -> Self {
        Self::json_bytes(status, serde_json::to_vec(body).unwrap_or_default())
    }

    /// A SCIM JSON response from a body already written.
    pub fn json_bytes(status: u16, body: Vec<u8>) -> Self {
        Response {
            status,
            headers: vec![("content-type".into(), SCIM_CONTENT_TYPE.into())],
            body,
            log: Vec::new(),
        }
    }

    /// A response without body (204, 304).
    pub fn empty(status: u16) -> Self {
        Response {
            status,
            headers: vec![("content-type".into(), SCIM_CONTENT_TYPE.into())],
            body: Vec::new(),
            log: Vec::new(),
        }
    }

    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    /// Adds a key/value pair to the host's log line.
    pub fn with_log(mut self, key: &str, value: impl Into<String>) -> Self {
        self.log.push((key.to_string(), value.into()));
        self
    }

    /// First value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body parsed as JSON (tests and tools).
    pub fn body_json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

impl From<ScimError> for Response {
    /// The error body, and for the host's sync log its `scimType` (or
    /// status) and detail.
    fn from(e: ScimError) -> Self {
        let reason = e
            .scim_type
            .map_or_else(|| format!("http-{}", e.status), |t| t.as_str().to_string());
        Response::json(e.status, &e.to_json())
            .with_log("error", reason)
            .with_log("detail", e.detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_decodes_plus_and_percent() {
        let q = parse_query("filter=userName+eq+%22a+b%22&count=2&aadOptscim062020");
        assert_eq!(q[0], ("filter".into(), "userName eq \"a b\"".into()));
        assert_eq!(q[1], ("count".into(), "2".into()));
        assert_eq!(q[2], ("aadOptscim062020".into(), "".into()));
    }

    #[test]
    fn encoded_plus_stays_plus() {
        let q = parse_query("filter=userName%20eq%20%22a%2Bb%22");
        assert_eq!(q[0].1, "userName eq \"a+b\"");
    }
}
