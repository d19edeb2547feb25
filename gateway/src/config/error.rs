//! Configuration errors that point at the file, line, column and key to fix.

use std::fmt;
use std::ops::Range;
use std::path::PathBuf;

use toml::de::DeTable;

use super::Invalid;

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read configuration file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file was read but its content is wrong; one entry per problem.
    #[error("{}", Located::list(.0))]
    Invalid(Vec<Located>),
}

/// One problem with its position. `line` and `column` are 1-based; 0 means "not from a file"
/// (a configuration made with the builder).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    pub origin: String,
    pub line: usize,
    pub column: usize,
    pub key: String,
    pub message: String,
}

impl fmt::Display for Located {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.origin)?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl Located {
    fn list(problems: &[Located]) -> String {
        problems
            .iter()
            .map(Located::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl ConfigError {
    pub(super) fn at_span(
        origin: &str,
        text: &str,
        span: Option<Range<usize>>,
        key: String,
        message: &str,
    ) -> Self {
        let (line, column) = span.map_or((0, 0), |s| line_column(text, s.start));
        ConfigError::Invalid(vec![Located {
            origin: origin.to_owned(),
            line,
            column,
            key,
            message: message.to_owned(),
        }])
    }

    /// Places each problem at its key in `text` (the file it came from).
    pub fn located(origin: &str, text: &str, problems: Vec<Invalid>) -> Self {
        let document = DeTable::parse(text).ok();
        let located = problems
            .into_iter()
            .map(|Invalid { key, message }| {
                let span = document
                    .as_ref()
                    .and_then(|doc| span_of_key(doc.get_ref(), &key));
                let (line, column) = span.map_or((0, 0), |s| line_column(text, s.start));
                Located {
                    origin: origin.to_owned(),
                    line,
                    column,
                    key,
                    message,
                }
            })
            .collect();
        ConfigError::Invalid(located)
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// Span of the value at a dotted key such as `upstreams[1].url`, or of its nearest ancestor
/// present in the file when the key itself was left to its default.
fn span_of_key(root: &DeTable<'_>, key: &str) -> Option<Range<usize>> {
    let mut segments = key.split('.').flat_map(|part| {
        let (name, indexes) = part
            .split_once('[')
            .map_or((part, ""), |(n, rest)| (n, rest));
        std::iter::once(Segment::Key(name)).chain(
            indexes
                .split('[')
                .filter_map(|i| i.trim_end_matches(']').parse().ok())
                .map(Segment::Index),
        )
    });
    let Some(Segment::Key(first)) = segments.next() else {
        return None;
    };
    let (_, mut current) = root.iter().find(|(k, _)| k.get_ref() == first)?;
    let mut best = current.span();
    for segment in segments {
        let next = match segment {
            Segment::Key(name) => current.get_ref().get(name),
            Segment::Index(i) => current.get_ref().get(i),
        };
        match next {
            Some(value) => {
                current = value;
                best = current.span();
            }
            None => break,
        }
    }
    Some(best)
}

enum Segment<'a> {
    Key(&'a str),
    Index(usize),
}
