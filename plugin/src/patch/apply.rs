//! Applying PATCH operations to a working copy of a resource's attributes,
//! and to the membership relation of a group.

use serde_json::{Map, Value};

use crate::error::{ScimError, ScimResult};
use crate::path::Path;
use crate::resource::membership;
use crate::resource::normalize::{
    member_inputs, normalize_resource, normalize_single, normalize_value,
};
use crate::schema::{Attribute, GROUP_TYPE, Relation, ResourceType, Schema};
use crate::store::Store;

use super::target::{Target, template, value_equalities};
use super::{Op, Operation};

/// A resource being patched.
pub struct Patch {
    rt: &'static ResourceType,
    id: String,
    attrs: Map<String, Value>,
}

fn value_required(raw: &str) -> ScimError {
    ScimError::invalid_value(format!("'{raw}': a value is required"))
}

/// Whether two elements of a multi-valued attribute are the same value:
/// same `value` (per its caseExact) and same `type`; else identical.
fn same_element(attr: &Attribute, a: &Value, b: &Value) -> bool {
    let (Some(va), Some(vb)) = (a.get("value"), b.get("value")) else {
        return a == b;
    };
    let same_value = match (va.as_str(), vb.as_str(), attr.sub("value")) {
        (Some(x), Some(y), Some(sub)) if !sub.case_exact => x.to_lowercase() == y.to_lowercase(),
        _ => va == vb,
    };
    let ty = |v: &Value| v.get("type").and_then(Value::as_str).map(str::to_lowercase);
    same_value && ty(a) == ty(b)
}

/// An extension value may carry `schemas` (python-scim's clients send it):
/// it must name only that extension, and is then ignored.
fn check_extension_schemas(schema: &Schema, raw: &str, value: &Value) -> ScimResult<()> {
    let names_it = |v: &Value| {
        v.as_str()
            .is_some_and(|s| s.eq_ignore_ascii_case(schema.id))
    };
    let ok = match value {
        Value::Array(items) => items.iter().all(names_it),
        Value::String(_) => names_it(value),
        Value::Null => true,
        _ => false,
    };
    if ok {
        return Ok(());
    }
    Err(ScimError::invalid_value(format!(
        "'{raw}': the value's 'schemas' is {value}, but this path takes attributes of {} only",
        schema.id
    )))
}

fn is_primary(v: &Value) -> bool {
    v.get("primary") == Some(&Value::Bool(true))
}

/// RFC 7643 §2.4: a new primary value demotes the others.
fn clear_primary(items: &mut [Value]) {
    for item in items {
        if let Some(p) = item.get_mut("primary")
            && *p == Value::Bool(true)
        {
            *p = Value::Bool(false);
        }
    }
}

fn merge_into(target: &mut Value, from: Value) {
    match (target, from) {
        (Value::Object(t), Value::Object(f)) => t.extend(f),
        (t, f) => *t = f,
    }
}

impl Patch {
    pub fn new(rt: &'static ResourceType, id: &str, attrs: Map<String, Value>) -> Self {
        Patch {
            rt,
            id: id.to_string(),
            attrs,
        }
    }

    /// The patched attributes, checked again as a whole (one primary per
    /// attribute, types) exactly as a PUT body would be.
    pub fn into_attrs(self) -> ScimResult<Map<String, Value>> {
        Ok(normalize_resource(self.rt, self.attrs)?.attrs)
    }

    pub fn apply(&mut self, store: &mut dyn Store, op: &Operation) -> ScimResult<()> {
        match &op.path {
            None => self.apply_pathless(store, op.op, op.value.as_ref()),
            Some(raw) => {
                let target = Target::parse(self.rt, raw)?;
                self.apply_target(store, op.op, raw, &target, op.value.as_ref())
            }
        }
    }

    /// Without a path the value is an object of attributes, whose keys may
    /// themselves be paths (`"name.givenName"`, URN-qualified names).
    fn apply_pathless(
        &mut self,
        store: &mut dyn Store,
        op: Op,
        value: Option<&Value>,
    ) -> ScimResult<()> {
        let Some(Value::Object(m)) = value else {
            return Err(ScimError::invalid_value(
                "Without a 'path', the value must be an object of attributes to set",
            ));
        };
        for (k, v) in m {
            if k.eq_ignore_ascii_case("schemas") || k.eq_ignore_ascii_case("meta") {
                continue;
            }
            if k.eq_ignore_ascii_case("id") {
                // Okta repeats the resource's own id when renaming groups.
                if v.as_str() == Some(self.id.as_str()) {
                    continue;
                }
                return Err(ScimError::mutability(
                    "'id' is readOnly and cannot be changed",
                ));
            }
            let target = Target::parse(self.rt, k)?;
            self.apply_target(store, op, k, &target, Some(v))?;
        }
        Ok(())
    }

