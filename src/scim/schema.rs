//! Schema definitions (RFC 7643 §2, §4, §7, §8.7.1): the single source of truth
//! for attribute names, types and characteristics. Validation, projection,
//! PATCH and filters all read these tables; `/Schemas` renders them.

pub const USER_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const ENTERPRISE_USER_URN: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub const GROUP_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const LIST_RESPONSE_URN: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
pub const ERROR_URN: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

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

/// One attribute definition with the characteristics of RFC 7643 §2.2 / §7.
#[derive(Debug)]
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
    /// The RFC 7643 §2.2 defaults for a singular attribute of type `ty`.
    const fn of(name: &'static str, ty: AttrType, description: &'static str) -> Self {
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
    const fn string(name: &'static str, description: &'static str) -> Self {
        Self::of(name, AttrType::String, description)
    }
    const fn boolean(name: &'static str, description: &'static str) -> Self {
        Self::of(name, AttrType::Boolean, description)
    }
    const fn reference(
        name: &'static str,
        types: &'static [&'static str],
        description: &'static str,
    ) -> Self {
        let mut a = Self::of(name, AttrType::Reference, description);
        a.reference_types = types;
        a
    }
    const fn complex(
        name: &'static str,
        subs: &'static [Attribute],
        description: &'static str,
    ) -> Self {
        let mut a = Self::of(name, AttrType::Complex, description);
        a.sub_attributes = subs;
        a
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
    const fn uniqueness(mut self, u: Uniqueness) -> Self {
        self.uniqueness = u;
        self
    }
    const fn canonical(mut self, values: &'static [&'static str]) -> Self {
        self.canonical_values = values;
        self
    }

    /// Looks up a sub-attribute by name, case-insensitively (RFC 7643 §2.1).
    pub fn sub_attribute(&self, name: &str) -> Option<&'static Attribute> {
        find(self.sub_attributes, name)
    }
}

fn find(attrs: &'static [Attribute], name: &str) -> Option<&'static Attribute> {
    attrs.iter().find(|a| a.name.eq_ignore_ascii_case(name))
}

/// A schema: a URN and its attributes.
#[derive(Debug)]
pub struct Schema {
    pub id: &'static str,
    pub name: &'static str,
    pub description: &'static str,
    pub attributes: &'static [Attribute],
}

/// Schemas are identified by their URN.
impl PartialEq for Schema {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}
impl Eq for Schema {}

impl Schema {
    pub fn attribute(&self, name: &str) -> Option<&'static Attribute> {
        find(self.attributes, name)
    }
}

/// An extension schema attached to a resource type.
#[derive(Debug)]
pub struct SchemaExtension {
    pub schema: &'static Schema,
    pub required: bool,
}

/// A resource type (RFC 7643 §6): its endpoint, core schema and extensions.
#[derive(Debug)]
pub struct ResourceType {
    pub name: &'static str,
    pub endpoint: &'static str,
    pub description: &'static str,
    pub schema: &'static Schema,
    pub extensions: &'static [SchemaExtension],
}

impl ResourceType {
    /// The extension whose URN is `urn` (case-insensitive).
    pub fn extension(&self, urn: &str) -> Option<&'static Schema> {
        self.extensions
            .iter()
            .map(|e| e.schema)
            .find(|s| s.id.eq_ignore_ascii_case(urn))
    }

    /// Whether `urn` names the core schema or one of the extensions.
    pub fn supports_schema(&self, urn: &str) -> bool {
        self.schema.id.eq_ignore_ascii_case(urn) || self.extension(urn).is_some()
    }
}

// Sub-attributes shared by the multi-valued attributes of RFC 7643 §2.4.
const fn mv_type(canonical: &'static [&'static str]) -> Attribute {
    Attribute::string("type", "A label indicating the attribute's function.").canonical(canonical)
}
const MV_DISPLAY: Attribute = Attribute::string(
    "display",
    "A human-readable name, primarily used for display purposes.",
);
const MV_PRIMARY: Attribute = Attribute::boolean(
    "primary",
    "A Boolean value indicating the 'primary' or preferred attribute value for this attribute.",
);

