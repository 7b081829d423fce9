//! Listings as SQL, per dialect: the query a listing asks for
//! ([`ListQuery`]), the statements that run it ([`list_sql`]), the filter
//! compiler behind their `WHERE` clause ([`compile`]), and where each
//! attribute lives in a row ([`columns`]).

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::TenantScope;
use crate::scim::filter::{AttrPath, Filter};
use crate::scim::schema::ResourceType;

mod columns;
mod compile;

use columns::table;
use compile::Compiler;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    Sqlite,
}

/// A bound parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum Bind {
    Text(String),
    Bool(bool),
    Time(DateTime<Utc>),
    Uuid(Uuid),
    TextArray(Vec<String>),
}

/// Why a filter cannot run as SQL although it is valid SCIM.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unsupported(pub String);

/// A SQL fragment under construction with its parameters (`$1`, `$2`, …).
#[derive(Debug, Default)]
pub struct Sql {
    pub text: String,
    pub binds: Vec<Bind>,
}

impl Sql {
    /// Adds a parameter and returns its placeholder.
    pub fn bind(&mut self, b: Bind) -> String {
        self.binds.push(b);
        format!("${}", self.binds.len())
    }
}

/// `sortBy` / `sortOrder`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sort {
    pub by: AttrPath,
    pub descending: bool,
}

/// A page of a filtered, sorted user listing.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub filter: Option<Filter>,
    pub sort: Option<Sort>,
    pub offset: u64,
    pub limit: u64,
    /// Keyset paging in id order (cursor pagination, RFC 9865).
    pub keyset: Option<Keyset>,
}

/// Where a cursor page starts: after or before a known id (ids are UUIDv7,
/// so id order is creation order and new resources come last).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keyset {
    After(Uuid),
    Before(Uuid),
}

/// The count and page statements of a user listing.
pub struct ListSql {
    pub count: Sql,
    pub page: Sql,
    /// Whether the page statement is worth keeping prepared. Not when it
    /// names an offset: clients vary `startIndex`, and each value would be
    /// a statement of its own in every pooled connection's cache (and, on
    /// PostgreSQL, the server's), a hundred of them per connection: on
    /// SQLite that held some 5 MiB per connection of a million users' index
    /// pages.
    pub page_persistent: bool,
}

/// Builds `SELECT count(*)` and the page `SELECT` for `q` in tenant `scope`,
/// over the table of resource type `rt`.
pub fn list_sql(
    dialect: Dialect,
    rt: &'static ResourceType,
    scope: TenantScope,
    q: &ListQuery,
) -> Result<ListSql, Unsupported> {
    let mut sql = Sql::default();
    let tenant = sql.bind(match dialect {
        Dialect::Postgres => Bind::Uuid(scope.tenant_id()),
        Dialect::Sqlite => Bind::Text(scope.tenant_id().to_string()),
    });
    let mut c = Compiler {
        dialect,
        rt,
        scope,
        sql: &mut sql,
        uses_email_index: false,
    };
    let predicate = match &q.filter {
        Some(f) => c.filter(f)?,
        None => "TRUE".to_owned(),
    };
    let mut predicate = predicate;
    if let Some(k) = q.keyset {
        let (op, id) = match k {
            Keyset::After(id) => (">", id),
            Keyset::Before(id) => ("<", id),
        };
        let p = c.sql.bind(match dialect {
            Dialect::Postgres => Bind::Uuid(id),
            Dialect::Sqlite => Bind::Text(id.to_string()),
        });
        predicate = format!("{predicate} AND u.id {op} {p}");
    }
    let order = match (&q.sort, q.keyset) {
        (_, Some(Keyset::Before(_))) => "u.id DESC".to_owned(),
        (_, Some(Keyset::After(_))) => "u.id".to_owned(),
        (Some(sort), None) => {
            let key = c.sort_key(&sort.by)?;
            let dir = if sort.descending { "DESC" } else { "ASC" };
            // Missing values sort last either way; id makes the order total.
            format!("{key} {dir} NULLS LAST, u.id")
        }
        (None, None) => "u.id".to_owned(),
    };
    let fenced = c.uses_email_index;
    let filter = format!(
        "FROM {} u WHERE u.tenant_id = {tenant} AND {predicate}",
        table(rt)
    );
    let count = Sql {
        text: format!("SELECT count(*) {filter}"),
        binds: sql.binds.clone(),
    };
    let mut page = Sql {
        text: String::new(),
        binds: sql.binds,
    };
    // LIMIT and OFFSET are written as numbers, not parameters: they are
    // integers the server computed (never client text), and with them fixed
    // a generic plan costs what a custom one does for the equality lookups
    // clients repeat, so PostgreSQL's plan cache stops re-planning those
    // (measured: bench/notes.md), while range filters keep custom plans.
    let limit = i64::try_from(q.limit).unwrap_or(i64::MAX);
    let offset = i64::try_from(q.offset).unwrap_or(i64::MAX);
    // Users carry their groups. The total of an index page comes from its
    // rows or from the count statement (`list_page`): a window count here
    // would make every page read every matching row.
    let extra = match (table(rt), dialect) {
        ("users", Dialect::Postgres) => format!(", {}", super::postgres::groups_of!("u")),
        ("users", Dialect::Sqlite) => format!(", {}", super::sqlite::groups_of!("u")),
        _ => String::new(),
    };
    let columns = format!("u.id, u.version, u.created_at, u.modified_at, u.doc{extra}");
    page.text = if fenced {
        // GIN estimates are poor: without the fence the planner may walk the
        // primary key in id order, filtering, instead of using the index.
        // `OFFSET 0` keeps the (selective) index lookup first.
        format!(
            "SELECT {columns} FROM (SELECT u.* {filter} OFFSET 0) u ORDER BY {order} LIMIT {limit} OFFSET {offset}"
        )
    } else if offset > 0 && q.keyset.is_none() {
        // A deferred join: the rows an OFFSET skips are only counted off an
        // index (the page's keys first), and only the page's rows are read
        // whole. Otherwise every skipped row is fetched and thrown away.
        format!(
            "SELECT {columns} FROM {} u JOIN (SELECT u.tenant_id AS page_tenant, u.id AS page_id \
             {filter} ORDER BY {order} LIMIT {limit} OFFSET {offset}) p \
             ON u.tenant_id = p.page_tenant AND u.id = p.page_id ORDER BY {order}",
            table(rt)
        )
    } else {
        format!("SELECT {columns} {filter} ORDER BY {order} LIMIT {limit} OFFSET {offset}")
    };
    Ok(ListSql {
        count,
        page,
        page_persistent: offset == 0,
    })
}