    fn apply_target(
        &mut self,
        store: &mut dyn Store,
        op: Op,
        raw: &str,
        target: &Target,
        value: Option<&Value>,
    ) -> ScimResult<()> {
        if self.rt.relation == Relation::Members
            && target.attr().is_some_and(|a| a.name == "members")
        {
            return self.members(store, op, raw, target, value);
        }
        target.check_writable(raw)?;
        match target {
            Target::Extension(schema) => {
                if op == Op::Remove {
                    self.attrs.remove(schema.id);
                    return Ok(());
                }
                let obj = match value {
                    Some(Value::Object(o)) => o,
                    Some(Value::Null) => {
                        self.attrs.remove(schema.id);
                        return Ok(());
                    }
                    _ => {
                        return Err(ScimError::invalid_value(format!(
                            "'{raw}' takes an object of its attributes"
                        )));
                    }
                };
                for (k, v) in obj {
                    if k.eq_ignore_ascii_case("schemas") {
                        check_extension_schemas(schema, raw, v)?;
                        continue;
                    }
                    let qualified = format!("{}:{k}", schema.id);
                    let target = Target::parse(self.rt, &qualified)?;
                    self.apply_target(store, op, &qualified, &target, Some(v))?;
                }
                Ok(())
            }
            Target::Custom(key) => {
                let value = match op {
                    Op::Remove => Value::Null,
                    _ => value.cloned().unwrap_or(Value::Null),
                };
                crate::resource::normalize::set_custom(self.rt, &mut self.attrs, key, value)
            }
            Target::Attr(path) => self.attr_op(op, raw, path, value),
            Target::Filtered { path, filter, sub } => {
                self.filtered_op(op, raw, path, filter, *sub, value)
            }
        }
    }

    /// The object holding the path's attribute: the resource or its
    /// extension object (created on demand).
    fn container(&mut self, path: &Path) -> &mut Map<String, Value> {
        if !path.extension {
            return &mut self.attrs;
        }
        let ext = self
            .attrs
            .entry(path.schema.id)
            .or_insert_with(|| Value::Object(Map::new()));
        if !ext.is_object() {
            *ext = Value::Object(Map::new());
        }
        ext.as_object_mut().expect("extension is an object")
    }

    /// Drops attributes left empty (an emptied list or object is unassigned).
    fn tidy(&mut self, path: &Path) {
        let name = path.attr.name;
        let c = self.container(path);
        let empty = match c.get(name) {
            Some(Value::Array(a)) => a.is_empty(),
            Some(Value::Object(o)) => o.is_empty(),
            Some(Value::Null) => true,
            _ => false,
        };
        if empty {
            c.remove(name);
        }
        if path.extension
            && self
                .attrs
                .get(path.schema.id)
                .and_then(Value::as_object)
                .is_some_and(Map::is_empty)
        {
            self.attrs.remove(path.schema.id);
        }
    }

