//! Reading SCIM API message bodies (PatchOp, BulkRequest, SearchRequest):
//! member names are matched case-insensitively, as for attributes.

use serde_json::{Map, Value};

use crate::error::{ScimError, ScimResult};

/// A member of a JSON object, by case-insensitive name.
pub fn field<'a>(m: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    m.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

/// `schemas`, when present, must name the message's URN.
pub fn check_schema(body: &Map<String, Value>, urn: &str) -> ScimResult<()> {
    match field(body, "schemas") {
        None => Ok(()),
        Some(s)
            if s.as_array()
                .is_some_and(|s| s.iter().any(|u| u.as_str() == Some(urn))) =>
        {
            Ok(())
        }
        Some(_) => Err(ScimError::invalid_syntax(format!(
            "'schemas' must be a list containing \"{urn}\""
        ))),
    }
}
