//! Bounds on everything a plugin hands the host, and the one escaping
//! function for text a plugin wrote.
//!
//! A plugin returns strings and lists of any size it can fit in its memory;
//! unchecked, they are copied into the study, kept in memory per trial and
//! printed raw (terminal escapes included). Every value crosses this module
//! at the boundary (load, `describe`, `search-space`, `suggest`, `compress`,
//! `finish`, error values, log lines), with two rules:
//!
//! - **Identifiers** (the plugin's name and version, dimension and parameter
//!   names, choice strings, report value names) must fit [`MAX_NAME_BYTES`]
//!   and hold no control or invisible formatting characters. Anything else
//!   refuses the load or fails the call with a [`BoundError`] that quotes a
//!   truncated, escaped prefix. So every name the host stores, prints or
//!   matches is printable as it is.
//! - **Free text** (error messages, panic messages, summaries, help lines,
//!   report summaries, log lines, progress messages) is escaped with
//!   [`printable`] and cut to its limit, saying so. A trial whose learner
//!   returned a 60 MiB error has failed already; refusing the text too would
//!   only lose the reason, so it is kept, bounded and escaped, and recorded.
//!
//! Lists are capped by count ([`MAX_DIMENSIONS`], [`MAX_CHOICES`],
//! [`MAX_CONTEXT`], [`MAX_REPORT_VALUES`]): over a cap is a [`BoundError`].
//! A `params-schema` is capped in bytes, nesting depth and in the size it
//! expands to through `$ref` ([`check_schema`]).
//!
//! Text is stored escaped: the study, the log and the report receive only
//! what this module let through, and the HTML report escapes it once more
//! for HTML.

use super::bindings::types;
use super::runtime::CompressReport;
use serde_json::Value;
use std::collections::HashMap;

/// Longest identifier: plugin name and version, dimension and parameter
/// names, choice strings, report value names.
pub const MAX_NAME_BYTES: usize = 256;

/// Longest one-line description: the plugin's summary, a dimension's help,
/// a report's summary, a progress message.
pub const MAX_SUMMARY_BYTES: usize = 4 << 10;

/// Longest error or panic message kept (longer ones are cut).
pub const MAX_ERROR_BYTES: usize = 64 << 10;

/// Longest log line kept (longer ones are cut).
pub const MAX_LOG_LINE_BYTES: usize = 64 << 10;

/// Most bytes of log text kept per instance (later lines are dropped).
pub const MAX_LOG_BYTES: usize = 4 << 20;

/// Most characters of plugin text on one line of the terminal (a failed
/// trial's reason); the study keeps the whole, bounded text.
pub const MAX_LINE_CHARS: usize = 1000;

/// Most dimensions in a search space, and most parameters in a suggestion
/// or a parameter set. The host's checks of a space grow with the square of
/// its size; 1,024 per-layer dimensions cover the deepest models pf runs.
pub const MAX_DIMENSIONS: usize = 1024;

/// Most choices of one choice dimension.
pub const MAX_CHOICES: usize = 1024;

/// Most context features of one dimension.
pub const MAX_CONTEXT: usize = 1024;

/// Most named values in a compress report.
pub const MAX_REPORT_VALUES: usize = 1024;

/// Most target measures a plugin may declare.
pub const MAX_TARGETS: usize = 16;

/// Largest `params-schema`, bytes.
pub const MAX_SCHEMA_BYTES: usize = 1 << 20;

/// Deepest nesting of a `params-schema` (objects and arrays).
pub const MAX_SCHEMA_DEPTH: usize = 32;

/// Largest size a `params-schema` may reach with every `$ref` replaced by
/// what it points to, bytes: the SDK copies a `$defs` entry per reference.
pub const MAX_SCHEMA_EXPANDED_BYTES: usize = 4 << 20;

/// Characters of a quoted prefix in a [`BoundError`].
const QUOTE_CHARS: usize = 60;

/// A value a plugin handed the host that is over a limit or unprintable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BoundError {
    /// A string longer than its limit.
    #[error("{what} is {len} bytes, over the {} limit: \"{prefix}\"", bytes(*limit))]
    TooLong {
        /// What the string is (e.g. `the dimension name`).
        what: String,
        /// Its length in bytes.
        len: usize,
        /// The limit in bytes.
        limit: usize,
        /// A truncated, escaped prefix.
        prefix: String,
    },
    /// A list with more entries than its limit.
    #[error("{what} has {count} entries, over the limit of {limit}")]
    TooMany {
        /// What the list is (e.g. `the search space`).
        what: String,
        /// Its length.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// An identifier with control or invisible formatting characters
    /// (terminal escapes, line breaks, bidirectional overrides).
    #[error("{what} holds control characters (terminal escapes or line breaks), which names may not: \"{prefix}\"")]
    Unprintable {
        /// What the string is.
        what: String,
        /// A truncated, escaped prefix.
        prefix: String,
    },
    /// A `params-schema` over a size, depth or expansion limit.
    #[error("the params-schema {0}")]
    Schema(String),
}