const NAME_SUBS: &[Attribute] = &[
    Attribute::string(
        "formatted",
        "The full name, including all middle names, titles, and suffixes as appropriate, formatted for display.",
    ),
    Attribute::string(
        "familyName",
        "The family name of the User, or last name in most Western languages.",
    ),
    Attribute::string(
        "givenName",
        "The given name of the User, or first name in most Western languages.",
    ),
    Attribute::string("middleName", "The middle name(s) of the User."),
    Attribute::string(
        "honorificPrefix",
        "The honorific prefix(es) of the User, or title in most Western languages.",
    ),
    Attribute::string(
        "honorificSuffix",
        "The honorific suffix(es) of the User, or suffix in most Western languages.",
    ),
];

const EMAIL_SUBS: &[Attribute] = &[
    Attribute::string("value", "Email addresses for the user."),
    MV_DISPLAY,
    mv_type(&["work", "home", "other"]),
    MV_PRIMARY,
];
const PHONE_SUBS: &[Attribute] = &[
    Attribute::string("value", "Phone number of the User."),
    MV_DISPLAY,
    mv_type(&["work", "home", "mobile", "fax", "pager", "other"]),
    MV_PRIMARY,
];
const IM_SUBS: &[Attribute] = &[
    Attribute::string("value", "Instant messaging address for the User."),
    MV_DISPLAY,
    mv_type(&["aim", "gtalk", "icq", "xmpp", "msn", "skype", "qq", "yahoo"]),
    MV_PRIMARY,
];
const PHOTO_SUBS: &[Attribute] = &[
    Attribute::reference("value", &["external"], "URL of a photo of the User."),
    MV_DISPLAY,
    mv_type(&["photo", "thumbnail"]),
    MV_PRIMARY,
];
const ADDRESS_SUBS: &[Attribute] = &[
    Attribute::string(
        "formatted",
        "The full mailing address, formatted for display or use with a mailing label.",
    ),
    Attribute::string("streetAddress", "The full street address component."),
    Attribute::string("locality", "The city or locality component."),
    Attribute::string("region", "The state or region component."),
    Attribute::string("postalCode", "The zip code or postal code component."),
    Attribute::string("country", "The country name component."),
    mv_type(&["work", "home", "other"]),
    MV_PRIMARY,
];
const GROUP_REF_SUBS: &[Attribute] = &[
    Attribute::string("value", "The identifier of the User's group.")
        .mutability(Mutability::ReadOnly),
    Attribute::reference(
        "$ref",
        &["User", "Group"],
        "The URI of the corresponding 'Group' resource to which the user belongs.",
    )
    .mutability(Mutability::ReadOnly),
    Attribute::string(
        "display",
        "A human-readable name, primarily used for display purposes.",
    )
    .mutability(Mutability::ReadOnly),
    Attribute::string(
        "type",
        "A label indicating the attribute's function, e.g., 'direct' or 'indirect'.",
    )
    .canonical(&["direct", "indirect"])
    .mutability(Mutability::ReadOnly),
];
const ENTITLEMENT_SUBS: &[Attribute] = &[
    Attribute::string("value", "The value of an entitlement."),
    MV_DISPLAY,
    mv_type(&[]),
    MV_PRIMARY,
];
const ROLE_SUBS: &[Attribute] = &[
    Attribute::string("value", "The value of a role."),
    MV_DISPLAY,
    mv_type(&[]),
    MV_PRIMARY,
];
const X509_SUBS: &[Attribute] = &[
    Attribute::of(
        "value",
        AttrType::Binary,
        "The value of an X.509 certificate.",
    ),
    MV_DISPLAY,
    mv_type(&[]),
    MV_PRIMARY,
];

