//! The Open Inference Protocol (V2): metadata, readiness and `infer`, with JSON and binary-extension
//! bodies parsed into borrowed typed structs (a `Value` parse runs only to name a problem).

use super::*;

pub(super) fn metadata(state: &AppState, name: &str, version: Option<&str>) -> Result<Response> {
    let loaded = state.repo.resolve(name, version)?;
    let specs = |specs: &[crate::tensor::TensorSpec]| -> Vec<Value> {
        specs.iter().map(|s| json!({"name": s.name, "datatype": s.datatype.name(), "shape": s.shape})).collect()
    };
    Ok(json_response(
        StatusCode::OK,
        &json!({"name": name, "versions": state.repo.versions(name)?, "platform": loaded.runtime.platform(),
                "inputs": specs(loaded.runtime.inputs()), "outputs": specs(loaded.runtime.outputs())}),
    ))
}

pub(super) async fn model_metadata(State(state): AppStateRef, Path(name): Path<String>) -> Result<Response> {
    metadata(&state, &name, None)
}

pub(super) async fn version_metadata(
    State(state): AppStateRef,
    Path((name, version)): Path<(String, String)>,
) -> Result<Response> {
    metadata(&state, &name, Some(&version))
}

pub(super) async fn model_ready(State(state): AppStateRef, Path(name): Path<String>) -> Result<Response> {
    state.repo.resolve(&name, None)?;
    Ok(json_response(StatusCode::OK, &json!({"name": name, "ready": true})))
}

pub(super) async fn version_ready(
    State(state): AppStateRef,
    Path((name, version)): Path<(String, String)>,
) -> Result<Response> {
    state.repo.resolve(&name, Some(&version))?;
    Ok(json_response(StatusCode::OK, &json!({"name": name, "version": version, "ready": true})))
}

pub(super) async fn infer(State(state): AppStateRef, Path(name): Path<String>, request: Request) -> Result<Response> {
    let (parts, body) = request.into_parts();
    infer_common(&state, &name, None, &parts.headers, body).await
}

pub(super) async fn version_infer(
    State(state): AppStateRef,
    Path((name, version)): Path<(String, String)>,
    request: Request,
) -> Result<Response> {
    let (parts, body) = request.into_parts();
    infer_common(&state, &name, Some(&version), &parts.headers, body).await
}

/// A requested output: its name and whether it goes back as binary.
pub(super) struct RequestedOutput {
    pub(super) name: String,
    pub(super) binary: Option<bool>,
}

/// A decoded V2 inference request.
pub(super) struct InferRequest {
    pub(super) id: Option<String>,
    pub(super) inputs: Vec<Tensor>,
    pub(super) outputs: Option<Vec<RequestedOutput>>,
    pub(super) binary_output: bool,
}

pub(super) async fn infer_common(
    state: &AppState,
    name: &str,
    version: Option<&str>,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response> {
    // Unknown model or version is a 404 before the body is looked at.
    state.repo.resolve(name, version)?;
    let body = read_body(state, headers, body).await?;
    let request = parse_infer_request(headers, &body)?;
    let result = state.repo.infer_with_id(name, version, request.id.as_deref(), request.inputs).await?;
    let id = result.logged_id.or(request.id);
    build_infer_response(name, &result.version, id, request.outputs, request.binary_output, result.outputs)
}

pub(super) fn parse_infer_request(headers: &HeaderMap, body: &[u8]) -> Result<InferRequest> {
    let header_length =
        match headers.get(HEADER_LENGTH) {
            None => None,
            Some(v) => Some(
                v.to_str().ok().and_then(|s| s.trim().parse::<usize>().ok()).filter(|&n| n <= body.len()).ok_or_else(
                    || Error::invalid(format!("header `{HEADER_LENGTH}` must be a length within the body")),
                )?,
            ),
        };
    let (json_part, binary) = match header_length {
        Some(n) => (&body[..n], &body[n..]),
        None => (body, &body[body.len()..]),
    };
    if let Some(request) = parse_infer_typed(json_part, binary) {
        return request;
    }
    parse_infer_value(headers, header_length, json_part, binary)
}

/// The V2 request as typed structs, borrowing from the body: the fast path. It answers `None` for
/// anything it does not take as is (a field of an unexpected type, an unknown datatype, a missing
/// field); the `Value`-based parser then reads the body again and names the problem.
#[derive(Deserialize)]
pub(super) struct WireRequest<'a> {
    #[serde(default, borrow)]
    pub(super) id: Option<Cow<'a, str>>,
    #[serde(default)]
    pub(super) parameters: Option<WireParameters>,
    #[serde(borrow)]
    pub(super) inputs: Vec<WireInput<'a>>,
    #[serde(default, borrow)]
    pub(super) outputs: Option<Vec<WireOutput<'a>>>,
}

