//! Listings of experiments, pipelines, pipeline versions and recurring runs in SQL: filters, a sort and an
//! offset page in one query (plus a `COUNT(*)` when asked), like [`crate::run_list`] does for runs, so the
//! API never loads a whole table to answer a page. Each listed record names its table and the columns a
//! listing may filter and sort on ([`Listed`]).

use sqlx::any::AnyRow;
use sqlx::Row;

use crate::recurring::RecurringRunRecord;
use crate::resources::{PipelineRecord, PipelineVersionRecord};
use crate::run_list::{CmpOp, SqlValue};
use crate::{decode, Backend, Experiment, Result, Store, StoreError};

/// How a column compares: text, or a time (epoch ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    Text,
    /// Text that may be NULL (compared as `''`).
    NullableText,
    Time,
}

/// A record a listing returns: its table, its filterable and sortable columns, and how a row decodes.
pub trait Listed: Sized {
    /// The table, and what the listing selects from it.
    const FROM: &'static str;
    const SELECT: &'static str;
    /// The SQL expression and kind of a column by name; `None` for names the listing does not know.
    fn column(name: &str) -> Option<(&'static str, ColumnKind)>;
    fn decode(row: &AnyRow) -> Result<Self>;
}

impl Listed for Experiment {
    const FROM: &'static str = "experiments";
    const SELECT: &'static str = "*";
    fn column(name: &str) -> Option<(&'static str, ColumnKind)> {
        use ColumnKind::*;
        Some(match name {
            "id" => ("id", Text),
            "display_name" => ("display_name", Text),
            "description" => ("description", Text),
            "namespace" => ("namespace", Text),
            "storage_state" => ("storage_state", Text),
            "created_at" => ("created_at", Time),
            _ => return None,
        })
    }
    fn decode(row: &AnyRow) -> Result<Self> {
        decode(row)
    }
}

impl Listed for PipelineRecord {
    const FROM: &'static str = "pipelines";
    const SELECT: &'static str = "*";
    fn column(name: &str) -> Option<(&'static str, ColumnKind)> {
        use ColumnKind::*;
        Some(match name {
            "id" => ("id", Text),
            "name" => ("name", Text),
            "display_name" => ("display_name", Text),
            "description" => ("description", Text),
            "namespace" => ("namespace", Text),
            "created_at" => ("created_at", Time),
            _ => return None,
        })
    }
    fn decode(row: &AnyRow) -> Result<Self> {
        decode(row)
    }
}

impl Listed for PipelineVersionRecord {
    const FROM: &'static str = "pipeline_versions";
    /// Listings leave out the (large) spec.
    const SELECT: &'static str = "id, pipeline_id, name, display_name, description, NULL AS spec, created_at";
    fn column(name: &str) -> Option<(&'static str, ColumnKind)> {
        use ColumnKind::*;
        Some(match name {
            "id" => ("id", Text),
            "pipeline_id" => ("pipeline_id", Text),
            "name" => ("name", Text),
            "display_name" => ("display_name", Text),
            "description" => ("description", Text),
            "created_at" => ("created_at", Time),
            _ => return None,
        })
    }
    fn decode(row: &AnyRow) -> Result<Self> {
        PipelineVersionRecord::from_row(row, false)
    }
}

impl Listed for RecurringRunRecord {
    const FROM: &'static str = "recurring_runs";
    const SELECT: &'static str = "*";
    /// `status` and `mode` are the KFP words for the `enabled` flag (`ENABLED`/`DISABLED`, `ENABLE`/`DISABLE`).
    fn column(name: &str) -> Option<(&'static str, ColumnKind)> {
        use ColumnKind::*;
        Some(match name {
            "id" => ("id", Text),
            "display_name" => ("display_name", Text),
            "description" => ("description", Text),
            "namespace" => ("namespace", Text),
            "experiment_id" => ("experiment_id", NullableText),
            "status" => ("(CASE WHEN enabled = 1 THEN 'ENABLED' ELSE 'DISABLED' END)", Text),
            "mode" => ("(CASE WHEN enabled = 1 THEN 'ENABLE' ELSE 'DISABLE' END)", Text),
            "created_at" => ("created_at", Time),
            "updated_at" => ("updated_at", Time),
            _ => return None,
        })
    }
    fn decode(row: &AnyRow) -> Result<Self> {
        RecurringRunRecord::from_row(row)
    }
}

/// One predicate on a named column; a listing keeps the rows matching all of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListFilter {
    pub column: String,
    pub op: CmpOp,
    pub values: Vec<SqlValue>,
}

