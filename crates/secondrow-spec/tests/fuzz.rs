//! Property-based fuzzing of everything in this crate that reads untrusted text: the IR parser and validation
//! (from mutated real specs and from generated JSON shaped like the IR), container-argument placeholders, and
//! the CEL subset. The property is always the same: an error or a value comes back, never a panic or a stack
//! overflow.
//!
//! The test command runs a bounded number of cases (`PROPTEST_CASES`, default below); a longer run is
//! `PROPTEST_CASES=20000 cargo test -p secondrow-spec --test fuzz --release`.

use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::{json, Value};

use secondrow_spec::cel::{self, CelValue, Env};
use secondrow_spec::placeholder::{self, Placeholder, PlaceholderContext, PlaceholderError};
use secondrow_spec::Pipeline;

/// Cases per property when `PROPTEST_CASES` is not set: the four properties take a few seconds together.
const DEFAULT_CASES: u32 = 256;

fn config() -> Config {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(DEFAULT_CASES);
    Config { cases, failure_persistence: None, ..Config::default() }
}

fn samples() -> Vec<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/kfp/samples");
    let mut texts: Vec<String> = std::fs::read_dir(&dir)
        .expect("testdata/kfp/samples exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .map(|p| std::fs::read_to_string(p).expect("sample is readable"))
        .collect();
    texts.sort();
    assert!(texts.len() >= 5, "expected the kfp samples in {}", dir.display());
    texts
}

/// Fragments that matter to YAML, the IR and placeholders, for splicing into real specs.
#[rustfmt::skip]
const FRAGMENTS: &[&str] = &[
    "\n", " ", "  ", "- ", ": ", "[", "]", "{", "}", ",", "'", "\"", "#", "|", ">", "&a ", "*a", "!!str ", "---\n",
    "null", "~", "1e309", "-1", "0", "true", "{{$", "}}", "{{$.inputs.parameters['x']}}", "componentRef",
    "taskOutputParameter", "producerTask", "dependentTasks", "iteratorPolicy", "parameterIterator", "triggerPolicy",
    "condition", "executorLabel", "root", "dag", "tasks", "components", "comp-", "exec-", "\t", "\u{0}", "é",
];

/// One edit of a text: remove a span, insert a fragment, or duplicate a span elsewhere.
#[derive(Debug, Clone)]
enum Edit {
    Remove { at: usize, len: usize },
    Insert { at: usize, fragment: usize },
    Copy { from: usize, len: usize, to: usize },
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), 1usize..40).prop_map(|(at, len)| Edit::Remove { at, len }),
        (any::<usize>(), 0..FRAGMENTS.len()).prop_map(|(at, fragment)| Edit::Insert { at, fragment }),
        (any::<usize>(), 1usize..200, any::<usize>()).prop_map(|(from, len, to)| Edit::Copy { from, len, to }),
    ]
}

/// Applies edits at character boundaries (positions are taken modulo the text's length).
fn apply(text: &str, edits: &[Edit]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for e in edits {
        let n = chars.len().max(1);
        match *e {
            Edit::Remove { at, len } => {
                let at = at % n;
                let end = (at + len).min(chars.len());
                chars.drain(at.min(end)..end);
            }
            Edit::Insert { at, fragment } => {
                let at = at % (chars.len() + 1);
                chars.splice(at..at, FRAGMENTS[fragment].chars());
            }
            Edit::Copy { from, len, to } => {
                let from = from % n;
                let end = (from + len).min(chars.len());
                let piece: Vec<char> = chars[from.min(end)..end].to_vec();
                let to = to % (chars.len() + 1);
                chars.splice(to..to, piece);
            }
        }
    }
    chars.into_iter().collect()
}