/// A byte count for messages: `256 bytes`, `64 KiB`, `4 MiB`.
pub fn bytes(n: usize) -> String {
    if n >= 1 << 20 && n % (1 << 20) == 0 {
        format!("{} MiB", n >> 20)
    } else if n >= 1 << 10 && n % (1 << 10) == 0 {
        format!("{} KiB", n >> 10)
    } else {
        format!("{n} bytes")
    }
}

/// Whether `c` must not reach a terminal raw: control characters (C0, DEL,
/// C1: escape sequences, bells, carriage returns, line breaks) and the
/// invisible formatting characters that reorder or hide text (bidirectional
/// overrides and isolates, zero-width characters, the byte-order mark).
pub fn is_unprintable(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}'
            | '\u{FEFF}')
}

/// `text` as one line that is safe to print on a terminal, in a log or a
/// report: the characters of [`is_unprintable`] are shown as `\u{..}`
/// escapes, and at most `max` characters are kept (then `…`). The one
/// escaping function for plugin text.
pub fn printable(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max.saturating_mul(4)));
    for (i, c) in text.chars().enumerate() {
        if i == max {
            out.push('…');
            break;
        }
        if is_unprintable(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

/// Free text: escaped ([`printable`]) and, when over `limit` bytes, cut at
/// a character boundary after a leading note of the original length:
/// `(62914560 bytes, cut to the 64 KiB limit) AAAA…`.
pub fn text(text: &str, limit: usize) -> String {
    // Escaping grows a character at most tenfold (`\u{10ffff}`): escape no
    // more of the input than can survive the cut.
    let mut out = printable(text, limit);
    let cut_chars = text.chars().nth(limit).is_some();
    if out.len() <= limit && !cut_chars {
        return out;
    }
    if cut_chars {
        out.pop(); // printable's `…`; the note below says more.
    }
    let mut cut = limit.min(out.len());
    while !out.is_char_boundary(cut) {
        cut -= 1;
    }
    out.truncate(cut);
    // The note first, so that a line that shows only the start still says
    // the text was cut, and from how much.
    format!(
        "({} bytes, cut to the {} limit) {out}…",
        text.len(),
        bytes(limit)
    )
}

/// A short, escaped prefix of `text` for a message.
pub fn quote(text: &str) -> String {
    printable(text, QUOTE_CHARS)
}

/// Checks an identifier: at most `limit` bytes, nothing unprintable.
pub fn identifier(what: &str, name: &str, limit: usize) -> Result<(), BoundError> {
    if name.len() > limit {
        return Err(BoundError::TooLong {
            what: what.to_string(),
            len: name.len(),
            limit,
            prefix: quote(name),
        });
    }
    if name.chars().any(is_unprintable) {
        return Err(BoundError::Unprintable {
            what: what.to_string(),
            prefix: quote(name),
        });
    }
    Ok(())
}

/// Checks a list's length.
pub fn count(what: &str, n: usize, limit: usize) -> Result<(), BoundError> {
    if n > limit {
        return Err(BoundError::TooMany {
            what: what.to_string(),
            count: n,
            limit,
        });
    }
    Ok(())
}

/// An error value a plugin returned, with its message bounded and escaped
/// ([`MAX_ERROR_BYTES`]).
pub fn error(e: types::Error) -> types::Error {
    use types::Error as E;
    let b = |m: String| text(&m, MAX_ERROR_BYTES);
    match e {
        E::InvalidArgument(m) => E::InvalidArgument(b(m)),
        E::NotFound(m) => E::NotFound(b(m)),
        E::Unsupported(m) => E::Unsupported(b(m)),
        E::LimitExceeded(m) => E::LimitExceeded(b(m)),
        E::Numerical(m) => E::Numerical(b(m)),
        E::Host(m) => E::Host(b(m)),
    }
}

/// Checks what `describe` returned: name and version are identifiers, the
/// schema passes [`check_schema`], targets are capped; the summary is
/// bounded and escaped in place.
pub fn check_info(info: &mut types::PluginInfo) -> Result<(), BoundError> {
    identifier("the plugin's name", &info.name, MAX_NAME_BYTES)?;
    identifier("the plugin's version", &info.version, MAX_NAME_BYTES)?;
    count("the plugin's targets", info.targets.len(), MAX_TARGETS)?;
    check_schema(&info.params_schema)?;
    info.summary = text(&info.summary, MAX_SUMMARY_BYTES);
    Ok(())
}

/// Checks a search space a learner declared: the dimension count, names,
/// choices and context lengths; help lines are bounded and escaped in
/// place.
pub fn check_space(space: &mut [types::ParamSpec]) -> Result<(), BoundError> {
    count("the search space", space.len(), MAX_DIMENSIONS)?;
    for (i, spec) in space.iter_mut().enumerate() {
        identifier(
            &format!("the name of dimension {i}"),
            &spec.name,
            MAX_NAME_BYTES,
        )?;
        let what = || format!("dimension `{}`", spec.name);
        if let types::ParamKind::Choice(choices) = &spec.kind {
            count(&format!("{}'s choices", what()), choices.len(), MAX_CHOICES)?;
            for c in choices {
                identifier(&format!("a choice of {}", what()), c, MAX_NAME_BYTES)?;
            }
        }
        value(&what(), &spec.default)?;
        count(
            &format!("{}'s context", what()),
            spec.context.len(),
            MAX_CONTEXT,
        )?;
        spec.help = text(&spec.help, MAX_SUMMARY_BYTES);
    }
    Ok(())
}

/// Checks a parameter set a plugin returned (a suggestion): the count, the
/// names and the choice strings.
pub fn check_params(params: &[types::Param]) -> Result<(), BoundError> {
    count("the parameter set", params.len(), MAX_DIMENSIONS)?;
    for (i, p) in params.iter().enumerate() {
        identifier(
            &format!("the name of parameter {i}"),
            &p.name,
            MAX_NAME_BYTES,
        )?;
        value(&format!("parameter `{}`", p.name), &p.value)?;
    }
    Ok(())
}

fn value(what: &str, v: &types::ParamValue) -> Result<(), BoundError> {
    match v {
        types::ParamValue::Choice(c) => identifier(&format!("{what}'s value"), c, MAX_NAME_BYTES),
        _ => Ok(()),
    }
}

/// Checks a compress report: the value count and names; the summary is
/// bounded and escaped in place.
pub fn check_report(report: &mut CompressReport) -> Result<(), BoundError> {
    count(
        "the report's values",
        report.values.len(),
        MAX_REPORT_VALUES,
    )?;
    for (name, _) in &report.values {
        identifier("a report value's name", name, MAX_NAME_BYTES)?;
    }
    report.summary = text(&report.summary, MAX_SUMMARY_BYTES);
    Ok(())
}

/// Checks a `params-schema` before anything parses it for settings: at most
/// [`MAX_SCHEMA_BYTES`], nested at most [`MAX_SCHEMA_DEPTH`] deep, and at
/// most [`MAX_SCHEMA_EXPANDED_BYTES`] once every `$ref` is counted at the
/// size of what it points to. An empty schema passes; one that is not JSON
/// is left to the parsers, which say so.
pub fn check_schema(schema: &str) -> Result<(), BoundError> {
    if schema.len() > MAX_SCHEMA_BYTES {
        return Err(BoundError::Schema(format!(
            "is {} bytes, over the {} limit",
            schema.len(),
            bytes(MAX_SCHEMA_BYTES)
        )));
    }
    if schema.trim().is_empty() {
        return Ok(());
    }
    // Depth first, on the text: serde_json's own recursion limit would
    // otherwise decide, with a less telling message.
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for b in schema.bytes() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > MAX_SCHEMA_DEPTH {
                    return Err(BoundError::Schema(format!(
                        "nests deeper than {MAX_SCHEMA_DEPTH} levels"
                    )));
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    let Ok(root) = serde_json::from_str::<Value>(schema) else {
        return Ok(());
    };
    let defs: HashMap<&str, usize> = root
        .get("$defs")
        .and_then(Value::as_object)
        .map(|d| {
            d.iter()
                .map(|(k, v)| (k.as_str(), serde_json::to_string(v).map_or(0, |s| s.len())))
                .collect()
        })
        .unwrap_or_default();
    let mut expanded = schema.len();
    let mut stack = vec![&root];
    while let Some(v) = stack.pop() {
        match v {
            Value::Object(m) => {
                if let Some(r) = m.get("$ref").and_then(Value::as_str) {
                    let name = r.strip_prefix("#/$defs/").unwrap_or(r);
                    expanded = expanded.saturating_add(defs.get(name).copied().unwrap_or(0));
                    if expanded > MAX_SCHEMA_EXPANDED_BYTES {
                        return Err(BoundError::Schema(format!(
                            "expands past the {} limit through its `$ref`s (`{}` and others repeat a `$defs` entry): inline less, or reference it fewer times",
                            bytes(MAX_SCHEMA_EXPANDED_BYTES),
                            quote(r)
                        )));
                    }
                }
                stack.extend(m.values());
            }
            Value::Array(a) => stack.extend(a.iter()),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The integration tests spell these out to build against older pfs.
    #[test]
    fn the_limits_the_integration_tests_assume() {
        assert_eq!(MAX_ERROR_BYTES, 64 << 10);
        assert_eq!(MAX_DIMENSIONS, 1024);
    }

    #[test]
    fn describe_is_refused_for_a_hostile_version_or_schema_and_its_summary_escaped() {
        let info = |version: &str, schema: String| types::PluginInfo {
            name: "p".into(),
            version: version.into(),
            summary: "sum\u{1b}[2Jmary".into(),
            params_schema: schema,
            targets: Vec::new(),
        };
        let mut ok = info("1.0.0", "{}".into());
        check_info(&mut ok).unwrap();
        assert_eq!(ok.summary, "sum\\u{1b}[2Jmary");
        let e = check_info(&mut info("1.0.0\u{1b}]52;c;x\u{7}", "{}".into())).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("the plugin's version holds control characters"),
            "{e}"
        );
        let refs: Vec<String> = (0..20_000)
            .map(|i| format!("\"p{i}\":{{\"$ref\":\"#/$defs/D\"}}"))
            .collect();
        let amplifying = format!(
            "{{\"properties\":{{{}}},\"$defs\":{{\"D\":{{\"enum\":[\"{}\"]}}}}}}",
            refs.join(","),
            "v".repeat(4000)
        );
        let e = check_info(&mut info("1.0.0", amplifying)).unwrap_err();
        assert!(e.to_string().contains("expands past"), "{e}");
    }

    #[test]
    fn escapes_terminal_controls_and_invisible_formatting() {
        let hostile = "ok\u{1b}]52;c;ZXZpbA==\u{7}\u{1b}[2J\r\nfake\u{202e}txt\u{9b}";
        let p = printable(hostile, 1000);
        assert!(!p.chars().any(is_unprintable), "{p}");
        assert!(p.contains("\\u{1b}") && p.contains("\\u{7}") && p.contains("\\u{202e}"));
    }

    #[test]
    fn long_text_is_cut_to_its_limit_saying_how_long_it_was() {
        let long = "A".repeat(1 << 20);
        let t = text(&long, MAX_ERROR_BYTES);
        assert!(t.len() < MAX_ERROR_BYTES + 100, "{}", t.len());
        assert!(
            t.starts_with("(1048576 bytes, cut to the 64 KiB limit) AAA"),
            "{}",
            &t[..60]
        );
        // Escapes count against the limit too.
        let t = text(&"\u{1b}".repeat(1 << 16), 1000);
        assert!(t.len() < 1100 && !t.contains('\u{1b}'));
    }

    #[test]
    fn an_over_long_or_unprintable_name_is_a_typed_error_quoting_an_escaped_prefix() {
        let e = identifier("the name", &"x".repeat(300), MAX_NAME_BYTES).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "the name is 300 bytes, over the 256 bytes limit: \"{}…\"",
                "x".repeat(60)
            )
        );
        let e = identifier("the name", "a\u{1b}[31mred", MAX_NAME_BYTES).unwrap_err();
        assert!(e.to_string().contains("a\\u{1b}[31mred"), "{e}");
        assert!(!e.to_string().contains('\u{1b}'));
    }

    #[test]
    fn a_schema_that_amplifies_through_refs_is_refused() {
        let schema = |refs: usize| {
            let def = format!(
                "{{\"type\":\"string\",\"enum\":[\"{}\"]}}",
                "v".repeat(64 << 10)
            );
            let props: Vec<String> = (0..refs)
                .map(|i| format!("\"p{i}\":{{\"$ref\":\"#/$defs/D\"}}"))
                .collect();
            format!(
                "{{\"properties\":{{{}}},\"$defs\":{{\"D\":{def}}}}}",
                props.join(",")
            )
        };
        let amplifying = schema(200);
        assert!(amplifying.len() < MAX_SCHEMA_BYTES);
        let e = check_schema(&amplifying).unwrap_err();
        assert!(
            e.to_string().contains("expands past the 4 MiB limit"),
            "{e}"
        );
        // Referenced a few times, the same definition is fine.
        assert_eq!(check_schema(&schema(3)), Ok(()));
        let deep = format!("{}{}", "[".repeat(100), "]".repeat(100));
        assert!(check_schema(&deep)
            .unwrap_err()
            .to_string()
            .contains("nests deeper"));
        let big = format!("\"{}\"", "x".repeat(MAX_SCHEMA_BYTES));
        assert!(check_schema(&big)
            .unwrap_err()
            .to_string()
            .contains("over the 1 MiB limit"));
    }
}