impl ListFilter {
    pub fn eq(column: &str, value: impl Into<String>) -> ListFilter {
        ListFilter { column: column.to_owned(), op: CmpOp::Eq, values: vec![SqlValue::Text(value.into())] }
    }
}

/// A listing request: without a sort, oldest first; ties always go oldest first, then by id.
#[derive(Debug, Clone, Default)]
pub struct ListRequest {
    pub filters: Vec<ListFilter>,
    /// Column name and descending.
    pub sort: Option<(String, bool)>,
    pub offset: i64,
    /// Page size (at most 1000).
    pub limit: i64,
    pub count_total: bool,
}

/// A page of a listing: `more` when rows follow it.
#[derive(Debug, Clone)]
pub struct ListPage<T> {
    pub items: Vec<T>,
    pub more: bool,
    pub total: Option<i64>,
}

const MAX_LIMIT: i64 = 1000;

fn resolve<T: Listed>(name: &str) -> Result<(&'static str, ColumnKind)> {
    T::column(name).ok_or_else(|| StoreError::InvalidArgument(format!("`{name}` cannot filter or sort {}", T::FROM)))
}

fn check(name: &str, kind: ColumnKind, v: &SqlValue) -> Result<()> {
    match (kind, v) {
        (ColumnKind::Time, SqlValue::Int(_)) | (ColumnKind::Text | ColumnKind::NullableText, SqlValue::Text(_)) => {
            Ok(())
        }
        (ColumnKind::Time, _) => Err(StoreError::InvalidArgument(format!("`{name}` compares with a time (epoch ms)"))),
        _ => Err(StoreError::InvalidArgument(format!("`{name}` compares with text"))),
    }
}

struct Binds(Vec<SqlValue>);

impl Binds {
    fn bind(&mut self, v: SqlValue) -> String {
        self.0.push(v);
        format!("${}", self.0.len())
    }
}

fn where_clause<T: Listed>(b: &mut Binds, filters: &[ListFilter], backend: Backend) -> Result<String> {
    let mut parts = vec!["1 = 1".to_owned()];
    for f in filters {
        let (sql, kind) = resolve::<T>(&f.column)?;
        for v in &f.values {
            check(&f.column, kind, v)?;
        }
        let first = || {
            f.values
                .first()
                .cloned()
                .ok_or_else(|| StoreError::InvalidArgument(format!("filter on `{}` has no value", f.column)))
        };
        let col = if kind == ColumnKind::NullableText { format!("COALESCE({sql}, '')") } else { sql.to_owned() };
        let part = match f.op {
            // Equal to a non-empty text, a nullable column needs no COALESCE: then its indexes apply.
            CmpOp::Eq if matches!(f.values.first(), Some(SqlValue::Text(t)) if !t.is_empty()) => {
                format!("{sql} = {}", b.bind(first()?))
            }
            CmpOp::Eq => format!("{col} = {}", b.bind(first()?)),
            CmpOp::Ne => format!("{col} <> {}", b.bind(first()?)),
            CmpOp::Gt => format!("{col} > {}", b.bind(first()?)),
            CmpOp::Ge => format!("{col} >= {}", b.bind(first()?)),
            CmpOp::Lt => format!("{col} < {}", b.bind(first()?)),
            CmpOp::Le => format!("{col} <= {}", b.bind(first()?)),
            CmpOp::In if f.values.is_empty() => "1 = 0".to_owned(),
            CmpOp::In => {
                let marks: Vec<String> = f.values.iter().map(|v| b.bind(v.clone())).collect();
                format!("{col} IN ({})", marks.join(", "))
            }
            CmpOp::Contains | CmpOp::ContainsIgnoreCase => {
                if kind == ColumnKind::Time {
                    return Err(StoreError::InvalidArgument(format!("`{}` is not text", f.column)));
                }
                let (c, v) = if f.op == CmpOp::ContainsIgnoreCase {
                    (format!("LOWER({col})"), format!("LOWER({})", b.bind(first()?)))
                } else {
                    (col, b.bind(first()?))
                };
                match backend {
                    Backend::Sqlite => format!("instr({c}, {v}) > 0"),
                    Backend::Postgres => format!("strpos({c}, {v}) > 0"),
                }
            }
        };
        parts.push(part);
    }
    Ok(parts.join(" AND "))
}

