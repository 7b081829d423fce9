//! Discovery documents (RFC 7643 §5–§7, RFC 7644 §4), generated from the
//! same schema tables that drive validation, PATCH and filters.

use serde_json::{Map, Value, json};

use super::schema::{AttrType, Attribute, Mutability, ResourceType, Returned, Schema, Uniqueness};

pub const SERVICE_PROVIDER_CONFIG_URN: &str =
    "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";
pub const RESOURCE_TYPE_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";
pub const SCHEMA_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";

/// What the server can do, as `/ServiceProviderConfig` states it. Every flag
/// here must be true of the running code (a test checks each one).
#[derive(Debug, Clone)]
pub struct Capabilities {
    pub max_results: u64,
    pub default_page_size: u64,
    pub documentation_uri: Option<String>,
}

fn type_name(t: AttrType) -> &'static str {
    match t {
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

fn mutability_name(m: Mutability) -> &'static str {
    match m {
        Mutability::ReadOnly => "readOnly",
        Mutability::ReadWrite => "readWrite",
        Mutability::Immutable => "immutable",
        Mutability::WriteOnly => "writeOnly",
    }
}

fn returned_name(r: Returned) -> &'static str {
    match r {
        Returned::Always => "always",
        Returned::Never => "never",
        Returned::Default => "default",
        Returned::Request => "request",
    }
}

fn uniqueness_name(u: Uniqueness) -> &'static str {
    match u {
        Uniqueness::None => "none",
        Uniqueness::Server => "server",
        Uniqueness::Global => "global",
    }
}

/// One attribute definition as RFC 7643 §7 represents it.
pub fn attribute_json(a: &Attribute) -> Value {
    let mut o = Map::new();
    o.insert("name".into(), json!(a.name));
    o.insert("type".into(), json!(type_name(a.ty)));
    o.insert("multiValued".into(), json!(a.multi_valued));
    o.insert("description".into(), json!(a.description));
    o.insert("required".into(), json!(a.required));
    o.insert("caseExact".into(), json!(a.case_exact));
    o.insert("mutability".into(), json!(mutability_name(a.mutability)));
    o.insert("returned".into(), json!(returned_name(a.returned)));
    o.insert("uniqueness".into(), json!(uniqueness_name(a.uniqueness)));
    if !a.canonical_values.is_empty() {
        o.insert("canonicalValues".into(), json!(a.canonical_values));
    }
    if a.ty == AttrType::Reference {
        o.insert("referenceTypes".into(), json!(a.reference_types));
    }
    if a.ty == AttrType::Complex {
        let subs: Vec<Value> = a.sub_attributes.iter().map(attribute_json).collect();
        o.insert("subAttributes".into(), Value::Array(subs));
    }
    Value::Object(o)
}

/// A schema resource (RFC 7643 §7); `base` is the SCIM base URL.
pub fn schema_json(s: &Schema, base: &str) -> Value {
    json!({
        "schemas": [SCHEMA_URN],
        "id": s.id,
        "name": s.name,
        "description": s.description,
        "attributes": s.attributes.iter().map(attribute_json).collect::<Vec<_>>(),
        "meta": {"resourceType": "Schema", "location": format!("{base}/Schemas/{}", s.id)},
    })
}

/// A resource type resource (RFC 7643 §6).
pub fn resource_type_json(rt: &ResourceType, base: &str) -> Value {
    json!({
        "schemas": [RESOURCE_TYPE_URN],
        "id": rt.name,
        "name": rt.name,
        "endpoint": rt.endpoint,
        "description": rt.description,
        "schema": rt.schema.id,
        "schemaExtensions": rt.extensions.iter().map(|e| json!({"schema": e.schema.id, "required": e.required})).collect::<Vec<_>>(),
        "meta": {"resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/{}", rt.name)},
    })
}

/// `/ServiceProviderConfig` (RFC 7643 §5).
pub fn service_provider_config(caps: &Capabilities, base: &str) -> Value {
    let mut v = json!({
        "schemas": [SERVICE_PROVIDER_CONFIG_URN],
        "patch": {"supported": true},
        "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": true, "maxResults": caps.max_results},
        // Passwords are accepted but not stored: there is nothing to change.
        "changePassword": {"supported": false},
        "sort": {"supported": true},
        // RFC 9865: cursors are keysets on creation order and never expire.
        "pagination": {
            "cursor": true,
            "index": true,
            "defaultPaginationMethod": "index",
            "defaultPageSize": caps.default_page_size,
            "maxPageSize": caps.max_results,
        },
        "etag": {"supported": true},
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "Bearer token",
            "description": "Authorization: Bearer <ProjectId>:<AccessKey>, an access key with the tenant-admin role",
            "primary": true,
        }],
        "meta": {"resourceType": "ServiceProviderConfig", "location": format!("{base}/ServiceProviderConfig")},
    });
    if let Some(uri) = &caps.documentation_uri {
        v["documentationUri"] = json!(uri);
    }
    v
}
