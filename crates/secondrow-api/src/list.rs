//! Listing: KFP's JSON `filter` (operations by name or number, camelCase or snake_case value keys),
//! `sort_by` ("field", "field asc|desc"), opaque page tokens and `total_size`, turned into one SQL listing
//! (`run_list_query` for runs, `list_request` for experiments, pipelines, versions and recurring runs), or
//! applied to wire objects in memory (`paginate`, for the small listings that have no table of their own).

use std::cmp::Ordering;

use serde::Deserialize;
use serde_json::Value;

use secondrow_store::{CmpOp, ListFilter, ListRequest, RunColumn, RunFilter, RunListQuery, RunSort, SqlValue};

use crate::error::{ApiError, ApiResult};

/// The query parameters every list call carries (all optional, all strings as the client sends them).
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    pub page_token: Option<String>,
    pub page_size: Option<String>,
    pub sort_by: Option<String>,
    pub filter: Option<String>,
    pub namespace: Option<String>,
    pub experiment_id: Option<String>,
}

pub struct Page {
    pub items: Vec<Value>,
    pub total_size: usize,
    pub next_page_token: Option<String>,
}

const DEFAULT_PAGE_SIZE: usize = 20;
const MAX_PAGE_SIZE: usize = 1000;
const TOKEN_PREFIX: &str = "sr1:";

/// One comparable value.
#[derive(Debug, Clone, PartialEq, PartialOrd)]
enum Key {
    Null,
    Num(f64),
    Str(String),
}

fn as_key(v: &Value, time_like: bool) -> Key {
    match v {
        Value::Null => Key::Null,
        Value::Bool(b) => Key::Num(*b as i64 as f64),
        Value::Number(n) => Key::Num(n.as_f64().unwrap_or(0.0)),
        Value::String(s) if time_like => match chrono::DateTime::parse_from_rfc3339(s) {
            Ok(t) => Key::Num(t.timestamp_millis() as f64),
            Err(_) => Key::Str(s.clone()),
        },
        Value::String(s) => Key::Str(s.clone()),
        other => Key::Str(other.to_string()),
    }
}

fn is_time_key(key: &str) -> bool {
    key.ends_with("_at") || key.ends_with("_time")
}

fn cmp_keys(a: &Key, b: &Key) -> Ordering {
    a.partial_cmp(b).unwrap_or(Ordering::Equal)
}

#[derive(Debug)]
enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    In,
    Substring,
}

fn parse_op(v: &Value) -> ApiResult<Op> {
    let op = match v {
        Value::Number(n) => match n.as_i64() {
            Some(1) => Op::Eq,
            Some(2) => Op::Ne,
            Some(3) => Op::Gt,
            Some(5) => Op::Ge,
            Some(6) => Op::Lt,
            Some(7) => Op::Le,
            Some(8) => Op::In,
            Some(9) => Op::Substring,
            _ => return Err(ApiError::invalid(format!("filter: unknown operation {n}"))),
        },
        Value::String(s) => match s.as_str() {
            "EQUALS" => Op::Eq,
            "NOT_EQUALS" => Op::Ne,
            "GREATER_THAN" => Op::Gt,
            "GREATER_THAN_EQUALS" => Op::Ge,
            "LESS_THAN" => Op::Lt,
            "LESS_THAN_EQUALS" => Op::Le,
            "IN" => Op::In,
            "IS_SUBSTRING" => Op::Substring,
            other => return Err(ApiError::invalid(format!("filter: unknown operation `{other}`"))),
        },
        _ => return Err(ApiError::invalid("filter: a predicate needs an `operation`")),
    };
    Ok(op)
}

struct Predicate {
    key: String,
    op: Op,
    values: Vec<Key>,
}

fn field<'a>(p: &'a serde_json::Map<String, Value>, snake: &str, camel: &str) -> Option<&'a Value> {
    p.get(snake).or_else(|| p.get(camel))
}

