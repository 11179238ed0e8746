//! Names that become file-system paths: task keys (a task's folder under the run's folder), output
//! parameter and artifact names (files in the task's folder) and component names. A spec can name them
//! anything, so each must be one plain path segment: never empty, `.` or `..`, never containing `/`, `\`,
//! NUL or control characters, at most 255 bytes. Then no spec can make the engine create, write or remove
//! anything outside its run's folders.

use crate::ir::ComponentSpec;
use crate::Problem;

/// Why `name` is not a plain path segment, if it is not.
pub fn segment_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("is empty")
    } else if name == "." || name == ".." {
        Some("is `.` or `..`")
    } else if name.contains(['/', '\\']) {
        Some("contains a path separator")
    } else if name.chars().any(char::is_control) {
        Some("contains a control character")
    } else if name.len() > 255 {
        Some("is longer than 255 bytes")
    } else {
        None
    }
}

fn check(what: &str, name: &str, loc: &str, problems: &mut Vec<Problem>) {
    if let Some(why) = segment_problem(name) {
        problems.push(Problem::new(loc, format!("{what} `{}` {why}: names become file names", name.escape_debug())));
    }
}

/// The component's own name and its output names.
pub fn check_component(name: &str, comp: &ComponentSpec, loc: &str, problems: &mut Vec<Problem>) {
    check("component name", name, loc, problems);
    for p in comp.output_definitions.parameters.keys() {
        check("output parameter name", p, &format!("{loc}.outputDefinitions.parameters"), problems);
    }
    for a in comp.output_definitions.artifacts.keys() {
        check("output artifact name", a, &format!("{loc}.outputDefinitions.artifacts"), problems);
    }
}

/// A task key of a DAG.
pub fn check_task_key(key: &str, loc: &str, problems: &mut Vec<Problem>) {
    check("task key", key, loc, problems);
}

#[cfg(test)]
mod tests {
    use super::segment_problem;

    #[test]
    fn only_plain_segments_pass() {
        for ok in ["train", "for-loop-2", "Output", "a.b", "übung"] {
            assert_eq!(segment_problem(ok), None, "{ok}");
        }
        for bad in ["", ".", "..", "../x", "/etc/passwd", "a/b", "a\\b", "a\nb", "a\0b"] {
            assert!(segment_problem(bad).is_some(), "{bad:?}");
        }
        assert!(segment_problem(&"x".repeat(256)).is_some());
    }
}
