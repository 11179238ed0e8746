//! kfp lightweight Python components: what their compiled command line says.
//!
//! The compiler wraps a `@dsl.component` function as
//! `sh -c "<pip install prelude> && \"$0\" \"$@\"" sh -ec "<write program; python3 -m kfp.dsl.executor_main …>" "<user code>"`
//! followed by `--executor_input {{$}} --function_to_execute NAME`. This module reads the packages the
//! prelude installs (`packages_to_install`, `pip_index_urls`) so a backend can provide them once, in a
//! cached environment, instead of running pip in every task.

/// What a component's prelude installs besides kfp itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PipRequirements {
    /// Requirement specifiers as written (`pandas==2.2`, `idna>=3`).
    pub packages: Vec<String>,
    /// Index options in order (`--index-url URL`, `--extra-index-url URL`, `--trusted-host HOST`).
    pub index_args: Vec<String>,
}

impl PipRequirements {
    pub fn is_empty(&self) -> bool {
        self.packages.is_empty()
    }

    /// A stable description for keying environments: sorted packages, then index options.
    pub fn normalized(&self) -> String {
        let mut pkgs: Vec<String> = self.packages.iter().map(|p| p.trim().to_owned()).collect();
        pkgs.sort();
        pkgs.dedup();
        format!("{}\n--\n{}", pkgs.join("\n"), self.index_args.join(" "))
    }
}

/// Reads the user requirements from a prelude script (`command[2]`); `None` if it is not kfp's prelude.
pub fn prelude_requirements(script: &str) -> Option<PipRequirements> {
    if !script.contains("pip install") {
        return None;
    }
    let words = shell_words(script)?;
    let mut req = PipRequirements::default();
    for segment in words.split(|w| w == "&&") {
        // `… -m pip install …` (the segment may also hold the ensurepip fallback, which installs too).
        let Some(install) = segment.windows(2).rposition(|w| w[0] == "pip" && w[1] == "install").map(|i| i + 1) else {
            continue;
        };
        let mut packages = Vec::new();
        let mut index_args = Vec::new();
        let mut i = install + 1;
        while i < segment.len() {
            let w = &segment[i];
            match w.as_str() {
                "--index-url" | "-i" | "--extra-index-url" | "--trusted-host" | "--find-links" | "-f" => {
                    if let Some(v) = segment.get(i + 1) {
                        index_args.push(w.clone());
                        index_args.push(v.clone());
                    }
                    i += 2;
                    continue;
                }
                _ if w.starts_with('-') => {}
                _ => packages.push(w.clone()),
            }
            i += 1;
        }
        // The segment that installs kfp itself is what a Python with kfp makes unnecessary.
        let installs_kfp = packages.iter().any(|p| {
            p == "kfp"
                || p.starts_with("kfp=")
                || p.starts_with("kfp ")
                || p.starts_with("kfp@")
                || p.starts_with("kfp>")
                || p.starts_with("kfp<")
        });
        if installs_kfp {
            continue;
        }
        req.packages.extend(packages);
        if req.index_args.is_empty() {
            req.index_args = index_args;
        }
    }
    Some(req)
}

/// The parts of a lightweight component's argv after its prelude: the user's code and the
/// executor_main arguments. `argv` starts where the prelude ended (`sh -ec SCRIPT CODE ARGS…`).
pub fn split_program(argv: &[String]) -> Option<(&str, &[String])> {
    match argv {
        [sh, ec, script, code, rest @ ..] if sh == "sh" && ec == "-ec" && script.contains("kfp.dsl.executor_main") => {
            Some((code.as_str(), rest))
        }
        _ => None,
    }
}

/// Splits shell text into words (single quotes, double quotes with backslash escapes, backslashes);
/// `&&` becomes its own word. Returns `None` on an unterminated quote.
fn shell_words(s: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '\'' => break,
                        x => cur.push(x),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '"' => break,
                        '\\' => cur.push(chars.next()?),
                        x => cur.push(x),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(x) = chars.next() {
                    cur.push(x);
                }
            }
            '&' if chars.peek() == Some(&'&') => {
                chars.next();
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
                words.push("&&".into());
            }
            c if c.is_whitespace() || c == ';' => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Some(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KFP_ONLY: &str = "\nif ! [ -x \"$(command -v pip)\" ]; then\n    python3 -m ensurepip || python3 -m ensurepip --user || apt-get install python3-pip\nfi\n\nPIP_DISABLE_PIP_VERSION_CHECK=1 python3 -m pip install --quiet --no-warn-script-location 'kfp==2.14.6' '--no-deps' 'typing-extensions>=3.7.4,<5; python_version<\"3.9\"' && \"$0\" \"$@\"\n";

    #[test]
    fn kfp_only_prelude_needs_nothing() {
        assert_eq!(prelude_requirements(KFP_ONLY), Some(PipRequirements::default()));
    }

    #[test]
    fn user_packages_after_the_ensurepip_fallback() {
        let script = "\nif ! [ -x \"$(command -v pip)\" ]; then\n    python3 -m ensurepip || python3 -m ensurepip --user || apt-get install python3-pip\nfi\n\nPIP_DISABLE_PIP_VERSION_CHECK=1 python3 -m pip install --quiet --no-warn-script-location 'termcolor==2.4.0'  &&  python3 -m pip install --quiet --no-warn-script-location 'kfp==2.14.6' '--no-deps' 'typing-extensions>=3.7.4,<5; python_version<\"3.9\"' && \"$0\" \"$@\"\n";
        assert_eq!(prelude_requirements(script).unwrap().packages, ["termcolor==2.4.0"]);
    }

    #[test]
    fn user_packages_and_indexes() {
        let script = "\nPIP_DISABLE_PIP_VERSION_CHECK=1 python3 -m pip install --quiet --no-warn-script-location --index-url https://a.invalid/simple --extra-index-url https://b.invalid/simple --trusted-host https://a.invalid/simple 'six==1.16.0' 'idna>=3'  &&  python3 -m pip install --quiet --no-warn-script-location --index-url https://a.invalid/simple 'kfp==2.14.6' '--no-deps' 'typing-extensions>=3.7.4,<5; python_version<\"3.9\"' && \"$0\" \"$@\"\n";
        let r = prelude_requirements(script).unwrap();
        assert_eq!(r.packages, ["six==1.16.0", "idna>=3"]);
        assert_eq!(
            r.index_args[..4],
            ["--index-url", "https://a.invalid/simple", "--extra-index-url", "https://b.invalid/simple"]
        );
        let swapped = PipRequirements { packages: vec!["idna>=3".into(), "six==1.16.0".into()], ..r.clone() };
        assert_eq!(r.normalized(), swapped.normalized());
    }

    #[test]
    fn program_split() {
        let argv: Vec<String> =
            ["sh", "-ec", "python3 -m kfp.dsl.executor_main", "def f(): pass", "--executor_input", "{}"]
                .iter()
                .map(|s| s.to_string())
                .collect();
        let (code, rest) = split_program(&argv).unwrap();
        assert_eq!(code, "def f(): pass");
        assert_eq!(rest, ["--executor_input", "{}"]);
        assert!(split_program(&argv[1..]).is_none());
    }
}
