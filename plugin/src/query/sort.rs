//! `sortBy` / `sortOrder` (RFC 7644 §3.4.2.3): typed, caseExact-aware keys,
//! resources without a value last in either order, ties in creation order.

use std::cmp::Ordering;

use serde_json::Value;
use time::OffsetDateTime;

use crate::error::{ScimError, ScimResult};
use crate::filter::parse_datetime;
use crate::path::Path;
use crate::resource::terms::fold;
use crate::schema::{AttrType, ResourceType};

/// A comparable sort value.
#[derive(Debug, Clone, PartialEq)]
pub enum Key {
    Str(String),
    Num(f64),
    Bool(bool),
    Time(OffsetDateTime),
}

impl Key {
    fn cmp(&self, other: &Key) -> Ordering {
        match (self, other) {
            (Key::Str(a), Key::Str(b)) => a.cmp(b),
            (Key::Num(a), Key::Num(b)) => a.partial_cmp(b).unwrap_or(Ordering::Equal),
            (Key::Bool(a), Key::Bool(b)) => a.cmp(b),
            (Key::Time(a), Key::Time(b)) => a.cmp(b),
            _ => Ordering::Equal,
        }
    }
}

/// Resolves `sortBy` for a resource type. `Ok(None)`: the attribute does not
/// exist in this type (other types of a root search may have it).
pub fn resolve(rt: &ResourceType, sort_by: &str) -> ScimResult<Option<Path>> {
    let Ok(path) = Path::resolve(rt, sort_by.trim()) else {
        return Ok(None);
    };
    path.comparable().map(Some).ok_or_else(|| {
        ScimError::invalid_value(format!(
            "Cannot sort by '{}': it is complex; name one of its sub-attributes",
            path.display()
        ))
    })
}

/// The sort key of a resource: for multi-valued attributes the primary
/// value, else the first.
pub fn key(path: &Path, resource: &Value) -> Option<Key> {
    let value = if path.attr.multi_valued {
        let items = path.attr_value(resource)?.as_array()?;
        let pick = items
            .iter()
            .find(|i| i.get("primary") == Some(&Value::Bool(true)))
            .or_else(|| items.first())?;
        match path.sub {
            Some(sub) => pick.get(sub.name)?,
            None => pick,
        }
    } else {
        path.values(resource).into_iter().next()?
    };
    let leaf = path.leaf();
    match leaf.ty {
        AttrType::DateTime => value.as_str().and_then(parse_datetime).map(Key::Time),
        AttrType::Integer | AttrType::Decimal => value.as_f64().map(Key::Num),
        AttrType::Boolean => value.as_bool().map(Key::Bool),
        _ => value.as_str().map(|s| Key::Str(fold(leaf, s))),
    }
}

/// Orders two optional keys: present before missing, then by the key in the
/// requested direction.
pub fn compare(a: &Option<Key>, b: &Option<Key>, descending: bool) -> Ordering {
    match (a, b) {
        (Some(a), Some(b)) => {
            let o = a.cmp(b);
            if descending { o.reverse() } else { o }
        }
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::USER_TYPE;
    use serde_json::json;

    #[test]
    fn keys_follow_the_schema() {
        let p = resolve(&USER_TYPE, "userName").unwrap().unwrap();
        assert_eq!(
            key(&p, &json!({"userName": "BOB"})),
            Some(Key::Str("bob".into()))
        );
        let p = resolve(&USER_TYPE, "emails").unwrap().unwrap();
        let u = json!({"emails": [{"value": "b@x"}, {"value": "a@x", "primary": true}]});
        assert_eq!(key(&p, &u), Some(Key::Str("a@x".into())));
        let p = resolve(&USER_TYPE, "meta.created").unwrap().unwrap();
        let early = key(
            &p,
            &json!({"meta": {"created": "2020-01-01T02:00:00+02:00"}}),
        );
        let late = key(&p, &json!({"meta": {"created": "2020-01-01T00:30:00Z"}}));
        assert_eq!(compare(&early, &late, false), Ordering::Less);
        assert_eq!(compare(&early, &None, true), Ordering::Less);
        assert!(resolve(&USER_TYPE, "name").is_err());
        assert!(resolve(&USER_TYPE, "nope").unwrap().is_none());
    }
}
