//! Seeded train/test splits, optionally stratified by a label column.

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::rng::Rng;
use crate::table::Table;

/// Row indices of the two parts, each in ascending order.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    pub train: Vec<usize>,
    pub test: Vec<usize>,
}

/// Splits the rows of `table`: `test_fraction` of them go to the test part.
/// Without `shuffle` the last rows are the test part (and `stratify` is refused).
/// With `stratify`, every class of that column keeps its proportion in both parts.
pub fn split(table: &Table, test_fraction: f64, seed: u64, shuffle: bool, stratify: Option<&str>) -> Result<Split> {
    if !(test_fraction > 0.0 && test_fraction < 1.0) {
        return Err(Error::arg("test_fraction", format!("must be in (0, 1), got {test_fraction}")));
    }
    let n = table.n_rows();
    let mut rng = Rng::new(seed);
    let (mut train, mut test) = match (shuffle, stratify) {
        (false, Some(_)) => return Err(Error::arg("stratify", "a stratified split needs shuffle = true")),
        (false, None) => {
            let n_test = ((n as f64) * test_fraction).round() as usize;
            ((0..n - n_test).collect::<Vec<_>>(), (n - n_test..n).collect::<Vec<_>>())
        }
        (true, None) => {
            let mut rows: Vec<usize> = (0..n).collect();
            rng.shuffle(&mut rows);
            let n_test = ((n as f64) * test_fraction).round() as usize;
            let test = rows.split_off(n - n_test);
            (rows, test)
        }
        (true, Some(name)) => {
            let column = table.column(name)?;
            let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
            for row in 0..n {
                groups.entry(column.cell_text(row).unwrap_or_default()).or_default().push(row);
            }
            // Largest-remainder allocation: the parts have exactly the unstratified sizes and every
            // class keeps its proportion to within one row.
            let n_test_total = ((n as f64) * test_fraction).round() as usize;
            let mut quotas: Vec<(usize, f64)> = groups
                .values()
                .map(|rows| {
                    let exact = rows.len() as f64 * test_fraction;
                    (exact.floor() as usize, exact - exact.floor())
                })
                .collect();
            let mut missing = n_test_total.saturating_sub(quotas.iter().map(|q| q.0).sum());
            let mut by_remainder: Vec<usize> = (0..quotas.len()).collect();
            by_remainder.sort_by(|&a, &b| quotas[b].1.total_cmp(&quotas[a].1).then(a.cmp(&b)));
            for g in by_remainder {
                if missing == 0 {
                    break;
                }
                quotas[g].0 += 1;
                missing -= 1;
            }
            let (mut train, mut test) = (Vec::new(), Vec::new());
            for (rows, (n_test, _)) in groups.values_mut().zip(&quotas) {
                rng.shuffle(rows);
                let n_test = (*n_test).min(rows.len());
                test.extend_from_slice(&rows[rows.len() - n_test..]);
                train.extend_from_slice(&rows[..rows.len() - n_test]);
            }
            (train, test)
        }
    };
    if train.is_empty() || test.is_empty() {
        return Err(Error::InvalidData(format!(
            "a split of {n} rows with test_fraction {test_fraction} leaves an empty part"
        )));
    }
    train.sort_unstable();
    test.sort_unstable();
    Ok(Split { train, test })
}
