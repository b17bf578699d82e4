//! SCIM filters (RFC 7644 §3.4.2.2) compiled to parameterised SQL over a resource row `r`.
//! Attributes held in columns (`id`, `userName`, `externalId`, `active`, `meta.*`) compare
//! against those columns; every other attribute compares against the indexed leaf values in
//! `scim_values`. Values are always bound, never spliced. An attribute the schema does not
//! define matches nothing (RFC 7644 §3.4.2.2).

use super::sql::{Arg, Sql};
use crate::scim_core::error::ScimError;
use crate::scim_core::filter::{AttrPath, CompValue, CompareOp, Filter};
use crate::scim_core::schema::{AttrDef, AttrType, ResourceTypeDef};

/// A column of the resource table that stands for an attribute.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub expr: &'static str,
    pub kind: ColumnKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    /// Text compared exactly.
    TextExact,
    /// Text stored lower-cased; the operand is lower-cased too.
    TextLower,
    /// 0/1 flag.
    Flag,
    /// Epoch milliseconds, compared with dateTime operands.
    Millis,
    /// A value held in another table (group memberships).
    Related(&'static Relation),
}

/// An attribute held outside the resource's table: `r.id IN (select WHERE partner AND cond)`.
#[derive(Debug, PartialEq, Eq)]
pub struct Relation {
    /// `SELECT <resource id> FROM … ` without WHERE.
    pub select: &'static str,
    pub partner_column: &'static str,
    pub value_column: &'static str,
    /// Whether the stored value is lower-cased (a case-insensitive attribute).
    pub lower: bool,
}

/// Which attributes of a resource type live in columns of its table.
pub type ColumnMap = fn(attr: &str, sub: Option<&str>) -> Option<Column>;

/// How the filter reaches leaf values: from the resource row, or from one element of a
/// multi-valued attribute inside a value path.
#[derive(Clone, Copy)]
enum Scope<'a> {
    Resource,
    Element { path_prefix: &'a str },
}

pub struct FilterCompiler<'a> {
    pub rt: &'static ResourceTypeDef,
    pub columns: ColumnMap,
    pub partner_id: &'a str,
}

/// Nesting bound; the parser already bounds depth, this protects hand-built filters.
const MAX_DEPTH: usize = 64;

