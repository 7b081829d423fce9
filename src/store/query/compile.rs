//! Compiling a parsed SCIM filter (and `sortBy`) into SQL for one dialect.
//!
//! The semantics are those of the in-memory evaluator in
//! `scim::filter::eval`, which is the oracle the property tests hold this
//! compiler to. Every literal is a bound parameter; the only text spliced
//! into SQL comes from the schema tables (attribute names) or from the
//! compiler itself. Every predicate is two-valued (`COALESCE(…, FALSE)`), so
//! `not` means exactly "does not match", as in the evaluator.
//!
//! Indexed columns serve the lookups clients send on every sync: `id`,
//! `userName`, `externalId`, `displayName`, `active`, `meta.created`,
//! `meta.lastModified`, and on PostgreSQL `emails.value eq` (GIN index).

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::columns::{
    Column, RowAttribute, column_for, json_at, json_present, quoted, row_attribute,
};
use super::{Bind, Dialect, Sql, Unsupported};
use crate::scim::filter::{AttrPath, CompValue, CompareOp, Filter};
use crate::scim::path::{self, Container, Resolved, Target};
use crate::scim::schema::{AttrType, Attribute, ResourceType};
use crate::store::TenantScope;

/// The compiler for one query.
pub struct Compiler<'a> {
    pub dialect: Dialect,
    pub rt: &'static ResourceType,
    pub scope: TenantScope,
    pub sql: &'a mut Sql,
    /// Set when a predicate uses the `email_keys` GIN index.
    pub uses_email_index: bool,
}

fn fold(def: &Attribute, s: &str) -> String {
    if def.case_exact {
        s.to_owned()
    } else {
        crate::scim::resource::caseless(s)
    }
}

