//! Tensors of the Open Inference Protocol: the thirteen V2 datatypes, decoding from JSON (flat or nested
//! `data`) and from the binary tensor extension, and encoding back to either form.
//! This module knows nothing about models or HTTP.

use half::f16;
use serde_json::Value;

use crate::error::{Error, Result};

/// Name, datatype and shape (`-1` for a variable dimension) of a model input or output.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorSpec {
    pub name: String,
    pub datatype: Datatype,
    pub shape: Vec<i64>,
}

/// A V2 datatype name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Datatype {
    Bool,
    Uint8,
    Uint16,
    Uint32,
    Uint64,
    Int8,
    Int16,
    Int32,
    Int64,
    Fp16,
    Fp32,
    Fp64,
    Bytes,
}

impl Datatype {
    /// Parses a datatype name, case-insensitively as KServe does.
    pub fn parse(name: &str) -> Option<Datatype> {
        Some(match name.to_ascii_uppercase().as_str() {
            "BOOL" => Datatype::Bool,
            "UINT8" => Datatype::Uint8,
            "UINT16" => Datatype::Uint16,
            "UINT32" => Datatype::Uint32,
            "UINT64" => Datatype::Uint64,
            "INT8" => Datatype::Int8,
            "INT16" => Datatype::Int16,
            "INT32" => Datatype::Int32,
            "INT64" => Datatype::Int64,
            "FP16" => Datatype::Fp16,
            "FP32" => Datatype::Fp32,
            "FP64" => Datatype::Fp64,
            "BYTES" => Datatype::Bytes,
            _ => return None,
        })
    }

    /// The protocol's name of the datatype.
    pub fn name(self) -> &'static str {
        match self {
            Datatype::Bool => "BOOL",
            Datatype::Uint8 => "UINT8",
            Datatype::Uint16 => "UINT16",
            Datatype::Uint32 => "UINT32",
            Datatype::Uint64 => "UINT64",
            Datatype::Int8 => "INT8",
            Datatype::Int16 => "INT16",
            Datatype::Int32 => "INT32",
            Datatype::Int64 => "INT64",
            Datatype::Fp16 => "FP16",
            Datatype::Fp32 => "FP32",
            Datatype::Fp64 => "FP64",
            Datatype::Bytes => "BYTES",
        }
    }

    /// Bytes per element in the binary form (`None` for BYTES, which is variable).
    pub fn element_size(self) -> Option<usize> {
        Some(match self {
            Datatype::Bool | Datatype::Uint8 | Datatype::Int8 => 1,
            Datatype::Uint16 | Datatype::Int16 | Datatype::Fp16 => 2,
            Datatype::Uint32 | Datatype::Int32 | Datatype::Fp32 => 4,
            Datatype::Uint64 | Datatype::Int64 | Datatype::Fp64 => 8,
            Datatype::Bytes => return None,
        })
    }

    /// True for the integer and floating-point datatypes.
    pub fn is_numeric(self) -> bool {
        !matches!(self, Datatype::Bool | Datatype::Bytes)
    }
}

/// The elements of a tensor, row-major.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    Bool(Vec<bool>),
    Uint8(Vec<u8>),
    Uint16(Vec<u16>),
    Uint32(Vec<u32>),
    Uint64(Vec<u64>),
    Int8(Vec<i8>),
    Int16(Vec<i16>),
    Int32(Vec<i32>),
    Int64(Vec<i64>),
    Fp16(Vec<f16>),
    Fp32(Vec<f32>),
    Fp64(Vec<f64>),
    Bytes(Vec<Vec<u8>>),
}

macro_rules! for_each_variant {
    ($data:expr, $v:ident => $body:expr) => {
        match $data {
            TensorData::Bool($v) => $body,
            TensorData::Uint8($v) => $body,
            TensorData::Uint16($v) => $body,
            TensorData::Uint32($v) => $body,
            TensorData::Uint64($v) => $body,
            TensorData::Int8($v) => $body,
            TensorData::Int16($v) => $body,
            TensorData::Int32($v) => $body,
            TensorData::Int64($v) => $body,
            TensorData::Fp16($v) => $body,
            TensorData::Fp32($v) => $body,
            TensorData::Fp64($v) => $body,
            TensorData::Bytes($v) => $body,
        }
    };
}