impl FilterCompiler<'_> {
    pub fn compile(&self, filter: &Filter) -> Result<Sql, ScimError> {
        self.node(filter, Scope::Resource, 0)
    }

    fn node(&self, filter: &Filter, scope: Scope<'_>, depth: usize) -> Result<Sql, ScimError> {
        if depth > MAX_DEPTH {
            return Err(ScimError::invalid_filter("filter is nested too deeply"));
        }
        Ok(match filter {
            Filter::And(a, b) | Filter::Or(a, b) => {
                let op = if matches!(filter, Filter::And(..)) {
                    " AND "
                } else {
                    " OR "
                };
                let mut sql = Sql::new("(");
                sql.append(self.node(a, scope, depth + 1)?)
                    .push(op)
                    .append(self.node(b, scope, depth + 1)?)
                    .push(")");
                sql
            }
            Filter::Not(inner) => {
                let mut sql = Sql::new("(NOT ");
                sql.append(self.node(inner, scope, depth + 1)?).push(")");
                sql
            }
            Filter::Present(path) => self.leaf(path, None, scope)?,
            Filter::Compare { path, op, value } => {
                if *op == CompareOp::Ne && *value == CompValue::Null {
                    // `ne null` is presence.
                    self.leaf(path, None, scope)?
                } else if *op == CompareOp::Ne {
                    let mut sql = Sql::new("(NOT ");
                    sql.append(self.leaf(path, Some((CompareOp::Eq, value)), scope)?)
                        .push(")");
                    sql
                } else if *op == CompareOp::Eq && *value == CompValue::Null {
                    let mut sql = Sql::new("(NOT ");
                    sql.append(self.leaf(path, None, scope)?).push(")");
                    sql
                } else {
                    self.leaf(path, Some((*op, value)), scope)?
                }
            }
            Filter::ValuePath { attr, filter } => self.value_path(attr, filter, scope, depth)?,
        })
    }

    /// `emails[type eq "work" and value co "@x"]`: some element of the attribute satisfies
    /// the inner filter, with every inner comparison on that same element.
    fn value_path(
        &self,
        attr: &AttrPath,
        inner: &Filter,
        scope: Scope<'_>,
        depth: usize,
    ) -> Result<Sql, ScimError> {
        if matches!(scope, Scope::Element { .. }) {
            return Err(ScimError::invalid_filter("value paths cannot be nested"));
        }
        let Some((prefix, def)) = self.resolve_attr(attr.uri.as_deref(), &attr.attr) else {
            return Ok(Sql::new("(1 = 0)"));
        };
        if def.ty != AttrType::Complex {
            return Err(ScimError::invalid_filter(format!(
                "'{}' is not a complex attribute, so it cannot take a [filter]",
                attr.attr
            )));
        }
        let path_prefix = format!("{prefix}{}", def.name.to_ascii_lowercase());
        let mut sql =
            Sql::new("r.id IN (SELECT e.resource_id FROM scim_values e WHERE e.partner_id = ");
        sql.bind(Arg::Text(self.partner_id.to_string()))
            .push(" AND e.path LIKE ")
            .bind(Arg::Text(format!("{}.%", like_escape(&path_prefix))))
            .push(" ESCAPE '\\' AND ")
            .append(self.node(
                inner,
                Scope::Element {
                    path_prefix: &path_prefix,
                },
                depth + 1,
            )?)
            .push(")");
        Ok(sql)
    }

    /// Resolve `uri:attr` to the lower-cased path prefix of its schema and its definition.
    fn resolve_attr(&self, uri: Option<&str>, name: &str) -> Option<(String, &'static AttrDef)> {
        let (schema, def) = self.rt.resolve(uri, name)?;
        let prefix = if std::ptr::eq(schema, self.rt.schema) {
            String::new()
        } else {
            format!("{}:", schema.id.to_ascii_lowercase())
        };
        Some((prefix, def))
    }

    /// A comparison (or `pr` when `cmp` is None) on one attribute path.
    fn leaf(
        &self,
        path: &AttrPath,
        cmp: Option<(CompareOp, &CompValue)>,
        scope: Scope<'_>,
    ) -> Result<Sql, ScimError> {
        let (full_path, def) = match scope {
            Scope::Resource => {
                if let Some(col) =
                    (self.columns)(&path.attr, path.sub_attr.as_deref()).filter(|_| {
                        path.uri.is_none()
                            || path
                                .uri
                                .as_deref()
                                .is_some_and(|u| u.eq_ignore_ascii_case(self.rt.schema.id))
                    })
                {
                    return column_condition(col, cmp, self.partner_id);
                }
                let Some((prefix, def)) = self.resolve_attr(path.uri.as_deref(), &path.attr) else {
                    return Ok(Sql::new("(1 = 0)"));
                };
                let base = format!("{prefix}{}", def.name.to_ascii_lowercase());
                if cmp.is_none() && def.ty == AttrType::Complex && path.sub_attr.is_none() {
                    // `pr` on a complex attribute: any non-empty sub-attribute; every
                    // resource has `meta`.
                    if prefix.is_empty() && def.name == "meta" {
                        return Ok(Sql::new("(1 = 1)"));
                    }
                    return Ok(self.values_in(&base, true, None));
                }
                match leaf_def(def, path.sub_attr.as_deref()) {
                    LeafTarget::Leaf(leaf, Some(sub)) => {
                        (format!("{base}.{}", sub.to_ascii_lowercase()), leaf)
                    }
                    LeafTarget::Leaf(leaf, None) => (base, leaf),
                    LeafTarget::Whole if cmp.is_none() => {
                        return Ok(self.values_in(&base, true, None));
                    }
                    LeafTarget::Whole | LeafTarget::Unknown => return Ok(Sql::new("(1 = 0)")),
                }
            }
            Scope::Element { path_prefix } => {
                // Inside a value path, `attr` names a sub-attribute of the element.
                let sub = match (&path.sub_attr, self.element_def(path_prefix)) {
                    (None, Some(parent)) => parent.sub_attribute(&path.attr),
                    _ => None,
                };
                let Some(sub) = sub else {
                    return Ok(Sql::new("(1 = 0)"));
                };
                (
                    format!("{path_prefix}.{}", sub.name.to_ascii_lowercase()),
                    sub,
                )
            }
        };
        let cond = match cmp {
            None => None,
            Some((op, value)) => Some(value_condition(def, op, value)?),
        };
        Ok(match scope {
            Scope::Resource => self.values_in(&full_path, false, cond),
            Scope::Element { .. } => {
                let mut sql = Sql::new(
                    "EXISTS (SELECT 1 FROM scim_values v WHERE v.resource_id = e.resource_id AND v.elem = e.elem AND v.path = ",
                );
                sql.bind(Arg::Text(full_path));
                match cond {
                    Some(c) => sql.push(" AND ").append(c),
                    None => sql.push(" AND v.value <> ''"),
                };
                sql.push(")");
                sql
            }
        })
    }

    fn element_def(&self, path_prefix: &str) -> Option<&'static AttrDef> {
        let (uri, name) = match path_prefix.rsplit_once(':') {
            Some((u, n)) => (Some(u), n),
            None => (None, path_prefix),
        };
        self.rt.resolve(uri, name).map(|(_, d)| d)
    }

    /// `r.id IN (resources having a leaf at path [satisfying cond])`.
    fn values_in(&self, path: &str, with_children: bool, cond: Option<Sql>) -> Sql {
        let mut sql =
            Sql::new("r.id IN (SELECT v.resource_id FROM scim_values v WHERE v.partner_id = ");
        sql.bind(Arg::Text(self.partner_id.to_string()));
        if with_children {
            sql.push(" AND (v.path = ")
                .bind(Arg::Text(path.to_string()))
                .push(" OR v.path LIKE ")
                .bind(Arg::Text(format!("{}.%", like_escape(path))))
                .push(" ESCAPE '\\')");
        } else {
            sql.push(" AND v.path = ").bind(Arg::Text(path.to_string()));
        }
        match cond {
            Some(c) => sql.push(" AND ").append(c),
            // RFC 7644 §3.4.2.2: `pr` needs a non-empty value.
            None => sql.push(" AND v.value <> ''"),
        };
        sql.push(")");
        sql
    }
}