impl Compiler<'_> {
    /// `WHERE`-clause SQL for `filter` (already validated against the schema).
    pub fn filter(&mut self, filter: &Filter) -> Result<String, Unsupported> {
        boolean(self, filter)
    }

    fn resolve(&self, path: &AttrPath) -> Result<Resolved, Unsupported> {
        match path::resolve(self.rt, path) {
            Ok(Target::Attribute(r)) => Ok(r),
            _ => Err(Unsupported(format!("'{path}' cannot be filtered on"))),
        }
    }

    /// `EXISTS` over the values of a multi-valued attribute; `pred` gets the
    /// SQL naming one value.
    fn exists_value(&self, container_keys: &[&str], pred: impl FnOnce(&str) -> String) -> String {
        match self.dialect {
            Dialect::Postgres => {
                let arr = json_at(self.dialect, "u.doc", container_keys, true);
                format!(
                    "EXISTS (SELECT 1 FROM jsonb_array_elements(CASE WHEN jsonb_typeof({arr}) = 'array' THEN {arr} ELSE '[]'::jsonb END) AS e(v) WHERE {})",
                    pred("e.v")
                )
            }
            Dialect::Sqlite => {
                let path: Vec<String> = container_keys.iter().map(|k| quoted(k)).collect();
                format!(
                    "EXISTS (SELECT 1 FROM json_each(u.doc, '$.{}') AS e WHERE {})",
                    path.join("."),
                    pred("e.value")
                )
            }
        }
    }

    /// The JSON keys leading to attribute `attr` of `container`.
    fn keys(container: Container, attr: &'static Attribute) -> Vec<&'static str> {
        match container {
            Container::Core => vec![attr.name],
            Container::Extension(ext) => vec![ext.id, attr.name],
        }
    }

    fn present(&mut self, path: &AttrPath) -> Result<String, Unsupported> {
        let r = self.resolve(path)?;
        if let Some(row) = row_attribute(self.rt, &r) {
            return Ok(row.exists(None));
        }
        if let Some(col) = column_for(self.rt, &r) {
            return Ok(match col {
                Column::ExternalId | Column::DisplayNameLower | Column::UserNameLower => {
                    format!("COALESCE({} <> '', FALSE)", col.sql())
                }
                _ => format!("({} IS NOT NULL)", col.sql()),
            });
        }
        if r.container == Container::Core && r.attr.name == "meta" {
            // meta and all its sub-attributes are always there.
            return Ok("TRUE".to_owned());
        }
        let keys = Self::keys(r.container, r.attr);
        Ok(match (r.attr.multi_valued, r.sub) {
            (true, Some(sub)) => {
                let d = self.dialect;
                self.exists_value(&keys, |e| json_present(d, e, &[sub.name]))
            }
            (_, Some(sub)) => {
                let mut k = keys.clone();
                k.push(sub.name);
                json_present(self.dialect, "u.doc", &k)
            }
            (_, None) => json_present(self.dialect, "u.doc", &keys),
        })
    }

    fn compare(
        &mut self,
        path: &AttrPath,
        op: CompareOp,
        lit: &CompValue,
    ) -> Result<String, Unsupported> {
        let r = self.resolve(path)?;
        if let Some(row) = row_attribute(self.rt, &r) {
            let by_value = r.sub.is_none_or(|s| s.name == "value");
            return match (op, lit) {
                (CompareOp::Eq, CompValue::String(s)) if by_value => {
                    Ok(self.membership(row, std::slice::from_ref(s)))
                }
                _ => Err(Unsupported(format!(
                    "'{path}' can be filtered with 'value eq' and 'pr' only"
                ))),
            };
        }
        if let Some(col) = column_for(self.rt, &r) {
            return self.compare_column(col, r.attr, r.sub, op, lit);
        }
        if r.container == Container::Core && r.attr.name == "meta" {
            return self.compare_meta(r, op, lit);
        }
        let keys = Self::keys(r.container, r.attr);
        // Complex without sub-attribute compares `value`.
        let def = match r.sub {
            Some(s) => s,
            None if r.attr.ty == AttrType::Complex => r
                .attr
                .sub_attribute("value")
                .ok_or_else(|| Unsupported(format!("'{path}' cannot be compared")))?,
            None => r.attr,
        };
        if r.attr.multi_valued {
            if let (Dialect::Postgres, "emails", "value", CompareOp::Eq, CompValue::String(s)) =
                (self.dialect, r.attr.name, def.name, op, lit)
                && r.container == Container::Core
            {
                return Ok(self.email_index(s));
            }
            let pred = scalar_compare(
                self.dialect,
                self.sql,
                def,
                op,
                lit,
                ScalarAt::Element(def, r.attr.ty == AttrType::Complex),
            )?;
            return Ok(self.exists_value(&keys, |e| pred.replace(ELEMENT, e)));
        }
        let mut k = keys;
        if r.attr.ty == AttrType::Complex {
            k.push(def.name);
        }
        scalar_compare(self.dialect, self.sql, def, op, lit, ScalarAt::Doc(k))
    }

    /// `emails.value eq "…"` through the GIN index on `email_keys`.
    fn email_index(&mut self, address: &str) -> String {
        self.uses_email_index = true;
        let key = format!(
            "{}:{}",
            self.scope.tenant_id(),
            crate::scim::resource::caseless(address)
        );
        let p = self.sql.bind(Bind::TextArray(vec![key]));
        format!("(u.email_keys @> {p}::text[])")
    }

    fn compare_meta(
        &mut self,
        r: Resolved,
        op: CompareOp,
        lit: &CompValue,
    ) -> Result<String, Unsupported> {
        match r.sub.map(|s| s.name) {
            Some("resourceType") => {
                let CompValue::String(s) = lit else {
                    return Ok("FALSE".into());
                };
                let v = self.rt.name;
                let hit = match op {
                    CompareOp::Eq => v == s,
                    CompareOp::Co => v.contains(s.as_str()),
                    CompareOp::Sw => v.starts_with(s.as_str()),
                    CompareOp::Ew => v.ends_with(s.as_str()),
                    CompareOp::Gt => v > s.as_str(),
                    CompareOp::Ge => v >= s.as_str(),
                    CompareOp::Lt => v < s.as_str(),
                    CompareOp::Le => v <= s.as_str(),
                    CompareOp::Ne => v != s,
                };
                Ok(if hit { "TRUE" } else { "FALSE" }.into())
            }
            _ => Err(Unsupported(format!(
                "filtering on 'meta.{}' is not supported",
                r.sub.map_or("", |s| s.name)
            ))),
        }
    }

    fn compare_column(
        &mut self,
        col: Column,
        attr: &'static Attribute,
        sub: Option<&'static Attribute>,
        op: CompareOp,
        lit: &CompValue,
    ) -> Result<String, Unsupported> {
        let def = sub.unwrap_or(attr);
        match (col, lit) {
            (Column::Active, CompValue::Bool(b)) => {
                let p = self.sql.bind(Bind::Bool(*b));
                Ok(format!("({0} IS NOT NULL AND {0} = {p})", col.sql()))
            }
            (Column::Created | Column::Modified, CompValue::String(s)) => {
                if matches!(op, CompareOp::Co | CompareOp::Sw | CompareOp::Ew) {
                    return Err(Unsupported(format!(
                        "'{}' supports eq, ne, gt, ge, lt and le",
                        def.name
                    )));
                }
                let t = DateTime::parse_from_rfc3339(s)
                    .map_err(|_| Unsupported(format!("'{s}' is not a dateTime")))?
                    .with_timezone(&Utc);
                let p = self.sql.bind(Bind::Time(t));
                Ok(format!("({} {} {p})", col.sql(), sql_op(op)))
            }
            (Column::Id, CompValue::String(s)) if self.dialect == Dialect::Postgres => {
                if op == CompareOp::Eq {
                    // Only the canonical spelling equals the rendered id (caseExact).
                    return Ok(match Uuid::parse_str(s) {
                        Ok(u) if u.to_string() == *s => {
                            format!("({} = {})", col.sql(), self.sql.bind(Bind::Uuid(u)))
                        }
                        _ => "FALSE".into(),
                    });
                }
                text_compare(
                    self.dialect,
                    self.sql,
                    "u.id::text",
                    false,
                    false,
                    def,
                    op,
                    s,
                )
            }
            (_, CompValue::String(s)) => text_compare(
                self.dialect,
                self.sql,
                col.sql(),
                col.folded(),
                col.nullable(),
                def,
                op,
                s,
            ),
            _ => Ok("FALSE".into()),
        }
    }

    /// Membership rows naming one of `ids` (canonical UUIDs only: ids are caseExact).
    fn membership(&mut self, row: RowAttribute, ids: &[String]) -> String {
        let uuids: Vec<Uuid> = ids
            .iter()
            .filter_map(|s| Uuid::parse_str(s).ok().filter(|u| u.to_string() == *s))
            .collect();
        if uuids.is_empty() {
            return "FALSE".into();
        }
        let params: Vec<String> = uuids
            .into_iter()
            .map(|u| match self.dialect {
                Dialect::Postgres => self.sql.bind(Bind::Uuid(u)),
                Dialect::Sqlite => self.sql.bind(Bind::Text(u.to_string())),
            })
            .collect();
        row.exists(Some(&params.join(", ")))
    }

    fn value_path(&mut self, path: &AttrPath, inner: &Filter) -> Result<String, Unsupported> {
        let r = self.resolve(path)?;
        if let Some(row) = row_attribute(self.rt, &r) {
            let ids = inner
                .value_eq_strings()
                .ok_or_else(|| Unsupported(format!("'{path}[…]' can select by 'value eq' only")))?;
            return Ok(self.membership(row, &ids));
        }
        let keys = Self::keys(r.container, r.attr);
        let mut element = ElementCompiler {
            dialect: self.dialect,
            parent: r.attr,
            sql: self.sql,
        };
        let pred = boolean(&mut element, inner)?;
        let mut out = self.exists_value(&keys, |e| pred.replace(ELEMENT, e));
        // emails[value eq "…" and …]: let the GIN index narrow it first.
        if self.dialect == Dialect::Postgres
            && r.container == Container::Core
            && r.attr.name == "emails"
            && let Some(address) = value_eq(inner)
        {
            out = format!("({} AND {out})", self.email_index(&address));
        }
        Ok(out)
    }

    /// `ORDER BY` expression for `sortBy`.
    pub fn sort_key(&mut self, by: &AttrPath) -> Result<String, Unsupported> {
        let r = self.resolve(by)?;
        if row_attribute(self.rt, &r).is_some() {
            return Err(Unsupported(format!("cannot sort by '{by}'")));
        }
        if let Some(col) = column_for(self.rt, &r) {
            return Ok(match (col, self.dialect) {
                (Column::Id, Dialect::Postgres) => "u.id::text COLLATE \"C\"".into(),
                (c, Dialect::Postgres) if c.folded() || c == Column::ExternalId => {
                    format!("{} COLLATE \"C\"", c.sql())
                }
                (c, _) => c.sql().into(),
            });
        }
        let keys = Self::keys(r.container, r.attr);
        let def = match r.sub {
            Some(s) => s,
            None if r.attr.ty == AttrType::Complex => r
                .attr
                .sub_attribute("value")
                .ok_or_else(|| Unsupported(format!("cannot sort by '{by}'")))?,
            None => r.attr,
        };
        let text = if r.attr.multi_valued {
            // The primary value, else the first (RFC 7644 §3.4.2.3).
            match self.dialect {
                Dialect::Postgres => {
                    let arr = json_at(self.dialect, "u.doc", &keys, true);
                    format!(
                        "(SELECT e.v->>'{}' FROM jsonb_array_elements(CASE WHEN jsonb_typeof({arr}) = 'array' THEN {arr} ELSE '[]'::jsonb END) WITH ORDINALITY AS e(v, i) \
                         ORDER BY COALESCE(e.v->'primary' = 'true'::jsonb, FALSE) DESC, e.i LIMIT 1)",
                        def.name
                    )
                }
                Dialect::Sqlite => {
                    let path: Vec<String> = keys.iter().map(|k| quoted(k)).collect();
                    format!(
                        "(SELECT json_extract(e.value, '$.\"{}\"') FROM json_each(u.doc, '$.{}') AS e \
                         ORDER BY COALESCE(json_type(e.value, '$.\"primary\"') = 'true', 0) DESC, e.key LIMIT 1)",
                        def.name,
                        path.join(".")
                    )
                }
            }
        } else {
            let mut k = keys;
            if r.attr.ty == AttrType::Complex {
                k.push(def.name);
            }
            json_at(self.dialect, "u.doc", &k, false)
        };
        let text = if def.case_exact {
            text
        } else {
            format!("lower({text})")
        };
        Ok(match self.dialect {
            Dialect::Postgres => format!("({text}) COLLATE \"C\""),
            Dialect::Sqlite => text,
        })
    }
}

