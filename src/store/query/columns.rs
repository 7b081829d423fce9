//! Where each attribute of a resource lives in its row: an indexed column,
//! membership rows, or a path into the JSON document (per dialect).

use super::Dialect;
use crate::scim::path::{Container, Resolved};
use crate::scim::schema::ResourceType;

/// The users table's indexed columns, by the attribute they mirror.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Column {
    Id,
    UserNameLower,
    ExternalId,
    DisplayNameLower,
    Active,
    Created,
    Modified,
}

impl Column {
    pub(super) fn sql(self) -> &'static str {
        match self {
            Column::Id => "u.id",
            Column::UserNameLower => "u.user_name_lower",
            Column::ExternalId => "u.external_id",
            Column::DisplayNameLower => "u.display_name_lower",
            Column::Active => "u.active",
            Column::Created => "u.created_at",
            Column::Modified => "u.modified_at",
        }
    }

    /// Whether the column may be NULL (absent attribute).
    pub(super) fn nullable(self) -> bool {
        matches!(
            self,
            Column::ExternalId | Column::DisplayNameLower | Column::Active
        )
    }

    /// Whether the column holds the value already folded to lower case.
    pub(super) fn folded(self) -> bool {
        matches!(self, Column::UserNameLower | Column::DisplayNameLower)
    }
}

pub(super) fn column_for(rt: &ResourceType, r: &Resolved) -> Option<Column> {
    if r.container != Container::Core {
        return None;
    }
    Some(match (r.attr.name, r.sub.map(|s| s.name)) {
        ("id", None) => Column::Id,
        ("userName", None) if rt.name == "User" => Column::UserNameLower,
        ("externalId", None) => Column::ExternalId,
        ("displayName", None) => Column::DisplayNameLower,
        ("active", None) => Column::Active,
        ("meta", Some("created")) => Column::Created,
        ("meta", Some("lastModified")) => Column::Modified,
        _ => return None,
    })
}

/// The table a resource type lives in (aliased `u` in every statement).
pub(super) fn table(rt: &ResourceType) -> &'static str {
    match rt.name {
        "Group" => "groups",
        _ => "users",
    }
}

/// The multi-valued attribute a resource type keeps as membership rows:
/// a group's `members`, a user's (derived) `groups`.
pub(super) fn row_attribute(rt: &ResourceType, r: &Resolved) -> Option<RowAttribute> {
    match (rt.name, r.attr.name, r.container) {
        ("Group", "members", Container::Core) => Some(RowAttribute::Members),
        ("User", "groups", Container::Core) => Some(RowAttribute::Groups),
        _ => None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RowAttribute {
    Members,
    Groups,
}

impl RowAttribute {
    /// `EXISTS` over membership rows of this resource, narrowed by `cond`
    /// (on the other side's id, `m.member_id` or `m.group_id`).
    pub(super) fn exists(self, ids: Option<&str>) -> String {
        let (mine, other) = match self {
            RowAttribute::Members => ("m.group_id", "m.member_id"),
            RowAttribute::Groups => ("m.member_id", "m.group_id"),
        };
        let narrow = ids
            .map(|p| format!(" AND {other} IN ({p})"))
            .unwrap_or_default();
        format!(
            "EXISTS (SELECT 1 FROM group_members m WHERE m.tenant_id = u.tenant_id AND {mine} = u.id{narrow})"
        )
    }
}

/// A JSON object key as a path step (names come from the schema tables).
pub(super) fn quoted(key: &str) -> String {
    format!("\"{key}\"")
}

/// SQL for the JSON value at `keys` below `base`, as text (strings) or as
/// JSON (`json = true`; on SQLite its JSON type name).
pub(super) fn json_at(d: Dialect, base: &str, keys: &[&str], json: bool) -> String {
    match d {
        Dialect::Postgres => {
            let mut out = base.to_owned();
            for (i, k) in keys.iter().enumerate() {
                let arrow = if i + 1 == keys.len() && !json {
                    "->>"
                } else {
                    "->"
                };
                out.push_str(&format!("{arrow}'{k}'"));
            }
            out
        }
        Dialect::Sqlite => {
            let f = if json { "json_type" } else { "json_extract" };
            format!("{f}({base}, {})", sqlite_path(keys))
        }
    }
}

fn sqlite_path(keys: &[&str]) -> String {
    let steps: Vec<String> = keys.iter().map(|k| quoted(k)).collect();
    if steps.is_empty() {
        "'$'".to_owned()
    } else {
        format!("'$.{}'", steps.join("."))
    }
}

/// Present: not null, not `""`, not `[]`, not `{}` (as the evaluator).
pub(super) fn json_present(d: Dialect, base: &str, keys: &[&str]) -> String {
    match d {
        Dialect::Postgres => {
            let v = json_at(d, base, keys, true);
            format!(
                "COALESCE({v} NOT IN ('null'::jsonb, '\"\"'::jsonb, '[]'::jsonb, '{{}}'::jsonb), FALSE)"
            )
        }
        Dialect::Sqlite => {
            let p = sqlite_path(keys);
            format!(
                "(CASE WHEN json_type({base}, {p}) IS NULL OR json_type({base}, {p}) = 'null' THEN 0 \
                 WHEN json_type({base}, {p}) = 'text' THEN json_extract({base}, {p}) <> '' \
                 WHEN json_type({base}, {p}) = 'array' THEN json_array_length({base}, {p}) > 0 \
                 WHEN json_type({base}, {p}) = 'object' THEN json_extract({base}, {p}) <> '{{}}' \
                 ELSE 1 END)"
            )
        }
    }
}
