//! The prediction log: sampled requests of a deployed model version and their predictions, as Parquet
//! files (one per flushed batch) in a folder per deployment version.
//!
//! A file has one row per request row: `_request_id` (string), `_time_ms` (int64, Unix epoch ms),
//! `_row` (int64, the row within its request), one column per input feature (float64 for numbers,
//! string for text; null is a missing value) and `_prediction` (float64 or string). Files are written
//! to a temporary name and renamed, so a reader never sees half a file. Names start with the
//! zero-padded time of the batch, so name order is time order.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;

use crate::error::{MonitorError, Result};

pub const REQUEST_ID: &str = "_request_id";
pub const TIME_MS: &str = "_time_ms";
pub const ROW: &str = "_row";
pub const PREDICTION: &str = "_prediction";

/// A column's values; `None` is a missing value.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    Number(Vec<Option<f64>>),
    Text(Vec<Option<String>>),
}

impl Values {
    pub fn len(&self) -> usize {
        match self {
            Values::Number(v) => v.len(),
            Values::Text(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn data_type(&self) -> DataType {
        match self {
            Values::Number(_) => DataType::Float64,
            Values::Text(_) => DataType::Utf8,
        }
    }

    fn same_type(&self, other: &Values) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(other)
    }

    fn extend(&mut self, other: &Values) {
        match (self, other) {
            (Values::Number(a), Values::Number(b)) => a.extend_from_slice(b),
            (Values::Text(a), Values::Text(b)) => a.extend_from_slice(b),
            _ => {}
        }
    }

    fn tail(&mut self, n: usize) {
        let len = self.len();
        if len > n {
            match self {
                Values::Number(v) => {
                    v.drain(..len - n);
                }
                Values::Text(v) => {
                    v.drain(..len - n);
                }
            }
        }
    }

    fn array(&self) -> ArrayRef {
        match self {
            Values::Number(v) => Arc::new(Float64Array::from(v.clone())),
            Values::Text(v) => Arc::new(StringArray::from(v.clone())),
        }
    }

    fn from_array(name: &str, array: &dyn Array) -> Result<Values> {
        if let Some(a) = array.as_any().downcast_ref::<Float64Array>() {
            return Ok(Values::Number(a.iter().collect()));
        }
        if let Some(a) = array.as_any().downcast_ref::<StringArray>() {
            return Ok(Values::Text(a.iter().map(|s| s.map(str::to_owned)).collect()));
        }
        Err(MonitorError::Batch(format!("column `{name}` is {}, not float64 or string", array.data_type())))
    }
}

/// A named column.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    pub values: Values,
}

/// One logged request: `len` rows of features and their predictions.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedRequest {
    pub id: String,
    pub time_ms: i64,
    pub len: usize,
    pub features: Vec<Column>,
    pub prediction: Option<Values>,
}

/// Rows read back from the log: the newest ones, oldest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Window {
    pub request_ids: Vec<String>,
    pub time_ms: Vec<i64>,
    /// Each row's position in its request.
    pub rows: Vec<i64>,
    pub features: Vec<Column>,
    pub prediction: Option<Values>,
}

impl Window {
    pub fn len(&self) -> usize {
        self.request_ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.request_ids.is_empty()
    }

    pub fn feature(&self, name: &str) -> Option<&Values> {
        self.features.iter().find(|c| c.name == name).map(|c| &c.values)
    }
}