impl TensorData {
    pub fn datatype(&self) -> Datatype {
        match self {
            TensorData::Bool(_) => Datatype::Bool,
            TensorData::Uint8(_) => Datatype::Uint8,
            TensorData::Uint16(_) => Datatype::Uint16,
            TensorData::Uint32(_) => Datatype::Uint32,
            TensorData::Uint64(_) => Datatype::Uint64,
            TensorData::Int8(_) => Datatype::Int8,
            TensorData::Int16(_) => Datatype::Int16,
            TensorData::Int32(_) => Datatype::Int32,
            TensorData::Int64(_) => Datatype::Int64,
            TensorData::Fp16(_) => Datatype::Fp16,
            TensorData::Fp32(_) => Datatype::Fp32,
            TensorData::Fp64(_) => Datatype::Fp64,
            TensorData::Bytes(_) => Datatype::Bytes,
        }
    }

    pub fn len(&self) -> usize {
        for_each_variant!(self, v => v.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// An empty vector of the given datatype.
    pub fn empty(datatype: Datatype) -> TensorData {
        match datatype {
            Datatype::Bool => TensorData::Bool(Vec::new()),
            Datatype::Uint8 => TensorData::Uint8(Vec::new()),
            Datatype::Uint16 => TensorData::Uint16(Vec::new()),
            Datatype::Uint32 => TensorData::Uint32(Vec::new()),
            Datatype::Uint64 => TensorData::Uint64(Vec::new()),
            Datatype::Int8 => TensorData::Int8(Vec::new()),
            Datatype::Int16 => TensorData::Int16(Vec::new()),
            Datatype::Int32 => TensorData::Int32(Vec::new()),
            Datatype::Int64 => TensorData::Int64(Vec::new()),
            Datatype::Fp16 => TensorData::Fp16(Vec::new()),
            Datatype::Fp32 => TensorData::Fp32(Vec::new()),
            Datatype::Fp64 => TensorData::Fp64(Vec::new()),
            Datatype::Bytes => TensorData::Bytes(Vec::new()),
        }
    }

    /// Appends `other` (same datatype) to `self`; false when the datatypes differ.
    pub fn extend_from(&mut self, other: &TensorData) -> bool {
        match (self, other) {
            (TensorData::Bool(a), TensorData::Bool(b)) => a.extend_from_slice(b),
            (TensorData::Uint8(a), TensorData::Uint8(b)) => a.extend_from_slice(b),
            (TensorData::Uint16(a), TensorData::Uint16(b)) => a.extend_from_slice(b),
            (TensorData::Uint32(a), TensorData::Uint32(b)) => a.extend_from_slice(b),
            (TensorData::Uint64(a), TensorData::Uint64(b)) => a.extend_from_slice(b),
            (TensorData::Int8(a), TensorData::Int8(b)) => a.extend_from_slice(b),
            (TensorData::Int16(a), TensorData::Int16(b)) => a.extend_from_slice(b),
            (TensorData::Int32(a), TensorData::Int32(b)) => a.extend_from_slice(b),
            (TensorData::Int64(a), TensorData::Int64(b)) => a.extend_from_slice(b),
            (TensorData::Fp16(a), TensorData::Fp16(b)) => a.extend_from_slice(b),
            (TensorData::Fp32(a), TensorData::Fp32(b)) => a.extend_from_slice(b),
            (TensorData::Fp64(a), TensorData::Fp64(b)) => a.extend_from_slice(b),
            (TensorData::Bytes(a), TensorData::Bytes(b)) => a.extend_from_slice(b),
            _ => return false,
        }
        true
    }

    /// Elements `start..end` as a new vector.
    pub fn slice(&self, start: usize, end: usize) -> TensorData {
        match self {
            TensorData::Bool(v) => TensorData::Bool(v[start..end].to_vec()),
            TensorData::Uint8(v) => TensorData::Uint8(v[start..end].to_vec()),
            TensorData::Uint16(v) => TensorData::Uint16(v[start..end].to_vec()),
            TensorData::Uint32(v) => TensorData::Uint32(v[start..end].to_vec()),
            TensorData::Uint64(v) => TensorData::Uint64(v[start..end].to_vec()),
            TensorData::Int8(v) => TensorData::Int8(v[start..end].to_vec()),
            TensorData::Int16(v) => TensorData::Int16(v[start..end].to_vec()),
            TensorData::Int32(v) => TensorData::Int32(v[start..end].to_vec()),
            TensorData::Int64(v) => TensorData::Int64(v[start..end].to_vec()),
            TensorData::Fp16(v) => TensorData::Fp16(v[start..end].to_vec()),
            TensorData::Fp32(v) => TensorData::Fp32(v[start..end].to_vec()),
            TensorData::Fp64(v) => TensorData::Fp64(v[start..end].to_vec()),
            TensorData::Bytes(v) => TensorData::Bytes(v[start..end].to_vec()),
        }
    }

    /// Numeric elements as f64 (`None` for BOOL and BYTES).
    pub fn to_f64(&self) -> Option<Vec<f64>> {
        Some(match self {
            TensorData::Uint8(v) => v.iter().map(|&x| x as f64).collect(),
            TensorData::Uint16(v) => v.iter().map(|&x| x as f64).collect(),
            TensorData::Uint32(v) => v.iter().map(|&x| x as f64).collect(),
            TensorData::Uint64(v) => v.iter().map(|&x| x as f64).collect(),
            TensorData::Int8(v) => v.iter().map(|&x| x as f64).collect(),
            TensorData::Int16(v) => v.iter().map(|&x| x as f64).collect(),
            TensorData::Int32(v) => v.iter().map(|&x| x as f64).collect(),
            TensorData::Int64(v) => v.iter().map(|&x| x as f64).collect(),
            TensorData::Fp16(v) => v.iter().map(|&x| x.to_f64()).collect(),
            TensorData::Fp32(v) => v.iter().map(|&x| x as f64).collect(),
            TensorData::Fp64(v) => v.clone(),
            TensorData::Bool(_) | TensorData::Bytes(_) => return None,
        })
    }

    /// Converts numeric data to another numeric datatype (used for V1 rows, which are untyped JSON numbers).
    pub fn cast_numeric(&self, to: Datatype) -> Option<TensorData> {
        if self.datatype() == to {
            return Some(self.clone());
        }
        let x = self.to_f64()?;
        Some(match to {
            Datatype::Uint8 => TensorData::Uint8(x.iter().map(|&v| v as u8).collect()),
            Datatype::Uint16 => TensorData::Uint16(x.iter().map(|&v| v as u16).collect()),
            Datatype::Uint32 => TensorData::Uint32(x.iter().map(|&v| v as u32).collect()),
            Datatype::Uint64 => TensorData::Uint64(x.iter().map(|&v| v as u64).collect()),
            Datatype::Int8 => TensorData::Int8(x.iter().map(|&v| v as i8).collect()),
            Datatype::Int16 => TensorData::Int16(x.iter().map(|&v| v as i16).collect()),
            Datatype::Int32 => TensorData::Int32(x.iter().map(|&v| v as i32).collect()),
            Datatype::Int64 => TensorData::Int64(x.iter().map(|&v| v as i64).collect()),
            Datatype::Fp16 => TensorData::Fp16(x.iter().map(|&v| f16::from_f64(v)).collect()),
            Datatype::Fp32 => TensorData::Fp32(x.iter().map(|&v| v as f32).collect()),
            Datatype::Fp64 => TensorData::Fp64(x),
            Datatype::Bool | Datatype::Bytes => return None,
        })
    }
}

/// A named tensor with its shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: TensorData,
}

impl Tensor {
    pub fn datatype(&self) -> Datatype {
        self.data.datatype()
    }

