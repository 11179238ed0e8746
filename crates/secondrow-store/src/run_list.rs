//! Run listing in SQL: filters, sorting and keyset paging in one query, joined with the run's experiment and
//! pipeline version for their names, so a page of runs costs one round trip whatever the store holds.
//! Used by the web UI's runs page; plus [`Store::task_state_counts`], the cheap fingerprint of a run's
//! progress that the UI's live updates poll.

use sqlx::any::AnyRow;
use sqlx::Row;

use crate::records::RunState;
use crate::{Backend, Result, Store, StoreError};

/// A run column listings may filter and sort on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunColumn {
    Id,
    DisplayName,
    Description,
    ExperimentId,
    Namespace,
    State,
    StorageState,
    CreatedAt,
    /// Unfinished runs compare as 0 (KFP's `1970-01-01T00:00:00Z` for "not yet").
    FinishedAt,
    RecurringRunId,
    PipelineId,
}

impl RunColumn {
    fn sql(self) -> &'static str {
        match self {
            RunColumn::Id => "r.id",
            RunColumn::DisplayName => "r.display_name",
            RunColumn::Description => "r.description",
            RunColumn::ExperimentId => "r.experiment_id",
            RunColumn::Namespace => "r.namespace",
            RunColumn::State => "r.state",
            RunColumn::StorageState => "r.storage_state",
            RunColumn::CreatedAt => "r.created_at",
            RunColumn::FinishedAt => "COALESCE(r.finished_at, 0)",
            RunColumn::RecurringRunId => "r.recurring_run_id",
            RunColumn::PipelineId => "r.pipeline_id",
        }
    }

    fn is_time(self) -> bool {
        matches!(self, RunColumn::CreatedAt | RunColumn::FinishedAt)
    }
}

/// A value bound into a listing query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqlValue {
    Int(i64),
    Text(String),
}

/// A comparison in a run filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    /// Any of the values.
    In,
    /// The text column contains the value (case-sensitive).
    Contains,
    /// The text column contains the value, ignoring ASCII case (the UI's name search).
    ContainsIgnoreCase,
}

/// One predicate; a listing keeps the runs matching all of its predicates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunFilter {
    pub column: RunColumn,
    pub op: CmpOp,
    pub values: Vec<SqlValue>,
}

impl RunFilter {
    pub fn eq(column: RunColumn, value: impl Into<String>) -> RunFilter {
        RunFilter { column, op: CmpOp::Eq, values: vec![SqlValue::Text(value.into())] }
    }
}

/// Sort order of a listing; ties are broken by run id in the same direction, which makes keyset paging exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunSort {
    pub column: RunColumn,
    pub descending: bool,
}

impl Default for RunSort {
    fn default() -> RunSort {
        RunSort { column: RunColumn::CreatedAt, descending: true }
    }
}

/// Where the previous page ended: the sort key and id of its last run. Opaque to clients ([`Cursor::encode`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub key: SqlValue,
    pub id: String,
}

impl Cursor {
    /// A URL-safe token (hex of `i:<n>|<id>` or `s:<text>|<id>`, the text's own `|` kept: the id never has one).
    pub fn encode(&self) -> String {
        let text = match &self.key {
            SqlValue::Int(n) => format!("i:{n}|{}", self.id),
            SqlValue::Text(s) => format!("s:{s}|{}", self.id),
        };
        hex::encode(text)
    }

    pub fn decode(token: &str) -> Result<Cursor> {
        let bad = || StoreError::InvalidArgument(format!("invalid page token `{token}`"));
        let text = String::from_utf8(hex::decode(token).map_err(|_| bad())?).map_err(|_| bad())?;
        let (key, id) = text.rsplit_once('|').ok_or_else(bad)?;
        let key = match key.split_at_checked(2) {
            Some(("i:", n)) => SqlValue::Int(n.parse().map_err(|_| bad())?),
            Some(("s:", s)) => SqlValue::Text(s.to_owned()),
            _ => return Err(bad()),
        };
        Ok(Cursor { key, id: id.to_owned() })
    }
}