/// Writes `requests` as one Parquet file in `dir` (created when missing), named for `time_ms` and `seq`.
/// The first request's columns set the file's layout; a request with another layout is left out (a model
/// version's layout does not change). Returns the file and the rows written (`None`: nothing to write).
pub fn write_batch(dir: &Path, time_ms: i64, seq: u64, requests: &[LoggedRequest]) -> Result<Option<(PathBuf, usize)>> {
    let Some(first) = requests.first() else { return Ok(None) };
    let fits = |r: &LoggedRequest| {
        r.features.len() == first.features.len()
            && r.features.iter().zip(&first.features).all(|(a, b)| a.name == b.name && a.values.same_type(&b.values))
            && r.features.iter().all(|c| c.values.len() == r.len)
            && match (&r.prediction, &first.prediction) {
                (Some(a), Some(b)) => a.same_type(b) && a.len() == r.len,
                (None, None) => true,
                _ => false,
            }
    };
    let kept: Vec<&LoggedRequest> = requests.iter().filter(|r| fits(r)).collect();
    let rows: usize = kept.iter().map(|r| r.len).sum();
    if rows == 0 {
        return Ok(None);
    }
    let mut ids = Vec::with_capacity(rows);
    let mut times = Vec::with_capacity(rows);
    let mut row_numbers = Vec::with_capacity(rows);
    for r in &kept {
        for i in 0..r.len {
            ids.push(r.id.clone());
            times.push(r.time_ms);
            row_numbers.push(i as i64);
        }
    }
    let mut fields = vec![
        Field::new(REQUEST_ID, DataType::Utf8, false),
        Field::new(TIME_MS, DataType::Int64, false),
        Field::new(ROW, DataType::Int64, false),
    ];
    let mut arrays: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(ids)),
        Arc::new(Int64Array::from(times)),
        Arc::new(Int64Array::from(row_numbers)),
    ];
    for (j, column) in first.features.iter().enumerate() {
        let mut values = missing_like(&column.values, 0);
        for r in &kept {
            values.extend(&r.features[j].values);
        }
        fields.push(Field::new(&column.name, values.data_type(), true));
        arrays.push(values.array());
    }
    if let Some(first_prediction) = &first.prediction {
        let mut values = missing_like(first_prediction, 0);
        for r in &kept {
            if let Some(p) = &r.prediction {
                values.extend(p);
            }
        }
        fields.push(Field::new(PREDICTION, values.data_type(), true));
        arrays.push(values.array());
    }
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
        .map_err(|e| MonitorError::Batch(format!("building the batch: {e}")))?;
    std::fs::create_dir_all(dir).map_err(|e| log_error(dir, e))?;
    let path = dir.join(format!("{time_ms:015}-{seq:06}.parquet"));
    let temporary = dir.join(format!(".{time_ms:015}-{seq:06}.parquet.tmp"));
    let write = || -> std::result::Result<(), String> {
        let file = File::create(&temporary).map_err(|e| e.to_string())?;
        let mut writer = ArrowWriter::try_new(file, batch.schema(), None).map_err(|e| e.to_string())?;
        writer.write(&batch).map_err(|e| e.to_string())?;
        writer.close().map_err(|e| e.to_string())?;
        std::fs::rename(&temporary, &path).map_err(|e| e.to_string())
    };
    write().map_err(|message| {
        let _ = std::fs::remove_file(&temporary);
        MonitorError::Log { path: path.display().to_string(), message }
    })?;
    Ok(Some((path, rows)))
}

/// The log files of `dir`, oldest first (none when the folder does not exist).
pub fn files(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(log_error(dir, e)),
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|x| x == "parquet")
                && p.file_name().and_then(|n| n.to_str()).is_some_and(|n| !n.starts_with('.'))
        })
        .collect();
    files.sort();
    Ok(files)
}

/// Reads the newest `max_rows` rows of the log in `dir` (all of them when `None`), oldest first.
pub fn read_window(dir: &Path, max_rows: Option<usize>) -> Result<Window> {
    let all = files(dir)?;
    // Read the newest files back until enough rows are found, then put them in time order.
    let mut parts = Vec::new();
    let mut total = 0;
    for path in all.iter().rev() {
        let part = read_file(path)?;
        total += part.len();
        parts.push(part);
        if max_rows.is_some_and(|m| total >= m) {
            break;
        }
    }
    let mut window = Window::default();
    for part in parts.into_iter().rev() {
        append(&mut window, part);
    }
    if let Some(m) = max_rows {
        let len = window.len();
        if len > m {
            window.request_ids.drain(..len - m);
            window.time_ms.drain(..len - m);
            window.rows.drain(..len - m);
            for c in &mut window.features {
                c.values.tail(m);
            }
            if let Some(p) = &mut window.prediction {
                p.tail(m);
            }
        }
    }
    Ok(window)
}

fn append(window: &mut Window, part: Window) {
    if window.is_empty() && window.features.is_empty() {
        *window = part;
        return;
    }
    let before = window.len();
    window.request_ids.extend(part.request_ids);
    window.time_ms.extend(part.time_ms);
    window.rows.extend(part.rows);
    let added = window.len() - before;
    for column in &mut window.features {
        match part.features.iter().find(|c| c.name == column.name && c.values.same_type(&column.values)) {
            Some(other) => column.values.extend(&other.values),
            None => column.values.extend(&missing_like(&column.values, added)),
        }
    }
    match (&mut window.prediction, &part.prediction) {
        (Some(p), Some(q)) if p.same_type(q) => p.extend(q),
        (Some(p), _) => {
            let filler = missing_like(p, added);
            p.extend(&filler);
        }
        _ => {}
    }
}

fn missing_like(values: &Values, n: usize) -> Values {
    match values {
        Values::Number(_) => Values::Number(vec![None; n]),
        Values::Text(_) => Values::Text(vec![None; n]),
    }
}