fn parse_predicate(p: &Value, keys: &[&str]) -> ApiResult<Predicate> {
    let obj = p.as_object().ok_or_else(|| ApiError::invalid("filter: predicates must be objects"))?;
    let op = parse_op(obj.get("operation").unwrap_or(&Value::Null))?;
    let key = obj
        .get("key")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::invalid("filter: a predicate needs a `key`"))?
        .to_owned();
    let key = canonical_key(&key);
    if !keys.contains(&key.as_str()) {
        return Err(ApiError::invalid(format!("filter: unknown key `{key}` (known: {})", keys.join(", "))));
    }
    let time_like = is_time_key(&key);
    let mut values = Vec::new();
    if let Some(v) = field(obj, "string_value", "stringValue") {
        values.push(as_key(v, time_like));
    } else if let Some(v) = field(obj, "int_value", "intValue").or_else(|| field(obj, "long_value", "longValue")) {
        values.push(number_key(v)?);
    } else if let Some(v) = field(obj, "timestamp_value", "timestampValue") {
        values.push(match v {
            Value::String(s) => chrono::DateTime::parse_from_rfc3339(s)
                .map(|t| Key::Num(t.timestamp_millis() as f64))
                .map_err(|e| ApiError::invalid(format!("filter: timestamp `{s}`: {e}")))?,
            Value::Number(n) => Key::Num(n.as_f64().unwrap_or(0.0) * 1000.0),
            _ => return Err(ApiError::invalid("filter: timestamp_value must be RFC 3339")),
        });
    } else if let Some(v) = field(obj, "bool_value", "boolValue") {
        values.push(as_key(v, false));
    } else if let Some(list) = field(obj, "string_values", "stringValues")
        .or_else(|| field(obj, "int_values", "intValues"))
        .or_else(|| field(obj, "long_values", "longValues"))
    {
        let items = list.get("values").and_then(Value::as_array).cloned().unwrap_or_default();
        for item in &items {
            values.push(match item {
                Value::String(_) if list_is_numeric(obj) => number_key(item)?,
                other => as_key(other, false),
            });
        }
    } else {
        return Err(ApiError::invalid(format!("filter: predicate on `{key}` has no value")));
    }
    let is_list = field(obj, "string_values", "stringValues").is_some() || list_is_numeric(obj);
    if matches!(op, Op::In) != is_list {
        if matches!(op, Op::In) {
            return Err(ApiError::invalid("filter: IN needs a list value (string_values, int_values or long_values)"));
        }
        return Err(ApiError::invalid(format!("filter: operation on `{key}` needs a single value")));
    }
    Ok(Predicate { key, op, values })
}

fn list_is_numeric(obj: &serde_json::Map<String, Value>) -> bool {
    field(obj, "int_values", "intValues").is_some() || field(obj, "long_values", "longValues").is_some()
}

fn number_key(v: &Value) -> ApiResult<Key> {
    match v {
        Value::Number(n) => Ok(Key::Num(n.as_f64().unwrap_or(0.0))),
        Value::String(s) => {
            s.parse::<f64>().map(Key::Num).map_err(|_| ApiError::invalid(format!("filter: `{s}` is not a number")))
        }
        _ => Err(ApiError::invalid("filter: expected a number")),
    }
}

/// `name` is KFP's older spelling of `display_name`.
fn canonical_key(key: &str) -> String {
    match key {
        "name" => "display_name".to_owned(),
        other => other.to_owned(),
    }
}

fn matches(item: &Value, p: &Predicate) -> bool {
    let got = as_key(item.get(&p.key).unwrap_or(&Value::Null), is_time_key(&p.key));
    let v = p.values.first().cloned().unwrap_or(Key::Null);
    match p.op {
        Op::Eq => got == v,
        Op::Ne => got != v,
        Op::Gt => cmp_keys(&got, &v) == Ordering::Greater && got != Key::Null,
        Op::Ge => cmp_keys(&got, &v) != Ordering::Less && got != Key::Null,
        Op::Lt => cmp_keys(&got, &v) == Ordering::Less && got != Key::Null,
        Op::Le => cmp_keys(&got, &v) != Ordering::Greater && got != Key::Null,
        Op::In => p.values.contains(&got),
        Op::Substring => match (&got, &v) {
            (Key::Str(g), Key::Str(s)) => g.contains(s.as_str()),
            _ => false,
        },
    }
}

fn parse_filter(text: &str, keys: &[&str]) -> ApiResult<Vec<Predicate>> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let doc: Value =
        serde_json::from_str(text).map_err(|e| ApiError::invalid(format!("filter is not valid JSON: {e}")))?;
    let preds = match doc.get("predicates") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(a)) => a,
        Some(_) => return Err(ApiError::invalid("filter: `predicates` must be a list")),
    };
    preds.iter().map(|p| parse_predicate(p, keys)).collect()
}