fn bind_all<'q>(
    mut query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    binds: &'q [SqlValue],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    for b in binds {
        query = match b {
            SqlValue::Int(n) => query.bind(*n),
            SqlValue::Text(s) => query.bind(s.as_str()),
        };
    }
    query
}

impl Store {
    /// The page query of a listing, its binds (all of them the `WHERE` clause's) and that clause (for the count).
    fn list_sql<T: Listed>(&self, q: &ListRequest) -> Result<(String, Vec<SqlValue>, String)> {
        let mut b = Binds(Vec::new());
        let filters = where_clause::<T>(&mut b, &q.filters, self.backend())?;
        let order = match &q.sort {
            Some((name, desc)) => {
                let (sql, kind) = resolve::<T>(name)?;
                let col =
                    if kind == ColumnKind::NullableText { format!("COALESCE({sql}, '')") } else { sql.to_owned() };
                format!("{col} {}, created_at ASC, id ASC", if *desc { "DESC" } else { "ASC" })
            }
            None => "created_at ASC, id ASC".to_owned(),
        };
        let text = format!(
            "SELECT {} FROM {} WHERE {filters} ORDER BY {order} LIMIT {} OFFSET {}",
            T::SELECT,
            T::FROM,
            q.limit.clamp(1, MAX_LIMIT) + 1,
            q.offset.max(0)
        );
        Ok((text, b.0, filters))
    }

    /// One page of experiments, pipelines, pipeline versions or recurring runs, filtered, sorted and paged in
    /// SQL (one query; a second one only for `count_total`).
    pub async fn list_page<T: Listed>(&self, q: &ListRequest) -> Result<ListPage<T>> {
        let (text, binds, filters) = self.list_sql::<T>(q)?;
        let rows = bind_all(sqlx::query(&text), &binds).fetch_all(self.reader()).await?;
        let mut items = rows.iter().map(T::decode).collect::<Result<Vec<_>>>()?;
        let limit = q.limit.clamp(1, MAX_LIMIT) as usize;
        let more = items.len() > limit;
        items.truncate(limit);
        let total = if q.count_total {
            // Every bind belongs to the WHERE clause, so the count takes the same ones.
            let count = format!("SELECT COUNT(*) AS n FROM {} WHERE {filters}", T::FROM);
            let row = bind_all(sqlx::query(&count), &binds).fetch_one(self.reader()).await?;
            Some(row.try_get::<i64, _>("n")?)
        } else {
            None
        };
        Ok(ListPage { items, more, total })
    }

