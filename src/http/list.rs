//! List requests shared by every resource type: `GET /{Resource}` query
//! parameters or a SearchRequest body (RFC 7644 §3.4.2, §3.4.3), turned into
//! a store query, a page and a projection.

use super::HttpSettings;
use super::error::ApiError;
use super::extract::QueryParams;
use crate::scim::filter;
use crate::scim::list::Page;
use crate::scim::projection::Projection;
use crate::scim::schema::ResourceType;
use crate::scim::{ScimError, ScimType};
use crate::store::StoreError;
use crate::store::query::{Sort, UserQuery};

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
        })
    }
}

/// What a list request asks the store and the renderer for.
pub struct ListPlan {
    pub query: UserQuery,
    pub page: Page,
    pub projection: Projection,
}

impl ListRequest {
    /// Validates the filter and sort against `rt` and clamps the page.
    pub fn plan(
        self,
        rt: &'static ResourceType,
        settings: &HttpSettings,
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
        Ok(ListPlan {
            query: UserQuery {
                filter,
                sort,
                offset: page.offset(),
                limit: page.count,
            },
            page,
            projection: Projection::new(
                rt,
                req.attributes.as_deref(),
                req.excluded_attributes.as_deref(),
            ),
        })
    }
}

/// A filter or sort the store cannot run is the client's `invalidFilter`.
pub fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::InvalidQuery(why) => {
            ApiError(ScimError::bad_request(ScimType::InvalidFilter, why))
        }
        other => other.into(),
    }
}
