//! The SCIM schemas Guestbridge serves (RFC 7643 §4 User, §4.3 Enterprise User, §4.2 Group):
//! attribute characteristics (§2.2) used for validation, PATCH, filtering, projection and
//! the `/Schemas` discovery endpoint (RFC 7644 §4).

use serde_json::{json, Value};

pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const ENTERPRISE_USER_SCHEMA: &str =
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
/// Guestbridge's extension for partner-supplied guest data that mapping rules read.
pub const GUEST_SCHEMA: &str = "urn:guestbridge:params:scim:schemas:extension:guest:1.0:User";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttrType {
    String,
    Boolean,
    Decimal,
    Integer,
    DateTime,
    Reference,
    Complex,
    Binary,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutability {
    ReadOnly,
    ReadWrite,
    Immutable,
    WriteOnly,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Returned {
    Always,
    Never,
    Default,
    Request,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uniqueness {
    None,
    Server,
    Global,
}

/// One attribute's characteristics (RFC 7643 §2.2, §7).
#[derive(Debug)]
pub struct AttrDef {
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
    pub sub_attributes: &'static [AttrDef],
    /// The server assigns a value when a client leaves the attribute out, so it is never
    /// unassigned (RFC 7643 §2.2 leaves such defaults to the service provider).
    pub defaulted: bool,
}

impl AttrDef {
    /// A single-valued, optional, readWrite, case-insensitive string: the common case.
    const fn string(name: &'static str, description: &'static str) -> Self {
        Self {
            name,
            ty: AttrType::String,
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
            defaulted: false,
        }
    }

    const fn defaulted(mut self) -> Self {
        self.defaulted = true;
        self
    }

    const fn typed(mut self, ty: AttrType) -> Self {
        self.ty = ty;
        self
    }

    const fn multi(mut self) -> Self {
        self.multi_valued = true;
        self
    }

    const fn required(mut self) -> Self {
        self.required = true;
        self
    }

    const fn case_exact(mut self) -> Self {
        self.case_exact = true;
        self
    }

    const fn mutability(mut self, m: Mutability) -> Self {
        self.mutability = m;
        self
    }

    const fn returned(mut self, r: Returned) -> Self {
        self.returned = r;
        self
    }

    const fn unique(mut self, u: Uniqueness) -> Self {
        self.uniqueness = u;
        self
    }

    const fn canonical(mut self, values: &'static [&'static str]) -> Self {
        self.canonical_values = values;
        self
    }

    const fn refs(mut self, types: &'static [&'static str]) -> Self {
        self.reference_types = types;
        self
    }

    const fn complex(mut self, subs: &'static [AttrDef]) -> Self {
        self.ty = AttrType::Complex;
        self.sub_attributes = subs;
        self
    }

    /// Sub-attribute by name, case-insensitively (RFC 7643 §2.1).
    pub fn sub_attribute(&self, name: &str) -> Option<&'static AttrDef>
    where
        Self: 'static,
    {
        self.sub_attributes
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case(name))
    }

    pub fn is_read_only(&self) -> bool {
        self.mutability == Mutability::ReadOnly
    }

    fn to_json(&self) -> Value {
        let mut v = json!({
            "name": self.name,
            "type": match self.ty {
                AttrType::String => "string",
                AttrType::Boolean => "boolean",
                AttrType::Decimal => "decimal",
                AttrType::Integer => "integer",
                AttrType::DateTime => "dateTime",
                AttrType::Reference => "reference",
                AttrType::Complex => "complex",
                AttrType::Binary => "binary",
            },
            "multiValued": self.multi_valued,
            "description": self.description,
            "required": self.required,
            "caseExact": self.case_exact,
            "mutability": match self.mutability {
                Mutability::ReadOnly => "readOnly",
                Mutability::ReadWrite => "readWrite",
                Mutability::Immutable => "immutable",
                Mutability::WriteOnly => "writeOnly",
            },
            "returned": match self.returned {
                Returned::Always => "always",
                Returned::Never => "never",
                Returned::Default => "default",
                Returned::Request => "request",
            },
            "uniqueness": match self.uniqueness {
                Uniqueness::None => "none",
                Uniqueness::Server => "server",
                Uniqueness::Global => "global",
            },
        });
        if !self.canonical_values.is_empty() {
            v["canonicalValues"] = json!(self.canonical_values);
        }
        if !self.reference_types.is_empty() {
            v["referenceTypes"] = json!(self.reference_types);
        }
        if !self.sub_attributes.is_empty() {
            v["subAttributes"] =
                Value::Array(self.sub_attributes.iter().map(|a| a.to_json()).collect());
        }
        v
    }
}