    /// SQLite's plan of a listing's page query (`EXPLAIN QUERY PLAN`), for tests that check index use.
    pub async fn explain_list<T: Listed>(&self, q: &ListRequest) -> Result<Vec<String>> {
        if self.backend() != Backend::Sqlite {
            return Err(StoreError::InvalidArgument("query plans are shown for SQLite only".into()));
        }
        let (text, binds, _) = self.list_sql::<T>(q)?;
        let text = format!("EXPLAIN QUERY PLAN {text}");
        let rows = bind_all(sqlx::query(&text), &binds).fetch_all(self.reader()).await?;
        rows.iter().map(|r| Ok(r.try_get::<String, _>("detail")?)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{per_backend, TestDb};

    per_backend!(listings_filter_sort_and_page_in_sql);

    async fn listings_filter_sort_and_page_in_sql(db: &TestDb) {
        let s = &db.store;
        for i in 0..12 {
            let ns = if i % 3 == 0 { "b" } else { "a" };
            s.create_experiment(&format!("exp {i:02} {}", if i % 2 == 0 { "even" } else { "odd" }), "", ns)
                .await
                .unwrap();
        }
        // Namespace a, name contains "even", by name descending, two per page.
        let mut q = ListRequest {
            filters: vec![
                ListFilter::eq("namespace", "a"),
                ListFilter {
                    column: "display_name".into(),
                    op: CmpOp::Contains,
                    values: vec![SqlValue::Text("even".into())],
                },
            ],
            sort: Some(("display_name".into(), true)),
            limit: 2,
            count_total: true,
            ..ListRequest::default()
        };
        let mut names = Vec::new();
        loop {
            let page = s.list_page::<Experiment>(&q).await.unwrap();
            assert_eq!(page.total, Some(4));
            names.extend(page.items.iter().map(|e| e.display_name.clone()));
            if !page.more {
                break;
            }
            q.offset += 2;
        }
        assert_eq!(names, ["exp 10 even", "exp 08 even", "exp 04 even", "exp 02 even"]);
        // Unsorted: oldest first; times compare as numbers; unknown columns and wrong types are refused.
        let all = s.list_page::<Experiment>(&ListRequest { limit: 100, ..ListRequest::default() }).await.unwrap();
        assert_eq!(all.items.len(), 12);
        assert!(all.items.windows(2).all(|w| (w[0].created_at, &w[0].id) <= (w[1].created_at, &w[1].id)));
        let t = all.items[5].created_at;
        let later = ListRequest {
            filters: vec![ListFilter { column: "created_at".into(), op: CmpOp::Gt, values: vec![SqlValue::Int(t)] }],
            limit: 100,
            ..ListRequest::default()
        };
        assert!(s.list_page::<Experiment>(&later).await.unwrap().items.iter().all(|e| e.created_at > t));
        let bad = ListRequest { filters: vec![ListFilter::eq("spec", "x")], ..ListRequest::default() };
        assert!(matches!(s.list_page::<Experiment>(&bad).await, Err(StoreError::InvalidArgument(_))));
        let bad = ListRequest { filters: vec![ListFilter::eq("created_at", "x")], ..ListRequest::default() };
        assert!(matches!(s.list_page::<Experiment>(&bad).await, Err(StoreError::InvalidArgument(_))));
        // The derived columns work on both backends: `status` is KFP's word for the enabled flag.
        let enabled = ListRequest {
            filters: vec![ListFilter::eq("status", "ENABLED"), ListFilter::eq("experiment_id", "e")],
            sort: Some(("mode".into(), true)),
            limit: 10,
            count_total: true,
            ..ListRequest::default()
        };
        assert_eq!(s.list_page::<RecurringRunRecord>(&enabled).await.unwrap().total, Some(0));
        let versions =
            ListRequest { filters: vec![ListFilter::eq("pipeline_id", "p")], limit: 10, ..ListRequest::default() };
        assert!(s.list_page::<PipelineVersionRecord>(&versions).await.unwrap().items.is_empty());
        if s.backend() != Backend::Sqlite {
            assert!(s.explain_list::<Experiment>(&ListRequest::default()).await.is_err());
            return;
        }
        // A namespace's page reads the (namespace, created_at, id) index in order.
        let q = ListRequest { filters: vec![ListFilter::eq("namespace", "a")], limit: 20, ..ListRequest::default() };
        let plan = s.explain_list::<Experiment>(&q).await.unwrap();
        assert!(plan.iter().any(|l| l.contains("experiments_ns_created")), "{plan:?}");
        assert!(!plan.iter().any(|l| l.contains("TEMP B-TREE")), "{plan:?}");
        let plan = s.explain_list::<RecurringRunRecord>(&q).await.unwrap();
        assert!(plan.iter().any(|l| l.contains("recurring_runs_ns_created")), "{plan:?}");
        let plan = s.explain_list::<PipelineRecord>(&q).await.unwrap();
        assert!(plan.iter().any(|l| l.contains("pipelines_ns_created")), "{plan:?}");
        let plan = s.explain_list::<PipelineVersionRecord>(&versions).await.unwrap();
        assert!(plan.iter().any(|l| l.contains("pipeline_versions_pipeline_created")), "{plan:?}");
        let everything = ListRequest { limit: 20, ..ListRequest::default() };
        let plan = s.explain_list::<Experiment>(&everything).await.unwrap();
        assert!(plan.iter().any(|l| l.contains("experiments_created")), "{plan:?}");
        assert!(!plan.iter().any(|l| l.contains("TEMP B-TREE")), "{plan:?}");
    }
}
