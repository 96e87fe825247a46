//! The one schema definition (RFC 7643 §2, §7) behind validation, filtering,
//! PATCH, projection and the discovery endpoints.

mod capabilities;
mod definitions;

pub use capabilities::{CAPABILITIES, Capabilities};
pub use definitions::*;

/// Attribute data types (RFC 7643 §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttrType {
    String,
    Boolean,
    Decimal,
    Integer,
    DateTime,
    Binary,
    Reference,
    Complex,
}

impl AttrType {
    pub fn as_str(self) -> &'static str {
        match self {
            AttrType::String => "string",
            AttrType::Boolean => "boolean",
            AttrType::Decimal => "decimal",
            AttrType::Integer => "integer",
            AttrType::DateTime => "dateTime",
            AttrType::Binary => "binary",
            AttrType::Reference => "reference",
            AttrType::Complex => "complex",
        }
    }
}

/// RFC 7643 §7 `mutability`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutability {
    ReadOnly,
    ReadWrite,
    Immutable,
    WriteOnly,
}

impl Mutability {
    pub fn as_str(self) -> &'static str {
        match self {
            Mutability::ReadOnly => "readOnly",
            Mutability::ReadWrite => "readWrite",
            Mutability::Immutable => "immutable",
            Mutability::WriteOnly => "writeOnly",
        }
    }
}

/// RFC 7643 §7 `returned`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Returned {
    Always,
    Never,
    Default,
    Request,
}

impl Returned {
    pub fn as_str(self) -> &'static str {
        match self {
            Returned::Always => "always",
            Returned::Never => "never",
            Returned::Default => "default",
            Returned::Request => "request",
        }
    }
}

/// RFC 7643 §7 `uniqueness`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uniqueness {
    None,
    Server,
    Global,
}

impl Uniqueness {
    pub fn as_str(self) -> &'static str {
        match self {
            Uniqueness::None => "none",
            Uniqueness::Server => "server",
            Uniqueness::Global => "global",
        }
    }
}

/// One attribute definition, with its sub-attributes when complex.
#[derive(Debug, Clone, Copy)]
pub struct Attribute {
    pub name: &'static str,
    pub ty: AttrType,
    pub multi_valued: bool,
    pub description: &'static str,
    pub required: bool,
    pub case_exact: bool,
    pub mutability: Mutability,
    pub returned: Returned,
    pub uniqueness: Uniqueness,
    pub canonical_values: &'static [&'static str],
    pub reference_types: &'static [&'static str],
    pub sub_attributes: &'static [Attribute],
}

impl Attribute {
    /// A singular, optional, case-insensitive, readWrite attribute.
    pub const fn new(name: &'static str, ty: AttrType, description: &'static str) -> Self {
        Attribute {
            name,
            ty,
            multi_valued: false,
            description,
            required: false,
            case_exact: false,
            mutability: Mutability::ReadWrite,
            returned: Returned::Default,
            uniqueness: Uniqueness::None,
            canonical_values: &[],
            reference_types: &[],
            sub_attributes: &[],
        }
    }

    pub const fn string(name: &'static str, description: &'static str) -> Self {
        Self::new(name, AttrType::String, description)
    }

    pub const fn complex(
        name: &'static str,
        description: &'static str,
        sub_attributes: &'static [Attribute],
    ) -> Self {
        let mut a = Self::new(name, AttrType::Complex, description);
        a.sub_attributes = sub_attributes;
        a
    }