pub static USER_SCHEMA: Schema = Schema {
    id: USER_URN,
    name: "User",
    description: "User Account",
    attributes: &[
        Attribute::string("userName", "Unique identifier for the User, typically used by the user to directly authenticate to the service provider.")
            .required()
            .uniqueness(Uniqueness::Server),
        Attribute::complex("name", NAME_SUBS, "The components of the user's real name."),
        Attribute::string("displayName", "The name of the User, suitable for display to end-users."),
        Attribute::string("nickName", "The casual way to address the user in real life."),
        Attribute::reference("profileUrl", &["external"], "A fully qualified URL pointing to a page representing the User's online profile."),
        Attribute::string("title", "The user's title, such as \"Vice President.\""),
        Attribute::string("userType", "Used to identify the relationship between the organization and the user."),
        Attribute::string("preferredLanguage", "Indicates the User's preferred written or spoken language."),
        Attribute::string("locale", "Used to indicate the User's default location for purposes of localizing items such as currency, date time format, or numerical representations."),
        Attribute::string("timezone", "The User's time zone in the 'Olson' time zone database format, e.g., 'America/Los_Angeles'."),
        Attribute::boolean("active", "A Boolean value indicating the User's administrative status."),
        Attribute::string("password", "The User's cleartext password.")
            .mutability(Mutability::WriteOnly)
            .returned(Returned::Never),
        Attribute::complex("emails", EMAIL_SUBS, "Email addresses for the user.").multi(),
        Attribute::complex("phoneNumbers", PHONE_SUBS, "Phone numbers for the User.").multi(),
        Attribute::complex("ims", IM_SUBS, "Instant messaging addresses for the User.").multi(),
        Attribute::complex("photos", PHOTO_SUBS, "URLs of photos of the User.").multi(),
        Attribute::complex("addresses", ADDRESS_SUBS, "A physical mailing address for this User.").multi(),
        Attribute::complex("groups", GROUP_REF_SUBS, "A list of groups to which the user belongs.")
            .multi()
            .mutability(Mutability::ReadOnly),
        Attribute::complex("entitlements", ENTITLEMENT_SUBS, "A list of entitlements for the User that represent a thing the User has.").multi(),
        Attribute::complex("roles", ROLE_SUBS, "A list of roles for the User that collectively represent who the User is.").multi(),
        Attribute::complex("x509Certificates", X509_SUBS, "A list of certificates issued to the User.").multi(),
    ],
};

const MANAGER_SUBS: &[Attribute] = &[
    Attribute::string(
        "value",
        "The id of the SCIM resource representing the User's manager.",
    ),
    Attribute::reference(
        "$ref",
        &["User"],
        "The URI of the SCIM resource representing the User's manager.",
    ),
    Attribute::string("displayName", "The displayName of the User's manager.")
        .mutability(Mutability::ReadOnly),
];

pub static ENTERPRISE_USER_SCHEMA: Schema = Schema {
    id: ENTERPRISE_USER_URN,
    name: "EnterpriseUser",
    description: "Enterprise User",
    attributes: &[
        Attribute::string(
            "employeeNumber",
            "Numeric or alphanumeric identifier assigned to a person.",
        ),
        Attribute::string("costCenter", "Identifies the name of a cost center."),
        Attribute::string("organization", "Identifies the name of an organization."),
        Attribute::string("division", "Identifies the name of a division."),
        Attribute::string("department", "Identifies the name of a department."),
        Attribute::complex("manager", MANAGER_SUBS, "The User's manager."),
    ],
};

/// Attributes every resource has (RFC 7643 §3.1); not part of any schema's
/// attribute list in `/Schemas`, but validated and projected the same way.
pub static COMMON_ATTRIBUTES: &[Attribute] = &[
    // Not an attribute of any schema, but always returned and filterable
    // (RFC 7644 §3.4.2.2: `schemas eq "urn:…:enterprise:2.0:User"`).
    Attribute::string("schemas", "The schema URIs of the resource.")
        .multi()
        .mutability(Mutability::ReadOnly)
        .returned(Returned::Always),
    Attribute::string(
        "id",
        "A unique identifier for a SCIM resource as defined by the service provider.",
    )
    .case_exact()
    .mutability(Mutability::ReadOnly)
    .returned(Returned::Always)
    .uniqueness(Uniqueness::Server),
    Attribute::string(
        "externalId",
        "A String that is an identifier for the resource as defined by the provisioning client.",
    )
    .case_exact(),
    Attribute::complex(
        "meta",
        META_SUBS,
        "A complex attribute containing resource metadata.",
    )
    .mutability(Mutability::ReadOnly),
];

