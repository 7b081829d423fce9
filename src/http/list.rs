//! List requests shared by every resource type: `GET /{Resource}` query
//! parameters or a SearchRequest body (RFC 7644 §3.4.2, §3.4.3), turned into
//! a store query, a page and a projection.

use super::HttpSettings;
use uuid::Uuid;

use super::cursor::CursorKey;
use super::error::ApiError;
use super::extract::QueryParams;
use crate::scim::filter;
use crate::scim::list::Page;
use crate::scim::projection::Projection;
use crate::scim::schema::ResourceType;
use crate::scim::{ScimError, ScimType};
use crate::store::StoreError;
use crate::store::query::{Keyset, ListQuery, Sort};

/// A list request: from the query string (`GET /Users`) or from a
/// SearchRequest body (`POST /Users/.search`, RFC 7644 §3.4.3).
#[derive(Debug, Default)]
pub struct ListRequest {
    filter: Option<String>,
    sort_by: Option<String>,
    sort_order: Option<String>,
    start_index: Option<i64>,
    count: Option<i64>,
    attributes: Option<String>,
    excluded_attributes: Option<String>,
    /// RFC 9865: present (even empty) selects cursor pagination.
    cursor: Option<String>,
}

impl ListRequest {
    pub fn from_query(params: &QueryParams) -> Result<ListRequest, ScimError> {
        let text = |k: &str| params.get(k).map(str::to_owned);
        Ok(ListRequest {
            filter: text("filter"),
            sort_by: text("sortBy"),
            sort_order: text("sortOrder"),
            start_index: params.get_i64("startIndex")?,
            count: params.get_i64("count")?,
            attributes: text("attributes"),
            excluded_attributes: text("excludedAttributes"),
            cursor: text("cursor"),
        })
    }

    pub fn from_search(body: serde_json::Value) -> Result<ListRequest, ScimError> {
        let serde_json::Value::Object(body) = body else {
            return Err(ScimError::invalid_syntax(
                "a SearchRequest must be a JSON object",
            ));
        };
        let get = |k: &str| {
            body.iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(k))
                .map(|(_, v)| v)
        };
        let text = |k: &str| -> Result<Option<String>, ScimError> {
            match get(k) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
                // attributes and excludedAttributes are arrays of paths.
                Some(serde_json::Value::Array(items)) => items
                    .iter()
                    .map(|i| i.as_str().map(str::to_owned))
                    .collect::<Option<Vec<_>>>()
                    .map(|v| Some(v.join(",")))
                    .ok_or_else(|| ScimError::invalid_value(format!("'{k}' must hold strings"))),
                Some(_) => Err(ScimError::invalid_value(format!("'{k}' must be a string"))),
            }
        };
        let int = |k: &str| -> Result<Option<i64>, ScimError> {
            match get(k) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(v) => v
                    .as_i64()
                    .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                    .map(Some)
                    .ok_or_else(|| ScimError::invalid_value(format!("'{k}' must be an integer"))),
            }
        };
        Ok(ListRequest {
            filter: text("filter")?,
            sort_by: text("sortBy")?,
            sort_order: text("sortOrder")?,
            start_index: int("startIndex")?,
            count: int("count")?,
            attributes: text("attributes")?,
            excluded_attributes: text("excludedAttributes")?,
            cursor: text("cursor")?,
        })
    }
}

/// What a list request asks the store and the renderer for.
pub struct ListPlan {
    pub query: ListQuery,
    pub page: Page,
    pub projection: Projection,
    /// Cursor pagination: whether the request came with a non-empty cursor.
    pub cursor: Option<bool>,
}

/// The page's items and cursors: an index page as it came; a cursor page
/// fetched with one extra row trimmed, with its cursors worked out.
pub fn cursor_page<T>(
    plan: &ListPlan,
    key: &CursorKey,
    mut items: Vec<T>,
    id_of: fn(&T) -> Uuid,
) -> (Vec<T>, Option<String>, Option<String>) {
    if plan.cursor.is_none() {
        return (items, None, None);
    }
    let after = |t: &T| key.encode(Keyset::After(id_of(t)));
    let before = |t: &T| key.encode(Keyset::Before(id_of(t)));
    let want = plan.page.count as usize;
    let resumed = plan.cursor == Some(true);
    match plan.query.keyset {
        Some(Keyset::Before(_)) => {
            let more_before = items.len() > want;
            if more_before {
                items.remove(0);
            }
            let next = items.last().map(after);
            let previous = if more_before {
                items.first().map(before)
            } else {
                None
            };
            (items, next, previous)
        }
        _ => {
            let more = items.len() > want;
            items.truncate(want);
            let next = if more { items.last().map(after) } else { None };
            let previous = if resumed {
                items.first().map(before)
            } else {
                None
            };
            (items, next, previous)
        }
    }
}