#[derive(Deserialize)]
pub(super) struct WireInput<'a> {
    #[serde(borrow)]
    pub(super) name: Cow<'a, str>,
    pub(super) shape: Vec<usize>,
    #[serde(borrow)]
    pub(super) datatype: Cow<'a, str>,
    #[serde(default)]
    pub(super) parameters: Option<WireParameters>,
    #[serde(default, borrow)]
    pub(super) data: Option<&'a RawValue>,
}

#[derive(Deserialize)]
pub(super) struct WireOutput<'a> {
    #[serde(borrow)]
    pub(super) name: Cow<'a, str>,
    #[serde(default)]
    pub(super) parameters: Option<WireParameters>,
}

/// The request, input and output parameters this server reads; others are ignored.
#[derive(Deserialize, Default)]
pub(super) struct WireParameters {
    #[serde(default)]
    pub(super) binary_data_output: Option<bool>,
    #[serde(default)]
    pub(super) binary_data_size: Option<usize>,
    #[serde(default)]
    pub(super) binary_data: Option<bool>,
}

pub(super) fn parse_infer_typed(json_part: &[u8], mut binary: &[u8]) -> Option<Result<InferRequest>> {
    let wire: WireRequest = serde_json::from_slice(json_part).ok()?;
    if wire.inputs.is_empty() {
        return None;
    }
    let mut specs = Vec::with_capacity(wire.inputs.len());
    for input in &wire.inputs {
        specs.push(Datatype::parse(&input.datatype)?);
        let size = input.parameters.as_ref().and_then(|p| p.binary_data_size);
        if size.is_none() && input.data.is_none() {
            return None;
        }
    }
    let binary_output = wire.parameters.as_ref().and_then(|p| p.binary_data_output).unwrap_or(false);
    let mut inputs = Vec::with_capacity(wire.inputs.len());
    for (input, datatype) in wire.inputs.into_iter().zip(specs) {
        let name = input.name.into_owned();
        let size = input.parameters.as_ref().and_then(|p| p.binary_data_size);
        let decoded = match (size, input.data) {
            (Some(size), _) => {
                if size > binary.len() {
                    return Some(Err(Error::invalid(format!(
                        "input `{name}`: binary_data_size {size} is more than the {} bytes left in the body",
                        binary.len()
                    ))));
                }
                let (mine, rest) = binary.split_at(size);
                binary = rest;
                tensor::decode_binary(&name, datatype, &input.shape, mine)
            }
            (None, Some(raw)) => decode_json_raw(&name, datatype, &input.shape, raw),
            (None, None) => return None,
        };
        match decoded {
            Ok(data) => inputs.push(Tensor { name, shape: input.shape, data }),
            Err(e) => return Some(Err(e)),
        }
    }
    if !binary.is_empty() {
        return Some(Err(Error::invalid(format!(
            "{} bytes of binary data are not claimed by any input",
            binary.len()
        ))));
    }
    let outputs = wire.outputs.map(|outputs| {
        outputs
            .into_iter()
            .map(|o| RequestedOutput { name: o.name.into_owned(), binary: o.parameters.and_then(|p| p.binary_data) })
            .collect()
    });
    Some(Ok(InferRequest { id: wire.id.map(Cow::into_owned), inputs, outputs, binary_output }))
}

/// Decodes JSON `data`: flat lists of the common numeric types straight into their vectors, anything
/// else (nested lists, "NaN" strings, other datatypes) through [`tensor::decode_json`].
pub(super) fn decode_json_raw(name: &str, datatype: Datatype, shape: &[usize], raw: &RawValue) -> Result<TensorData> {
    let text = raw.get();
    let fast = match datatype {
        Datatype::Fp32 => serde_json::from_str::<Vec<f32>>(text).ok().map(TensorData::Fp32),
        Datatype::Fp64 => serde_json::from_str::<Vec<f64>>(text).ok().map(TensorData::Fp64),
        Datatype::Int64 => serde_json::from_str::<Vec<i64>>(text).ok().map(TensorData::Int64),
        Datatype::Int32 => serde_json::from_str::<Vec<i32>>(text).ok().map(TensorData::Int32),
        _ => None,
    };
    // Nested row lists (`[[1, 2], [3, 4]]`, what most clients send) of floats, flattened while parsing:
    // through a `Value` they would take about ten times their text in memory.
    let fast = fast.or_else(|| match datatype {
        Datatype::Fp32 | Datatype::Fp64 if text.trim_start().starts_with("[[") => {
            let mut values = Vec::with_capacity(tensor::element_count(shape).unwrap_or(0).min(text.len() / 2));
            let mut de = serde_json::Deserializer::from_str(text);
            serde::de::DeserializeSeed::deserialize(FlatNumbers(&mut values), &mut de).ok()?;
            de.end().ok()?;
            Some(match datatype {
                Datatype::Fp32 => TensorData::Fp32(values.into_iter().map(|v| v as f32).collect()),
                _ => TensorData::Fp64(values),
            })
        }
        _ => None,
    });
    match fast {
        Some(data) if tensor::element_count(shape) == Some(data.len()) => Ok(data),
        _ => {
            let value: Value = serde_json::from_str(text)
                .map_err(|e| Error::invalid(format!("input `{name}`: `data` is not valid JSON: {e}")))?;
            tensor::decode_json(name, datatype, shape, &value)
        }
    }
}

