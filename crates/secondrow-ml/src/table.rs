//! In-memory tables: reading CSV and Parquet through Arrow, writing them back, and turning columns into
//! the numeric matrices that estimators consume.
//!
//! A [`Table`] has two column kinds only: numbers (`f64`, `NaN` = missing) and text (`None` = missing).
//! Arrow's integer, float and boolean types become numbers; everything else becomes text.
//! This module owns file formats; it knows nothing about statistics or models.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek};
use std::path::Path;
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};

use crate::error::{Error, Result};

/// A named column.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    pub values: ColumnValues,
}

/// The values of a column.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnValues {
    /// Numbers; `NaN` marks a missing cell.
    Number(Vec<f64>),
    /// Text; `None` marks a missing (empty) cell.
    Text(Vec<Option<String>>),
}

/// A table of equally long columns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table {
    pub columns: Vec<Column>,
}

/// On-disk table formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableFormat {
    Csv,
    Parquet,
}

impl TableFormat {
    pub fn parse(text: &str) -> Result<TableFormat> {
        match text.to_ascii_lowercase().as_str() {
            "csv" => Ok(TableFormat::Csv),
            "parquet" => Ok(TableFormat::Parquet),
            other => Err(Error::arg("format", format!("expected `csv` or `parquet`, got `{other}`"))),
        }
    }
}

/// A dense row-major matrix of features.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Matrix {
    pub n_rows: usize,
    pub n_cols: usize,
    pub data: Vec<f64>,
}

impl Matrix {
    pub fn new(n_rows: usize, n_cols: usize, data: Vec<f64>) -> Matrix {
        debug_assert_eq!(data.len(), n_rows * n_cols);
        Matrix { n_rows, n_cols, data }
    }

    pub fn from_rows(rows: &[Vec<f64>]) -> Matrix {
        let n_cols = rows.first().map_or(0, Vec::len);
        let data = rows.iter().flat_map(|r| r.iter().copied()).collect();
        Matrix { n_rows: rows.len(), n_cols, data }
    }

    pub fn row(&self, i: usize) -> &[f64] {
        &self.data[i * self.n_cols..(i + 1) * self.n_cols]
    }

    /// Column `j` as a vector.
    pub fn column(&self, j: usize) -> Vec<f64> {
        (0..self.n_rows).map(|i| self.data[i * self.n_cols + j]).collect()
    }

    pub fn select_rows(&self, rows: &[usize]) -> Matrix {
        let mut data = Vec::with_capacity(rows.len() * self.n_cols);
        for &i in rows {
            data.extend_from_slice(self.row(i));
        }
        Matrix::new(rows.len(), self.n_cols, data)
    }
}

impl Column {
    pub fn number(name: &str, values: Vec<f64>) -> Column {
        Column { name: name.to_string(), values: ColumnValues::Number(values) }
    }

    pub fn text(name: &str, values: Vec<Option<String>>) -> Column {
        Column { name: name.to_string(), values: ColumnValues::Text(values) }
    }