fn scalar_compare(
    d: Dialect,
    sql: &mut Sql,
    def: &'static Attribute,
    op: CompareOp,
    lit: &CompValue,
    at: ScalarAt,
) -> Result<String, Unsupported> {
    let (base, keys): (&str, Vec<&str>) = match &at {
        ScalarAt::Doc(k) => ("u.doc", k.clone()),
        ScalarAt::Element(d, true) => (ELEMENT, vec![d.name]),
        // A value of a multi-valued simple attribute (`schemas`).
        ScalarAt::Element(_, false) => (ELEMENT, vec![]),
    };
    match (def.ty, lit) {
        (AttrType::Boolean, CompValue::Bool(b)) => Ok(match d {
            Dialect::Postgres => {
                let v = json_at(d, base, &keys, true);
                format!("COALESCE({v} = '{b}'::jsonb, FALSE)")
            }
            Dialect::Sqlite => {
                let v = json_at(d, base, &keys, true);
                format!("COALESCE({v} = '{b}', FALSE)")
            }
        }),
        (AttrType::String | AttrType::Reference | AttrType::Binary, CompValue::String(s)) => {
            let text = if keys.is_empty() {
                // A value of a multi-valued simple attribute: the value itself
                // (json_each already yields SQLite text for strings).
                match d {
                    Dialect::Postgres => format!("({base} #>> '{{}}')"),
                    Dialect::Sqlite => base.to_owned(),
                }
            } else {
                json_at(d, base, &keys, false)
            };
            text_compare(d, sql, &text, false, true, def, op, s)
        }
        _ => Err(Unsupported(format!(
            "comparing '{}' ({:?}) with {lit} is not supported",
            def.name, def.ty
        ))),
    }
}

