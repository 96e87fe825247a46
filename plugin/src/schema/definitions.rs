//! RFC 7643 §4 and §8.7.1: the User, Enterprise User and Group schemas, the
//! common attributes, and the resource types built from them.

use super::{AttrType, Attribute, Mutability, Relation, ResourceType, Returned, Schema};

pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const ENTERPRISE_USER_SCHEMA: &str =
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

use AttrType as T;
use Mutability::{Immutable, ReadOnly, WriteOnly};

const fn bool_attr(name: &'static str, description: &'static str) -> Attribute {
    Attribute::new(name, T::Boolean, description)
}

/// `id`, `externalId` and `meta` (RFC 7643 §3.1), shared by every resource type.
pub static COMMON_ATTRIBUTES: &[Attribute] = &[
    Attribute::string(
        "id",
        "Unique identifier of the resource, assigned by the service provider.",
    )
    .case_exact()
    .mutability(ReadOnly)
    .returned(Returned::Always)
    .unique(),
    Attribute::string(
        "externalId",
        "Identifier of the resource as defined by the provisioning client.",
    )
    .case_exact(),
    Attribute::complex(
        "meta",
        "Resource metadata.",
        &[
            Attribute::string("resourceType", "Name of the resource type.")
                .case_exact()
                .mutability(ReadOnly),
            Attribute::new("created", T::DateTime, "When the resource was added.")
                .mutability(ReadOnly),
            Attribute::new(
                "lastModified",
                T::DateTime,
                "When the resource was last changed.",
            )
            .mutability(ReadOnly),
            Attribute::reference("location", "URI of the resource.", &["uri"]).mutability(ReadOnly),
            Attribute::string("version", "Version (entity tag) of the resource.")
                .case_exact()
                .mutability(ReadOnly),
        ],
    )
    .mutability(ReadOnly),
];

/// A multi-valued complex attribute with `value`, `display`, `type`, `primary`.
const fn plural(
    name: &'static str,
    description: &'static str,
    sub_attributes: &'static [Attribute],
) -> Attribute {
    Attribute::complex(name, description, sub_attributes).multi()
}

const DISPLAY: Attribute =
    Attribute::string("display", "Human-readable name, primarily for display.");
const PRIMARY: Attribute = bool_attr(
    "primary",
    "Whether this is the preferred value of the attribute.",
);

static USER_ATTRIBUTES: &[Attribute] = &[
    Attribute::string("userName", "Unique identifier for the user, used to sign in.")
        .required()
        .unique(),
    Attribute::complex(
        "name",
        "Components of the user's real name.",
        &[
            Attribute::string("formatted", "Full name, formatted for display."),
            Attribute::string("familyName", "Family name."),
            Attribute::string("givenName", "Given name."),
            Attribute::string("middleName", "Middle name(s)."),
            Attribute::string("honorificPrefix", "Honorific prefix, e.g. 'Ms.'."),
            Attribute::string("honorificSuffix", "Honorific suffix, e.g. 'III'."),
        ],
    ),
    Attribute::string("displayName", "Name of the user, suitable for display."),
    Attribute::string("nickName", "Casual name of the user."),
    Attribute::reference("profileUrl", "URL of the user's online profile.", &["external"]),
    Attribute::string("title", "The user's title, e.g. 'Vice President'."),
    Attribute::string("userType", "Relationship to the organisation, e.g. 'Employee'."),
    Attribute::string("preferredLanguage", "Preferred written or spoken language (RFC 7231 §5.3.5)."),
    Attribute::string("locale", "Default location for localisation, e.g. 'en-US'."),
    Attribute::string("timezone", "Time zone in IANA format, e.g. 'America/Los_Angeles'."),
    bool_attr("active", "Whether the user may sign in; false suspends access."),
    Attribute::string("password", "Clear-text password; accepted on write, never returned or stored.")
        .mutability(WriteOnly)
        .returned(Returned::Never),
    plural(
        "emails",
        "Email addresses.",
        &[
            Attribute::string("value", "Email address."),
            DISPLAY,
            Attribute::string("type", "Label: 'work', 'home' or 'other'.").canonical(&["work", "home", "other"]),
            PRIMARY,
        ],
    ),
    plural(
        "phoneNumbers",
        "Phone numbers.",
        &[
            Attribute::string("value", "Phone number."),
            DISPLAY,
            Attribute::string("type", "Label, e.g. 'work', 'mobile'.")
                .canonical(&["work", "home", "mobile", "fax", "pager", "other"]),
            PRIMARY,
        ],
    ),
    plural(
        "ims",
        "Instant messaging addresses.",
        &[
            Attribute::string("value", "Instant messaging address."),
            DISPLAY,
            Attribute::string("type", "Label, e.g. 'xmpp'.")
                .canonical(&["aim", "gtalk", "icq", "xmpp", "msn", "skype", "qq", "yahoo"]),
            PRIMARY,
        ],
    ),
    plural(
        "photos",
        "URLs of photos of the user.",
        &[
            Attribute::reference("value", "URL of a photo.", &["external"]),
            DISPLAY,
            Attribute::string("type", "Label: 'photo' or 'thumbnail'.").canonical(&["photo", "thumbnail"]),
            PRIMARY,
        ],
    ),
    plural(
        "addresses",
        "Physical mailing addresses.",
        &[
            Attribute::string("formatted", "Full address, formatted for display."),
            Attribute::string("streetAddress", "Street address."),
            Attribute::string("locality", "City or locality."),
            Attribute::string("region", "State or region."),
            Attribute::string("postalCode", "Zip or postal code."),
            Attribute::string("country", "Country, ISO 3166-1 alpha-2."),
            Attribute::string("type", "Label: 'work', 'home' or 'other'.").canonical(&["work", "home", "other"]),
            PRIMARY,
        ],
    ),
    plural(
        "groups",
        "Groups the user belongs to, directly or through nested groups; managed through the Group resource.",
        &[
            Attribute::string("value", "Identifier of the group.").mutability(ReadOnly),
            Attribute::reference("$ref", "URI of the group.", &["User", "Group"]).mutability(ReadOnly),
            Attribute::string("display", "Display name of the group.").mutability(ReadOnly),
            Attribute::string("type", "'direct' or 'indirect' membership.")
                .canonical(&["direct", "indirect"])
                .mutability(ReadOnly),
        ],
    )
    .mutability(ReadOnly),
    plural(
        "entitlements",
        "Entitlements of the user.",
        &[
            Attribute::string("value", "Entitlement."),
            DISPLAY,
            Attribute::string("type", "Label."),
            PRIMARY,
        ],
    ),
    plural(
        "roles",
        "Roles of the user; the LMS maps them to its own roles.",
        &[
            Attribute::string("value", "Role."),
            DISPLAY,
            Attribute::string("type", "Label."),
            PRIMARY,
        ],
    ),
    plural(
        "x509Certificates",
        "X.509 certificates of the user.",
        &[
            Attribute::new("value", T::Binary, "DER certificate, base64.").case_exact(),
            DISPLAY,
            Attribute::string("type", "Label."),
            PRIMARY,
        ],
    ),
];