    pub fn len(&self) -> usize {
        match &self.values {
            ColumnValues::Number(v) => v.len(),
            ColumnValues::Text(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn is_number(&self) -> bool {
        matches!(self.values, ColumnValues::Number(_))
    }

    pub fn is_missing(&self, row: usize) -> bool {
        match &self.values {
            ColumnValues::Number(v) => v[row].is_nan(),
            ColumnValues::Text(v) => v[row].is_none(),
        }
    }

    pub fn n_missing(&self) -> usize {
        (0..self.len()).filter(|&i| self.is_missing(i)).count()
    }

    /// The cell as text (`None` when missing); numbers use [`format_number`].
    pub fn cell_text(&self, row: usize) -> Option<String> {
        match &self.values {
            ColumnValues::Number(v) => (!v[row].is_nan()).then(|| format_number(v[row])),
            ColumnValues::Text(v) => v[row].clone(),
        }
    }

    /// Calls `f(row, text)` for every cell, with the text [`Column::cell_text`] gives (`None` when
    /// missing), without allocating for text columns.
    pub fn for_each_text(&self, mut f: impl FnMut(usize, Option<&str>)) {
        match &self.values {
            ColumnValues::Number(v) => {
                for (row, x) in v.iter().enumerate() {
                    f(row, (!x.is_nan()).then(|| format_number(*x)).as_deref());
                }
            }
            ColumnValues::Text(v) => {
                for (row, x) in v.iter().enumerate() {
                    f(row, x.as_deref());
                }
            }
        }
    }

    /// How often each distinct present cell occurs, keyed by its [`Column::cell_text`] form.
    pub fn text_counts(&self) -> HashMap<String, usize> {
        match &self.values {
            ColumnValues::Number(v) => {
                // Count bit patterns first, then merge the ones that print alike (0 and -0).
                let mut bits: HashMap<u64, usize> = HashMap::new();
                for x in v.iter().filter(|x| !x.is_nan()) {
                    *bits.entry(x.to_bits()).or_default() += 1;
                }
                let mut counts = HashMap::with_capacity(bits.len());
                for (b, n) in bits {
                    *counts.entry(format_number(f64::from_bits(b))).or_default() += n;
                }
                counts
            }
            ColumnValues::Text(v) => {
                let mut borrowed = TextMap::new();
                for x in v.iter().flatten() {
                    *borrowed.get_or_insert(x, 0) += 1;
                }
                borrowed.into_iter().map(|(k, n)| (k.to_string(), n)).collect()
            }
        }
    }

    /// The values as numbers; text cells must parse as numbers (empty cells become `NaN`).
    pub fn to_numbers(&self) -> Result<Vec<f64>> {
        match &self.values {
            ColumnValues::Number(v) => Ok(v.clone()),
            ColumnValues::Text(v) => v
                .iter()
                .enumerate()
                .map(|(row, cell)| match cell {
                    None => Ok(f64::NAN),
                    Some(text) => text.trim().parse::<f64>().map_err(|_| Error::NonNumeric {
                        column: self.name.clone(),
                        row: row + 1,
                        value: text.clone(),
                    }),
                })
                .collect(),
        }
    }

    pub fn take(&self, rows: &[usize]) -> Column {
        let values = match &self.values {
            ColumnValues::Number(v) => ColumnValues::Number(rows.iter().map(|&i| v[i]).collect()),
            ColumnValues::Text(v) => ColumnValues::Text(rows.iter().map(|&i| v[i].clone()).collect()),
        };
        Column { name: self.name.clone(), values }
    }
}

/// A map keyed by borrowed text that scans a short list while it holds few keys (the usual case for
/// categories and class names, where that beats hashing every cell) and hashes beyond that.
#[derive(Debug, Clone)]
pub struct TextMap<'a, V> {
    few: Vec<(&'a str, V)>,
    many: HashMap<&'a str, V>,
}

impl<'a, V> Default for TextMap<'a, V> {
    fn default() -> Self {
        TextMap { few: Vec::new(), many: HashMap::new() }
    }
}

impl<'a, V> FromIterator<(&'a str, V)> for TextMap<'a, V> {
    fn from_iter<I: IntoIterator<Item = (&'a str, V)>>(iter: I) -> Self {
        let mut map = TextMap::new();
        for (key, value) in iter {
            map.insert(key, value);
        }
        map
    }
}

impl<'a, V> TextMap<'a, V> {
    /// Keys kept in the scanned list before switching to hashing.
    const FEW: usize = 16;

    pub fn new() -> Self {
        Self::default()
    }

    pub fn get(&self, key: &str) -> Option<&V> {
        if self.many.is_empty() {
            self.few.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
        } else {
            self.many.get(key)
        }
    }

    /// Sets the value of `key`.
    pub fn insert(&mut self, key: &'a str, value: V) {
        if self.many.is_empty() {
            if let Some(entry) = self.few.iter_mut().find(|(k, _)| *k == key) {
                entry.1 = value;
                return;
            }
            if self.few.len() < Self::FEW {
                self.few.push((key, value));
                return;
            }
            self.many = self.few.drain(..).collect();
        }
        self.many.insert(key, value);
    }

    /// The value for `key`, inserting `value` first if the key is new.
    pub fn get_or_insert(&mut self, key: &'a str, value: V) -> &mut V {
        if self.many.is_empty() {
            if let Some(i) = self.few.iter().position(|(k, _)| *k == key) {
                return &mut self.few[i].1;
            }
            if self.few.len() < Self::FEW {
                self.few.push((key, value));
                let last = self.few.len() - 1;
                return &mut self.few[last].1;
            }
            self.many = self.few.drain(..).collect();
        }
        self.many.entry(key).or_insert(value)
    }
}

impl<'a, V> IntoIterator for TextMap<'a, V> {
    type Item = (&'a str, V);
    type IntoIter =
        std::iter::Chain<std::vec::IntoIter<(&'a str, V)>, std::collections::hash_map::IntoIter<&'a str, V>>;

    fn into_iter(self) -> Self::IntoIter {
        self.few.into_iter().chain(self.many)
    }
}

/// Formats a number the way tables and class labels show it: integers without a fraction.
pub fn format_number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        format!("{value}")
    }
}

impl Table {
    pub fn new(columns: Vec<Column>) -> Table {
        Table { columns }
    }