/// A string comparison; `folded` says the expression is already lower-cased,
/// `nullable` that it may be NULL. The result is never NULL, and stays
/// index-friendly (no function around an indexed column).
#[allow(clippy::too_many_arguments)]
fn text_compare(
    d: Dialect,
    sql: &mut Sql,
    expr: &str,
    folded: bool,
    nullable: bool,
    def: &Attribute,
    op: CompareOp,
    lit: &str,
) -> Result<String, Unsupported> {
    let fold_sql = !def.case_exact && !folded;
    let lhs = if fold_sql {
        format!("lower({expr})")
    } else {
        expr.to_owned()
    };
    let lit = fold(def, lit);
    if lit.is_empty() && matches!(op, CompareOp::Co | CompareOp::Sw | CompareOp::Ew) {
        return Ok(format!("({expr} IS NOT NULL)"));
    }
    let p = sql.bind(Bind::Text(lit));
    let pred = match (op, d) {
        (CompareOp::Eq, _) => format!("{lhs} = {p}"),
        (CompareOp::Ne, _) => format!("{lhs} <> {p}"),
        (CompareOp::Co, Dialect::Postgres) => format!("strpos({lhs}, {p}) > 0"),
        (CompareOp::Co, Dialect::Sqlite) => format!("instr({lhs}, {p}) > 0"),
        (CompareOp::Sw, Dialect::Postgres) => format!("starts_with({lhs}, {p})"),
        (CompareOp::Sw, Dialect::Sqlite) => format!("substr({lhs}, 1, length({p})) = {p}"),
        (CompareOp::Ew, Dialect::Postgres) => format!("right({lhs}, length({p})) = {p}"),
        (CompareOp::Ew, Dialect::Sqlite) => format!("substr({lhs}, -length({p})) = {p}"),
        // Code-point order, as the evaluator compares.
        (op, Dialect::Postgres) => format!("({lhs}) COLLATE \"C\" {} {p}", sql_op(op)),
        (op, Dialect::Sqlite) => format!("{lhs} {} {p}", sql_op(op)),
    };
    Ok(if nullable {
        format!("({expr} IS NOT NULL AND {pred})")
    } else {
        format!("({pred})")
    })
}