    pub const fn reference(
        name: &'static str,
        description: &'static str,
        types: &'static [&'static str],
    ) -> Self {
        let mut a = Self::new(name, AttrType::Reference, description);
        a.reference_types = types;
        a.case_exact = true;
        a
    }

    pub const fn multi(mut self) -> Self {
        self.multi_valued = true;
        self
    }

    pub const fn required(mut self) -> Self {
        self.required = true;
        self
    }

    pub const fn case_exact(mut self) -> Self {
        self.case_exact = true;
        self
    }

    pub const fn mutability(mut self, m: Mutability) -> Self {
        self.mutability = m;
        self
    }

    pub const fn returned(mut self, r: Returned) -> Self {
        self.returned = r;
        self
    }

    pub const fn unique(mut self) -> Self {
        self.uniqueness = Uniqueness::Server;
        self
    }

    pub const fn canonical(mut self, values: &'static [&'static str]) -> Self {
        self.canonical_values = values;
        self
    }

    /// The sub-attribute called `name`, compared case-insensitively.
    pub fn sub(&self, name: &str) -> Option<&'static Attribute> {
        self.sub_attributes
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case(name))
    }

    pub fn is_complex(&self) -> bool {
        self.ty == AttrType::Complex
    }

    /// The RFC 7643 §7 representation used by `/Schemas`.
    pub fn to_json(&self) -> serde_json::Value {
        let mut o = serde_json::Map::new();
        o.insert("name".into(), self.name.into());
        o.insert("type".into(), self.ty.as_str().into());
        o.insert("multiValued".into(), self.multi_valued.into());
        o.insert("description".into(), self.description.into());
        o.insert("required".into(), self.required.into());
        if self.ty != AttrType::Complex && self.ty != AttrType::Boolean {
            o.insert("caseExact".into(), self.case_exact.into());
        }
        if !self.canonical_values.is_empty() {
            o.insert("canonicalValues".into(), self.canonical_values.into());
        }
        if !self.reference_types.is_empty() {
            o.insert("referenceTypes".into(), self.reference_types.into());
        }
        o.insert("mutability".into(), self.mutability.as_str().into());
        o.insert("returned".into(), self.returned.as_str().into());
        o.insert("uniqueness".into(), self.uniqueness.as_str().into());
        if !self.sub_attributes.is_empty() {
            o.insert(
                "subAttributes".into(),
                self.sub_attributes.iter().map(Attribute::to_json).collect(),
            );
        }
        serde_json::Value::Object(o)
    }
}

/// A schema: a URI and its attributes.
#[derive(Debug)]
pub struct Schema {
    pub id: &'static str,
    pub name: &'static str,
    pub description: &'static str,
    pub attributes: &'static [Attribute],
}

impl Schema {
    /// The attribute called `name`, compared case-insensitively.
    pub fn attribute(&self, name: &str) -> Option<&'static Attribute> {
        self.attributes
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case(name))
    }
}

/// A resource type: endpoint, core schema, extensions.
#[derive(Debug)]
pub struct ResourceType {
    /// Name, also the storage kind (`User`, `Group`).
    pub name: &'static str,
    /// Endpoint below the base, with leading slash.
    pub endpoint: &'static str,
    pub description: &'static str,
    pub schema: &'static Schema,
    /// Extension schemas and whether each is required.
    pub extensions: &'static [(&'static Schema, bool)],
    /// Where the resource's group relations live.
    pub relation: Relation,
    /// Attributes whose first present value labels the resource in member
    /// listings (`members.display`, `groups.display`).
    pub label: &'static [&'static str],
    /// Attribute paths the engine derives index terms from, so the host can
    /// find resources by them (see `resource::terms`).
    pub indexed: &'static [&'static str],
}

/// How a resource type takes part in the membership relation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relation {
    /// Its `members` attribute is the relation (Group).
    Members,
    /// Its readOnly `groups` attribute is derived from the relation (User).
    Groups,
}

