//! Attribute paths (`[URI ":"] ATTRNAME ["." subAttr]`, RFC 7644 §3.10) and
//! their resolution against a resource type's schemas. Shared by filters,
//! sorting, projection and PATCH.

use serde_json::Value;

use crate::schema::{AttrType, Attribute, ResourceType, Schema};

/// A path resolved against the schema: which schema holds the attribute, the
/// attribute, and the sub-attribute if one is named.
#[derive(Debug, Clone, Copy)]
pub struct Path {
    pub schema: &'static Schema,
    pub attr: &'static Attribute,
    pub sub: Option<&'static Attribute>,
    /// Whether the attribute is a common one (`id`, `externalId`, `meta`),
    /// stored at top level whatever the schema.
    pub extension: bool,
}

/// Why a path does not resolve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathError {
    UnknownSchema(String),
    UnknownAttribute(String),
    UnknownSubAttribute(String, String),
    Malformed(String),
    /// A name without a URN that more than one extension defines.
    Ambiguous(String, Vec<&'static str>),
}

impl std::fmt::Display for PathError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PathError::UnknownSchema(s) => write!(f, "unknown schema '{s}'"),
            PathError::UnknownAttribute(a) => write!(f, "unknown attribute '{a}'"),
            PathError::UnknownSubAttribute(a, s) => {
                write!(f, "attribute '{a}' has no sub-attribute '{s}'")
            }
            PathError::Malformed(p) => write!(f, "malformed attribute path '{p}'"),
            PathError::Ambiguous(a, urns) => write!(
                f,
                "attribute '{a}' is defined by more than one extension ({}); qualify it with its schema URN, e.g. '{}:{a}'",
                urns.join(", "),
                urns[0]
            ),
        }
    }
}

impl Path {
    /// Resolves `[URI:]attr[.sub]` against a resource type. A name without a
    /// URN that is not a core attribute resolves in the one extension that
    /// defines it (Entra and Okta send `manager`, `department`, ... bare).
    pub fn resolve(rt: &ResourceType, raw: &str) -> Result<Path, PathError> {
        let (schema, rest) = rt
            .split_urn(raw)
            .ok_or_else(|| PathError::UnknownSchema(urn_part(raw).to_string()))?;
        if rest.is_empty() {
            return Err(PathError::Malformed(raw.to_string()));
        }
        let (name, sub) = match rest.split_once('.') {
            Some((n, s)) => (n, Some(s)),
            None => (rest, None),
        };
        if !is_attr_name(name) || sub.is_some_and(|s| !is_attr_name(s)) {
            return Err(PathError::Malformed(raw.to_string()));
        }
        let (schema, attr) = if std::ptr::eq(schema, rt.schema) {
            rt.bare_attribute(name)
                .map_err(|urns| PathError::Ambiguous(name.to_string(), urns))?
        } else {
            schema.attribute(name).map(|a| (schema, a))
        }
        .ok_or_else(|| PathError::UnknownAttribute(rest.to_string()))?;
        Self::with_sub(schema, attr, sub, std::ptr::eq(schema, rt.schema))
    }

    /// Resolves a sub-attribute name relative to a complex attribute (the
    /// paths inside `emails[...]`).
    pub fn resolve_within(outer: &Path, raw: &str) -> Result<Path, PathError> {
        if !is_attr_name(raw) {
            return Err(PathError::Malformed(raw.to_string()));
        }
        Self::with_sub(outer.schema, outer.attr, Some(raw), !outer.extension)
    }

    fn with_sub(
        schema: &'static Schema,
        attr: &'static Attribute,
        sub: Option<&str>,
        core: bool,
    ) -> Result<Path, PathError> {
        let sub = match sub {
            None => None,
            Some(s) => Some(attr.sub(s).ok_or_else(|| {
                PathError::UnknownSubAttribute(attr.name.to_string(), s.to_string())
            })?),
        };
        Ok(Path {
            schema,
            attr,
            sub,
            extension: !core,
        })
    }

    /// The attribute the path finally names (the sub-attribute if any).
    pub fn leaf(&self) -> &'static Attribute {
        self.sub.unwrap_or(self.attr)
    }

    /// The leaf used for value comparisons: a complex attribute compares by
    /// its `value` sub-attribute (`emails eq "x"` means `emails.value`).
    pub fn comparable(&self) -> Option<Path> {
        if self.leaf().ty != AttrType::Complex {
            return Some(*self);
        }
        if self.sub.is_none() {
            return self.attr.sub("value").map(|v| Path {
                sub: Some(v),
                ..*self
            });
        }
        None
    }

    /// Canonical dotted name, URN-qualified for extensions.
    pub fn display(&self) -> String {
        let mut s = String::new();
        if self.extension {
            s.push_str(self.schema.id);
            s.push(':');
        }
        s.push_str(self.attr.name);
        if let Some(sub) = self.sub {
            s.push('.');
            s.push_str(sub.name);
        }
        s
    }

    /// The top-level key of a stored resource under which the attribute
    /// lives: its extension's URN, or its own name.
    pub fn key(&self) -> &'static str {
        if self.extension {
            self.schema.id
        } else {
            self.attr.name
        }
    }

    /// The JSON object holding the attribute: the resource itself, or its
    /// extension object.
    pub fn container<'a>(&self, resource: &'a Value) -> Option<&'a Value> {
        if self.extension {
            resource.get(self.schema.id)
        } else {
            Some(resource)
        }
    }

    /// The attribute's value in a resource (`None` when unassigned).
    pub fn attr_value<'a>(&self, resource: &'a Value) -> Option<&'a Value> {
        self.container(resource)?
            .get(self.attr.name)
            .filter(|v| !v.is_null())
    }

    /// Every value the path names in a resource, flattening multi-valued
    /// attributes: `emails.value` yields each email's value.
    pub fn values<'a>(&self, resource: &'a Value) -> Vec<&'a Value> {
        let Some(v) = self.attr_value(resource) else {
            return Vec::new();
        };
        let elements: Vec<&Value> = match v {
            Value::Array(items) => items.iter().collect(),
            other => vec![other],
        };
        match self.sub {
            None => elements,
            Some(sub) => elements
                .into_iter()
                .filter_map(|e| e.get(sub.name))
                .filter(|v| !v.is_null())
                .collect(),
        }
    }
}