/// JSON values shaped like IR: objects keyed by IR field names, so generated documents get past the first
/// type checks into validation and graph building.
fn ir_json() -> impl Strategy<Value = Value> {
    #[rustfmt::skip]
    const KEYS: &[&str] = &[
        "pipelineInfo", "name", "root", "dag", "tasks", "components", "deploymentSpec", "executors", "container",
        "image", "command", "args", "componentRef", "taskInfo", "inputs", "outputs", "parameters", "artifacts",
        "componentInputParameter", "taskOutputParameter", "producerTask", "outputParameterKey", "runtimeValue",
        "constant", "dependentTasks", "triggerPolicy", "condition", "strategy", "iteratorPolicy", "parallelism",
        "parameterIterator", "items", "raw", "inputParameter", "itemInput", "executorLabel", "inputDefinitions",
        "outputDefinitions", "parameterType", "defaultValue", "isOptional", "schemaVersion", "sdkVersion", "comp-a",
        "comp-b", "exec-a", "a", "b", "x", "parameterExpressionSelector", "importer", "artifactUri",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|i| json!(i)),
        (0..KEYS.len()).prop_map(|k| json!(KEYS[k])),
        Just(json!("STRING")),
        Just(json!("NUMBER_INTEGER")),
        Just(json!("{{$.inputs.parameters['a']}}")),
        Just(json!("inputs.parameter_values['a'] == 1")),
    ];
    leaf.prop_recursive(6, 80, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((0..KEYS.len(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (KEYS[k].to_string(), v)).collect())),
        ]
    })
}

/// Text built from the pieces placeholders and CEL are made of.
fn pieces(alphabet: &'static [&'static str], max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(0..alphabet.len(), 0..max).prop_map(move |ix| ix.into_iter().map(|i| alphabet[i]).collect())
}

#[rustfmt::skip]
const PLACEHOLDER_PIECES: &[&str] = &[
    "{{$", "}}", "{{", "}", "{", ".inputs", ".outputs", ".parameters", ".artifacts", "['", "']", "[\"", "\"]", "x",
    "'", "\"", ".uri", ".path", ".metadata", ".pipeline_job_name", ".pipeline_root", ".pipeline_task_uuid", "]",
    "[", ".", "{\"Concat\": [", "{\"IfPresent\": {\"InputName\": \"x\", \"Then\": [", "]}}", "]}", ", ", "\\",
    "\u{1F600}", "$",
];

#[rustfmt::skip]
const CEL_PIECES: &[&str] = &[
    "(", ")", "[", "]", "{", "}", ",", ":", "?", "!", "-", "+", "*", "/", "%", "==", "!=", "<", "<=", ">", ">=",
    "&&", "||", " in ", ".", "1", "0", "9223372036854775807", "-9223372036854775808", "1.5", "1e400", "'a'",
    "\"b\"", "'\\u00e9'", "'\\", "true", "false", "null", "int", "double", "string", "bool", "size", "parseJson",
    "dyn", "contains", "startsWith", "inputs", "parameter_values", "['x']", "['xs']", " ",
];

struct Ctx;

impl PlaceholderContext for Ctx {
    fn value(&self, p: &Placeholder) -> Result<Option<String>, PlaceholderError> {
        Ok(Some(format!("{p:?}")))
    }
    fn is_present(&self, input: &str) -> bool {
        input.len().is_multiple_of(2)
    }
}

fn cel_env() -> Env {
    let mut env = Env::new();
    let values = json!({"x": 3, "xs": [1, 2, "a"], "s": "{\"a\": [1, {\"b\": null}]}"});
    env.insert("inputs".into(), CelValue::from_json(&json!({ "parameter_values": values })));
    env
}

#[test]
fn mutated_real_specs_never_panic() {
    let texts = samples();
    proptest!(config(), |(which in 0..texts.len(), edits in prop::collection::vec(edit(), 1..8))| {
        let text = apply(&texts[which], &edits);
        let _ = Pipeline::from_yaml(&text);
    });
}

#[test]
fn generated_ir_json_never_panics() {
    proptest!(config(), |(doc in ir_json())| {
        let _ = Pipeline::from_json(&doc);
        let _ = Pipeline::from_json(&json!({ "pipeline_spec": doc }));
    });
}

#[test]
fn placeholders_never_panic() {
    proptest!(config(), |(text in pieces(PLACEHOLDER_PIECES, 16))| {
        if let Ok(arg) = placeholder::parse_arg(&text) {
            let _ = placeholder::placeholders(&arg);
            let _ = placeholder::expand(std::slice::from_ref(&arg), &Ctx);
        }
        if let Ok(segments) = placeholder::parse_text(&text) {
            let _ = placeholder::expand_text(&segments, &Ctx);
        }
    });
}

#[test]
fn cel_never_panics() {
    let env = cel_env();
    proptest!(config(), |(text in pieces(CEL_PIECES, 24))| {
        if let Ok(expr) = cel::parse(&text) {
            let _ = cel::eval(&expr, &env);
        }
        let _ = cel::eval_condition(&text, &env);
    });
}
