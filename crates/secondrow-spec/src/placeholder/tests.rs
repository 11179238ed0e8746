use super::*;

struct Ctx;

impl PlaceholderContext for Ctx {
    fn value(&self, p: &Placeholder) -> Result<Option<String>, PlaceholderError> {
        Ok(match p {
            Placeholder::InputParameter(n) if n == "msg" => Some("hello".into()),
            Placeholder::InputParameter(n) if n == "suffix" => None,
            Placeholder::OutputParameterFile(n) => Some(format!("/out/{n}")),
            Placeholder::InputArtifact { name, field: ArtifactField::MetadataKey(k) } => Some(format!("{name}.{k}")),
            Placeholder::PipelineJobUuid => Some("u-1".into()),
            other => return Err(PlaceholderError::Value(format!("unexpected {other:?}"))),
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
    assert!(parse_arg("{{$.inputs.parameters['x'].json_escape[0]}}")
        .unwrap_err()
        .to_string()
        .contains("unknown placeholder"));
    assert!(parse_arg("{{$.nope}}").is_err());
    assert!(parse_arg("{{$.inputs.parameters['x']").unwrap_err().to_string().contains("unterminated"));
    assert!(parse_arg(r#"{"Concat": 3}"#).is_err());
}

#[test]
fn errors_keep_their_wording_and_kind() {
    let e = parse_arg("a {{$.nope}}").unwrap_err();
    assert_eq!(e, PlaceholderError::Unknown(".nope".into()));
    assert_eq!(e.to_string(), "unknown placeholder `{{$.nope}}`");
    assert_eq!(e.kind(), secondrow_error::ErrorKind::InvalidInput);
    assert_eq!(parse_text("x {{$").unwrap_err().to_string(), "unterminated placeholder in `x {{$`");
    assert_eq!(parse_arg(r#"{"Concat": 3}"#).unwrap_err().to_string(), "`Concat` must hold a list");
    assert_eq!(parse_arg(r#"{"IfPresent": {}}"#).unwrap_err().to_string(), "`IfPresent` needs a string `InputName`");
    assert!(parse_arg(r#"{"Concat": ["#).unwrap_err().to_string().starts_with("invalid structured placeholder: "));
    let ctx_error = expand(&[parse_arg("{{$.pipeline_root}}").unwrap()], &Ctx).unwrap_err();
    assert_eq!(ctx_error.kind(), secondrow_error::ErrorKind::Internal);
}