    /// Size of the first dimension (1 for a scalar).
    pub fn rows(&self) -> usize {
        self.shape.first().copied().unwrap_or(1)
    }

    /// The elements as JSON values (flat, row-major), as the V2 `data` field.
    pub fn data_json(&self) -> Value {
        fn num<T: Into<serde_json::Number> + Copy>(v: &[T]) -> Value {
            Value::Array(v.iter().map(|&x| Value::Number(x.into())).collect())
        }
        fn float(v: impl Iterator<Item = f64>) -> Value {
            Value::Array(v.map(|x| serde_json::Number::from_f64(x).map(Value::Number).unwrap_or(Value::Null)).collect())
        }
        match &self.data {
            TensorData::Bool(v) => Value::Array(v.iter().map(|&b| Value::Bool(b)).collect()),
            TensorData::Uint8(v) => num(v),
            TensorData::Uint16(v) => num(v),
            TensorData::Uint32(v) => num(v),
            TensorData::Uint64(v) => num(v),
            TensorData::Int8(v) => num(v),
            TensorData::Int16(v) => num(v),
            TensorData::Int32(v) => num(v),
            TensorData::Int64(v) => num(v),
            TensorData::Fp16(v) => float(v.iter().map(|x| x.to_f64())),
            TensorData::Fp32(v) => float(v.iter().map(|&x| x as f64)),
            TensorData::Fp64(v) => float(v.iter().copied()),
            TensorData::Bytes(v) => {
                Value::Array(v.iter().map(|b| Value::String(String::from_utf8_lossy(b).into_owned())).collect())
            }
        }
    }

