//! KServe V1: readiness and `:predict` with `instances` (numeric rows, or objects routed to the model's
//! numeric and text inputs by column name) and `predictions` back.

use super::*;

/// `GET /v1/models/NAME`.
pub(super) async fn v1_model_ready(State(state): AppStateRef, Path(name): Path<String>) -> Result<Response> {
    state.repo.resolve(&name, None)?;
    Ok(json_response(StatusCode::OK, &json!({"name": name, "ready": true})))
}

/// `POST /v1/models/NAME:predict` (and `:explain`, which has no explainer here).
pub(super) async fn v1_predict(
    State(state): AppStateRef,
    Path(target): Path<String>,
    request: Request,
) -> Result<Response> {
    let (parts, body) = request.into_parts();
    let headers = parts.headers;
    let (name, verb) = match target.rsplit_once(':') {
        Some((name, verb)) => (name, verb),
        None => return Ok(error_response(StatusCode::METHOD_NOT_ALLOWED, "use POST /v1/models/NAME:predict")),
    };
    let loaded = state.repo.resolve(name, None)?;
    match verb {
        "predict" => {}
        "explain" => {
            return Ok(error_response(StatusCode::NOT_IMPLEMENTED, &format!("model `{name}` has no explainer")))
        }
        other => return Err(Error::ModelNotFound(format!("{name}:{other}"))),
    }
    let body = read_body(&state, &headers, body).await?;
    let inputs = v1_inputs(loaded.runtime.as_ref(), name, &body)?;
    let id = headers.get(REQUEST_ID).and_then(|v| v.to_str().ok()).filter(|v| !v.is_empty());
    let result = state.repo.infer_with_id(name, None, id, inputs).await?;
    let logged_id = result.logged_id.clone();
    let first = result
        .outputs
        .into_iter()
        .next()
        .ok_or_else(|| Error::Internal(format!("model `{name}` returned no output")))?;
    let predictions = v1_predictions(&first);
    let mut bytes = Vec::with_capacity(32 + 24 * first.data.len());
    bytes.extend_from_slice(b"{\"predictions\":");
    write_json(&mut bytes, &predictions);
    bytes.push(b'}');
    let mut response =
        (StatusCode::OK, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], bytes).into_response();
    // A logged V1 request gets its id back (V1 bodies have no `id`), for feedback later.
    if let Some(value) = logged_id.and_then(|id| HeaderValue::from_str(&id).ok()) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    Ok(response)
}

/// The common V1 body, `{"instances": [[numbers], ...]}` (or `inputs`), read without a `Value`.
#[derive(Deserialize)]
pub(super) struct V1NumericRows {
    #[serde(alias = "inputs")]
    pub(super) instances: Vec<Vec<f64>>,
}

/// Turns a V1 body into the model's input tensors. An instance is a number or a (nested) list of
/// numbers (a model with one input), a string (one BYTES input), or an object: keyed by input name
/// (TensorFlow Serving's row format) or, for a model that knows its column names, by column (a
/// DataFrame row, as KServe's scikit-learn server reads it). All instances have one form.
pub(super) fn v1_inputs(runtime: &dyn Runtime, model: &str, body: &[u8]) -> Result<Vec<Tensor>> {
    let specs = runtime.inputs();
    if let [spec] = specs {
        if let Ok(wire) = serde_json::from_slice::<V1NumericRows>(body) {
            let width = wire.instances.first().map_or(0, Vec::len);
            if !wire.instances.is_empty() && wire.instances.iter().all(|r| r.len() == width) {
                let values: Vec<f64> = wire.instances.iter().flatten().copied().collect();
                return Ok(vec![numeric_tensor(spec, vec![wire.instances.len(), width], values)]);
            }
        }
    }
    let mut object =
        parse_json_object(body).map_err(|e| Error::invalid(format!("unrecognized request format: {e}")))?;
    let rows = match object.remove("instances").or_else(|| object.remove("inputs")) {
        Some(Value::Array(rows)) => rows,
        Some(_) => return Err(Error::invalid("`instances` must be a list")),
        None => return Err(Error::invalid("unrecognized request format: expected `instances` or `inputs`")),
    };
    let kind = |v: &Value| match v {
        Value::Object(_) => "an object",
        Value::String(_) => "a string",
        _ => "a number or list",
    };
    if let Some(first) = rows.first() {
        if let Some((i, row)) = rows.iter().enumerate().find(|(_, r)| kind(r) != kind(first)) {
            return Err(Error::invalid(format!(
                "instances[{i}] is {}, but instances[0] is {}; every instance must have the same form",
                kind(row),
                kind(first)
            )));
        }
    }
    match rows.first() {
        Some(Value::Object(_)) => v1_object_rows(runtime, model, &rows),
        Some(Value::String(_)) => {
            let [spec] = specs else {
                return Err(Error::invalid(format!(
                    "string instances need a model with one input; `{model}` has {}",
                    specs.len()
                )));
            };
            let strings: Vec<Vec<u8>> =
                rows.iter().map(|r| r.as_str().unwrap_or_default().as_bytes().to_vec()).collect();
            string_tensor(spec, model, strings, "instances[0] is a string")
        }
        _ => {
            let [spec] = specs else {
                return Err(Error::invalid(format!(
                    "V1 predict with lists needs a model with one input; `{model}` has {} (send objects keyed by input name)",
                    specs.len()
                )));
            };
            let (row_shape, values) = collect_rows(rows.iter(), |i| format!("instances[{i}]"))?;
            let mut shape = vec![rows.len()];
            shape.extend(row_shape.unwrap_or_else(|| spec.shape.iter().skip(1).map(|&d| d.max(0) as usize).collect()));
            Ok(vec![numeric_tensor(spec, shape, values)])
        }
    }
}