enum LeafTarget<'a> {
    /// A simple attribute or sub-attribute, with the sub-attribute name to append.
    Leaf(&'static AttrDef, Option<&'a str>),
    /// A complex attribute as a whole (only `pr` applies).
    Whole,
    Unknown,
}

fn leaf_def<'a>(def: &'static AttrDef, sub: Option<&'a str>) -> LeafTarget<'a> {
    match (def.ty, sub) {
        (AttrType::Complex, Some(s)) => match def.sub_attribute(s) {
            Some(sd) => LeafTarget::Leaf(sd, Some(sd.name)),
            None => LeafTarget::Unknown,
        },
        // RFC 7644 §3.4.2.2: a multi-valued complex attribute without a sub-attribute
        // compares its `value` sub-attribute (`emails co "@x"`).
        (AttrType::Complex, None) if def.multi_valued => match def.sub_attribute("value") {
            Some(sd) => LeafTarget::Leaf(sd, Some("value")),
            None => LeafTarget::Whole,
        },
        (AttrType::Complex, None) => LeafTarget::Whole,
        (_, Some(_)) => LeafTarget::Unknown,
        (_, None) => LeafTarget::Leaf(def, None),
    }
}

/// The condition on a `scim_values v` row for one comparison.
fn value_condition(def: &AttrDef, op: CompareOp, value: &CompValue) -> Result<Sql, ScimError> {
    let mut sql = Sql::default();
    match def.ty {
        AttrType::Boolean => {
            let b = match value {
                CompValue::Bool(b) => *b,
                CompValue::Str(s) if s.eq_ignore_ascii_case("true") => true,
                CompValue::Str(s) if s.eq_ignore_ascii_case("false") => false,
                _ => {
                    return Err(ScimError::invalid_filter(format!(
                        "'{}' is a boolean attribute; compare it with true or false",
                        def.name
                    )))
                }
            };
            if op != CompareOp::Eq {
                return Err(ScimError::invalid_filter(format!(
                    "operator {op:?} does not apply to boolean attribute '{}'",
                    def.name
                )));
            }
            sql.push("v.value_ci = ").bind(Arg::Text(b.to_string()));
        }
        AttrType::Integer | AttrType::Decimal => {
            let n = match value {
                CompValue::Number(n) => n.as_f64(),
                CompValue::Str(s) => s.trim().parse().ok(),
                _ => None,
            }
            .ok_or_else(|| {
                ScimError::invalid_filter(format!(
                    "'{}' is numeric; compare it with a number",
                    def.name
                ))
            })?;
            let sym = ordering_symbol(op).ok_or_else(|| {
                ScimError::invalid_filter(format!(
                    "operator {op:?} does not apply to numeric attribute '{}'",
                    def.name
                ))
            })?;
            sql.push("v.num ").push(sym).push(" ").bind(Arg::Real(n));
        }
        AttrType::DateTime => {
            let CompValue::Str(s) = value else {
                return Err(ScimError::invalid_filter(format!(
                    "'{}' is a dateTime; compare it with a string",
                    def.name
                )));
            };
            let normalized = match chrono::DateTime::parse_from_rfc3339(s) {
                Ok(t) => crate::clock::to_rfc3339(t.with_timezone(&chrono::Utc)),
                Err(_) if matches!(op, CompareOp::Co | CompareOp::Sw | CompareOp::Ew) => s.clone(),
                Err(_) => {
                    return Err(ScimError::invalid_filter(format!(
                        "{s:?} is not an xsd:dateTime"
                    )))
                }
            };
            exact_condition(&mut sql, op, normalized, true);
        }
        AttrType::String | AttrType::Reference | AttrType::Binary | AttrType::Complex => {
            let text = match value {
                CompValue::Str(s) => s.clone(),
                CompValue::Number(n) => n.to_string(),
                CompValue::Bool(b) => b.to_string(),
                CompValue::Null => {
                    return Err(ScimError::invalid_filter(
                        "null can only be compared with eq or ne",
                    ))
                }
            };
            if def.case_exact {
                exact_condition(&mut sql, op, text, false);
            } else {
                string_condition(&mut sql, "v.value_ci", op, text.to_lowercase());
            }
        }
    }
    Ok(sql)
}