    /// Appends the elements as the JSON list of the V2 `data` field (flat, row-major; non-finite
    /// floats as `null`), without building a `Value`.
    pub fn write_data_json(&self, out: &mut Vec<u8>) {
        fn list<T>(out: &mut Vec<u8>, items: &[T], mut write: impl FnMut(&mut Vec<u8>, &T)) {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(out, item);
            }
            out.push(b']');
        }
        // Writing plain values to a Vec cannot fail.
        fn put<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
            let _ = serde_json::to_writer(out, value);
        }
        match &self.data {
            TensorData::Bool(v) => list(out, v, put),
            TensorData::Uint8(v) => list(out, v, put),
            TensorData::Uint16(v) => list(out, v, put),
            TensorData::Uint32(v) => list(out, v, put),
            TensorData::Uint64(v) => list(out, v, put),
            TensorData::Int8(v) => list(out, v, put),
            TensorData::Int16(v) => list(out, v, put),
            TensorData::Int32(v) => list(out, v, put),
            TensorData::Int64(v) => list(out, v, put),
            TensorData::Fp16(v) => list(out, v, |o, x| put(o, &x.to_f64())),
            // As f64, like `data_json`: the text a client gets does not depend on the path.
            TensorData::Fp32(v) => list(out, v, |o, x| put(o, &f64::from(*x))),
            TensorData::Fp64(v) => list(out, v, put),
            TensorData::Bytes(v) => list(out, v, |o, x| put(o, &String::from_utf8_lossy(x))),
        }
    }

    /// The elements in the binary tensor extension's layout (little-endian, row-major).
    pub fn to_binary(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_binary(&mut out);
        out
    }

    /// Appends the elements in the binary tensor extension's layout.
    pub fn write_binary(&self, out: &mut Vec<u8>) {
        match &self.data {
            TensorData::Bool(v) => out.extend(v.iter().map(|&b| b as u8)),
            TensorData::Uint8(v) => out.extend_from_slice(v),
            TensorData::Uint16(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            TensorData::Uint32(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            TensorData::Uint64(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            TensorData::Int8(v) => out.extend(v.iter().map(|&x| x as u8)),
            TensorData::Int16(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            TensorData::Int32(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            TensorData::Int64(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            TensorData::Fp16(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            TensorData::Fp32(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            TensorData::Fp64(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            TensorData::Bytes(v) => {
                for b in v {
                    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
                    out.extend_from_slice(b);
                }
            }
        }
    }
}

/// Number of elements of a shape, or an error when it overflows.
pub fn element_count(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

/// Decodes the JSON `data` of an input (flat or nested) into `datatype` elements; checks the count.
pub fn decode_json(input: &str, datatype: Datatype, shape: &[usize], data: &Value) -> Result<TensorData> {
    let expected =
        element_count(shape).ok_or_else(|| Error::invalid(format!("input `{input}`: shape {shape:?} is too large")))?;
    let mut flat: Vec<&Value> = Vec::with_capacity(expected.min(1 << 20));
    flatten(data, &mut flat);
    if flat.len() != expected {
        return Err(Error::invalid(format!(
            "input `{input}`: shape {shape:?} needs {expected} elements, data has {}",
            flat.len()
        )));
    }
    let bad = |i: usize, v: &Value| {
        Error::invalid(format!("input `{input}`: element {i} ({v}) is not a valid {}", datatype.name()))
    };
    macro_rules! ints {
        ($variant:ident, $t:ty) => {{
            let mut out = Vec::with_capacity(flat.len());
            for (i, v) in flat.iter().enumerate() {
                let x = match v {
                    Value::Number(n) => n
                        .as_i64()
                        .and_then(|x| <$t>::try_from(x).ok())
                        .or_else(|| n.as_u64().and_then(|x| <$t>::try_from(x).ok())),
                    Value::Bool(b) => Some(*b as $t),
                    _ => None,
                };
                out.push(x.ok_or_else(|| bad(i, v))?);
            }
            TensorData::$variant(out)
        }};
    }
    let floats = || -> Result<Vec<f64>> {
        flat.iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::Number(n) => n.as_f64().ok_or_else(|| bad(i, v)),
                Value::String(s) if matches!(s.as_str(), "NaN" | "nan") => Ok(f64::NAN),
                Value::String(s) if matches!(s.as_str(), "Infinity" | "inf") => Ok(f64::INFINITY),
                Value::String(s) if matches!(s.as_str(), "-Infinity" | "-inf") => Ok(f64::NEG_INFINITY),
                _ => Err(bad(i, v)),
            })
            .collect()
    };
    Ok(match datatype {
        Datatype::Bool => TensorData::Bool(
            flat.iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Value::Bool(b) => Ok(*b),
                    Value::Number(n) if n.as_u64() == Some(0) || n.as_u64() == Some(1) => Ok(n.as_u64() == Some(1)),
                    _ => Err(bad(i, v)),
                })
                .collect::<Result<_>>()?,
        ),
        Datatype::Uint8 => ints!(Uint8, u8),
        Datatype::Uint16 => ints!(Uint16, u16),
        Datatype::Uint32 => ints!(Uint32, u32),
        Datatype::Uint64 => ints!(Uint64, u64),
        Datatype::Int8 => ints!(Int8, i8),
        Datatype::Int16 => ints!(Int16, i16),
        Datatype::Int32 => ints!(Int32, i32),
        Datatype::Int64 => ints!(Int64, i64),
        Datatype::Fp16 => TensorData::Fp16(floats()?.into_iter().map(f16::from_f64).collect()),
        Datatype::Fp32 => TensorData::Fp32(floats()?.into_iter().map(|x| x as f32).collect()),
        Datatype::Fp64 => TensorData::Fp64(floats()?),
        Datatype::Bytes => TensorData::Bytes(
            flat.iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Value::String(s) => Ok(s.as_bytes().to_vec()),
                    _ => Err(bad(i, v)),
                })
                .collect::<Result<_>>()?,
        ),
    })
}

fn flatten<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
    match v {
        Value::Array(items) => items.iter().for_each(|item| flatten(item, out)),
        other => out.push(other),
    }
}

/// Decodes one tensor of the binary extension from exactly its bytes.
pub fn decode_binary(input: &str, datatype: Datatype, shape: &[usize], bytes: &[u8]) -> Result<TensorData> {
    let expected =
        element_count(shape).ok_or_else(|| Error::invalid(format!("input `{input}`: shape {shape:?} is too large")))?;
    if let Some(size) = datatype.element_size() {
        let needed = expected
            .checked_mul(size)
            .ok_or_else(|| Error::invalid(format!("input `{input}`: shape {shape:?} is too large")))?;
        if bytes.len() != needed {
            return Err(Error::invalid(format!(
                "input `{input}`: shape {shape:?} of {} needs {needed} bytes, binary data has {}",
                datatype.name(),
                bytes.len()
            )));
        }
    }
    macro_rules! le {
        ($variant:ident, $t:ty, $n:expr) => {
            TensorData::$variant(
                bytes.chunks_exact($n).map(|c| <$t>::from_le_bytes(c.try_into().unwrap_or([0; $n]))).collect(),
            )
        };
    }
    Ok(match datatype {
        Datatype::Bool => TensorData::Bool(bytes.iter().map(|&b| b != 0).collect()),
        Datatype::Uint8 => TensorData::Uint8(bytes.to_vec()),
        Datatype::Int8 => TensorData::Int8(bytes.iter().map(|&b| b as i8).collect()),
        Datatype::Uint16 => le!(Uint16, u16, 2),
        Datatype::Int16 => le!(Int16, i16, 2),
        Datatype::Fp16 => le!(Fp16, f16, 2),
        Datatype::Uint32 => le!(Uint32, u32, 4),
        Datatype::Int32 => le!(Int32, i32, 4),
        Datatype::Fp32 => le!(Fp32, f32, 4),
        Datatype::Uint64 => le!(Uint64, u64, 8),
        Datatype::Int64 => le!(Int64, i64, 8),
        Datatype::Fp64 => le!(Fp64, f64, 8),
        Datatype::Bytes => {
            let mut items = Vec::with_capacity(expected.min(1 << 20));
            let mut rest = bytes;
            while !rest.is_empty() {
                if rest.len() < 4 {
                    return Err(Error::invalid(format!("input `{input}`: truncated BYTES element length")));
                }
                let n = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
                rest = &rest[4..];
                if rest.len() < n {
                    return Err(Error::invalid(format!("input `{input}`: BYTES element longer than the binary data")));
                }
                items.push(rest[..n].to_vec());
                rest = &rest[n..];
            }
            if items.len() != expected {
                return Err(Error::invalid(format!(
                    "input `{input}`: shape {shape:?} needs {expected} elements, binary data has {}",
                    items.len()
                )));
            }
            TensorData::Bytes(items)
        }
    })
}

#[cfg(test)]
mod tests;
