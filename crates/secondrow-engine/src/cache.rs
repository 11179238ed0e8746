//! Cache keys (docs/kfp-contract.md §3.6): a digest over what determines a task's result.
//!
//! The key covers the executor (image, command, args, env), the component's input and output
//! definitions, the resolved input parameter values and the identity (URI and type) of input artifacts.
//! A `cachingOptions.cacheKey` given by the user replaces the computed key. Every key includes the run's
//! namespace: one namespace never reuses (or seeds) another's cache entries.

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use secondrow_spec::ir::{ComponentSpec, ContainerSpec};

use crate::task::IoValues;

pub fn cache_key(
    container: &ContainerSpec,
    component: &ComponentSpec,
    inputs: &IoValues,
    custom: Option<&str>,
    namespace: &str,
) -> String {
    if let Some(k) = custom.filter(|k| !k.is_empty()) {
        let material = json!({"namespace": namespace, "custom": k});
        return hex::encode(Sha256::digest(material.to_string().as_bytes()));
    }
    let artifacts: Map<String, Value> = inputs
        .artifacts
        .iter()
        .map(|(name, list)| {
            let ids: Vec<Value> = list.iter().map(|a| json!([a.uri, a.schema.schema_title])).collect();
            (name.clone(), Value::Array(ids))
        })
        .collect();
    let material = json!({
        "v": 1,
        "namespace": namespace,
        "image": container.image,
        "command": container.command,
        "args": container.args,
        "env": container.env.iter().map(|e| json!([e.name, e.value])).collect::<Vec<_>>(),
        "inputDefinitions": serde_json::to_value(&component.input_definitions).unwrap_or(Value::Null),
        "outputDefinitions": serde_json::to_value(&component.output_definitions).unwrap_or(Value::Null),
        "parameters": Value::Object(inputs.parameters.clone()),
        "artifacts": Value::Object(artifacts),
    });
    hex::encode(Sha256::digest(canonical(&material).to_string().as_bytes()))
}

/// The same value with every object's keys sorted, so equal content always serialises equally.
pub fn canonical(v: &Value) -> Value {
    match v {
        Value::Object(o) => {
            let mut keys: Vec<_> = o.keys().collect();
            keys.sort();
            Value::Object(keys.into_iter().map(|k| (k.clone(), canonical(&o[k]))).collect())
        }
        Value::Array(a) => Value::Array(a.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_depends_on_inputs_not_on_key_order() {
        let c = ContainerSpec { image: "python:3.11".into(), command: vec!["sh".into()], ..Default::default() };
        let comp = ComponentSpec::default();
        let mut a = IoValues::default();
        a.parameters.insert("x".into(), json!(1));
        a.parameters.insert("y".into(), json!({"b": 1, "a": 2}));
        let mut b = IoValues::default();
        b.parameters.insert("y".into(), json!({"a": 2, "b": 1}));
        b.parameters.insert("x".into(), json!(1));
        assert_eq!(cache_key(&c, &comp, &a, None, "ns"), cache_key(&c, &comp, &b, None, "ns"));
        b.parameters.insert("x".into(), json!(2));
        assert_ne!(cache_key(&c, &comp, &a, None, "ns"), cache_key(&c, &comp, &b, None, "ns"));
        assert_eq!(cache_key(&c, &comp, &a, Some("k"), "ns"), cache_key(&c, &comp, &b, Some("k"), "ns"));
    }

    #[test]
    fn namespaces_never_share_a_key() {
        let c = ContainerSpec { image: "python:3.11".into(), command: vec!["sh".into()], ..Default::default() };
        let comp = ComponentSpec::default();
        let a = IoValues::default();
        assert_ne!(cache_key(&c, &comp, &a, None, "team-a"), cache_key(&c, &comp, &a, None, "team-b"));
        assert_ne!(cache_key(&c, &comp, &a, Some("k"), "team-a"), cache_key(&c, &comp, &a, Some("k"), "team-b"));
    }
}
