//! Parsing only some top-level attributes of a stored body. Testing a filter
//! on a candidate needs the attributes the filter names, not the whole
//! document: the other values are stepped over without being built, which
//! makes a query that reads thousands of candidates to count its matches
//! cost a fraction of parsing each in full.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde_json::{Map, Value};

use crate::error::{ScimError, ScimResult};
use crate::store::Document;

/// The stored body's values under `keys` (exact, as stored), as an object.
pub fn parse_keys(doc: &Document, keys: &[&str]) -> ScimResult<Value> {
    let mut de = serde_json::Deserializer::from_str(&doc.body);
    Only(keys)
        .deserialize(&mut de)
        .and_then(|m| de.end().map(|()| Value::Object(m)))
        .map_err(|e| {
            ScimError::internal(format!("Stored resource {} is not valid JSON: {e}", doc.id))
        })
}

/// Deserializes an object, keeping the members under the given keys.
struct Only<'k>(&'k [&'k str]);

impl<'de> DeserializeSeed<'de> for Only<'_> {
    type Value = Map<String, Value>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Only<'_> {
    type Value = Map<String, Value>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = Map::new();
        while let Some(Key(key)) = map.next_key()? {
            if self.0.contains(&key.as_ref()) {
                out.insert(key.into_owned(), map.next_value()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(out)
    }
}

/// A key, borrowed from the body unless it holds escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc(body: &str) -> Document {
        Document {
            id: "1".into(),
            seq: 1,
            version: 1,
            body: body.into(),
        }
    }

    #[test]
    fn keeps_only_the_named_keys_whatever_the_values() {
        let body = json!({
            "userName": "b\"j",
            "title": "Tour Guide",
            "emails": [{"value": "a@x", "type": "work"}],
            "name": {"familyName": "J\u{e9}nsen"},
            "n": 1.5e3,
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "D"},
            "esc\\aped": null,
        });
        let d = doc(&body.to_string());
        let got = parse_keys(
            &d,
            &[
                "title",
                "name",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
                "esc\\aped",
            ],
        )
        .unwrap();
        assert_eq!(
            got,
            json!({
                "title": "Tour Guide",
                "name": {"familyName": "J\u{e9}nsen"},
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "D"},
                "esc\\aped": null,
            })
        );
        assert_eq!(parse_keys(&d, &[]).unwrap(), json!({}));
    }

    #[test]
    fn a_damaged_body_is_an_error_not_a_partial_value() {
        for bad in [
            r#"{"title": "x""#,
            r#"{"title": "x"} trailing"#,
            "[1]",
            r#"{"a": tru}"#,
        ] {
            assert!(parse_keys(&doc(bad), &["title"]).is_err(), "{bad}");
        }
    }
}