/// A schema: its URN and top-level attributes.
#[derive(Debug)]
pub struct SchemaDef {
    pub id: &'static str,
    pub name: &'static str,
    pub description: &'static str,
    pub attributes: &'static [AttrDef],
}

impl SchemaDef {
    pub fn attribute(&self, name: &str) -> Option<&'static AttrDef>
    where
        Self: 'static,
    {
        self.attributes
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case(name))
    }

    /// The schema resource served by `/Schemas` (RFC 7643 §7).
    pub fn to_json(&self, base_url: &str) -> Value {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "attributes": self.attributes.iter().map(|a| a.to_json()).collect::<Vec<_>>(),
            "meta": {
                "resourceType": "Schema",
                "location": format!("{base_url}/scim/v2/Schemas/{}", self.id),
            }
        })
    }
}

/// A resource type (RFC 7643 §6): its endpoint, core schema and extensions.
#[derive(Debug)]
pub struct ResourceTypeDef {
    pub name: &'static str,
    pub endpoint: &'static str,
    pub description: &'static str,
    pub schema: &'static SchemaDef,
    /// Extensions and whether each is required.
    pub extensions: &'static [(&'static SchemaDef, bool)],
}

impl ResourceTypeDef {
    /// All schemas a resource of this type may carry, core first.
    pub fn schemas(&'static self) -> impl Iterator<Item = &'static SchemaDef> {
        std::iter::once(self.schema).chain(self.extensions.iter().map(|(s, _)| *s))
    }

    /// The extension with this URN, case-insensitively.
    pub fn extension(&'static self, urn: &str) -> Option<&'static SchemaDef> {
        self.extensions
            .iter()
            .map(|(s, _)| *s)
            .find(|s| s.id.eq_ignore_ascii_case(urn))
    }

    /// Resolve an attribute by optional schema URN and name: the core schema when the URN is
    /// absent or names the core schema, otherwise the named extension.
    pub fn resolve(
        &'static self,
        uri: Option<&str>,
        name: &str,
    ) -> Option<(&'static SchemaDef, &'static AttrDef)> {
        let schema = match uri {
            None => self.schema,
            Some(u) if u.eq_ignore_ascii_case(self.schema.id) => self.schema,
            Some(u) => self.extension(u)?,
        };
        schema.attribute(name).map(|a| (schema, a))
    }

    pub fn to_json(&self, base_url: &str) -> Value {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
            "id": self.name,
            "name": self.name,
            "endpoint": self.endpoint,
            "description": self.description,
            "schema": self.schema.id,
            "schemaExtensions": self.extensions.iter().map(|(s, required)| json!({
                "schema": s.id,
                "required": required,
            })).collect::<Vec<_>>(),
            "meta": {
                "resourceType": "ResourceType",
                "location": format!("{base_url}/scim/v2/ResourceTypes/{}", self.name),
            }
        })
    }
}

use AttrType::{Boolean, DateTime, Reference};
use Mutability::{Immutable, ReadOnly};

const TYPES_WORK_HOME_OTHER: &[&str] = &["work", "home", "other"];

