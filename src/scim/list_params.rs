//! Query parameters of list and search requests (RFC 7644 §3.4.2, §3.4.3; RFC 9865 §2):
//! from a URL query or a SearchRequest body into service list parameters and a projection.

use serde::Deserialize;
use serde_json::{json, Value};

use crate::scim_core::error::ScimError;
use crate::scim_core::filter::{parse_filter, parse_patch_path};
use crate::services::listing::{ListParams, Page, Paging};

/// SearchRequest schema (RFC 7644 §3.4.3).
pub const SEARCH_REQUEST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";
/// ListResponse schema (RFC 7644 §3.4.2).
pub const LIST_RESPONSE_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";

/// Longest accepted filter expression.
const MAX_FILTER_LEN: usize = 8 * 1024;

/// Raw list parameters, as strings, from either source.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawListParams {
    pub filter: Option<String>,
    pub sort_by: Option<String>,
    pub sort_order: Option<String>,
    pub start_index: Option<String>,
    pub count: Option<String>,
    pub cursor: Option<String>,
    pub attributes: Option<String>,
    pub excluded_attributes: Option<String>,
}

impl RawListParams {
    /// From a SearchRequest body, where numbers are numbers and attribute lists are arrays.
    pub fn from_search_body(body: &Value) -> Result<Self, ScimError> {
        let Value::Object(obj) = body else {
            return Err(ScimError::invalid_syntax(
                "the SearchRequest must be a JSON object",
            ));
        };
        let text = |key: &str| -> Result<Option<String>, ScimError> {
            match obj
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v)
            {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(Value::Number(n)) => Ok(Some(n.to_string())),
                Some(Value::Array(items)) => Ok(Some(
                    items
                        .iter()
                        .map(|i| i.as_str().map(str::to_string))
                        .collect::<Option<Vec<_>>>()
                        .ok_or_else(|| {
                            ScimError::invalid_value(format!("'{key}' must list strings"))
                        })?
                        .join(","),
                )),
                Some(_) => Err(ScimError::invalid_value(format!(
                    "'{key}' has the wrong type"
                ))),
            }
        };
        Ok(RawListParams {
            filter: text("filter")?,
            sort_by: text("sortBy")?,
            sort_order: text("sortOrder")?,
            start_index: text("startIndex")?,
            count: text("count")?,
            cursor: text("cursor")?,
            attributes: text("attributes")?,
            excluded_attributes: text("excludedAttributes")?,
        })
    }

    /// Validate into list parameters; `max` caps `count`.
    pub fn parse(&self, max: i64) -> Result<ListParams, ScimError> {
        let filter = match self
            .filter
            .as_deref()
            .map(str::trim)
            .filter(|f| !f.is_empty())
        {
            Some(text) if text.len() > MAX_FILTER_LEN => {
                return Err(ScimError::invalid_filter(format!(
                    "filter is longer than {MAX_FILTER_LEN} characters"
                )))
            }
            Some(text) => Some(parse_filter(text)?),
            None => None,
        };
        let sort_by = match self
            .sort_by
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            Some(s) => {
                let p = parse_patch_path(s)
                    .map_err(|e| ScimError::invalid_value(format!("sortBy: {e}")))?;
                if p.value_filter.is_some() {
                    return Err(ScimError::invalid_value(
                        "sortBy must be an attribute path without a filter",
                    ));
                }
                Some(p.attr)
            }
            None => None,
        };
        let descending = match self.sort_order.as_deref().map(str::trim) {
            None | Some("") => false,
            Some(o) if o.eq_ignore_ascii_case("ascending") => false,
            Some(o) if o.eq_ignore_ascii_case("descending") => true,
            Some(o) => {
                return Err(ScimError::invalid_value(format!(
                    "sortOrder must be ascending or descending, not {o:?}"
                )))
            }
        };
        // RFC 7644 §3.4.2.4: a negative count is 0 and count is capped at the maximum.
        let count = int_param(self.count.as_deref(), "count")?
            .unwrap_or(max)
            .clamp(0, max);
        let paging = match &self.cursor {
            Some(c) => Paging::Cursor {
                cursor: Some(c.trim()).filter(|c| !c.is_empty()).map(str::to_string),
                count,
            },
            None => Paging::Index {
                // startIndex below 1 is 1.
                start_index: int_param(self.start_index.as_deref(), "startIndex")?
                    .unwrap_or(1)
                    .max(1),
                count,
            },
        };
        Ok(ListParams {
            filter,
            sort_by,
            descending,
            paging,
        })
    }
}

fn int_param(value: Option<&str>, name: &str) -> Result<Option<i64>, ScimError> {
    value
        .map(|v| {
            v.trim().parse::<i64>().map_err(|_| {
                ScimError::invalid_value(format!("query parameter {name} must be an integer"))
            })
        })
        .transpose()
}

/// The ListResponse for a page of rendered resources.
pub fn list_response<T>(page: &Page<T>, resources: Vec<Value>) -> Value {
    let mut body = json!({
        "schemas": [LIST_RESPONSE_SCHEMA],
        "totalResults": page.total,
        "itemsPerPage": resources.len(),
    });
    if let Some(start) = page.start_index {
        body["startIndex"] = json!(start);
    }
    if let Some(next) = &page.next_cursor {
        body["nextCursor"] = json!(next);
    }
    body["Resources"] = Value::Array(resources);
    body
}

/// Check that a resource type is the one a `.search` was posted to; kept here so both list
/// entry points validate the same way.
pub fn check_search_schema(body: &Value) -> Result<(), ScimError> {
    let ok = body
        .get("schemas")
        .and_then(Value::as_array)
        .is_some_and(|s| s.iter().any(|v| v.as_str() == Some(SEARCH_REQUEST_SCHEMA)));
    if ok {
        Ok(())
    } else {
        Err(ScimError::invalid_value(format!(
            "'schemas' must contain {SEARCH_REQUEST_SCHEMA}"
        )))
    }
}