    pub fn n_rows(&self) -> usize {
        self.columns.first().map_or(0, Column::len)
    }

    pub fn column_names(&self) -> Vec<String> {
        self.columns.iter().map(|c| c.name.clone()).collect()
    }

    pub fn find(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The column called `name`, or an error naming it and the columns that exist.
    pub fn column(&self, name: &str) -> Result<&Column> {
        self.find(name).ok_or_else(|| self.missing_column(name))
    }

    /// The error for a column `name` that the table lacks.
    pub fn missing_column(&self, name: &str) -> Error {
        Error::MissingColumn { column: name.to_string(), available: self.column_names().join(", ") }
    }

    pub fn take(&self, rows: &[usize]) -> Table {
        Table { columns: self.columns.iter().map(|c| c.take(rows)).collect() }
    }

    /// Replaces the column of the same name, or appends it.
    pub fn set_column(&mut self, column: Column) {
        match self.columns.iter_mut().find(|c| c.name == column.name) {
            Some(existing) => *existing = column,
            None => self.columns.push(column),
        }
    }

    /// The column called `name`, mutably.
    pub fn column_mut(&mut self, name: &str) -> Result<&mut Column> {
        match self.columns.iter().position(|c| c.name == name) {
            Some(j) => Ok(&mut self.columns[j]),
            None => Err(self.missing_column(name)),
        }
    }

    /// The named columns as a row-major matrix; every cell must be a number and present.
    pub fn feature_matrix(&self, names: &[String]) -> Result<Matrix> {
        let n_rows = self.n_rows();
        let mut values: Vec<Cow<'_, [f64]>> = Vec::with_capacity(names.len());
        for name in names {
            let column = self.column(name)?;
            let v = match &column.values {
                ColumnValues::Number(v) => Cow::Borrowed(v.as_slice()),
                ColumnValues::Text(_) => Cow::Owned(column.to_numbers()?),
            };
            if let Some(first) = v.iter().position(|x| x.is_nan()) {
                let count = v.iter().filter(|x| x.is_nan()).count();
                return Err(Error::MissingValues { column: name.clone(), count, row: first + 1 });
            }
            if v.len() != n_rows {
                return Err(Error::InvalidData(format!("column `{name}` has {} rows, expected {n_rows}", v.len())));
            }
            values.push(v);
        }
        let columns: Vec<&[f64]> = values.iter().map(|v| &**v).collect();
        // Row by row, so that the matrix is written in order.
        let mut data = Vec::with_capacity(n_rows * names.len());
        for i in 0..n_rows {
            data.extend(columns.iter().map(|c| c[i]));
        }
        Ok(Matrix::new(n_rows, names.len(), data))
    }

    /// Reads a CSV (with a header row) or Parquet file; the format is detected from the content.
    pub fn read(path: &Path) -> Result<Table> {
        Ok(Table::read_with_format(path)?.0)
    }

    /// Like [`Table::read`], also returning the detected format.
    pub fn read_with_format(path: &Path) -> Result<(Table, TableFormat)> {
        let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
        let mut magic = [0u8; 4];
        let n = file.read(&mut magic).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            return Err(Error::EmptyData { path: path.to_path_buf() });
        }
        file.rewind().map_err(|e| Error::io(path, e))?;
        let format = if n == 4 && &magic == b"PAR1" { TableFormat::Parquet } else { TableFormat::Csv };
        let batches = match format {
            TableFormat::Parquet => read_parquet(path, file)?,
            TableFormat::Csv => read_csv(path, file)?,
        };
        let table = from_batches(path, &batches)?;
        if table.columns.is_empty() || table.n_rows() == 0 {
            return Err(Error::EmptyData { path: path.to_path_buf() });
        }
        Ok((table, format))
    }

    /// Writes the table to `path` (overwriting it).
    pub fn write(&self, path: &Path, format: TableFormat) -> Result<()> {
        let batch = self.to_batch().map_err(|message| Error::WriteTable { path: path.to_path_buf(), message })?;
        let file = File::create(path).map_err(|e| Error::io(path, e))?;
        let err = |e: &dyn std::fmt::Display| Error::WriteTable { path: path.to_path_buf(), message: e.to_string() };
        match format {
            TableFormat::Csv => {
                let mut writer = arrow_csv::WriterBuilder::new().with_header(true).build(std::io::BufWriter::new(file));
                writer.write(&batch).map_err(|e| err(&e))?;
            }
            TableFormat::Parquet => {
                let mut writer =
                    parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).map_err(|e| err(&e))?;
                writer.write(&batch).map_err(|e| err(&e))?;
                writer.close().map_err(|e| err(&e))?;
            }
        }
        Ok(())
    }