const EMAIL_SUBS: &[AttrDef] = &[
    AttrDef::string("value", "Email address for the User."),
    AttrDef::string(
        "display",
        "A human-readable name, primarily used for display purposes.",
    ),
    AttrDef::string("type", "A label indicating the attribute's function.")
        .canonical(TYPES_WORK_HOME_OTHER),
    AttrDef::string("primary", "Whether this is the primary value.").typed(Boolean),
];

const PHONE_SUBS: &[AttrDef] = &[
    AttrDef::string("value", "Phone number of the User."),
    AttrDef::string(
        "display",
        "A human-readable name, primarily used for display purposes.",
    ),
    AttrDef::string("type", "A label indicating the attribute's function.")
        .canonical(&["work", "home", "mobile", "fax", "pager", "other"]),
    AttrDef::string("primary", "Whether this is the primary value.").typed(Boolean),
];

const GENERIC_MV_SUBS: &[AttrDef] = &[
    AttrDef::string("value", "The value."),
    AttrDef::string(
        "display",
        "A human-readable name, primarily used for display purposes.",
    ),
    AttrDef::string("type", "A label indicating the attribute's function."),
    AttrDef::string("primary", "Whether this is the primary value.").typed(Boolean),
];

const ADDRESS_SUBS: &[AttrDef] = &[
    AttrDef::string(
        "formatted",
        "The full mailing address, formatted for display.",
    ),
    AttrDef::string("streetAddress", "The full street address component."),
    AttrDef::string("locality", "The city or locality component."),
    AttrDef::string("region", "The state or region component."),
    AttrDef::string("postalCode", "The zip code or postal code component."),
    AttrDef::string("country", "The country name component."),
    AttrDef::string("type", "A label indicating the attribute's function.")
        .canonical(TYPES_WORK_HOME_OTHER),
    AttrDef::string("primary", "Whether this is the primary value.").typed(Boolean),
];

const NAME_SUBS: &[AttrDef] = &[
    AttrDef::string("formatted", "The full name, formatted for display."),
    AttrDef::string("familyName", "The family name of the User."),
    AttrDef::string("givenName", "The given name of the User."),
    AttrDef::string("middleName", "The middle name(s) of the User."),
    AttrDef::string("honorificPrefix", "The honorific prefix(es) of the User."),
    AttrDef::string("honorificSuffix", "The honorific suffix(es) of the User."),
];

const USER_GROUP_SUBS: &[AttrDef] = &[
    AttrDef::string("value", "The identifier of the User's group.").mutability(ReadOnly),
    AttrDef::string("$ref", "The URI of the corresponding Group resource.")
        .typed(Reference)
        .refs(&["Group"])
        .mutability(ReadOnly),
    AttrDef::string("display", "A human-readable name of the group.").mutability(ReadOnly),
    AttrDef::string(
        "type",
        "How the membership was derived: direct or indirect.",
    )
    .canonical(&["direct", "indirect"])
    .mutability(ReadOnly),
];

const META_SUBS: &[AttrDef] = &[
    AttrDef::string(
        "resourceType",
        "The name of the resource type of the resource.",
    )
    .case_exact()
    .mutability(ReadOnly),
    AttrDef::string(
        "created",
        "When the resource was added to the service provider.",
    )
    .typed(DateTime)
    .mutability(ReadOnly),
    AttrDef::string("lastModified", "When the resource was last modified.")
        .typed(DateTime)
        .mutability(ReadOnly),
    AttrDef::string("location", "The URI of the resource being returned.")
        .typed(Reference)
        .case_exact()
        .mutability(ReadOnly),
    AttrDef::string("version", "The version (ETag) of the resource.")
        .case_exact()
        .mutability(ReadOnly),
];

/// `id`, `externalId` and `meta`, common to every resource (RFC 7643 §3.1).
const fn id_attr() -> AttrDef {
    AttrDef::string(
        "id",
        "Unique identifier for the resource, assigned by the service provider.",
    )
    .case_exact()
    .mutability(ReadOnly)
    .returned(Returned::Always)
    .unique(Uniqueness::Server)
}