/// A comparison of the exact value. Only `value_ci` is indexed (with partner and path): an
/// index of `value` as well cost every write one more index entry per leaf. `value_ci` is a
/// function of `value`, so equality on it is implied and narrows the scan to the index. So
/// are ordering comparisons of dateTimes (`datetime`): they are stored normalised (digits,
/// `-:.+`, `T`, `Z`), an alphabet whose order lower-casing keeps. Other operators on caseExact
/// strings scan the partner's values of that path.
fn exact_condition(sql: &mut Sql, op: CompareOp, text: String, datetime: bool) {
    match ordering_symbol(op) {
        Some(sym) if op == CompareOp::Eq || (datetime && is_datetime_text(&text)) => {
            sql.push("(v.value_ci ")
                .push(sym)
                .push(" ")
                .bind(Arg::Text(text.to_lowercase()))
                .push(" AND ");
            string_condition(sql, "v.value", op, text);
            sql.push(")");
        }
        _ => string_condition(sql, "v.value", op, text),
    }
}

fn is_datetime_text(text: &str) -> bool {
    text.bytes()
        .all(|b| b.is_ascii_digit() || b"-:.+TZ".contains(&b))
}

fn ordering_symbol(op: CompareOp) -> Option<&'static str> {
    Some(match op {
        CompareOp::Eq => "=",
        CompareOp::Gt => ">",
        CompareOp::Ge => ">=",
        CompareOp::Lt => "<",
        CompareOp::Le => "<=",
        CompareOp::Ne | CompareOp::Co | CompareOp::Sw | CompareOp::Ew => return None,
    })
}

fn string_condition(sql: &mut Sql, column: &str, op: CompareOp, text: String) {
    sql.push(column);
    match op {
        CompareOp::Co => {
            sql.push(" LIKE ")
                .bind(Arg::Text(format!("%{}%", like_escape(&text))))
                .push(" ESCAPE '\\'");
        }
        CompareOp::Sw => {
            sql.push(" LIKE ")
                .bind(Arg::Text(format!("{}%", like_escape(&text))))
                .push(" ESCAPE '\\'");
        }
        CompareOp::Ew => {
            sql.push(" LIKE ")
                .bind(Arg::Text(format!("%{}", like_escape(&text))))
                .push(" ESCAPE '\\'");
        }
        other => {
            let sym = ordering_symbol(other).unwrap_or("=");
            sql.push(" ").push(sym).push(" ").bind(Arg::Text(text));
        }
    }
}