pub fn encode_token(offset: usize) -> String {
    hex::encode(format!("{TOKEN_PREFIX}{offset}"))
}

fn decode_token(token: &str) -> ApiResult<usize> {
    let bad = || ApiError::invalid(format!("invalid page_token `{token}`"));
    let bytes = hex::decode(token).map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    // Bounded, so `offset + page_size` and the SQL offset (an i64) can neither wrap nor overflow.
    text.strip_prefix(TOKEN_PREFIX).and_then(|n| n.parse::<usize>().ok()).filter(|&n| n <= MAX_OFFSET).ok_or_else(bad)
}

/// The largest offset a page token may carry (no listing comes near it).
const MAX_OFFSET: usize = 1 << 40;

/// The page size and the offset (from the page token) a list call asks for.
fn page_window(q: &ListQuery) -> ApiResult<(usize, usize)> {
    let page_size = match q.page_size.as_deref().map(str::trim) {
        None | Some("") | Some("0") => DEFAULT_PAGE_SIZE,
        Some(s) => s
            .parse::<i64>()
            .ok()
            .filter(|n| *n > 0)
            .map(|n| (n as usize).min(MAX_PAGE_SIZE))
            .ok_or_else(|| ApiError::invalid(format!("page_size `{s}` is not a positive number")))?,
    };
    let offset = match q.page_token.as_deref() {
        None | Some("") => 0,
        Some(t) => decode_token(t)?,
    };
    Ok((page_size, offset))
}

/// The sort a list call asks for: `(field, descending)`, `None` when unsorted.
fn parse_sort(q: &ListQuery, keys: &[&str]) -> ApiResult<Option<(String, bool)>> {
    let sort = q.sort_by.as_deref().unwrap_or("").trim();
    if sort.is_empty() {
        return Ok(None);
    }
    let mut parts = sort.split_whitespace();
    let field = canonical_key(parts.next().unwrap_or(""));
    let desc = match parts.next() {
        None | Some("asc") | Some("ASC") => false,
        Some("desc") | Some("DESC") => true,
        Some(other) => return Err(ApiError::invalid(format!("sort_by: unknown direction `{other}` (asc or desc)"))),
    };
    if parts.next().is_some() {
        return Err(ApiError::invalid(format!("sort_by: expected `field [asc|desc]`, got `{sort}`")));
    }
    if !keys.contains(&field.as_str()) {
        return Err(ApiError::invalid(format!("sort_by: unknown field `{field}` (known: {})", keys.join(", "))));
    }
    Ok(Some((field, desc)))
}

/// The run column of a run listing key (`scheduled_at` is `created_at`: runs are scheduled when created).
fn run_column(key: &str) -> ApiResult<RunColumn> {
    Ok(match key {
        "run_id" => RunColumn::Id,
        "display_name" => RunColumn::DisplayName,
        "description" => RunColumn::Description,
        "experiment_id" => RunColumn::ExperimentId,
        "namespace" => RunColumn::Namespace,
        "state" => RunColumn::State,
        "storage_state" => RunColumn::StorageState,
        "created_at" | "scheduled_at" => RunColumn::CreatedAt,
        "finished_at" => RunColumn::FinishedAt,
        "recurring_run_id" => RunColumn::RecurringRunId,
        other => return Err(ApiError::invalid(format!("`{other}` cannot filter or sort runs"))),
    })
}

fn sql_value(key: &str, v: &Key) -> ApiResult<SqlValue> {
    match (is_time_key(key), v) {
        (true, Key::Num(n)) => Ok(SqlValue::Int(*n as i64)),
        (false, Key::Str(s)) => Ok(SqlValue::Text(s.clone())),
        (true, _) => Err(ApiError::invalid(format!("filter: `{key}` compares with a time"))),
        (false, _) => Err(ApiError::invalid(format!("filter: `{key}` compares with a string"))),
    }
}