const fn external_id_attr() -> AttrDef {
    AttrDef::string(
        "externalId",
        "Identifier of the resource as defined by the provisioning client.",
    )
    .case_exact()
}

const fn meta_attr() -> AttrDef {
    AttrDef::string("meta", "Resource metadata.")
        .mutability(ReadOnly)
        .complex(META_SUBS)
}

pub static USER: SchemaDef = SchemaDef {
    id: USER_SCHEMA,
    name: "User",
    description: "User Account",
    attributes: &[
        id_attr(),
        external_id_attr(),
        meta_attr(),
        AttrDef::string(
            "userName",
            "Unique identifier for the User, used to authenticate.",
        )
        .required()
        .unique(Uniqueness::Server),
        AttrDef::string("name", "The components of the user's real name.").complex(NAME_SUBS),
        AttrDef::string("displayName", "The name of the User, suitable for display."),
        AttrDef::string("nickName", "The casual way to address the user."),
        AttrDef::string(
            "profileUrl",
            "A fully qualified URL pointing to the User's profile.",
        )
        .typed(Reference)
        .refs(&["external"]),
        AttrDef::string("title", "The user's title, such as \"Vice President\"."),
        AttrDef::string(
            "userType",
            "Relationship between the organization and the user.",
        ),
        AttrDef::string(
            "preferredLanguage",
            "The User's preferred written or spoken language.",
        ),
        AttrDef::string("locale", "The User's default location for localization."),
        AttrDef::string(
            "timezone",
            "The User's time zone in IANA Time Zone database format.",
        ),
        AttrDef::string(
            "active",
            "The User's administrative status; true when a client leaves it out.",
        )
        .typed(Boolean)
        .defaulted(),
        AttrDef::string("password", "The User's cleartext password; never returned.")
            .mutability(Mutability::WriteOnly)
            .returned(Returned::Never)
            .case_exact(),
        AttrDef::string("emails", "Email addresses for the user.")
            .multi()
            .complex(EMAIL_SUBS),
        AttrDef::string("phoneNumbers", "Phone numbers for the User.")
            .multi()
            .complex(PHONE_SUBS),
        AttrDef::string("ims", "Instant messaging addresses for the User.")
            .multi()
            .complex(GENERIC_MV_SUBS),
        AttrDef::string("photos", "URLs of photos of the User.")
            .multi()
            .complex(GENERIC_MV_SUBS),
        AttrDef::string("addresses", "A physical mailing address for this User.")
            .multi()
            .complex(ADDRESS_SUBS),
        AttrDef::string(
            "groups",
            "Groups to which the user belongs; derived from Group memberships.",
        )
        .multi()
        .mutability(ReadOnly)
        .complex(USER_GROUP_SUBS),
        AttrDef::string("entitlements", "Entitlements for the User.")
            .multi()
            .complex(GENERIC_MV_SUBS),
        AttrDef::string("roles", "Roles for the User.")
            .multi()
            .complex(GENERIC_MV_SUBS),
        AttrDef::string("x509Certificates", "X.509 certificates issued to the User.")
            .multi()
            .complex(GENERIC_MV_SUBS),
    ],
};

const MANAGER_SUBS: &[AttrDef] = &[
    AttrDef::string(
        "value",
        "The id of the SCIM resource representing the User's manager.",
    )
    .case_exact(),
    AttrDef::string(
        "$ref",
        "The URI of the SCIM resource representing the User's manager.",
    )
    .typed(Reference)
    .refs(&["User"]),
    AttrDef::string("displayName", "The displayName of the User's manager.").mutability(ReadOnly),
];

pub static ENTERPRISE_USER: SchemaDef = SchemaDef {
    id: ENTERPRISE_USER_SCHEMA,
    name: "EnterpriseUser",
    description: "Enterprise User",
    attributes: &[
        AttrDef::string(
            "employeeNumber",
            "Numeric or alphanumeric identifier assigned to a person.",
        ),
        AttrDef::string("costCenter", "Identifies the name of a cost center."),
        AttrDef::string("organization", "Identifies the name of an organization."),
        AttrDef::string("division", "Identifies the name of a division."),
        AttrDef::string("department", "Identifies the name of a department."),
        AttrDef::string("manager", "The User's manager.").complex(MANAGER_SUBS),
    ],
};