/// Object instances: by input name, or by column for a model with named columns.
pub(super) fn v1_object_rows(runtime: &dyn Runtime, model: &str, rows: &[Value]) -> Result<Vec<Tensor>> {
    let specs = runtime.inputs();
    let objects: Vec<&Map<String, Value>> = rows.iter().filter_map(Value::as_object).collect();
    let is_input = |key: &String| specs.iter().any(|s| s.name == *key);
    let text_columns = runtime.text_columns();
    let by_column = specs.len() == 1 + usize::from(!text_columns.is_empty()) && !objects[0].keys().all(is_input);
    if let (Some(columns), true) = (runtime.column_names(), by_column) {
        let numeric: Vec<&String> = columns.iter().filter(|c| !text_columns.contains(c)).collect();
        let mut values = Vec::with_capacity(objects.len() * numeric.len());
        let mut strings = Vec::with_capacity(objects.len() * text_columns.len());
        for (i, object) in objects.iter().enumerate() {
            if let Some(unknown) = object.keys().find(|k| !columns.contains(*k)) {
                return Err(Error::invalid(format!(
                    "instances[{i}]: unknown column `{unknown}` (model `{model}` takes the columns {})",
                    columns.join(", ")
                )));
            }
            let cell = |column: &String| {
                object.get(column).ok_or_else(|| Error::invalid(format!("instances[{i}]: missing column `{column}`")))
            };
            for column in &numeric {
                values.push(match cell(column)? {
                    Value::Null => f64::NAN,
                    Value::Bool(b) => f64::from(u8::from(*b)),
                    Value::Number(n) => n.as_f64().unwrap_or(f64::NAN),
                    other => {
                        return Err(Error::invalid(format!(
                            "instances[{i}]: column `{column}` must be a number, got {other}"
                        )))
                    }
                });
            }
            for column in text_columns {
                strings.push(match cell(column)? {
                    Value::Null => Vec::new(),
                    Value::String(s) => s.as_bytes().to_vec(),
                    // A categorical column of numbers, in the form the training table printed it.
                    Value::Number(n) => n.to_string().into_bytes(),
                    other => {
                        return Err(Error::invalid(format!(
                            "instances[{i}]: column `{column}` must be a string, got {other}"
                        )))
                    }
                });
            }
        }
        let mut tensors = vec![numeric_tensor(&specs[0], vec![objects.len(), numeric.len()], values)];
        if let Some(spec) = specs.get(1) {
            tensors.push(Tensor {
                name: spec.name.clone(),
                shape: vec![objects.len(), text_columns.len()],
                data: TensorData::Bytes(strings),
            });
        }
        return Ok(tensors);
    }
    let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
    for (i, object) in objects.iter().enumerate() {
        if let Some(unknown) = object.keys().find(|k| !is_input(k)) {
            return Err(Error::invalid(format!(
                "instances[{i}]: unknown input `{unknown}` (model `{model}` takes {})",
                names.join(", ")
            )));
        }
    }
    let mut tensors = Vec::with_capacity(specs.len());
    for spec in specs {
        let mut column = Vec::with_capacity(objects.len());
        for (i, object) in objects.iter().enumerate() {
            column.push(
                object
                    .get(&spec.name)
                    .ok_or_else(|| Error::invalid(format!("instances[{i}]: missing input `{}`", spec.name)))?,
            );
        }
        if spec.datatype == Datatype::Bytes {
            let mut strings = Vec::with_capacity(column.len());
            for (i, value) in column.iter().enumerate() {
                match value {
                    Value::String(s) => strings.push(s.as_bytes().to_vec()),
                    other => {
                        return Err(Error::invalid(format!(
                            "instances[{i}].{}: expected a string, got {other}",
                            spec.name
                        )))
                    }
                }
            }
            tensors.extend(string_tensor(spec, model, strings, &format!("instances[0].{} is a string", spec.name))?);
        } else {
            let (row_shape, values) = collect_rows(column.into_iter(), |i| format!("instances[{i}].{}", spec.name))?;
            let mut shape = vec![objects.len()];
            match row_shape {
                // One scalar per row for a [N, 1] input (a DataFrame column).
                Some(dims) if dims.is_empty() && spec.shape.len() == 2 => shape.push(1),
                Some(dims) => shape.extend(dims),
                None => {}
            }
            tensors.push(numeric_tensor(spec, shape, values));
        }
    }
    Ok(tensors)
}

