use super::*;

struct Ctx;

impl PlaceholderContext for Ctx {
    fn value(&self, p: &Placeholder) -> Result<Option<String>, String> {
        Ok(match p {
            Placeholder::InputParameter(n) if n == "msg" => Some("hello".into()),
            Placeholder::InputParameter(n) if n == "suffix" => None,
            Placeholder::OutputParameterFile(n) => Some(format!("/out/{n}")),
            Placeholder::InputArtifact { name, field: ArtifactField::MetadataKey(k) } => Some(format!("{name}.{k}")),
            Placeholder::PipelineJobUuid => Some("u-1".into()),
            other => return Err(format!("unexpected {other:?}")),
        })
    }
    fn is_present(&self, input: &str) -> bool {
        input == "msg"
    }
}

fn check(args: &[&str], expect: &[&str]) {
    let parsed: Vec<_> = args.iter().map(|a| parse_arg(a).unwrap()).collect();
    assert_eq!(expand(&parsed, &Ctx).unwrap(), expect);
}

#[test]
fn plain_and_embedded() {
    check(&["a", "{{$.inputs.parameters['msg']}}-x", "{{$.pipeline_job_uuid}}"], &["a", "hello-x", "u-1"]);
    check(&["{{$.outputs.parameters['out'].output_file}}"], &["/out/out"]);
    check(&["{{$.inputs.artifacts[\"d\"].metadata['rows']}}"], &["d.rows"]);
}

#[test]
fn structured() {
    check(&[r#"{"Concat": ["{{$.inputs.parameters['msg']}}", "-", "x"]}"#], &["hello-x"]);
    check(
        &[
            r#"{"IfPresent": {"InputName": "suffix", "Then": ["--suffix", "{{$.inputs.parameters['suffix']}}"], "Else": ["--none"]}}"#,
        ],
        &["--none"],
    );
    check(
        &[r#"{"IfPresent": {"InputName": "msg", "Then": {"Concat": ["--m=", "{{$.inputs.parameters['msg']}}"]}}}"#],
        &["--m=hello"],
    );
    check(&[r#"{"IfPresent": {"InputName": "suffix", "Then": "x"}}"#], &[]);
}

#[test]
fn unknown_placeholders_are_rejected() {
    assert!(parse_arg("{{$.inputs.parameters['x'].json_escape[0]}}").unwrap_err().contains("unknown placeholder"));
    assert!(parse_arg("{{$.nope}}").is_err());
    assert!(parse_arg("{{$.inputs.parameters['x']").unwrap_err().contains("unterminated"));
    assert!(parse_arg(r#"{"Concat": 3}"#).is_err());
}
