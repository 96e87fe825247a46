//! `attributes` and `excludedAttributes` (RFC 7644 §3.4.2.5, §3.9) together
//! with each attribute's `returned` characteristic.
//!
//! Names that do not resolve against the resource type are ignored rather
//! than rejected: identity providers ask for attributes of extensions a
//! service provider may not support, and failing the whole read for that
//! helps no one.

use serde_json::{Map, Value};

use crate::path::Path;
use crate::schema::{Attribute, ResourceType, Returned, Schema};

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

    /// Parses comma-separated `attributes` / `excludedAttributes` values.
    /// When both are given, `attributes` wins (RFC 7644 §3.9: they are
    /// alternatives).
    pub fn parse(rt: &ResourceType, attributes: Option<&str>, excluded: Option<&str>) -> Self {
        let items = |s: &str| -> Vec<Item> {
            s.split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .filter_map(|p| resolve(rt, p))
                .collect()
        };
        match (attributes, excluded) {
            (Some(a), _) if !a.trim().is_empty() => Projection {
                include: Some(items(a)),
                exclude: Vec::new(),
            },
            (_, Some(e)) => Projection {
                include: None,
                exclude: items(e),
            },
            _ => Self::all(),
        }
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
                return true;
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

/// A projection path: an extension URN, or an attribute path. A value filter
/// (`emails[type eq "work"]`, which RFC 7644 does not allow here) is read as
/// its attribute.
fn resolve(rt: &ResourceType, raw: &str) -> Option<Item> {
    let raw = match raw.find('[') {
        Some(i) => &raw[..i],
        None => raw,
    };
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
        Projection::parse(&USER_TYPE, attrs, excluded).apply(&USER_TYPE, &mut u);
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
    fn members_wanted_only_when_projected() {
        let members = GROUP_TYPE.schema.attribute("members").unwrap();
        assert!(Projection::all().wants(GROUP_TYPE.schema, members));
        let p = Projection::parse(&GROUP_TYPE, None, Some("members"));
        assert!(!p.wants(GROUP_TYPE.schema, members));
        let p = Projection::parse(&GROUP_TYPE, Some("displayName"), None);
        assert!(!p.wants(GROUP_TYPE.schema, members));
        let p = Projection::parse(&GROUP_TYPE, Some("members.value"), None);
        assert!(p.wants(GROUP_TYPE.schema, members));
    }
}