/// Flattens V1 rows (numbers or nested lists), checking that every row has the first one's shape.
pub(super) fn collect_rows<'a>(
    rows: impl Iterator<Item = &'a Value>,
    label: impl Fn(usize) -> String,
) -> Result<(Option<Vec<usize>>, Vec<f64>)> {
    let mut row_shape: Option<Vec<usize>> = None;
    let mut values = Vec::new();
    for (i, row) in rows.enumerate() {
        let mut shape = Vec::new();
        let label = label(i);
        collect_row(row, &mut shape, 0, &mut values).map_err(|e| Error::invalid(format!("{label}: {e}")))?;
        match &row_shape {
            None => row_shape = Some(shape),
            Some(first) if *first != shape => {
                return Err(Error::invalid(format!(
                    "{label}: shape {shape:?} differs from the first instance's {first:?}"
                )))
            }
            Some(_) => {}
        }
    }
    Ok((row_shape, values))
}

/// A tensor of V1 numbers in the input's datatype (FP64 when the input is not numeric, which the
/// input check then reports).
pub(super) fn numeric_tensor(spec: &crate::tensor::TensorSpec, shape: Vec<usize>, values: Vec<f64>) -> Tensor {
    let datatype = if spec.datatype.is_numeric() { spec.datatype } else { Datatype::Fp64 };
    let data = TensorData::Fp64(values).cast_numeric(datatype).unwrap_or(TensorData::Fp64(Vec::new()));
    Tensor { name: spec.name.clone(), shape, data }
}

/// A BYTES tensor of one string per row, shaped [N] or [N, 1] as the input is.
pub(super) fn string_tensor(
    spec: &crate::tensor::TensorSpec,
    model: &str,
    strings: Vec<Vec<u8>>,
    what: &str,
) -> Result<Vec<Tensor>> {
    if spec.datatype != Datatype::Bytes {
        return Err(Error::invalid(format!(
            "{what}, but input `{}` of model `{model}` takes {} (send numbers)",
            spec.name,
            spec.datatype.name()
        )));
    }
    let mut shape = vec![strings.len()];
    if spec.shape.len() == 2 {
        shape.push(1);
    }
    Ok(vec![Tensor { name: spec.name.clone(), shape, data: TensorData::Bytes(strings) }])
}

/// Flattens one V1 instance (a number or nested lists of numbers), recording its shape.
pub(super) fn collect_row(
    value: &Value,
    shape: &mut Vec<usize>,
    depth: usize,
    out: &mut Vec<f64>,
) -> std::result::Result<(), String> {
    match value {
        Value::Number(n) => {
            out.push(n.as_f64().ok_or("number out of range")?);
            Ok(())
        }
        Value::Bool(b) => {
            out.push(f64::from(u8::from(*b)));
            Ok(())
        }
        Value::Array(items) => {
            if shape.len() == depth {
                shape.push(items.len());
            } else if shape[depth] != items.len() {
                return Err("ragged nested lists".into());
            }
            items.iter().try_for_each(|item| collect_row(item, shape, depth + 1, out))
        }
        _ => Err("instances must be numbers or lists of numbers".into()),
    }
}

/// One prediction per row of the output: scalars for a [N] output, nested lists otherwise.
pub(super) fn v1_predictions(output: &Tensor) -> Value {
    let flat = match &output.data {
        TensorData::Bytes(items) => items
            .iter()
            .map(|b| {
                let s = String::from_utf8_lossy(b);
                match s.parse::<i64>() {
                    Ok(n) => json!(n),
                    Err(_) => match s.parse::<f64>().ok().and_then(serde_json::Number::from_f64) {
                        Some(n) => Value::Number(n),
                        None => Value::String(s.into_owned()),
                    },
                }
            })
            .collect(),
        _ => match output.data_json() {
            Value::Array(items) => items,
            other => vec![other],
        },
    };
    let rows = output.rows();
    if output.shape.len() <= 1 || rows == 0 {
        return Value::Array(flat);
    }
    let per_row = flat.len() / rows;
    let mut iter = flat.into_iter();
    Value::Array((0..rows).map(|_| nest(&mut iter, &output.shape[1..], per_row)).collect())
}

pub(super) fn nest(iter: &mut impl Iterator<Item = Value>, dims: &[usize], count: usize) -> Value {
    match dims {
        [] | [_] => Value::Array(iter.take(count).collect()),
        [d, rest @ ..] => {
            let inner = if *d == 0 { 0 } else { count / d };
            Value::Array((0..*d).map(|_| nest(iter, rest, inner)).collect())
        }
    }
}