/// A run list call as one SQL listing (`Store::list_run_page`): KFP's filter, sort and offset page tokens,
/// with `scope` (namespace / experiment) added; `total_size` is counted in SQL too. Unsorted lists are
/// oldest first.
pub fn run_list_query(q: &ListQuery, keys: &[&str], scope: Vec<RunFilter>) -> ApiResult<(RunListQuery, usize)> {
    let mut filters = scope;
    for p in parse_filter(q.filter.as_deref().unwrap_or(""), keys)? {
        let column = run_column(&p.key)?;
        let op = cmp_op(&p.op);
        let values = p.values.iter().map(|v| sql_value(&p.key, v)).collect::<ApiResult<Vec<_>>>()?;
        filters.push(RunFilter { column, op, values });
    }
    let sort = match parse_sort(q, keys)? {
        Some((field, descending)) => RunSort { column: run_column(&field)?, descending },
        None => RunSort { column: RunColumn::CreatedAt, descending: false },
    };
    let (page_size, offset) = page_window(q)?;
    let query =
        RunListQuery { filters, sort, after: None, offset: offset as i64, limit: page_size as i64, count_total: true };
    Ok((query, offset))
}

fn cmp_op(op: &Op) -> CmpOp {
    match op {
        Op::Eq => CmpOp::Eq,
        Op::Ne => CmpOp::Ne,
        Op::Gt => CmpOp::Gt,
        Op::Ge => CmpOp::Ge,
        Op::Lt => CmpOp::Lt,
        Op::Le => CmpOp::Le,
        Op::In => CmpOp::In,
        Op::Substring => CmpOp::Contains,
    }
}

/// A list call on experiments, pipelines, versions or recurring runs as one SQL listing (`Store::list_page`):
/// KFP's filter and sort on `keys`, each key's store column from `column` (`None`: the key's own name), offset
/// page tokens, `total_size` counted in SQL, `scope` (namespace, experiment, pipeline) added. Unsorted lists,
/// and ties, are oldest first, as they were when sorted in memory.
pub fn list_request(
    q: &ListQuery,
    keys: &[&str],
    column: fn(&str) -> Option<&'static str>,
    scope: Vec<ListFilter>,
) -> ApiResult<(ListRequest, usize)> {
    let col = |key: &str| column(key).unwrap_or(key).to_owned();
    let mut filters = scope;
    for p in parse_filter(q.filter.as_deref().unwrap_or(""), keys)? {
        let values = p.values.iter().map(|v| sql_value(&p.key, v)).collect::<ApiResult<Vec<_>>>()?;
        filters.push(ListFilter { column: col(&p.key), op: cmp_op(&p.op), values });
    }
    let sort = parse_sort(q, keys)?.map(|(field, desc)| (col(&field), desc));
    let (page_size, offset) = page_window(q)?;
    let request = ListRequest { filters, sort, offset: offset as i64, limit: page_size as i64, count_total: true };
    Ok((request, offset))
}

/// The list response of a [`run_list_query`] page: `next_page_token` when more runs follow.
pub fn sql_page(items: Vec<Value>, offset: usize, more: bool, total: Option<i64>) -> Page {
    let end = offset + items.len();
    Page {
        total_size: total.unwrap_or(end as i64).max(0) as usize,
        next_page_token: more.then(|| encode_token(end)),
        items,
    }
}

/// Filters, sorts and pages wire objects. `keys` are the fields filters and sorting may name.
pub fn paginate(mut items: Vec<Value>, q: &ListQuery, keys: &[&str]) -> ApiResult<Page> {
    let preds = parse_filter(q.filter.as_deref().unwrap_or(""), keys)?;
    items.retain(|item| preds.iter().all(|p| matches(item, p)));
    if let Some((field, desc)) = parse_sort(q, keys)? {
        let time_like = is_time_key(&field);
        items.sort_by(|a, b| {
            let o = cmp_keys(
                &as_key(a.get(&field).unwrap_or(&Value::Null), time_like),
                &as_key(b.get(&field).unwrap_or(&Value::Null), time_like),
            );
            if desc {
                o.reverse()
            } else {
                o
            }
        });
    }
    let (page_size, offset) = page_window(q)?;
    let total_size = items.len();
    let end = (offset + page_size).min(total_size);
    let page: Vec<Value> = if offset < total_size { items.drain(offset..end).collect() } else { Vec::new() };
    let next_page_token = (end < total_size).then(|| encode_token(end));
    Ok(Page { items: page, total_size, next_page_token })
}

/// The list response: `{<key>: [...], total_size, next_page_token?}`.
pub fn page_json(key: &str, page: Page) -> Value {
    let mut out = serde_json::Map::new();
    out.insert(key.to_owned(), Value::Array(page.items));
    out.insert("total_size".into(), Value::from(page.total_size as i64));
    if let Some(t) = page.next_page_token {
        out.insert("next_page_token".into(), Value::String(t));
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests;
