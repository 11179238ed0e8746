//! Katib's metrics collectors as parsers: the default StdOut filter, custom filters, timestamps, JSON lines.

use secondrow_tune::metrics::{parse_json_lines, parse_text, series, summarise, Filters};

fn names(n: &[&str]) -> Vec<String> {
    n.iter().map(|s| s.to_string()).collect()
}

fn pairs(text: &str, want: &[&str]) -> Vec<(String, String)> {
    parse_text(text, &names(want), &Filters::default_filter()).into_iter().map(|l| (l.name, l.value)).collect()
}

#[test]
fn the_default_filter_reads_name_equals_value() {
    let p = |a: &str, b: &str| (a.to_string(), b.to_string());
    assert_eq!(
        pairs("epoch 3 accuracy=0.93 loss=0.21", &["accuracy", "loss"]),
        [p("accuracy", "0.93"), p("loss", "0.21")]
    );
    assert_eq!(pairs("Validation-accuracy = .978", &["Validation-accuracy"]), [p("Validation-accuracy", ".978")]);
    assert_eq!(pairs("score=-7.53e-05", &["score"]), [p("score", "-7.53e-05")]);
    assert_eq!(pairs("lr=1E3", &["lr"]), [p("lr", "1E3")]);
    assert_eq!(pairs("accuracy=93%", &["accuracy"]), [p("accuracy", "93")]);
    assert!(pairs("accuracy: 0.93", &["accuracy"]).is_empty());
    assert!(pairs("{'loss': 0.2}", &["loss"]).is_empty());
    assert_eq!(pairs("loss=nan", &["loss"]), [p("loss", "")]);
    // Names must match exactly; other names on the line are ignored.
    assert_eq!(pairs("train-accuracy=0.5 accuracy=0.6 epoch=2", &["accuracy"]), [p("accuracy", "0.6")]);
    assert!(pairs("nothing to see", &["accuracy"]).is_empty());
}

#[test]
fn intermediate_values_come_in_order_with_timestamps() {
    let text = "2024-05-01T10:00:00Z epoch=1 accuracy=0.5\nnoise\n2024-05-01T10:00:05+02:00 epoch=2 accuracy=0.7\nepoch=3 accuracy=0.6 loss=0.3\n";
    let logs = parse_text(text, &names(&["accuracy", "loss"]), &Filters::default_filter());
    assert_eq!(series(&logs, "accuracy"), [0.5, 0.7, 0.6]);
    assert_eq!(logs[0].timestamp.map(|t| t.timestamp()), Some(1_714_557_600));
    assert!(logs[1].timestamp.is_some());
    assert_eq!(logs[2].timestamp, None);
    let s = summarise(&logs, &names(&["accuracy", "loss", "f1"]));
    assert_eq!(s.len(), 2, "a metric never reported has no summary");
    assert_eq!((s[0].min, s[0].max, s[0].latest), (0.5, 0.7, 0.6));
    assert_eq!(s[0].value("max"), 0.7);
    assert_eq!(s[0].value("latest"), 0.6);
    assert_eq!(s[1].latest, 0.3);
    assert!(summarise(&logs, &names(&["f1"])).is_empty());
}

#[test]
fn custom_filters_replace_the_default() {
    let f = Filters::new(&[r"(\w+):\s*([0-9.]+)".to_string()], "spec.metricsCollectorSpec.source.filter.metricsFormat")
        .expect("valid");
    let logs = parse_text("accuracy: 0.93 loss: 0.2\naccuracy=0.5", &names(&["accuracy", "loss"]), &f);
    assert_eq!(
        logs.iter().map(|l| (l.name.as_str(), l.value.as_str())).collect::<Vec<_>>(),
        [("accuracy", "0.93"), ("loss", "0.2")]
    );
    let err = Filters::new(&["acc=(.*)".to_string()], "p").expect_err("one group");
    assert_eq!(err.path(), Some("p[0]"));
    assert!(Filters::new(&["(unclosed".to_string()], "p").is_err());
}

#[test]
fn json_lines_take_string_values_only() {
    let text = "{\"accuracy\": \"0.93\", \"timestamp\": \"2024-05-01T10:00:00Z\"}\n\n{\"accuracy\": 0.95}\n{\"accuracy\": \"0.97\", \"loss\": \"0.1\", \"timestamp\": 1714557600.5}\n";
    let logs = parse_json_lines(text, &names(&["accuracy", "loss"])).expect("parse");
    assert_eq!(series(&logs, "accuracy"), [0.93, 0.97], "bare numbers are skipped as Katib's collector does");
    assert_eq!(logs[1].timestamp.map(|t| t.timestamp()), Some(1_714_557_600));
    assert_eq!(series(&logs, "loss"), [0.1]);
    let err = parse_json_lines("{\"a\": \"1\"}\nnot json\n", &names(&["a"])).expect_err("bad line");
    assert!(err.to_string().contains("line 2"), "{err}");
    assert!(parse_json_lines("[1, 2]\n", &names(&["a"])).is_err());
}
