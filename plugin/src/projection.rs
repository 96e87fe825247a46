//! `attributes` and `excludedAttributes` (RFC 7644 §3.4.2.5, §3.9) together
//! with each attribute's `returned` characteristic.
//!
//! Well-formed names that do not resolve against the resource type are
//! ignored rather than rejected (RFC 7644 §3.4.2.5): identity providers ask
//! for attributes of extensions a service provider may not support, and
//! failing the whole read for that helps no one. Elements that are not
//! attribute paths at all are rejected.

use serde_json::{Map, Value};

use crate::error::{ScimError, ScimResult};
use crate::path::{Path, is_attr_name};
use crate::schema::{Attribute, ResourceType, Returned, Schema, looks_like_urn};

/// One requested path: a whole schema (extension URN), an attribute, or a
/// sub-attribute.
#[derive(Debug, Clone)]
enum Item {
    Schema(&'static Schema),
    Attr(Path),
}

/// Which attributes a response carries.
#[derive(Debug, Clone, Default)]
pub struct Projection {
    include: Option<Vec<Item>>,
    exclude: Vec<Item>,
}

impl Projection {
    /// Every attribute returned by default.
    pub fn all() -> Self {
        Self::default()
    }

    /// Whether this is the default view (no `attributes`, no
    /// `excludedAttributes`).
    pub fn is_all(&self) -> bool {
        self.include.is_none() && self.exclude.is_empty()
    }

    /// Parses comma-separated `attributes` / `excludedAttributes` values.
    /// When both are given, `attributes` wins (RFC 7644 §3.9: they are
    /// alternatives). A well-formed name the schema does not know is
    /// ignored; an element that is not an attribute path at all is a 400
    /// `invalidPath`, so a garbled request is not answered as if nothing had
    /// been asked.
    pub fn parse<'a>(
        rt: &ResourceType,
        attributes: Option<&'a str>,
        excluded: Option<&'a str>,
    ) -> ScimResult<Self> {
        let items = |param: &str, s: &str| -> ScimResult<Vec<Item>> {
            let mut out = Vec::new();
            for (n, raw) in s.split(',').map(str::trim).enumerate() {
                let attr = well_formed(raw).ok_or_else(|| {
                    ScimError::invalid_path(format!(
                        "'{param}' must be a comma-separated list of attribute paths; element {} ('{raw}') is not one",
                        n + 1
                    ))
                })?;
                out.extend(resolve(rt, attr));
            }
            Ok(out)
        };
        let given = |v: Option<&'a str>| v.filter(|v| !v.trim().is_empty());
        Ok(match (given(attributes), given(excluded)) {
            (Some(a), e) => {
                if let Some(e) = e {
                    items("excludedAttributes", e)?;
                }
                Projection {
                    include: Some(items("attributes", a)?),
                    exclude: Vec::new(),
                }
            }
            (None, Some(e)) => Projection {
                include: None,
                exclude: items("excludedAttributes", e)?,
            },
            (None, None) => Self::all(),
        })
    }

    /// Whether the response needs the top-level attribute at all (used to
    /// skip reading the membership relation when it would be dropped).
    pub fn wants(&self, schema: &Schema, attr: &Attribute) -> bool {
        match attr.returned {
            Returned::Always => return true,
            Returned::Never => return false,
            _ => {}
        }
        if let Some(include) = &self.include {
            return include.iter().any(|i| match i {
                Item::Schema(s) => std::ptr::eq(*s, schema),
                Item::Attr(p) => std::ptr::eq(p.attr, attr),
            });
        }
        if attr.returned == Returned::Request {
            return false;
        }
        !self.exclude.iter().any(|i| match i {
            Item::Schema(s) => std::ptr::eq(*s, schema),
            Item::Attr(p) => std::ptr::eq(p.attr, attr) && p.sub.is_none(),
        })
    }