    fn attr_op(&mut self, op: Op, raw: &str, path: &Path, value: Option<&Value>) -> ScimResult<()> {
        let attr = path.attr;
        let name = path.display();
        let value = value.cloned();
        let c = self.container(path);
        match (op, attr.multi_valued, path.sub) {
            (Op::Remove, true, None) if value.as_ref().is_some_and(|v| !v.is_null()) => {
                // Remove only the listed values (Entra's removal of one value).
                let gone = normalize_value(attr, value.expect("checked"), &name)?;
                let gone = gone.and_then(|v| v.as_array().cloned()).unwrap_or_default();
                if let Some(Value::Array(items)) = c.get_mut(attr.name) {
                    items.retain(|i| !gone.iter().any(|g| same_element(attr, i, g)));
                }
            }
            (Op::Remove, _, None) => {
                c.remove(attr.name);
            }
            (Op::Remove, _, Some(sub)) => match c.get_mut(attr.name) {
                Some(Value::Array(items)) => {
                    for i in items.iter_mut() {
                        if let Value::Object(o) = i {
                            o.remove(sub.name);
                        }
                    }
                    items.retain(|i| i.as_object().is_none_or(|o| !o.is_empty()));
                }
                Some(Value::Object(o)) => {
                    o.remove(sub.name);
                }
                _ => {}
            },
            (_, false, None) => {
                let v = value.ok_or_else(|| value_required(raw))?;
                match normalize_value(attr, v, &name)? {
                    // RFC 7644 §3.5.2.3: a complex value updates the
                    // sub-attributes it names and leaves the others.
                    Some(v) if attr.is_complex() => {
                        let slot = c
                            .entry(attr.name)
                            .or_insert_with(|| Value::Object(Map::new()));
                        // A different `value` names another thing (a new
                        // manager): its old sub-attributes do not carry over.
                        if v.get("value").is_some() && slot.get("value") != v.get("value") {
                            *slot = v;
                        } else {
                            merge_into(slot, v);
                        }
                    }
                    Some(v) => {
                        c.insert(attr.name.to_string(), v);
                    }
                    None if op == Op::Replace => {
                        c.remove(attr.name);
                    }
                    None => {}
                }
            }
            (_, false, Some(sub)) => {
                let v = value.ok_or_else(|| value_required(raw))?;
                let v = normalize_value(sub, v, &name)?;
                let slot = c
                    .entry(attr.name)
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(o) = slot {
                    match v {
                        Some(v) => o.insert(sub.name.to_string(), v),
                        None => o.remove(sub.name),
                    };
                }
            }
            (Op::Add, true, None) => {
                let v = value.ok_or_else(|| value_required(raw))?;
                let new = normalize_value(attr, v, &name)?
                    .and_then(|v| v.as_array().cloned())
                    .unwrap_or_default();
                let slot = c
                    .entry(attr.name)
                    .or_insert_with(|| Value::Array(Vec::new()));
                let Value::Array(items) = slot else {
                    unreachable!("multi-valued attributes are stored as arrays")
                };
                for n in new {
                    if is_primary(&n) {
                        clear_primary(items);
                    }
                    match items.iter_mut().find(|i| same_element(attr, i, &n)) {
                        Some(existing) => merge_into(existing, n),
                        None => items.push(n),
                    }
                }
            }
            (Op::Replace, true, None) => {
                let v = value.ok_or_else(|| value_required(raw))?;
                match normalize_value(attr, v, &name)? {
                    Some(v) => c.insert(attr.name.to_string(), v),
                    None => c.remove(attr.name),
                };
            }
            (_, true, Some(sub)) => {
                // `emails.value`: set the sub-attribute on every value (or
                // create the first value).
                let v = value.ok_or_else(|| value_required(raw))?;
                let v = normalize_value(sub, v, &name)?;
                let slot = c
                    .entry(attr.name)
                    .or_insert_with(|| Value::Array(Vec::new()));
                if let Value::Array(items) = slot {
                    if items.is_empty() {
                        items.push(Value::Object(Map::new()));
                    }
                    for i in items.iter_mut() {
                        if let Value::Object(o) = i {
                            match &v {
                                Some(v) => o.insert(sub.name.to_string(), v.clone()),
                                None => o.remove(sub.name),
                            };
                        }
                    }
                }
            }
        }
        self.tidy(path);
        Ok(())
    }