pub static USER: Schema = Schema {
    id: USER_SCHEMA,
    name: "User",
    description: "User Account",
    attributes: USER_ATTRIBUTES,
};

pub static ENTERPRISE_USER: Schema = Schema {
    id: ENTERPRISE_USER_SCHEMA,
    name: "EnterpriseUser",
    description: "Enterprise User",
    attributes: &[
        Attribute::string("employeeNumber", "Organisation-assigned employee number."),
        Attribute::string("costCenter", "Cost center."),
        Attribute::string("organization", "Organisation."),
        Attribute::string("division", "Division."),
        Attribute::string("department", "Department."),
        Attribute::complex(
            "manager",
            "The user's manager.",
            &[
                Attribute::string("value", "Id of the manager's User resource.").case_exact(),
                Attribute::reference("$ref", "URI of the manager's User resource.", &["User"]),
                Attribute::string("displayName", "Display name of the manager.")
                    .mutability(ReadOnly),
            ],
        ),
    ],
};

pub static GROUP: Schema = Schema {
    id: GROUP_SCHEMA,
    name: "Group",
    description: "Group",
    attributes: &[
        Attribute::string("displayName", "Human-readable name of the group.")
            .required()
            .unique(),
        plural(
            "members",
            "Members of the group: users or groups.",
            &[
                Attribute::string("value", "Id of the member resource.")
                    .case_exact()
                    .mutability(Immutable),
                Attribute::reference("$ref", "URI of the member resource.", &["User", "Group"])
                    .mutability(Immutable),
                Attribute::string("display", "Display name of the member.").mutability(ReadOnly),
                Attribute::string("type", "Kind of member: 'User' or 'Group'.")
                    .canonical(&["User", "Group"])
                    .mutability(Immutable),
            ],
        ),
    ],
};

pub static USER_TYPE: ResourceType = ResourceType {
    name: "User",
    endpoint: "/Users",
    description: "User Account",
    schema: &USER,
    extensions: &[(&ENTERPRISE_USER, false)],
    relation: Relation::Groups,
    label: &["displayName", "userName"],
    indexed: &[
        "userName",
        "externalId",
        "displayName",
        "emails.value",
        "name.familyName",
        "active",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber",
        "meta.created",
        "meta.lastModified",
    ],
};

pub static GROUP_TYPE: ResourceType = ResourceType {
    name: "Group",
    endpoint: "/Groups",
    description: "Group",
    schema: &GROUP,
    extensions: &[],
    relation: Relation::Members,
    label: &["displayName"],
    indexed: &[
        "displayName",
        "externalId",
        "meta.created",
        "meta.lastModified",
    ],
};

/// Every resource type the engine serves.
pub static RESOURCE_TYPES: &[&ResourceType] = &[&USER_TYPE, &GROUP_TYPE];

/// Every schema the engine serves.
pub static SCHEMAS: &[&Schema] = &[&USER, &ENTERPRISE_USER, &GROUP];