    /// Applies the projection to a rendered resource.
    pub fn apply(&self, rt: &ResourceType, resource: &mut Value) {
        let Value::Object(map) = resource else { return };
        map.retain(|key, value| {
            if key == "schemas" {
                return true;
            }
            if let Some(attr) = rt.core_attribute(key) {
                return self.keep(rt.schema, attr, value);
            }
            let Some(schema) = rt.extension(key) else {
                // A custom extension the engine stores as sent: shown unless
                // the client asked for named attributes only.
                return self.include.is_none();
            };
            let Value::Object(ext) = value else {
                return false;
            };
            ext.retain(|k, v| {
                schema
                    .attribute(k)
                    .is_some_and(|attr| self.keep(schema, attr, v))
            });
            !ext.is_empty()
        });
    }

    /// Whether to keep an attribute, trimming its sub-attributes in place.
    fn keep(&self, schema: &Schema, attr: &Attribute, value: &mut Value) -> bool {
        if !self.wants(schema, attr) {
            return false;
        }
        if !attr.is_complex() || attr.returned == Returned::Always {
            return true;
        }
        let mine = |items: &[Item]| -> Vec<&'static Attribute> {
            items
                .iter()
                .filter_map(|i| match i {
                    Item::Attr(p) if std::ptr::eq(p.attr, attr) => p.sub,
                    _ => None,
                })
                .collect()
        };
        let whole = self.include.as_ref().is_none_or(|inc| {
            inc.iter().any(|i| match i {
                Item::Schema(s) => std::ptr::eq(*s, schema),
                Item::Attr(p) => std::ptr::eq(p.attr, attr) && p.sub.is_none(),
            })
        });
        let included = self.include.as_deref().map(mine).unwrap_or_default();
        let excluded = mine(&self.exclude);
        let keep_sub = |sub: &Attribute| -> bool {
            match sub.returned {
                Returned::Always => true,
                Returned::Never => false,
                _ if whole => !excluded.iter().any(|e| std::ptr::eq(*e, sub)),
                _ => included.iter().any(|i| std::ptr::eq(*i, sub)),
            }
        };
        let trim = |obj: &mut Map<String, Value>| {
            obj.retain(|k, _| attr.sub(k).is_some_and(keep_sub));
        };
        match value {
            Value::Object(obj) => {
                trim(obj);
                !obj.is_empty()
            }
            Value::Array(items) => {
                for item in items.iter_mut() {
                    if let Value::Object(obj) = item {
                        trim(obj);
                    }
                }
                items.retain(|i| i.as_object().is_none_or(|o| !o.is_empty()));
                !items.is_empty()
            }
            _ => true,
        }
    }
}

/// The attribute part of a projection element when the element is
/// well-formed: `[URN:]name[.sub]`, a schema URN, or an attribute with a
/// value filter (`emails[type eq "work"]`, which RFC 7644 does not allow
/// here but Microsoft's clients send; it is read as its attribute).
fn well_formed(raw: &str) -> Option<&str> {
    let attr = match raw.split_once('[') {
        None => raw,
        Some((attr, rest)) => {
            let (inner, after) = rest.rsplit_once(']')?;
            let sub_ok = after.is_empty() || after.strip_prefix('.').is_some_and(is_attr_name);
            if inner.trim().is_empty() || inner.contains('[') || !sub_ok {
                return None;
            }
            attr
        }
    };
    let ok = if looks_like_urn(attr) {
        attr.len() > 4
            && !attr.ends_with(':')
            && !attr
                .chars()
                .any(|c| c.is_whitespace() || "[]\"(){},".contains(c))
    } else {
        let mut parts = attr.splitn(2, '.');
        parts.next().is_some_and(is_attr_name) && parts.next().is_none_or(is_attr_name)
    };
    ok.then_some(attr)
}