/// Reads numbers and (nested) lists of numbers into one flat vector, row-major; anything else is an
/// error (the caller then takes the precise path).
struct FlatNumbers<'v>(&'v mut Vec<f64>);

impl<'de> serde::de::DeserializeSeed<'de> for FlatNumbers<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for FlatNumbers<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("numbers or lists of numbers")
    }
    fn visit_f64<E>(self, v: f64) -> std::result::Result<(), E> {
        self.0.push(v);
        Ok(())
    }
    fn visit_i64<E>(self, v: i64) -> std::result::Result<(), E> {
        self.0.push(v as f64);
        Ok(())
    }
    fn visit_u64<E>(self, v: u64) -> std::result::Result<(), E> {
        self.0.push(v as f64);
        Ok(())
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<(), A::Error> {
        while seq.next_element_seed(FlatNumbers(&mut *self.0))?.is_some() {}
        Ok(())
    }
}

/// The V2 request read through a `serde_json::Value`: slower, and precise about what is wrong.
pub(super) fn parse_infer_value(
    headers: &HeaderMap,
    header_length: Option<usize>,
    json_part: &[u8],
    mut binary: &[u8],
) -> Result<InferRequest> {
    let mut object = parse_json_object(json_part).map_err(|e| {
        let is_json = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.to_ascii_lowercase().contains("json"));
        if header_length.is_none() && !is_json {
            Error::invalid(format!("{e} (binary tensor requests need the `{HEADER_LENGTH}` header)"))
        } else {
            e
        }
    })?;
    let id = match object.remove("id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(other) => return Err(Error::invalid(format!("`id` must be a string, got {other}"))),
    };
    let binary_output = bool_param(object.get("parameters"), "binary_data_output")?.unwrap_or(false);
    let inputs_json = match object.remove("inputs") {
        Some(Value::Array(items)) if !items.is_empty() => items,
        Some(Value::Array(_)) => return Err(Error::invalid("`inputs` is empty")),
        Some(_) => return Err(Error::invalid("`inputs` must be a list")),
        None => return Err(Error::invalid("missing `inputs`")),
    };
    let mut inputs = Vec::with_capacity(inputs_json.len());
    for (i, item) in inputs_json.into_iter().enumerate() {
        let Value::Object(mut item) = item else {
            return Err(Error::invalid(format!("inputs[{i}] must be an object")));
        };
        let name = match item.remove("name") {
            Some(Value::String(s)) => s,
            _ => return Err(Error::invalid(format!("inputs[{i}]: missing string `name`"))),
        };
        let shape = match item.get("shape") {
            Some(Value::Array(dims)) => dims
                .iter()
                .map(|d| d.as_u64().and_then(|d| usize::try_from(d).ok()))
                .collect::<Option<Vec<usize>>>()
                .ok_or_else(|| {
                    Error::invalid(format!("input `{name}`: `shape` must be a list of non-negative integers"))
                })?,
            _ => return Err(Error::invalid(format!("input `{name}`: missing `shape`"))),
        };
        let datatype = match item.get("datatype") {
            Some(Value::String(s)) => {
                Datatype::parse(s).ok_or_else(|| Error::invalid(format!("input `{name}`: unknown datatype `{s}`")))?
            }
            _ => return Err(Error::invalid(format!("input `{name}`: missing `datatype`"))),
        };
        let binary_size = int_param(item.get("parameters"), "binary_data_size")
            .map_err(|e| Error::invalid(format!("input `{name}`: {e}")))?;
        let data = match binary_size {
            Some(size) => {
                if size > binary.len() {
                    return Err(Error::invalid(format!(
                        "input `{name}`: binary_data_size {size} is more than the {} bytes left in the body",
                        binary.len()
                    )));
                }
                let (mine, rest) = binary.split_at(size);
                binary = rest;
                tensor::decode_binary(&name, datatype, &shape, mine)?
            }
            None => match item.get("data") {
                Some(data) => tensor::decode_json(&name, datatype, &shape, data)?,
                None => return Err(Error::invalid(format!("input `{name}`: missing `data`"))),
            },
        };
        inputs.push(Tensor { name, shape, data });
    }
    if !binary.is_empty() {
        return Err(Error::invalid(format!("{} bytes of binary data are not claimed by any input", binary.len())));
    }
    let outputs = match object.remove("outputs") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => Some(
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| {
                    let name = item
                        .get("name")
                        .and_then(Value::as_str)
                        .ok_or_else(|| Error::invalid(format!("outputs[{i}]: missing string `name`")))?
                        .to_owned();
                    let binary = bool_param(item.get("parameters"), "binary_data")?;
                    Ok(RequestedOutput { name, binary })
                })
                .collect::<Result<Vec<_>>>()?,
        ),
        Some(_) => return Err(Error::invalid("`outputs` must be a list")),
    };
    Ok(InferRequest { id, inputs, outputs, binary_output })
}