    fn to_batch(&self) -> std::result::Result<RecordBatch, String> {
        let mut fields = Vec::with_capacity(self.columns.len());
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(self.columns.len());
        for column in &self.columns {
            match &column.values {
                ColumnValues::Number(v) => {
                    let integral = v.iter().all(|x| x.is_nan() || (x.fract() == 0.0 && x.abs() < 1e15));
                    if integral {
                        let a: Int64Array = v.iter().map(|x| (!x.is_nan()).then_some(*x as i64)).collect();
                        fields.push(Field::new(&column.name, DataType::Int64, true));
                        arrays.push(Arc::new(a));
                    } else {
                        let a: Float64Array = v.iter().map(|x| (!x.is_nan()).then_some(*x)).collect();
                        fields.push(Field::new(&column.name, DataType::Float64, true));
                        arrays.push(Arc::new(a));
                    }
                }
                ColumnValues::Text(v) => {
                    let a: StringArray = v.iter().map(|x| x.as_deref()).collect();
                    fields.push(Field::new(&column.name, DataType::Utf8, true));
                    arrays.push(Arc::new(a));
                }
            }
        }
        RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).map_err(|e| e.to_string())
    }
}

fn read_csv(path: &Path, mut file: File) -> Result<Vec<RecordBatch>> {
    let err = |e: &dyn std::fmt::Display| Error::ReadTable { path: path.to_path_buf(), message: e.to_string() };
    let format = arrow_csv::reader::Format::default().with_header(true);
    let (schema, _) = format.infer_schema(&mut file, None).map_err(|e| err(&e))?;
    if schema.fields().is_empty() {
        return Err(Error::EmptyData { path: path.to_path_buf() });
    }
    file.rewind().map_err(|e| Error::io(path, e))?;
    let reader = arrow_csv::ReaderBuilder::new(Arc::new(schema))
        .with_format(format)
        .with_batch_size(16 * 1024)
        .build(std::io::BufReader::new(file))
        .map_err(|e| err(&e))?;
    reader.map(|b| b.map_err(|e| err(&e))).collect()
}

fn read_parquet(path: &Path, file: File) -> Result<Vec<RecordBatch>> {
    let err = |e: &dyn std::fmt::Display| Error::ReadTable { path: path.to_path_buf(), message: e.to_string() };
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| err(&e))?
        .build()
        .map_err(|e| err(&e))?;
    reader.map(|b| b.map_err(|e| err(&e))).collect()
}

fn from_batches(path: &Path, batches: &[RecordBatch]) -> Result<Table> {
    let Some(first) = batches.first() else { return Ok(Table::default()) };
    let schema = first.schema();
    let mut columns = Vec::with_capacity(schema.fields().len());
    for (j, field) in schema.fields().iter().enumerate() {
        let numeric = field.data_type().is_numeric() || field.data_type() == &DataType::Boolean;
        let mut values = if numeric { ColumnValues::Number(Vec::new()) } else { ColumnValues::Text(Vec::new()) };
        for batch in batches {
            let array = batch.column(j);
            let err = |e: &dyn std::fmt::Display| Error::ReadTable {
                path: path.to_path_buf(),
                message: format!("column `{}`: {e}", field.name()),
            };
            match &mut values {
                ColumnValues::Number(out) => {
                    if let Some(b) = array.as_any().downcast_ref::<BooleanArray>() {
                        out.extend((0..b.len()).map(|i| if b.is_null(i) { f64::NAN } else { b.value(i) as u8 as f64 }));
                    } else {
                        let cast = arrow_cast::cast(array, &DataType::Float64).map_err(|e| err(&e))?;
                        let floats = cast
                            .as_any()
                            .downcast_ref::<Float64Array>()
                            .ok_or_else(|| err(&"cast to float64 failed"))?;
                        out.extend(
                            (0..floats.len()).map(|i| if floats.is_null(i) { f64::NAN } else { floats.value(i) }),
                        );
                    }
                }
                ColumnValues::Text(out) => {
                    let cast = arrow_cast::cast(array, &DataType::Utf8).map_err(|e| err(&e))?;
                    let strings =
                        cast.as_any().downcast_ref::<StringArray>().ok_or_else(|| err(&"cast to utf8 failed"))?;
                    out.extend((0..strings.len()).map(|i| {
                        if strings.is_null(i) || strings.value(i).is_empty() {
                            None
                        } else {
                            Some(strings.value(i).to_string())
                        }
                    }));
                }
            }
        }
        columns.push(Column { name: field.name().clone(), values });
    }
    Ok(Table { columns })
}

#[cfg(test)]
mod tests;