/// A projection path: an extension URN or an attribute path; `None` for a
/// well-formed name the resource type does not define.
fn resolve(rt: &ResourceType, raw: &str) -> Option<Item> {
    if let Some((schema, "")) = rt.split_urn(raw) {
        return Some(Item::Schema(schema));
    }
    Path::resolve(rt, raw).ok().map(Item::Attr)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{ENTERPRISE_USER_SCHEMA, GROUP_TYPE, USER_TYPE};
    use serde_json::json;

    fn user() -> Value {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "id": "1", "externalId": "e", "userName": "u",
            "name": {"givenName": "G", "familyName": "F"},
            "emails": [{"value": "a@x", "type": "work"}],
            ENTERPRISE_USER_SCHEMA: {"department": "D", "employeeNumber": "7"},
            "meta": {"resourceType": "User", "created": "c", "lastModified": "m"}
        })
    }

    fn project(attrs: Option<&str>, excluded: Option<&str>) -> Value {
        let mut u = user();
        Projection::parse(&USER_TYPE, attrs, excluded)
            .unwrap()
            .apply(&USER_TYPE, &mut u);
        u
    }

    #[test]
    fn attributes_keep_only_named_and_always() {
        let u = project(Some("userName,name.givenName"), None);
        assert_eq!(
            u,
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "id": "1", "userName": "u", "name": {"givenName": "G"}})
        );
        let u = project(
            Some(
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department,meta.lastModified",
            ),
            None,
        );
        assert_eq!(u[ENTERPRISE_USER_SCHEMA], json!({"department": "D"}));
        assert_eq!(u["meta"], json!({"lastModified": "m"}));
        let u = project(Some(ENTERPRISE_USER_SCHEMA), None);
        assert_eq!(u[ENTERPRISE_USER_SCHEMA]["employeeNumber"], "7");
        assert!(u.get("userName").is_none());
    }

    #[test]
    fn excluded_attributes_drop_but_never_id() {
        let u = project(None, Some("emails,id,name.familyName,meta"));
        assert_eq!(u["id"], "1");
        assert!(u.get("emails").is_none());
        assert!(u.get("meta").is_none());
        assert_eq!(u["name"], json!({"givenName": "G"}));
        assert_eq!(u["userName"], "u");
    }

    #[test]
    fn unknown_names_are_ignored_and_value_filters_read_as_attribute() {
        let u = project(Some("nope,emails[type eq \"work\"]"), None);
        assert_eq!(u["emails"][0]["value"], "a@x");
        assert!(u.get("userName").is_none());
    }

    #[test]
    fn garbage_is_refused_naming_the_element() {
        let cases: &[(Option<&str>, Option<&str>, &str)] = &[
            (Some("[[[,,,"), None, "element 1 ('[[[')"),
            (Some("userName,,emails"), None, "element 2 ('')"),
            (None, Some("userName,name..givenName"), "element 2"),
            (Some("user Name"), None, "'user Name'"),
            (Some("emails[type eq \"work\""), None, "element 1"),
            (Some("emails]"), None, "element 1"),
            (Some("1userName"), None, "element 1"),
            (Some("name.givenName.x"), None, "element 1"),
            (Some("urn:x:[y]"), None, "element 1"),
            (Some("userName"), Some("{}"), "excludedAttributes"),
        ];
        for (attrs, excluded, want) in cases {
            let e = Projection::parse(&USER_TYPE, *attrs, *excluded).unwrap_err();
            assert_eq!(e.status, 400);
            assert_eq!(e.scim_type, Some(crate::error::ScimType::InvalidPath));
            assert!(
                e.detail.contains(want),
                "{attrs:?} {excluded:?}: {}",
                e.detail
            );
        }
        // Well-formed names, known or not, are fine.
        for ok in [
            "userName",
            " userName , emails.value ",
            "nope,urn:example:unknown:2.0:User:thing",
            "emails[type eq \"work\"].value",
            ENTERPRISE_USER_SCHEMA,
            "department,manager.value",
            "",
        ] {
            assert!(
                Projection::parse(&USER_TYPE, Some(ok), None).is_ok(),
                "{ok}"
            );
        }
    }

    #[test]
    fn members_wanted_only_when_projected() {
        let members = GROUP_TYPE.schema.attribute("members").unwrap();
        assert!(Projection::all().wants(GROUP_TYPE.schema, members));
        let p = Projection::parse(&GROUP_TYPE, None, Some("members")).unwrap();
        assert!(!p.wants(GROUP_TYPE.schema, members));
        let p = Projection::parse(&GROUP_TYPE, Some("displayName"), None).unwrap();
        assert!(!p.wants(GROUP_TYPE.schema, members));
        let p = Projection::parse(&GROUP_TYPE, Some("members.value"), None).unwrap();
        assert!(p.wants(GROUP_TYPE.schema, members));
    }
}
