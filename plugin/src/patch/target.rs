//! PATCH paths (RFC 7644 §3.5.2): `attrPath`, `valuePath` with an optional
//! sub-attribute, or a whole extension schema.

use serde_json::{Map, Value};

use crate::error::{ScimError, ScimResult};
use crate::filter::{CompareOp, Filter, parse_value_filter};
use crate::path::Path;
use crate::schema::{Attribute, Mutability, ResourceType, Schema};

/// What a PATCH operation addresses.
#[derive(Debug, Clone)]
pub enum Target {
    /// A whole extension object (`urn:…:enterprise:2.0:User`).
    Extension(&'static Schema),
    /// A custom extension the engine does not define, or one of its
    /// attributes: kept as sent.
    Custom(String),
    /// An attribute or sub-attribute (`name.givenName`, `emails`).
    Attr(Path),
    /// The elements of a complex attribute that match a filter, or one
    /// sub-attribute of each (`emails[type eq "work"].value`).
    Filtered {
        path: Path,
        filter: Filter,
        sub: Option<&'static Attribute>,
    },
}

fn invalid(raw: &str, why: impl std::fmt::Display) -> ScimError {
    ScimError::invalid_path(format!("Invalid path '{raw}': {why}"))
}

/// Splits `attr[filter]rest` at the bracket that closes the first `[`,
/// minding quoted strings.
fn split_value_path(raw: &str) -> Option<(&str, &str, &str)> {
    let open = raw.find('[')?;
    let bytes = raw.as_bytes();
    let mut i = open + 1;
    let mut quoted = false;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if quoted => i += 1,
            b'"' => quoted = !quoted,
            b']' if !quoted => return Some((&raw[..open], &raw[open + 1..i], &raw[i + 1..])),
            _ => {}
        }
        i += 1;
    }
    None
}

impl Target {
    /// Parses a PATCH `path`.
    pub fn parse(rt: &'static ResourceType, raw: &str) -> ScimResult<Target> {
        let raw = raw.trim();
        if raw.contains('[') {
            let (attr, inner, rest) =
                split_value_path(raw).ok_or_else(|| invalid(raw, "unbalanced '['"))?;
            let path = Path::resolve(rt, attr).map_err(|e| invalid(raw, e))?;
            if path.sub.is_some() || !path.attr.is_complex() {
                return Err(invalid(
                    raw,
                    format!("'{}' is not a complex attribute", path.display()),
                ));
            }
            let filter =
                parse_value_filter(rt, &path, inner).map_err(|e| invalid(raw, e.detail))?;
            let sub = match rest {
                "" => None,
                r if r.starts_with('.') => Some(
                    path.attr
                        .sub(&r[1..])
                        .ok_or_else(|| invalid(raw, format!("no sub-attribute '{}'", &r[1..])))?,
                ),
                r => return Err(invalid(raw, format!("unexpected '{r}' after ']'"))),
            };
            return Ok(Target::Filtered { path, filter, sub });
        }
        if let Some((schema, "")) = rt.split_urn(raw)
            && !std::ptr::eq(schema, rt.schema)
        {
            return Ok(Target::Extension(schema));
        }
        if rt.split_custom(raw).is_some() {
            return Ok(Target::Custom(raw.to_string()));
        }
        Path::resolve(rt, raw)
            .map(Target::Attr)
            .map_err(|e| invalid(raw, e))
    }

    /// The attribute the operation touches, for mutability checks.
    pub fn leaf(&self) -> Option<&'static Attribute> {
        match self {
            Target::Extension(_) | Target::Custom(_) => None,
            Target::Attr(p) => Some(p.leaf()),
            Target::Filtered { path, sub, .. } => Some(sub.unwrap_or(path.attr)),
        }
    }

    /// The top-level attribute the operation touches.
    pub fn attr(&self) -> Option<&'static Attribute> {
        match self {
            Target::Extension(_) | Target::Custom(_) => None,
            Target::Attr(p) | Target::Filtered { path: p, .. } => Some(p.attr),
        }
    }

    /// readOnly attributes cannot be targeted (RFC 7644 §3.5.2).
    pub fn check_writable(&self, raw: &str) -> ScimResult<()> {
        for a in [self.attr(), self.leaf()].into_iter().flatten() {
            if a.mutability == Mutability::ReadOnly {
                return Err(ScimError::mutability(format!(
                    "'{raw}' is readOnly and cannot be modified"
                )));
            }
        }
        Ok(())
    }
}

/// The element a value filter describes, when it is a conjunction of `eq`
/// tests: `type eq "mobile"` describes `{"type": "mobile"}`. Used to create
/// the element an identity provider addresses before it exists.
pub fn template(filter: &Filter) -> Option<Map<String, Value>> {
    match filter {
        Filter::Compare {
            path,
            op: CompareOp::Eq,
            original,
            ..
        } => {
            let sub = path.sub?;
            let mut m = Map::new();
            m.insert(sub.name.to_string(), original.clone());
            Some(m)
        }
        Filter::And(fs) => {
            let mut m = Map::new();
            for f in fs {
                m.extend(template(f)?);
            }
            Some(m)
        }
        _ => None,
    }
}

/// The `value`s a filter selects when it is `value eq "x"` or an `or` of
/// those: members can then be removed without listing the group.
pub fn value_equalities(filter: &Filter) -> Option<Vec<String>> {
    match filter {
        Filter::Compare {
            path,
            op: CompareOp::Eq,
            original: Value::String(s),
            ..
        } if path.sub.is_some_and(|s| s.name == "value") => Some(vec![s.clone()]),
        Filter::Or(fs) => {
            let mut out = Vec::new();
            for f in fs {
                out.extend(value_equalities(f)?);
            }
            Some(out)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{GROUP_TYPE, USER_TYPE};

    #[test]
    fn parses_every_path_form() {
        assert!(
            matches!(Target::parse(&USER_TYPE, "name.givenName"), Ok(Target::Attr(p)) if p.display() == "name.givenName")
        );
        assert!(matches!(
            Target::parse(
                &USER_TYPE,
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
            ),
            Ok(Target::Extension(_))
        ));
        assert!(matches!(
            Target::parse(
                &USER_TYPE,
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager"
            ),
            Ok(Target::Attr(_))
        ));
        match Target::parse(&USER_TYPE, r#"emails[type eq "work"].value"#).unwrap() {
            Target::Filtered { filter, sub, .. } => {
                assert_eq!(sub.unwrap().name, "value");
                assert_eq!(template(&filter).unwrap()["type"], "work");
            }
            other => panic!("{other:?}"),
        }
        match Target::parse(&GROUP_TYPE, r#"members[value eq "a" or value eq "b"]"#).unwrap() {
            Target::Filtered { filter, .. } => {
                assert_eq!(value_equalities(&filter).unwrap(), ["a", "b"]);
            }
            other => panic!("{other:?}"),
        }
        // A bracket inside a quoted literal does not close the filter.
        assert!(Target::parse(&USER_TYPE, r#"emails[value eq "a]b"].type"#).is_ok());
    }

    #[test]
    fn rejects_bad_paths() {
        for raw in [
            "nope",
            "name.nope",
            "emails[type eq \"work\"",
            "userName[value eq \"x\"]",
            "emails[type eq \"work\"]x",
            "emails[nope eq \"x\"]",
            "urn:example:unknown:attr",
        ] {
            let e = Target::parse(&USER_TYPE, raw).unwrap_err();
            assert_eq!(
                e.scim_type,
                Some(crate::error::ScimType::InvalidPath),
                "{raw}"
            );
        }
    }
}
