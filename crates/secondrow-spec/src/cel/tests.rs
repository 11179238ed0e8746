use serde_json::json;

use super::*;

fn env(params: serde_json::Value) -> Env {
    let mut env = Env::new();
    env.insert("inputs".into(), CelValue::from_json(&json!({ "parameter_values": params })));
    env
}

fn check(src: &str, params: serde_json::Value, expect: bool) {
    assert_eq!(eval_condition(src, &env(params)), Ok(expect), "{src}");
}

#[test]
fn compiler_forms() {
    let p = json!({"pipelinechannel--pick-Output": 7, "pipelinechannel--n": 7.0,
                   "pipelinechannel--ratio-Output": 0.75, "pipelinechannel--threshold": 0.5,
                   "pipelinechannel--coin-Output": "heads", "pipelinechannel--truth-Output": true,
                   "pipelinechannel--mode": "fast", "pipelinechannel--flag": false});
    check("int(inputs.parameter_values['pipelinechannel--pick-Output']) > 5", p.clone(), true);
    check("int(inputs.parameter_values['pipelinechannel--pick-Output']) > int(inputs.parameter_values['pipelinechannel--n'])", p.clone(), false);
    check("!(int(inputs.parameter_values['pipelinechannel--pick-Output']) > 5) && int(inputs.parameter_values['pipelinechannel--pick-Output']) == 5", p.clone(), false);
    check("!(int(inputs.parameter_values['pipelinechannel--pick-Output']) > 5) && !(int(inputs.parameter_values['pipelinechannel--pick-Output']) == 5)", p.clone(), false);
    check("inputs.parameter_values['pipelinechannel--ratio-Output'] >= 0.25", p.clone(), true);
    check("inputs.parameter_values['pipelinechannel--ratio-Output'] >= inputs.parameter_values['pipelinechannel--threshold']", p.clone(), true);
    check("inputs.parameter_values['pipelinechannel--coin-Output'] == 'heads'", p.clone(), true);
    check("inputs.parameter_values['pipelinechannel--coin-Output'] < 'm'", p.clone(), true);
    check("inputs.parameter_values['pipelinechannel--mode'] != 'slow'", p.clone(), true);
    check("inputs.parameter_values['pipelinechannel--truth-Output'] == true", p.clone(), true);
    check("inputs.parameter_values['pipelinechannel--flag'] == false", p, true);
}

#[test]
fn general_cel() {
    let p = json!({"xs": [1, 2, 3], "s": "light blue", "m": {"a": 1}});
    check("2 in inputs.parameter_values.xs", p.clone(), true);
    check("size(inputs.parameter_values.xs) == 3 && inputs.parameter_values.xs[2] == 3", p.clone(), true);
    check("inputs.parameter_values.s.startsWith('light') || 1 / 0 == 1", p.clone(), true);
    check("inputs.parameter_values.s == \"light blue\" ? true : false", p.clone(), true);
    check("1 + 2 * 3 == 7 && -(2) < 0 && 7 % 4 == 3", p.clone(), true);
    check("'a' in inputs.parameter_values.m && inputs.parameter_values.m.a == 1.0", p, true);
}

#[test]
fn selector() {
    let mut e = Env::new();
    e.insert("string_value".into(), CelValue::String("{\"a\": 1, \"b\": 10}".into()));
    let v = eval(&parse("parseJson(string_value)[\"b\"]").unwrap(), &e).unwrap();
    assert_eq!(v, CelValue::Int(10));
}

#[test]
fn errors_name_the_problem() {
    assert!(parse("int(").unwrap_err().message.contains("ended"));
    assert!(parse("a $ b").unwrap_err().message.contains("unexpected character `$`"));
    let e = eval_condition("inputs.parameter_values['missing'] == 1", &env(json!({}))).unwrap_err();
    assert!(e.message.contains("missing"), "{e}");
    let e = eval_condition("'a' < 1", &env(json!({}))).unwrap_err();
    assert!(e.message.contains("no such overload"), "{e}");
}

#[test]
fn hostile_expressions_are_refused_not_overflowing_the_stack() {
    let deep_parens = format!("{}1{}", "(".repeat(1000), ")".repeat(1000));
    assert!(parse(&deep_parens).unwrap_err().message.contains("nests deeper than 64"));
    let negations = format!("{}true", "!".repeat(1000));
    assert!(parse(&negations).unwrap_err().message.contains("nests deeper"));
    let chain = vec!["1"; 50_000].join(" + ");
    assert!(parse(&chain).unwrap_err().message.contains("tokens"));
    let huge = format!("{}1{}", "(".repeat(100_000), ")".repeat(100_000));
    assert!(parse(&huge).unwrap_err().message.contains("tokens"));
    let lists = format!("{}{}", "[".repeat(1000), "]".repeat(1000));
    assert!(parse(&lists).is_err());
    // Just inside the limits: parses and evaluates.
    let ok = format!("{}1{} == 1", "(".repeat(60), ")".repeat(60));
    assert_eq!(eval_condition(&ok, &env(json!({}))), Ok(true));
}