    /// Operations on `attr[filter]` and `attr[filter].sub`.
    fn filtered_op(
        &mut self,
        op: Op,
        raw: &str,
        path: &Path,
        filter: &crate::filter::Filter,
        sub: Option<&'static Attribute>,
        value: Option<&Value>,
    ) -> ScimResult<()> {
        let attr = path.attr;
        let name = path.display();
        // What to write into a matching (or new) element.
        let update = match (op, sub, value) {
            (Op::Remove, _, _) => None,
            (_, Some(sub), Some(v)) => {
                let label = format!("{name}.{}", sub.name);
                let mut o = Map::new();
                if let Some(v) = normalize_value(sub, v.clone(), &label)? {
                    o.insert(sub.name.to_string(), v);
                }
                Some(o)
            }
            (_, None, Some(v)) => match normalize_single(attr, v.clone(), &name)? {
                Some(Value::Object(o)) => Some(o),
                _ => Some(Map::new()),
            },
            (_, _, None) => return Err(value_required(raw)),
        };
        let c = self.container(path);
        let mut items: Vec<Value> = match c.remove(attr.name) {
            Some(Value::Array(items)) => items,
            Some(single) => vec![single],
            None => Vec::new(),
        };
        let matching: Vec<usize> = (0..items.len())
            .filter(|&i| filter.matches_element(&items[i]))
            .collect();
        match op {
            Op::Remove => match sub {
                None => {
                    let mut i = 0;
                    items.retain(|_| {
                        let keep = !matching.contains(&i);
                        i += 1;
                        keep
                    });
                }
                Some(sub) => {
                    for &i in &matching {
                        if let Value::Object(o) = &mut items[i] {
                            o.remove(sub.name);
                        }
                    }
                }
            },
            Op::Add | Op::Replace => {
                let update = update.expect("add and replace carry a value");
                let promotes = update.get("primary") == Some(&Value::Bool(true));
                if matching.is_empty() {
                    // Identity providers address values before they exist:
                    // create the element the filter describes.
                    let Some(mut element) = template(filter) else {
                        return Err(ScimError::no_target(format!(
                            "'{raw}' matches no value, and its filter does not describe one to create"
                        )));
                    };
                    element.extend(update);
                    let element = normalize_single(attr, Value::Object(element), &name)?
                        .unwrap_or_else(|| Value::Object(Map::new()));
                    if promotes {
                        clear_primary(&mut items);
                    }
                    items.push(element);
                } else {
                    if promotes {
                        clear_primary(&mut items);
                    }
                    for &i in &matching {
                        if op == Op::Replace && sub.is_none() {
                            items[i] = Value::Object(update.clone());
                        } else {
                            merge_into(&mut items[i], Value::Object(update.clone()));
                        }
                    }
                }
            }
        }
        items.retain(|i| i.as_object().is_none_or(|o| !o.is_empty()));
        let c = self.container(path);
        if attr.multi_valued {
            c.insert(attr.name.to_string(), Value::Array(items));
        } else if let Some(one) = items.pop() {
            c.insert(attr.name.to_string(), one);
        }
        self.tidy(path);
        Ok(())
    }

    /// A group's `members`, changed row by row in the host's relation.
    fn members(
        &mut self,
        store: &mut dyn Store,
        op: Op,
        raw: &str,
        target: &Target,
        value: Option<&Value>,
    ) -> ScimResult<()> {
        let attr = target.attr().expect("members target");
        let group = self.id.clone();
        match target {
            Target::Attr(p) if p.sub.is_none() => match op {
                Op::Add => {
                    let inputs = member_inputs(attr, value.cloned().unwrap_or(Value::Null))?;
                    let refs = membership::resolve(store, &group, &inputs)?;
                    membership::add(store, &group, &refs)?;
                }
                Op::Replace => {
                    let inputs = member_inputs(attr, value.cloned().unwrap_or(Value::Null))?;
                    let refs = membership::resolve(store, &group, &inputs)?;
                    membership::replace_all(store, &group, &refs)?;
                }
                // With a value list, only those members go (Entra); without
                // one, all of them (RFC 7644 §3.5.2.2).
                Op::Remove => match value {
                    Some(v) if !v.is_null() => {
                        let ids: Vec<String> = member_inputs(attr, v.clone())?
                            .into_iter()
                            .map(|m| m.value)
                            .collect();
                        membership::remove(store, &group, &ids)?;
                    }
                    _ => {
                        membership::clear(store, &group)?;
                    }
                },
            },
            Target::Filtered {
                filter, sub: None, ..
            } if op == Op::Remove => {
                let ids = match value_equalities(filter) {
                    Some(ids) => ids,
                    None => self.matching_members(store, filter)?,
                };
                membership::remove(store, &group, &ids)?;
            }
            _ => {
                return Err(ScimError::invalid_path(format!(
                    "'{raw}': change members with add/replace/remove on 'members', or remove one with members[value eq \"id\"]"
                )));
            }
        }
        Ok(())
    }

    /// Members selected by an arbitrary filter (`members[type eq "Group"]`):
    /// the group is listed once and each member tested.
    fn matching_members(
        &self,
        store: &mut dyn Store,
        filter: &crate::filter::Filter,
    ) -> ScimResult<Vec<String>> {
        let members = store.members_all(GROUP_TYPE.name, &self.id)?;
        Ok(members
            .into_iter()
            .filter(|e| {
                filter.matches_element(
                    &serde_json::json!({"value": e.id, "type": e.kind, "display": e.label}),
                )
            })
            .map(|e| e.id)
            .collect())
    }
}