fn urn_part(raw: &str) -> &str {
    raw.rsplit_once(':').map_or(raw, |(u, _)| u)
}

/// `ATTRNAME = ALPHA *(nameChar)`, `nameChar = "-" / "_" / DIGIT / ALPHA`,
/// plus `$ref`.
pub fn is_attr_name(s: &str) -> bool {
    if s.eq_ignore_ascii_case("$ref") {
        return true;
    }
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{ENTERPRISE_USER_SCHEMA, USER_TYPE};

    #[test]
    fn resolves_plain_sub_and_urn_paths() {
        let p = Path::resolve(&USER_TYPE, "Name.FamilyName").unwrap();
        assert_eq!(p.display(), "name.familyName");
        let p = Path::resolve(
            &USER_TYPE,
            "urn:ietf:params:scim:schemas:core:2.0:User:userName",
        )
        .unwrap();
        assert_eq!(p.display(), "userName");
        let p = Path::resolve(
            &USER_TYPE,
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
        )
        .unwrap();
        assert_eq!(
            p.display(),
            format!("{ENTERPRISE_USER_SCHEMA}:manager.value")
        );
        assert!(p.extension);
        let p = Path::resolve(&USER_TYPE, "meta.lastModified").unwrap();
        assert_eq!(p.display(), "meta.lastModified");
    }

    #[test]
    fn rejects_unknown_names() {
        assert_eq!(
            Path::resolve(&USER_TYPE, "nope").unwrap_err(),
            PathError::UnknownAttribute("nope".into())
        );
        assert!(matches!(
            Path::resolve(&USER_TYPE, "name.nope"),
            Err(PathError::UnknownSubAttribute(..))
        ));
        assert!(matches!(
            Path::resolve(&USER_TYPE, "urn:example:x:y"),
            Err(PathError::UnknownSchema(_))
        ));
    }

    #[test]
    fn bare_extension_names_resolve_in_the_one_extension_that_has_them() {
        for name in [
            "manager",
            "department",
            "employeeNumber",
            "costCenter",
            "organization",
            "division",
        ] {
            let p = Path::resolve(&USER_TYPE, name).unwrap();
            assert!(p.extension, "{name}");
            assert_eq!(p.schema.id, ENTERPRISE_USER_SCHEMA);
        }
        let p = Path::resolve(&USER_TYPE, "manager.value").unwrap();
        assert_eq!(
            p.display(),
            format!("{ENTERPRISE_USER_SCHEMA}:manager.value")
        );
        // A core attribute wins over an extension's attribute of that name.
        assert!(!Path::resolve(&USER_TYPE, "userName").unwrap().extension);
    }

    #[test]
    fn a_bare_name_two_extensions_define_is_refused_naming_both() {
        use crate::schema::{Attribute, Relation, ResourceType, Schema, USER};
        static A: Schema = Schema {
            id: "urn:example:params:scim:schemas:extension:a:2.0:User",
            name: "A",
            description: "",
            attributes: &[Attribute::string("costCenter", "")],
        };
        static B: Schema = Schema {
            id: "urn:example:params:scim:schemas:extension:b:2.0:User",
            name: "B",
            description: "",
            attributes: &[
                Attribute::string("costCenter", ""),
                Attribute::string("region", ""),
            ],
        };
        static TWO: ResourceType = ResourceType {
            name: "User",
            endpoint: "/Users",
            description: "",
            schema: &USER,
            extensions: &[(&A, false), (&B, false)],
            relation: Relation::Groups,
            label: &[],
            indexed: &[],
        };
        let err = Path::resolve(&TWO, "costCenter").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(A.id) && msg.contains(B.id), "{msg}");
        assert_eq!(Path::resolve(&TWO, "region").unwrap().schema.id, B.id);
        let qualified = format!("{}:costCenter", A.id);
        assert_eq!(Path::resolve(&TWO, &qualified).unwrap().schema.id, A.id);
        // Filters and PATCH paths say the same, as a 400.
        let e = crate::filter::parse(&TWO, "costCenter eq \"x\"").unwrap_err();
        assert!(
            e.detail.contains(A.id) && e.detail.contains(B.id),
            "{}",
            e.detail
        );
        let e = crate::patch::Target::parse(&TWO, "costCenter").unwrap_err();
        assert_eq!(e.status, 400);
        assert!(
            e.detail.contains(A.id) && e.detail.contains(B.id),
            "{}",
            e.detail
        );
    }

    #[test]
    fn flattens_multi_valued_values() {
        let doc = serde_json::json!({"emails": [{"value": "a"}, {"value": "b"}, {"type": "x"}]});
        let p = Path::resolve(&USER_TYPE, "emails.value").unwrap();
        assert_eq!(p.values(&doc), vec!["a", "b"]);
    }
}
