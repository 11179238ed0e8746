//! Components: the catalogue ([`spec`]), argument and executor-input handling ([`invocation`]) and the
//! component bodies ([`run`]).

pub mod invocation;
pub mod run;
pub mod spec;

use crate::error::{Error, Result};

/// Runs `secondrow component NAME --arg value ...`: `argv[0]` is the component name, the rest are
/// `--key value` pairs (or `--executor-input JSON` from a kfp backend).
pub fn run_component(argv: &[String]) -> Result<()> {
    let Some(name) = argv.first() else {
        return Err(Error::UnknownComponent { name: String::new(), available: spec::COMPONENT_NAMES.join(", ") });
    };
    let name = name.replace('-', "_");
    let spec = spec::spec(&name)
        .ok_or_else(|| Error::UnknownComponent { name: name.clone(), available: spec::COMPONENT_NAMES.join(", ") })?;
    let invocation = invocation::Invocation::parse(spec, &argv[1..])?;
    run::run(&invocation)
}

/// Names of the built-in components.
pub fn component_names() -> &'static [&'static str] {
    spec::COMPONENT_NAMES
}

/// The kfp component YAML of component `name` (what `components/NAME.yaml` holds).
pub fn component_yaml(name: &str) -> Result<String> {
    let spec = spec::spec(name).ok_or_else(|| Error::UnknownComponent {
        name: name.to_string(),
        available: spec::COMPONENT_NAMES.join(", "),
    })?;
    Ok(spec::component_yaml(&spec))
}

/// A short usage text listing every component and its inputs (for `secondrow component --help`).
pub fn usage() -> String {
    let mut text = String::from("usage: secondrow component NAME --input value ...\n\ncomponents:\n");
    for spec in spec::specs() {
        text.push_str(&format!("  {:<27} {}\n", spec.name, spec.description));
        let ports: Vec<String> = spec
            .inputs
            .iter()
            .chain(&spec.outputs)
            .map(|p| format!("--{}{}", p.name.replace('_', "-"), if p.optional { "" } else { "*" }))
            .collect();
        text.push_str(&format!("  {:<27}   {}\n", "", ports.join(" ")));
    }
    text.push_str("\n* required. Outputs are paths; omitted outputs are not written.\n");
    text
}