/// Reads one log file.
pub fn read_file(path: &Path) -> Result<Window> {
    let fail = |message: String| MonitorError::Log { path: path.display().to_string(), message };
    let file = File::open(path).map_err(|e| fail(e.to_string()))?;
    let reader =
        ParquetRecordBatchReaderBuilder::try_new(file).and_then(|b| b.build()).map_err(|e| fail(e.to_string()))?;
    let mut window = Window::default();
    for batch in reader {
        let batch = batch.map_err(|e| fail(e.to_string()))?;
        let mut part = Window::default();
        for (field, array) in batch.schema().fields().iter().zip(batch.columns()) {
            let name = field.name().as_str();
            match name {
                REQUEST_ID => {
                    let a = array
                        .as_any()
                        .downcast_ref::<StringArray>()
                        .ok_or_else(|| fail(format!("`{REQUEST_ID}` is not a string column")))?;
                    part.request_ids = a.iter().map(|s| s.unwrap_or_default().to_owned()).collect();
                }
                TIME_MS => {
                    let a = array
                        .as_any()
                        .downcast_ref::<Int64Array>()
                        .ok_or_else(|| fail(format!("`{TIME_MS}` is not an int64 column")))?;
                    part.time_ms = a.iter().map(Option::unwrap_or_default).collect();
                }
                ROW => {
                    let a = array
                        .as_any()
                        .downcast_ref::<Int64Array>()
                        .ok_or_else(|| fail(format!("`{ROW}` is not an int64 column")))?;
                    part.rows = a.iter().map(Option::unwrap_or_default).collect();
                }
                PREDICTION => part.prediction = Some(Values::from_array(name, array.as_ref())?),
                _ => part
                    .features
                    .push(Column { name: name.to_owned(), values: Values::from_array(name, array.as_ref())? }),
            }
        }
        let n = batch.num_rows();
        if part.request_ids.len() != n || part.time_ms.len() != n || part.rows.len() != n {
            return Err(fail(format!("missing `{REQUEST_ID}`, `{TIME_MS}` or `{ROW}`")));
        }
        append(&mut window, part);
    }
    Ok(window)
}

fn log_error(path: &Path, e: std::io::Error) -> MonitorError {
    MonitorError::Log { path: path.display().to_string(), message: e.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(id: &str, time_ms: i64, xs: &[Option<f64>], colors: &[Option<&str>], labels: &[&str]) -> LoggedRequest {
        LoggedRequest {
            id: id.to_owned(),
            time_ms,
            len: xs.len(),
            features: vec![
                Column { name: "x".into(), values: Values::Number(xs.to_vec()) },
                Column {
                    name: "color".into(),
                    values: Values::Text(colors.iter().map(|c| c.map(str::to_owned)).collect()),
                },
            ],
            prediction: Some(Values::Text(labels.iter().map(|l| Some((*l).to_owned())).collect())),
        }
    }

    #[test]
    fn batches_round_trip_and_the_window_keeps_the_newest_rows() {
        let dir = tempfile::tempdir().unwrap();
        let first = [
            request("a", 10, &[Some(1.0), None], &[Some("red"), None], &["yes", "no"]),
            request("b", 11, &[Some(3.0)], &[Some("blue")], &["no"]),
        ];
        let (path, rows) = write_batch(dir.path(), 10, 0, &first).unwrap().unwrap();
        assert_eq!(rows, 3);
        assert!(path.file_name().unwrap().to_str().unwrap().starts_with("000000000000010-"));
        write_batch(dir.path(), 20, 1, &[request("c", 20, &[Some(5.0)], &[Some("green")], &["yes"])]).unwrap();

        let all = read_window(dir.path(), None).unwrap();
        assert_eq!(all.request_ids, ["a", "a", "b", "c"]);
        assert_eq!(all.time_ms, [10, 10, 11, 20]);
        assert_eq!(all.rows, [0, 1, 0, 0]);
        assert_eq!(all.feature("x"), Some(&Values::Number(vec![Some(1.0), None, Some(3.0), Some(5.0)])));
        assert_eq!(
            all.feature("color"),
            Some(&Values::Text(vec![Some("red".into()), None, Some("blue".into()), Some("green".into())]))
        );
        assert_eq!(
            all.prediction,
            Some(Values::Text(["yes", "no", "no", "yes"].iter().map(|s| Some((*s).to_owned())).collect()))
        );

        let newest = read_window(dir.path(), Some(2)).unwrap();
        assert_eq!(newest.request_ids, ["b", "c"]);
        assert_eq!(newest.feature("x"), Some(&Values::Number(vec![Some(3.0), Some(5.0)])));
    }

    #[test]
    fn a_request_of_another_layout_is_left_out_and_an_absent_folder_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let mut odd = request("b", 11, &[Some(3.0)], &[Some("blue")], &["no"]);
        odd.features.pop();
        let (_, rows) =
            write_batch(dir.path(), 1, 0, &[request("a", 10, &[Some(1.0)], &[None], &["yes"]), odd]).unwrap().unwrap();
        assert_eq!(rows, 1);
        assert!(read_window(&dir.path().join("nothing"), Some(10)).unwrap().is_empty());
        assert!(write_batch(dir.path(), 2, 0, &[]).unwrap().is_none());
    }
}