/// The leaves of a filter, compiled for one scope (the resource, or one
/// value inside `attr[…]`); [`boolean`] combines them the same way for both.
trait Leaves {
    fn present(&mut self, path: &AttrPath) -> Result<String, Unsupported>;
    fn compare(
        &mut self,
        path: &AttrPath,
        op: CompareOp,
        lit: &CompValue,
    ) -> Result<String, Unsupported>;
    fn value_path(&mut self, path: &AttrPath, inner: &Filter) -> Result<String, Unsupported>;
}

/// `and`/`or`/`not`, `eq null` as "not present", `ne` as "not eq": every
/// predicate two-valued, as the evaluator reads them.
fn boolean(l: &mut impl Leaves, filter: &Filter) -> Result<String, Unsupported> {
    Ok(match filter {
        Filter::And(a, b) => format!("({} AND {})", boolean(l, a)?, boolean(l, b)?),
        Filter::Or(a, b) => format!("({} OR {})", boolean(l, a)?, boolean(l, b)?),
        Filter::Not(inner) => format!("(NOT {})", boolean(l, inner)?),
        Filter::Present(path) => l.present(path)?,
        Filter::Compare {
            path,
            op: op @ (CompareOp::Eq | CompareOp::Ne),
            value: CompValue::Null,
        } => {
            let present = l.present(path)?;
            if *op == CompareOp::Eq {
                format!("(NOT {present})")
            } else {
                present
            }
        }
        Filter::Compare {
            path,
            op: CompareOp::Ne,
            value,
        } => {
            let eq = l.compare(path, CompareOp::Eq, value)?;
            format!("(NOT {eq})")
        }
        Filter::Compare { path, op, value } => l.compare(path, *op, value)?,
        Filter::ValuePath { path, filter } => l.value_path(path, filter)?,
    })
}