fn like_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// A comparison on a column of the resource table, or on a related table.
fn column_condition(
    col: Column,
    cmp: Option<(CompareOp, &CompValue)>,
    partner_id: &str,
) -> Result<Sql, ScimError> {
    if let ColumnKind::Related(rel) = col.kind {
        let mut sql = Sql::new("r.id IN (");
        sql.push(rel.select)
            .push(" WHERE ")
            .push(rel.partner_column)
            .push(" = ")
            .bind(Arg::Text(partner_id.to_string()));
        if let Some((op, value)) = cmp {
            let text = text_operand(value)?;
            let text = if rel.lower { text.to_lowercase() } else { text };
            sql.push(" AND ");
            string_condition(&mut sql, rel.value_column, op, text);
        }
        sql.push(")");
        return Ok(sql);
    }
    let mut sql = Sql::default();
    let Some((op, value)) = cmp else {
        return Ok(Sql::new(match col.kind {
            ColumnKind::TextExact => format!("({0} IS NOT NULL AND {0} <> '')", col.expr),
            _ => "(1 = 1)".to_string(),
        }));
    };
    match col.kind {
        ColumnKind::Flag => {
            let b = match value {
                CompValue::Bool(b) => *b,
                CompValue::Str(s) if s.eq_ignore_ascii_case("true") => true,
                CompValue::Str(s) if s.eq_ignore_ascii_case("false") => false,
                _ => {
                    return Err(ScimError::invalid_filter(
                        "compare a boolean attribute with true or false",
                    ))
                }
            };
            if op != CompareOp::Eq {
                return Err(ScimError::invalid_filter(format!(
                    "operator {op:?} does not apply to a boolean attribute"
                )));
            }
            sql.push(col.expr).push(" = ").bind(Arg::Int(i64::from(b)));
        }
        ColumnKind::Millis => {
            let CompValue::Str(s) = value else {
                return Err(ScimError::invalid_filter(
                    "compare a dateTime attribute with an xsd:dateTime string",
                ));
            };
            let t = chrono::DateTime::parse_from_rfc3339(s)
                .map_err(|_| ScimError::invalid_filter(format!("{s:?} is not an xsd:dateTime")))?;
            let sym = ordering_symbol(op).ok_or_else(|| {
                ScimError::invalid_filter(format!("operator {op:?} does not apply to a dateTime"))
            })?;
            sql.push(col.expr)
                .push(" ")
                .push(sym)
                .push(" ")
                .bind(Arg::Int(t.timestamp_millis()));
        }
        ColumnKind::TextExact | ColumnKind::TextLower => {
            let text = text_operand(value)?;
            let text = if col.kind == ColumnKind::TextLower {
                text.to_lowercase()
            } else {
                text
            };
            // Spelled out so that NOT over it is true for a NULL column, not NULL.
            sql.push("(").push(col.expr).push(" IS NOT NULL AND ");
            string_condition(&mut sql, col.expr, op, text);
            sql.push(")");
        }
        ColumnKind::Related(_) => {}
    }
    Ok(sql)
}

fn text_operand(value: &CompValue) -> Result<String, ScimError> {
    Ok(match value {
        CompValue::Str(s) => s.clone(),
        CompValue::Number(n) => n.to_string(),
        CompValue::Bool(b) => b.to_string(),
        CompValue::Null => {
            return Err(ScimError::invalid_filter(
                "null can only be compared with eq or ne",
            ))
        }
    })
}

/// What a list is ordered by (RFC 7644 §3.4.2.3).
#[derive(Debug, Clone)]
pub enum SortKey {
    /// A column of the resource table.
    Column(&'static str),
    /// The smallest leaf value at a path in `scim_values`, from the given value column.
    Leaf { path: String, column: &'static str },
    /// The attribute is unknown or has no sortable value: the default order applies.
    Default,
}

impl FilterCompiler<'_> {
    /// Resolve `sortBy` to a sort key. Unknown attributes sort nothing rather than failing.
    pub fn sort_key(&self, path: &AttrPath) -> SortKey {
        if let Some(col) = (self.columns)(&path.attr, path.sub_attr.as_deref()) {
            return match col.kind {
                ColumnKind::Related(_) => SortKey::Default,
                _ => SortKey::Column(col.expr),
            };
        }
        let Some((prefix, def)) = self.resolve_attr(path.uri.as_deref(), &path.attr) else {
            return SortKey::Default;
        };
        let base = format!("{prefix}{}", def.name.to_ascii_lowercase());
        let (path, leaf) = match leaf_def(def, path.sub_attr.as_deref()) {
            LeafTarget::Leaf(leaf, Some(sub)) => {
                (format!("{base}.{}", sub.to_ascii_lowercase()), leaf)
            }
            LeafTarget::Leaf(leaf, None) => (base, leaf),
            LeafTarget::Whole | LeafTarget::Unknown => return SortKey::Default,
        };
        let column = match leaf.ty {
            AttrType::Integer | AttrType::Decimal => "num",
            AttrType::Boolean | AttrType::DateTime => "value",
            _ if leaf.case_exact => "value",
            _ => "value_ci",
        };
        SortKey::Leaf { path, column }
    }
}