impl ResourceType {
    /// The attribute that carries the membership relation (`members` of a
    /// Group, `groups` of a User).
    pub fn relation_attribute(&self) -> &'static Attribute {
        let name = match self.relation {
            Relation::Members => "members",
            Relation::Groups => "groups",
        };
        self.schema
            .attribute(name)
            .expect("relation attribute is in the schema")
    }

    /// The extension schema with this URI (case-insensitive).
    pub fn extension(&self, uri: &str) -> Option<&'static Schema> {
        self.extensions
            .iter()
            .map(|(s, _)| *s)
            .find(|s| s.id.eq_ignore_ascii_case(uri))
    }

    /// Every schema URI of this type: core first.
    pub fn schema_ids(&self) -> impl Iterator<Item = &'static str> + '_ {
        std::iter::once(self.schema.id).chain(self.extensions.iter().map(|(s, _)| s.id))
    }

    /// A core or common attribute by name.
    pub fn core_attribute(&self, name: &str) -> Option<&'static Attribute> {
        COMMON_ATTRIBUTES
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case(name))
            .or_else(|| self.schema.attribute(name))
    }

    /// Splits a possibly URN-qualified attribute path into the schema it
    /// belongs to and the rest: `urn:…:enterprise:2.0:User:manager.value`
    /// gives (enterprise schema, `manager.value`). A bare path gives the core
    /// schema. `None` when the URN names no schema of this type.
    pub fn split_urn<'a>(&self, path: &'a str) -> Option<(&'static Schema, &'a str)> {
        if !looks_like_urn(path) {
            return Some((self.schema, path));
        }
        let lower = path.to_ascii_lowercase();
        // Longest schema id first, so an extension URN that starts with the
        // core URN is not mistaken for it.
        let mut schemas: Vec<&'static Schema> = self.schema_ids_schemas().collect();
        schemas.sort_by_key(|s| std::cmp::Reverse(s.id.len()));
        for s in schemas {
            let id = s.id.to_ascii_lowercase();
            if lower == id {
                return Some((s, ""));
            }
            if lower.starts_with(&id) && lower.as_bytes().get(id.len()) == Some(&b':') {
                return Some((s, &path[id.len() + 1..]));
            }
        }
        None
    }

    fn schema_ids_schemas(&self) -> impl Iterator<Item = &'static Schema> + '_ {
        std::iter::once(self.schema).chain(self.extensions.iter().map(|(s, _)| *s))
    }

    /// A top-level name written without a URN: a core or common attribute,
    /// else the attribute of the one extension that defines it. `Err` lists
    /// the extensions when more than one does, so the caller can ask the
    /// client to qualify the name instead of guessing.
    #[allow(clippy::type_complexity)]
    pub fn bare_attribute(
        &self,
        name: &str,
    ) -> Result<Option<(&'static Schema, &'static Attribute)>, Vec<&'static str>> {
        if let Some(attr) = self.core_attribute(name) {
            return Ok(Some((self.schema, attr)));
        }
        let found: Vec<(&'static Schema, &'static Attribute)> = self
            .extensions
            .iter()
            .filter_map(|(s, _)| s.attribute(name).map(|a| (*s, a)))
            .collect();
        match found.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(*one)),
            many => Err(many.iter().map(|(s, _)| s.id).collect()),
        }
    }
}

/// The prefix of extension schema URNs (RFC 7643 §3.3).
const EXTENSION_PREFIX: &str = "urn:ietf:params:scim:schemas:extension:";

impl ResourceType {
    /// Whether `urn` names a custom extension of this resource type that the
    /// engine does not define, written the RFC's way
    /// (`urn:ietf:params:scim:schemas:extension:<name>:<version>:User`, as
    /// Entra ID's custom extension attributes are). Such extensions are
    /// stored and returned as sent, so mapping rules can test them.
    pub fn is_custom_extension(&self, urn: &str) -> bool {
        let Some(rest) = urn
            .get(..EXTENSION_PREFIX.len())
            .filter(|p| p.eq_ignore_ascii_case(EXTENSION_PREFIX))
            .map(|_| &urn[EXTENSION_PREFIX.len()..])
        else {
            return false;
        };
        let parts: Vec<&str> = rest.split(':').collect();
        parts.len() >= 2
            && parts.iter().all(|p| !p.is_empty())
            && parts[parts.len() - 1].eq_ignore_ascii_case(self.name)
            && self.split_urn(urn).is_none()
    }

    /// A custom extension URN, and the attribute after it when `key` names
    /// one (`urn:…:CustomExtension:2.0:User:costCentre`).
    pub fn split_custom<'a>(&self, key: &'a str) -> Option<(&'a str, Option<&'a str>)> {
        if self.is_custom_extension(key) {
            return Some((key, None));
        }
        let (urn, attr) = key.rsplit_once(':')?;
        let named = attr
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && attr
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '$'));
        (named && self.is_custom_extension(urn)).then_some((urn, Some(attr)))
    }
}

/// Whether a key or path is a schema URI rather than an attribute name.
pub fn looks_like_urn(s: &str) -> bool {
    s.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("urn:"))
        || s.starts_with("http://")
        || s.starts_with("https://")
}