impl Leaves for Compiler<'_> {
    fn present(&mut self, path: &AttrPath) -> Result<String, Unsupported> {
        Compiler::present(self, path)
    }
    fn compare(
        &mut self,
        path: &AttrPath,
        op: CompareOp,
        lit: &CompValue,
    ) -> Result<String, Unsupported> {
        Compiler::compare(self, path, op, lit)
    }
    fn value_path(&mut self, path: &AttrPath, inner: &Filter) -> Result<String, Unsupported> {
        Compiler::value_path(self, path, inner)
    }
}

impl Leaves for ElementCompiler<'_> {
    fn present(&mut self, path: &AttrPath) -> Result<String, Unsupported> {
        let def = self.sub(path)?;
        Ok(json_present(self.dialect, ELEMENT, &[def.name]))
    }
    fn compare(
        &mut self,
        path: &AttrPath,
        op: CompareOp,
        lit: &CompValue,
    ) -> Result<String, Unsupported> {
        ElementCompiler::compare(self, path, op, lit)
    }
    fn value_path(&mut self, _: &AttrPath, _: &Filter) -> Result<String, Unsupported> {
        Err(Unsupported("value filters cannot be nested".into()))
    }
}

/// The placeholder for "the current value" in element predicates, replaced
/// by the dialect's element alias.
const ELEMENT: &str = "\u{1}ELEMENT\u{1}";

enum ScalarAt {
    Doc(Vec<&'static str>),
    /// Within a value of a multi-valued attribute; `true` when complex.
    Element(&'static Attribute, bool),
}

/// Compiles the filter inside `attr[…]`, over one value (`ELEMENT`).
struct ElementCompiler<'a> {
    dialect: Dialect,
    parent: &'static Attribute,
    sql: &'a mut Sql,
}

impl ElementCompiler<'_> {
    fn sub(&self, p: &AttrPath) -> Result<&'static Attribute, Unsupported> {
        path::resolve_in_element(self.parent, p).map_err(|e| Unsupported(e.0))
    }

    fn compare(
        &mut self,
        p: &AttrPath,
        op: CompareOp,
        lit: &CompValue,
    ) -> Result<String, Unsupported> {
        let def = self.sub(p)?;
        scalar_compare(
            self.dialect,
            self.sql,
            def,
            op,
            lit,
            ScalarAt::Element(def, true),
        )
    }
}

/// `value eq "…"` at the top of an `and` chain.
fn value_eq(f: &Filter) -> Option<String> {
    match f {
        Filter::And(a, b) => value_eq(a).or_else(|| value_eq(b)),
        leaf => leaf.value_eq().map(str::to_owned),
    }
}

fn sql_op(op: CompareOp) -> &'static str {
    match op {
        CompareOp::Eq => "=",
        CompareOp::Ne => "<>",
        CompareOp::Gt => ">",
        CompareOp::Ge => ">=",
        CompareOp::Lt => "<",
        CompareOp::Le => "<=",
        CompareOp::Co | CompareOp::Sw | CompareOp::Ew => {
            unreachable!("substring operators are not SQL operators")
        }
    }
}