/// A ListResponse's members but `Resources`, for a plan: index-paged with
/// `totalResults`, or a cursor page with its cursors.
fn envelope(
    plan: &ListPlan,
    total: Option<u64>,
    items: usize,
    next: Option<String>,
    previous: Option<String>,
) -> serde_json::Map<String, serde_json::Value> {
    match plan.cursor {
        Some(_) => crate::scim::list::cursor_envelope(items, next, previous),
        None => crate::scim::list::index_envelope(total.unwrap_or(0), plan.page, items),
    }
}

/// The ListResponse for a plan.
pub fn response_body(
    plan: &ListPlan,
    total: Option<u64>,
    resources: Vec<serde_json::Value>,
    next: Option<String>,
    previous: Option<String>,
) -> serde_json::Value {
    let envelope = envelope(plan, total, resources.len(), next, previous);
    crate::scim::list::with_resources(envelope, resources)
}

/// [`response_body`] as JSON text, its resources already rendered as text.
pub fn response_text(
    plan: &ListPlan,
    total: Option<u64>,
    resources: &[Vec<u8>],
    next: Option<String>,
    previous: Option<String>,
) -> Vec<u8> {
    let envelope = envelope(plan, total, resources.len(), next, previous);
    crate::scim::list::with_rendered_resources(envelope, resources)
}

impl ListRequest {
    /// Validates the filter and sort against `rt` and clamps the page.
    pub fn plan(
        self,
        rt: &'static ResourceType,
        settings: &HttpSettings,
        key: &CursorKey,
    ) -> Result<ListPlan, ScimError> {
        let req = self;
        let filter = match req
            .filter
            .as_deref()
            .map(str::trim)
            .filter(|f| !f.is_empty())
        {
            None => None,
            Some(text) => {
                let f = filter::parse_filter(text).map_err(|e| {
                    ScimError::bad_request(ScimType::InvalidFilter, format!("invalid filter: {e}"))
                })?;
                filter::validate(&f, filter::Scope::Resource(rt))?;
                Some(f)
            }
        };
        let sort = match req
            .sort_by
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            None => None,
            Some(text) => {
                let by = filter::parse_path(text)
                    .ok()
                    .filter(|p| p.filter.is_none())
                    .map(|p| p.attr)
                    .ok_or_else(|| ScimError::invalid_value(format!("invalid sortBy '{text}'")))?;
                if crate::scim::path::resolve(rt, &by).is_err() {
                    return Err(ScimError::invalid_value(format!(
                        "sortBy '{text}' is not an attribute of {}",
                        rt.name
                    )));
                }
                let descending = match req.sort_order.as_deref().map(str::trim) {
                    None | Some("") => false,
                    Some(o) if o.eq_ignore_ascii_case("ascending") => false,
                    Some(o) if o.eq_ignore_ascii_case("descending") => true,
                    Some(o) => {
                        return Err(ScimError::invalid_value(format!(
                            "sortOrder must be 'ascending' or 'descending', not '{o}'"
                        )));
                    }
                };
                Some(Sort { by, descending })
            }
        };
        let page = Page::new(
            req.start_index,
            req.count,
            settings.default_page_size,
            settings.max_results,
        );
        let projection = Projection::new(
            rt,
            req.attributes.as_deref(),
            req.excluded_attributes.as_deref(),
        );
        let Some(cursor) = req.cursor.as_deref().map(str::trim) else {
            return Ok(ListPlan {
                query: ListQuery {
                    filter,
                    sort,
                    offset: page.offset(),
                    limit: page.count,
                    keyset: None,
                },
                page,
                projection,
                cursor: None,
            });
        };
        if sort.is_some() {
            return Err(ScimError::invalid_value(
                "cursor pagination follows creation order; sortBy cannot be combined with cursor",
            ));
        }
        let keyset = if cursor.is_empty() {
            Keyset::After(Uuid::nil())
        } else {
            key.decode(cursor)?
        };
        let page = Page {
            start_index: 1,
            count: page.count,
        };
        Ok(ListPlan {
            query: ListQuery {
                filter,
                sort: None,
                offset: 0,
                // One more than asked: whether there is a next page.
                limit: page.count + 1,
                keyset: Some(keyset),
            },
            page,
            projection,
            cursor: Some(!cursor.is_empty()),
        })
    }
}

/// A filter or sort the store cannot run is the client's `invalidFilter`.
pub fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::InvalidQuery(why) => {
            ApiError::from(ScimError::bad_request(ScimType::InvalidFilter, why))
        }
        other => other.into(),
    }
}
