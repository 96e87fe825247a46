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

    /// Whether the query string is UTF-8 once percent-decoded (the
    /// parameters themselves are decoded leniently, see [`decode_component`]).
    pub fn query_is_utf8(&self) -> bool {
        percent_decode_str(&self.query).decode_utf8().is_ok()
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
        match serde_json::from_slice::<Distinct>(&self.body) {
            Ok(Distinct(serde_json::Value::Object(map))) => Ok(map),
            Ok(_) => Err(ScimError::invalid_syntax(
                "The request body must be a JSON object",
            )),
            // Well-formed JSON that names a member twice or holds a NUL.
            Err(e) if e.classify() == serde_json::error::Category::Data => Err(
                ScimError::invalid_syntax(format!("The request body is refused: {e}")),
            ),
            Err(e) => Err(ScimError::invalid_syntax(format!(
                "The request body is not valid JSON: {e}"
            ))),
        }
    }
}

/// A JSON value whose objects each name a member once, names compared
/// case-insensitively as SCIM compares attribute names. RFC 8259 leaves
/// duplicate names open; keeping one of them silently would apply half of
/// what the client sent, so a request body with them is refused.
struct Distinct(serde_json::Value);

impl<'de> serde::Deserialize<'de> for Distinct {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(DistinctVisitor).map(Distinct)
    }
}

struct DistinctVisitor;

impl<'de> serde::de::Visitor<'de> for DistinctVisitor {
    type Value = serde_json::Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
        serde_json::Number::from_f64(v)
            .map(serde_json::Value::Number)
            .ok_or_else(|| E::custom("a number that is not finite"))
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
        without_nul(v)?;
        Ok(v.into())
    }

    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
        without_nul(&v)?;
        Ok(v.into())
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(Distinct(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(serde_json::Value::Array(out))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = serde_json::Map::new();
        let mut seen = std::collections::HashSet::new();
        while let Some(name) = map.next_key::<String>()? {
            without_nul(&name)?;
            if !seen.insert(name.to_ascii_lowercase()) {
                let shown: String = name.chars().take(64).collect();
                return Err(serde::de::Error::custom(format_args!(
                    "the member '{shown}' appears twice in one object \
                     (member names are case-insensitive); send it once"
                )));
            }
            let Distinct(v) = map.next_value()?;
            out.insert(name, v);
        }
        Ok(serde_json::Value::Object(out))
    }
}

/// No attribute holds U+0000: an escaped NUL (`\u0000`) is valid JSON, but
/// stored it would cut names short wherever they meet C strings (logs, the
/// LMS, exports), so it is refused like the raw byte JSON already forbids.
fn without_nul<E: serde::de::Error>(s: &str) -> Result<(), E> {
    if s.contains('\0') {
        return Err(E::custom(
            "a string holds the NUL character (\\u0000), which no attribute may contain",
        ));
    }
    Ok(())
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

    fn body(json: &str) -> Request {
        Request {
            body: json.as_bytes().to_vec(),
            ..Request::default()
        }
    }

    #[test]
    fn a_member_named_twice_is_refused_whatever_its_case() {
        for json in [
            r#"{"userName":"a","userName":"b"}"#,
            r#"{"userName":"a","USERNAME":"b"}"#,
            r#"{"name":{"givenName":"a","givenname":"b"}}"#,
            r#"{"emails":[{"value":"a","Value":"b"}]}"#,
        ] {
            let e = body(json).json_object().unwrap_err();
            assert_eq!(e.status, 400, "{json}");
            assert!(e.detail.contains("appears twice"), "{json}: {}", e.detail);
        }
    }

    #[test]
    fn a_nul_in_a_string_or_a_name_is_refused() {
        for json in [r#"{"userName":"a\u0000b"}"#, r#"{"a\u0000":1}"#] {
            let e = body(json).json_object().unwrap_err();
            assert_eq!(e.status, 400, "{json}");
            assert!(e.detail.contains("NUL"), "{json}: {}", e.detail);
        }
    }

    #[test]
    fn a_query_that_is_not_utf8_is_seen() {
        let q = |query: &str| Request {
            query: query.into(),
            ..Request::default()
        };
        assert!(q("filter=userName%20eq%20%22%C3%A9%22").query_is_utf8());
        assert!(!q("filter=userName%20eq%20%22%FF%22").query_is_utf8());
    }

    #[test]
    fn a_body_reads_as_serde_json_reads_it() {
        let json = r#"{"a":[1,-2,3.5,1e300,18446744073709551615,true,null,"x"],"b":{"c":{}}}"#;
        let expected: serde_json::Value = serde_json::from_str(json).unwrap();
        let map = body(json).json_object().unwrap();
        assert_eq!(serde_json::Value::Object(map), expected);
        for bad in ["1e400", "[", r#"{"a":"\ud800"}"#] {
            assert_eq!(body(bad).json_object().unwrap_err().status, 400, "{bad}");
        }
    }
}