pub static GUEST: SchemaDef = SchemaDef {
    id: GUEST_SCHEMA,
    name: "GuestbridgeGuest",
    description: "Partner-supplied data about a guest, read by Guestbridge's mapping rules",
    attributes: &[
        AttrDef::string(
            "sponsorEmail",
            "Email of the host organisation's person who sponsors this guest.",
        ),
        AttrDef::string(
            "accessEndDate",
            "When the partner says this person's access should end.",
        )
        .typed(DateTime),
        AttrDef::string(
            "homeOrganization",
            "The partner organisation (or site) the person works for.",
        ),
        AttrDef::string(
            "professionalRegistration",
            "Professional registration or licence number.",
        ),
    ],
};

const MEMBER_SUBS: &[AttrDef] = &[
    AttrDef::string("value", "Identifier of the member of this Group.")
        .case_exact()
        .mutability(Immutable),
    AttrDef::string("$ref", "The URI of the member resource.")
        .typed(Reference)
        .refs(&["User", "Group"])
        .mutability(Immutable),
    AttrDef::string("display", "A human-readable name of the member.").mutability(ReadOnly),
    AttrDef::string("type", "The type of member.")
        .canonical(&["User", "Group"])
        .mutability(Immutable),
];

pub static GROUP: SchemaDef = SchemaDef {
    id: GROUP_SCHEMA,
    name: "Group",
    description: "Group",
    attributes: &[
        id_attr(),
        external_id_attr(),
        meta_attr(),
        AttrDef::string("displayName", "A human-readable name for the Group.")
            .required()
            .unique(Uniqueness::Server),
        AttrDef::string("members", "A list of members of the Group.")
            .multi()
            .complex(MEMBER_SUBS),
    ],
};

pub static USER_RESOURCE: ResourceTypeDef = ResourceTypeDef {
    name: "User",
    endpoint: "/Users",
    description: "User Account",
    schema: &USER,
    extensions: &[(&ENTERPRISE_USER, false), (&GUEST, false)],
};

pub static GROUP_RESOURCE: ResourceTypeDef = ResourceTypeDef {
    name: "Group",
    endpoint: "/Groups",
    description: "Group",
    schema: &GROUP,
    extensions: &[],
};

/// Every schema served by `/Schemas`.
pub fn all_schemas() -> [&'static SchemaDef; 4] {
    [&USER, &ENTERPRISE_USER, &GUEST, &GROUP]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_core_and_extension_attributes_case_insensitively() {
        let (s, a) = USER_RESOURCE.resolve(None, "USERNAME").unwrap();
        assert_eq!((s.id, a.name), (USER_SCHEMA, "userName"));
        let (s, a) = USER_RESOURCE
            .resolve(Some(ENTERPRISE_USER_SCHEMA), "employeenumber")
            .unwrap();
        assert_eq!((s.id, a.name), (ENTERPRISE_USER_SCHEMA, "employeeNumber"));
        assert!(USER_RESOURCE.resolve(None, "employeeNumber").is_none());
        assert!(USER_RESOURCE
            .resolve(Some(GROUP_SCHEMA), "userName")
            .is_none());
    }

    #[test]
    fn schema_json_lists_sub_attributes_with_characteristics() {
        let v = USER.to_json("http://x");
        let emails = v["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == "emails")
            .unwrap();
        assert_eq!(emails["multiValued"], true);
        assert_eq!(emails["subAttributes"][3]["type"], "boolean");
        let id = &v["attributes"][0];
        assert_eq!(id["mutability"], "readOnly");
        assert_eq!(id["caseExact"], true);
    }
}