/// A run listing request.
#[derive(Debug, Clone, Default)]
pub struct RunListQuery {
    pub filters: Vec<RunFilter>,
    pub sort: RunSort,
    /// Continue after this run (keyset paging).
    pub after: Option<Cursor>,
    /// Skip this many matching runs first (offset paging, for the API's offset page tokens).
    pub offset: i64,
    /// Page size (at most 1000).
    pub limit: i64,
    /// Also count every matching run (one more query; off unless asked).
    pub count_total: bool,
}

/// A listed run: the run's own columns plus the names of its experiment and pipeline version.
#[derive(Debug, Clone)]
pub struct RunListRow {
    pub id: String,
    pub display_name: String,
    pub description: String,
    pub namespace: String,
    pub experiment_id: Option<String>,
    pub experiment_name: Option<String>,
    pub pipeline_id: Option<String>,
    pub pipeline_version_id: Option<String>,
    pub pipeline_name: String,
    pub pipeline_version_name: Option<String>,
    /// The run's bound parameters (a JSON object).
    pub parameters: serde_json::Value,
    pub state: RunState,
    pub storage_state: String,
    pub error: Option<String>,
    pub recurring_run_id: Option<String>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

impl RunListRow {
    fn from_row(r: &AnyRow) -> Result<RunListRow> {
        let state: String = r.try_get("state")?;
        Ok(RunListRow {
            id: r.try_get("id")?,
            display_name: r.try_get("display_name")?,
            description: r.try_get("description")?,
            namespace: r.try_get("namespace")?,
            experiment_id: r.try_get("experiment_id")?,
            experiment_name: r.try_get("experiment_name")?,
            pipeline_id: r.try_get("pipeline_id")?,
            pipeline_version_id: r.try_get("pipeline_version_id")?,
            pipeline_name: r.try_get("pipeline_name")?,
            pipeline_version_name: r.try_get("pipeline_version_name")?,
            parameters: crate::json_col(r, "parameters")?.unwrap_or(serde_json::Value::Null),
            state: state.parse().map_err(|e: crate::UnknownName| StoreError::Corrupt(e.to_string()))?,
            storage_state: r.try_get("storage_state")?,
            error: r.try_get("error")?,
            recurring_run_id: r.try_get("recurring_run_id")?,
            created_at: r.try_get("created_at")?,
            started_at: r.try_get("started_at")?,
            finished_at: r.try_get("finished_at")?,
        })
    }