const META_SUBS: &[Attribute] = &[
    Attribute::string("resourceType", "The name of the resource type of the resource.")
        .case_exact()
        .mutability(Mutability::ReadOnly),
    Attribute::of("created", AttrType::DateTime, "The DateTime that the resource was added to the service provider.")
        .mutability(Mutability::ReadOnly),
    Attribute::of("lastModified", AttrType::DateTime, "The most recent DateTime that the details of this resource were updated at the service provider.")
        .mutability(Mutability::ReadOnly),
    Attribute::reference("location", &["uri"], "The URI of the resource being returned.")
        .case_exact()
        .mutability(Mutability::ReadOnly),
    Attribute::string("version", "The version of the resource being returned.")
        .case_exact()
        .mutability(Mutability::ReadOnly),
];

pub static USER_RESOURCE: ResourceType = ResourceType {
    name: "User",
    endpoint: "/Users",
    description: "User Account",
    schema: &USER_SCHEMA,
    extensions: &[SchemaExtension {
        schema: &ENTERPRISE_USER_SCHEMA,
        required: false,
    }],
};

const MEMBER_SUBS: &[Attribute] = &[
    Attribute::string("value", "Identifier of the member of this Group.")
        .mutability(Mutability::Immutable),
    Attribute::reference(
        "$ref",
        &["User", "Group"],
        "The URI corresponding to a SCIM resource that is a member of this Group.",
    )
    .mutability(Mutability::Immutable),
    Attribute::string(
        "display",
        "A human-readable name, primarily used for display purposes.",
    )
    .mutability(Mutability::Immutable),
    Attribute::string(
        "type",
        "A label indicating the type of resource, e.g., 'User' or 'Group'.",
    )
    .canonical(&["User", "Group"])
    .mutability(Mutability::Immutable),
];

pub static GROUP_SCHEMA: Schema = Schema {
    id: GROUP_URN,
    name: "Group",
    description: "Group",
    attributes: &[
        Attribute::string("displayName", "A human-readable name for the Group.").required(),
        Attribute::complex("members", MEMBER_SUBS, "A list of members of the Group.").multi(),
    ],
};

pub static GROUP_RESOURCE: ResourceType = ResourceType {
    name: "Group",
    endpoint: "/Groups",
    description: "Group",
    schema: &GROUP_SCHEMA,
    extensions: &[],
};

/// A common attribute (`id`, `externalId`, `meta`) by name, case-insensitively.
pub fn common_attribute(name: &str) -> Option<&'static Attribute> {
    find(COMMON_ATTRIBUTES, name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_are_case_insensitive() {
        assert_eq!(USER_SCHEMA.attribute("USERNAME").unwrap().name, "userName");
        let emails = USER_SCHEMA.attribute("emails").unwrap();
        assert!(emails.multi_valued);
        assert_eq!(emails.sub_attribute("Value").unwrap().name, "value");
        assert!(
            USER_RESOURCE
                .supports_schema("URN:IETF:PARAMS:SCIM:SCHEMAS:EXTENSION:ENTERPRISE:2.0:USER")
        );
        assert!(!USER_RESOURCE.supports_schema("urn:example:unknown"));
        assert_eq!(common_attribute("ID").unwrap().returned, Returned::Always);
    }

    #[test]
    fn password_is_write_only_and_never_returned() {
        let pw = USER_SCHEMA.attribute("password").unwrap();
        assert_eq!(pw.mutability, Mutability::WriteOnly);
        assert_eq!(pw.returned, Returned::Never);
    }
}