pub(super) fn bool_param(parameters: Option<&Value>, key: &str) -> Result<Option<bool>> {
    match parameters.and_then(|p| p.get(key)) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(Error::invalid(format!("parameter `{key}` must be a boolean, got {other}"))),
    }
}

pub(super) fn int_param(parameters: Option<&Value>, key: &str) -> Result<Option<usize>> {
    match parameters.and_then(|p| p.get(key)) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| Error::invalid(format!("parameter `{key}` must be a non-negative integer, got {v}"))),
    }
}

pub(super) fn build_infer_response(
    model: &str,
    version: &str,
    id: Option<String>,
    requested: Option<Vec<RequestedOutput>>,
    binary_output: bool,
    outputs: Vec<Tensor>,
) -> Result<Response> {
    let selected: Vec<(Tensor, bool)> = match requested {
        None => outputs.into_iter().map(|t| (t, binary_output)).collect(),
        Some(requested) => {
            let mut outputs: Vec<Option<Tensor>> = outputs.into_iter().map(Some).collect();
            let mut selected = Vec::with_capacity(requested.len());
            for r in requested {
                let position = outputs.iter().position(|o| o.as_ref().is_some_and(|t| t.name == r.name));
                let tensor = position.and_then(|i| outputs[i].take()).ok_or_else(|| {
                    Error::invalid(format!("model `{model}` has no output `{}` (or it was requested twice)", r.name))
                })?;
                selected.push((tensor, r.binary.unwrap_or(binary_output)));
            }
            selected
        }
    };
    let id = id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let mut binary_tail: Vec<u8> = Vec::new();
    let elements: usize = selected.iter().map(|(t, binary)| if *binary { 0 } else { t.data.len() }).sum();
    let mut bytes = Vec::with_capacity(128 + model.len() + id.len() + 96 * selected.len() + 24 * elements);
    bytes.extend_from_slice(b"{\"model_name\":");
    write_json(&mut bytes, model);
    bytes.extend_from_slice(b",\"model_version\":");
    write_json(&mut bytes, version);
    bytes.extend_from_slice(b",\"id\":");
    write_json(&mut bytes, &id);
    bytes.extend_from_slice(b",\"outputs\":[");
    for (i, (t, binary)) in selected.iter().enumerate() {
        if i > 0 {
            bytes.push(b',');
        }
        bytes.extend_from_slice(b"{\"name\":");
        write_json(&mut bytes, &t.name);
        bytes.extend_from_slice(b",\"datatype\":\"");
        bytes.extend_from_slice(t.datatype().name().as_bytes());
        bytes.extend_from_slice(b"\",\"shape\":");
        write_json(&mut bytes, &t.shape);
        if *binary {
            let start = binary_tail.len();
            t.write_binary(&mut binary_tail);
            bytes.extend_from_slice(b",\"parameters\":{\"binary_data_size\":");
            write_json(&mut bytes, &(binary_tail.len() - start));
            bytes.push(b'}');
        } else {
            bytes.extend_from_slice(b",\"data\":");
            t.write_data_json(&mut bytes);
        }
        bytes.push(b'}');
    }
    bytes.extend_from_slice(b"]}");
    if binary_tail.is_empty() {
        return Ok((StatusCode::OK, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], bytes)
            .into_response());
    }
    let json_length = bytes.len();
    bytes.extend_from_slice(&binary_tail);
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream")),
            (header::HeaderName::from_static(HEADER_LENGTH), HeaderValue::from(json_length)),
        ],
        bytes,
    )
        .into_response())
}

/// Appends `value` as JSON (writing to a `Vec` cannot fail, nor can these plain values).
pub(super) fn write_json<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    let _ = serde_json::to_writer(out, value);
}