    /// This row's value of a sort column (for the next page's cursor).
    pub fn key(&self, column: RunColumn) -> SqlValue {
        let text = |s: &str| SqlValue::Text(s.to_owned());
        let opt = |s: &Option<String>| SqlValue::Text(s.clone().unwrap_or_default());
        match column {
            RunColumn::Id => text(&self.id),
            RunColumn::DisplayName => text(&self.display_name),
            RunColumn::Description => text(&self.description),
            RunColumn::ExperimentId => opt(&self.experiment_id),
            RunColumn::Namespace => text(&self.namespace),
            RunColumn::State => text(self.state.as_str()),
            RunColumn::StorageState => text(&self.storage_state),
            RunColumn::CreatedAt => SqlValue::Int(self.created_at),
            RunColumn::FinishedAt => SqlValue::Int(self.finished_at.unwrap_or(0)),
            RunColumn::RecurringRunId => opt(&self.recurring_run_id),
            RunColumn::PipelineId => opt(&self.pipeline_id),
        }
    }
}

/// A page of runs.
#[derive(Debug, Clone)]
pub struct RunListPage {
    pub runs: Vec<RunListRow>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<Cursor>,
    /// Every matching run, when asked for.
    pub total: Option<i64>,
}

const MAX_LIMIT: i64 = 1000;

/// Nullable text columns compare through `COALESCE(…, '')`, so that a keyset cursor and `<>` see `''`.
fn column_expr(c: RunColumn) -> String {
    match c {
        RunColumn::ExperimentId | RunColumn::RecurringRunId | RunColumn::PipelineId => {
            format!("COALESCE({}, '')", c.sql())
        }
        other => other.sql().to_owned(),
    }
}

struct Sql {
    text: String,
    binds: Vec<SqlValue>,
}

impl Sql {
    fn bind(&mut self, v: SqlValue) -> String {
        self.binds.push(v);
        format!("${}", self.binds.len())
    }
}

fn check_value(column: RunColumn, v: &SqlValue) -> Result<()> {
    match (column.is_time(), v) {
        (true, SqlValue::Int(_)) | (false, SqlValue::Text(_)) => Ok(()),
        (true, _) => Err(StoreError::InvalidArgument(format!("{column:?} compares with a time (epoch ms)"))),
        (false, _) => Err(StoreError::InvalidArgument(format!("{column:?} compares with text"))),
    }
}

/// The `WHERE` clause of a listing's filters (without the keyset condition).
fn where_clause(sql: &mut Sql, filters: &[RunFilter], backend: Backend) -> Result<String> {
    let mut parts = vec!["1 = 1".to_owned()];
    for f in filters {
        for v in &f.values {
            check_value(f.column, v)?;
        }
        let col = column_expr(f.column);
        let first = || {
            f.values
                .first()
                .cloned()
                .ok_or_else(|| StoreError::InvalidArgument(format!("filter on {:?} has no value", f.column)))
        };
        let part = match f.op {
            // Equal to a non-empty text, a nullable column needs no COALESCE: then its indexes apply.
            CmpOp::Eq if matches!(f.values.first(), Some(SqlValue::Text(t)) if !t.is_empty()) => {
                format!("{} = {}", f.column.sql(), sql.bind(first()?))
            }
            CmpOp::Eq => format!("{col} = {}", sql.bind(first()?)),
            CmpOp::Ne => format!("{col} <> {}", sql.bind(first()?)),
            CmpOp::Gt => format!("{col} > {}", sql.bind(first()?)),
            CmpOp::Ge => format!("{col} >= {}", sql.bind(first()?)),
            CmpOp::Lt => format!("{col} < {}", sql.bind(first()?)),
            CmpOp::Le => format!("{col} <= {}", sql.bind(first()?)),
            CmpOp::In if f.values.is_empty() => "1 = 0".to_owned(),
            CmpOp::In => {
                let marks: Vec<String> = f.values.iter().map(|v| sql.bind(v.clone())).collect();
                format!("{col} IN ({})", marks.join(", "))
            }
            CmpOp::Contains | CmpOp::ContainsIgnoreCase => {
                if f.column.is_time() {
                    return Err(StoreError::InvalidArgument(format!("{:?} is not text", f.column)));
                }
                let (c, v) = if f.op == CmpOp::ContainsIgnoreCase {
                    (format!("LOWER({col})"), format!("LOWER({})", sql.bind(first()?)))
                } else {
                    (col, sql.bind(first()?))
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

impl Store {
    /// The page query of a listing: its text, its binds, and the `WHERE` clause's text and binds (for the count).
    fn run_page_sql(&self, q: &RunListQuery) -> Result<(Sql, String, Vec<SqlValue>)> {
        let limit = q.limit.clamp(1, MAX_LIMIT);
        let mut sql = Sql { text: String::new(), binds: Vec::new() };
        let filters = where_clause(&mut sql, &q.filters, self.backend())?;
        let count_binds = sql.binds.clone();
        let key = column_expr(q.sort.column);
        let (cmp, cmp_eq, dir) = if q.sort.descending { ("<", "<=", "DESC") } else { (">", ">=", "ASC") };
        let mut keyset = String::new();
        if let Some(c) = &q.after {
            check_value(q.sort.column, &c.key)?;
            let k = sql.bind(c.key.clone());
            let id = sql.bind(SqlValue::Text(c.id.clone()));
            // `key <= k AND (key < k OR id < id0)`: the first term is an index range, so the scan starts at
            // the cursor in index order instead of sorting every earlier row.
            keyset = format!(" AND {key} {cmp_eq} {k} AND ({key} {cmp} {k} OR r.id {cmp} {id})");
        }
        sql.text = format!(
            "SELECT r.id, r.display_name, r.description, r.namespace, r.experiment_id, e.display_name AS experiment_name,
                    r.pipeline_id, r.pipeline_version_id, r.pipeline_name, v.display_name AS pipeline_version_name, r.parameters,
                    r.state, r.storage_state, r.error, r.recurring_run_id, r.created_at, r.started_at, r.finished_at
             FROM runs r
             LEFT JOIN experiments e ON e.id = r.experiment_id
             LEFT JOIN pipeline_versions v ON v.id = r.pipeline_version_id
             WHERE {filters}{keyset}
             ORDER BY {key} {dir}, r.id {dir}
             LIMIT {} OFFSET {}",
            limit + 1,
            q.offset.max(0)
        );
        Ok((sql, filters, count_binds))
    }

    /// SQLite's query plan of a listing's page query (`EXPLAIN QUERY PLAN`, one line per step): what tests and
    /// the benchmark check to see that a filtered sort reads an index in order instead of sorting.
    pub async fn explain_run_page(&self, q: &RunListQuery) -> Result<Vec<String>> {
        if self.backend() != Backend::Sqlite {
            return Err(StoreError::InvalidArgument("query plans are shown for SQLite only".into()));
        }
        let (sql, _, _) = self.run_page_sql(q)?;
        let text = format!("EXPLAIN QUERY PLAN {}", sql.text);
        let mut query = sqlx::query(&text);
        for b in &sql.binds {
            query = match b {
                SqlValue::Int(n) => query.bind(*n),
                SqlValue::Text(s) => query.bind(s.as_str()),
            };
        }
        let rows = query.fetch_all(self.reader()).await?;
        rows.iter().map(|r| Ok(r.try_get::<String, _>("detail")?)).collect()
    }

    /// One page of runs, filtered, sorted and paged in SQL (one query; a second one only for `count_total`).
    pub async fn list_run_page(&self, q: &RunListQuery) -> Result<RunListPage> {
        let limit = q.limit.clamp(1, MAX_LIMIT);
        let (sql, filters, count_binds) = self.run_page_sql(q)?;
        let mut query = sqlx::query(&sql.text);
        for b in &sql.binds {
            query = match b {
                SqlValue::Int(n) => query.bind(*n),
                SqlValue::Text(s) => query.bind(s.as_str()),
            };
        }
        let rows = query.fetch_all(self.reader()).await?;
        let mut runs = rows.iter().map(RunListRow::from_row).collect::<Result<Vec<_>>>()?;
        let more = runs.len() as i64 > limit;
        runs.truncate(limit as usize);
        let next = match (more, runs.last()) {
            (true, Some(last)) => Some(Cursor { key: last.key(q.sort.column), id: last.id.clone() }),
            _ => None,
        };
        let total = if q.count_total {
            let text = format!("SELECT COUNT(*) AS n FROM runs r WHERE {filters}");
            let mut query = sqlx::query(&text);
            for b in &count_binds {
                query = match b {
                    SqlValue::Int(n) => query.bind(*n),
                    SqlValue::Text(s) => query.bind(s.as_str()),
                };
            }
            Some(query.fetch_one(self.reader()).await?.try_get::<i64, _>("n")?)
        } else {
            None
        };
        Ok(RunListPage { runs, next, total })
    }

    /// Only a run's state (what live views poll; [`Store::get_run`] also reads the spec).
    pub async fn run_state(&self, run_id: &str) -> Result<RunState> {
        let row =
            sqlx::query("SELECT state FROM runs WHERE id = $1").bind(run_id).fetch_optional(self.reader()).await?;
        let Some(row) = row else { return Err(StoreError::NotFound { kind: "run", id: run_id.to_owned() }) };
        row.try_get::<String, _>("state")?.parse().map_err(|e: crate::UnknownName| StoreError::Corrupt(e.to_string()))
    }

    /// Only one task's state, by its path in the run (what a live log stream polls); `None` if no such task.
    pub async fn task_state(&self, run_id: &str, path: &str) -> Result<Option<crate::TaskState>> {
        let row = sqlx::query("SELECT state FROM tasks WHERE run_id = $1 AND path = $2")
            .bind(run_id)
            .bind(path)
            .fetch_optional(self.reader())
            .await?;
        row.map(|r| {
            r.try_get::<String, _>("state")?.parse().map_err(|e: crate::UnknownName| StoreError::Corrupt(e.to_string()))
        })
        .transpose()
    }

    /// A run's tasks counted by state, in one grouped query: the fingerprint live views poll to notice progress.
    pub async fn task_state_counts(&self, run_id: &str) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query(
            "SELECT state, COUNT(*) AS n, COALESCE(SUM(attempts), 0) AS a FROM tasks WHERE run_id = $1
             GROUP BY state ORDER BY state",
        )
        .bind(run_id)
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| {
                Ok((r.try_get::<String, _>("state")?, r.try_get::<i64, _>("n")? * 1000 + r.try_get::<i64, _>("a")?))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::NewRun;

    async fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("db.sqlite").display());
        (dir, Store::open(&url).await.unwrap())
    }

    async fn seed(s: &Store, n: usize) -> Vec<String> {
        let e1 = s.ensure_experiment("exp-one", "a").await.unwrap();
        let e2 = s.ensure_experiment("exp-two", "b").await.unwrap();
        let mut ids = Vec::new();
        for i in 0..n {
            let (exp, ns) = if i % 3 == 0 { (&e2, "b") } else { (&e1, "a") };
            let run = s
                .create_run(&NewRun {
                    display_name: format!("run {i:02} {}", if i % 2 == 0 { "Even" } else { "odd" }),
                    namespace: ns.into(),
                    experiment_id: Some(exp.id.clone()),
                    pipeline_name: "p".into(),
                    spec: json!({}),
                    options: json!({}),
                    ..NewRun::default()
                })
                .await
                .unwrap();
            if i % 4 == 0 {
                s.set_run_state(&run.id, RunState::Succeeded, None).await.unwrap();
            }
            ids.push(run.id);
        }
        ids
    }

    #[tokio::test]
    async fn keyset_pages_cover_every_run_once_in_order() {
        let (_d, s) = store().await;
        let ids = seed(&s, 23).await;
        for sort in [
            RunSort { column: RunColumn::CreatedAt, descending: true },
            RunSort { column: RunColumn::DisplayName, descending: false },
            RunSort { column: RunColumn::State, descending: true },
            RunSort { column: RunColumn::FinishedAt, descending: false },
        ] {
            let mut seen = Vec::new();
            let mut q = RunListQuery { sort, limit: 5, ..RunListQuery::default() };
            loop {
                let page = s.list_run_page(&q).await.unwrap();
                assert!(page.runs.len() <= 5);
                seen.extend(page.runs.iter().map(|r| (r.key(sort.column), r.id.clone())));
                match page.next {
                    Some(c) => q.after = Some(Cursor::decode(&c.encode()).unwrap()),
                    None => break,
                }
            }
            assert_eq!(seen.len(), ids.len(), "{sort:?}");
            let mut sorted = seen.clone();
            sorted.sort_by(|a, b| {
                let o = match (&a.0, &b.0) {
                    (SqlValue::Int(x), SqlValue::Int(y)) => x.cmp(y),
                    (SqlValue::Text(x), SqlValue::Text(y)) => x.cmp(y),
                    _ => unreachable!(),
                }
                .then_with(|| a.1.cmp(&b.1));
                if sort.descending {
                    o.reverse()
                } else {
                    o
                }
            });
            assert_eq!(seen, sorted, "{sort:?}");
        }
    }

    #[tokio::test]
    async fn filters_join_names_and_count() {
        let (_d, s) = store().await;
        seed(&s, 12).await;
        let q = RunListQuery {
            filters: vec![
                RunFilter::eq(RunColumn::Namespace, "a"),
                RunFilter {
                    column: RunColumn::DisplayName,
                    op: CmpOp::ContainsIgnoreCase,
                    values: vec![SqlValue::Text("EVEN".into())],
                },
            ],
            limit: 100,
            count_total: true,
            ..RunListQuery::default()
        };
        let page = s.list_run_page(&q).await.unwrap();
        // i in 0..12, namespace a (i % 3 != 0) and even: 2, 4, 8, 10.
        assert_eq!(page.runs.len(), 4);
        assert_eq!(page.total, Some(4));
        assert!(page.runs.iter().all(|r| r.experiment_name.as_deref() == Some("exp-one")));
        let q = RunListQuery {
            filters: vec![RunFilter {
                column: RunColumn::State,
                op: CmpOp::In,
                values: vec![SqlValue::Text("SUCCEEDED".into())],
            }],
            limit: 100,
            ..RunListQuery::default()
        };
        let page = s.list_run_page(&q).await.unwrap();
        assert_eq!(page.runs.len(), 3);
        assert!(page.runs.iter().all(|r| r.state == RunState::Succeeded && r.finished_at.is_some()));
        assert_eq!(page.total, None);
        // Case-sensitive contains; a time column refuses text.
        let q = RunListQuery {
            filters: vec![RunFilter {
                column: RunColumn::DisplayName,
                op: CmpOp::Contains,
                values: vec![SqlValue::Text("EVEN".into())],
            }],
            limit: 10,
            ..RunListQuery::default()
        };
        assert!(s.list_run_page(&q).await.unwrap().runs.is_empty());
        let bad = RunListQuery { filters: vec![RunFilter::eq(RunColumn::CreatedAt, "x")], ..RunListQuery::default() };
        assert!(matches!(s.list_run_page(&bad).await, Err(StoreError::InvalidArgument(_))));
        let first = s.list_run_page(&RunListQuery { limit: 1, ..RunListQuery::default() }).await.unwrap();
        assert_eq!(s.run_state(&first.runs[0].id).await.unwrap(), first.runs[0].state);
        assert!(matches!(s.run_state("nope").await, Err(StoreError::NotFound { .. })));
        assert!(Cursor::decode("zz").is_err() && Cursor::decode(&hex::encode("q:1|x")).is_err());
    }

    #[tokio::test]
    async fn filtered_sorts_read_an_index_in_order() {
        let (_d, s) = store().await;
        let ids = seed(&s, 30).await;
        let eq = |c: RunColumn, v: &str| RunFilter::eq(c, v);
        let exp = s.ensure_experiment("exp-one", "a").await.unwrap().id;
        let newest = RunSort { column: RunColumn::CreatedAt, descending: true };
        let cursor = Some(Cursor { key: SqlValue::Int(i64::MAX), id: ids[0].clone() });
        let cases: Vec<(Vec<RunFilter>, RunSort, Option<Cursor>)> = vec![
            // The UI's runs page: anonymous or admin, a namespace token, a state filter, an experiment.
            (vec![eq(RunColumn::StorageState, "AVAILABLE")], newest, None),
            (vec![eq(RunColumn::Namespace, "a"), eq(RunColumn::StorageState, "AVAILABLE")], newest, cursor.clone()),
            (
                vec![
                    eq(RunColumn::Namespace, "a"),
                    eq(RunColumn::StorageState, "AVAILABLE"),
                    eq(RunColumn::State, "SUCCEEDED"),
                ],
                newest,
                None,
            ),
            (vec![eq(RunColumn::StorageState, "ARCHIVED"), eq(RunColumn::State, "FAILED")], newest, cursor),
            (vec![eq(RunColumn::ExperimentId, &exp), eq(RunColumn::StorageState, "AVAILABLE")], newest, None),
            (
                vec![eq(RunColumn::StorageState, "AVAILABLE")],
                RunSort { column: RunColumn::DisplayName, descending: false },
                None,
            ),
            // The API's list_runs: everything (newest or oldest first), a namespace, or an experiment.
            (Vec::new(), newest, None),
            (Vec::new(), RunSort { column: RunColumn::CreatedAt, descending: false }, None),
            (vec![eq(RunColumn::Namespace, "a")], RunSort { column: RunColumn::CreatedAt, descending: false }, None),
            (
                vec![eq(RunColumn::ExperimentId, &exp)],
                RunSort { column: RunColumn::CreatedAt, descending: false },
                None,
            ),
        ];
        for (filters, sort, after) in cases {
            let q = RunListQuery { filters: filters.clone(), sort, after, limit: 20, ..RunListQuery::default() };
            let plan = s.explain_run_page(&q).await.unwrap();
            let runs = plan.iter().find(|l| l.contains(" r ")).unwrap_or_else(|| panic!("{plan:?}"));
            assert!(
                runs.contains("USING INDEX runs_") || runs.contains("USING COVERING INDEX runs_"),
                "{filters:?}: {plan:?}"
            );
            assert!(!plan.iter().any(|l| l.contains("TEMP B-TREE")), "{filters:?} sorts: {plan:?}");
            // The same query runs.
            s.list_run_page(&q).await.unwrap();
        }
    }
}
