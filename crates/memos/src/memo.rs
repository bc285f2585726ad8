//! The memo table.

use reconciler::{Status, StatusKind};
use serde::Serialize;
use statedb::{Index, Table};

/// A memo: a named text, reconciled to the file `<dir>/<name>`.
#[derive(Debug, Clone, Serialize)]
pub struct Memo {
    /// File name (validated by [`validate_name`]).
    pub name: String,
    /// UTF-8 content.
    pub content: String,
    /// Reconciliation status.
    pub status: Status,
}

/// The memo's columns in inspection tools (`sdb show memos`, the web
/// view, `/statedb?format=table`): the content's size, not the content.
impl statedb::TableRow for Memo {
    fn table_header() -> Vec<String> {
        ["name", "status", "delete", "bytes", "error"]
            .map(String::from)
            .to_vec()
    }

    fn table_row(&self) -> Vec<String> {
        vec![
            self.name.clone(),
            self.status.kind.as_str().to_string(),
            self.status.delete.to_string(),
            self.content.len().to_string(),
            self.status.error.as_deref().unwrap_or_default().to_owned(),
        ]
    }
}

/// Name of the marker file that makes a directory ours (a reserved memo
/// name).
pub const MARKER: &str = ".memos-directory";
/// Prefix of the temp files written before the rename (reserved in memo
/// names).
pub const TEMP_PREFIX: &str = ".memos-tmp-";

/// Largest memo body accepted, in bytes.
pub const MAX_CONTENT: usize = 1 << 20;

/// Why a memo name is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Empty.
    #[error("memo name must not be empty")]
    Empty,
    /// Over 255 bytes.
    #[error("memo name is longer than 255 bytes")]
    TooLong,
    /// Contains `/`, `\` or NUL.
    #[error("memo name must not contain '/', '\\' or NUL")]
    BadCharacter,
    /// A control character or a Unicode bidirectional-text control (they
    /// make a name display as another).
    #[error("memo name must not contain control or bidirectional-text characters")]
    ControlCharacter,
    /// `.` or `..`, or a name reserved for the app's own files.
    #[error("memo name {0:?} is reserved")]
    Reserved(String),
}

/// Accepts names that are a single plain file name inside the directory.
pub fn validate_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > 255 {
        return Err(NameError::TooLong);
    }
    if name.contains(['/', '\\', '\0']) {
        return Err(NameError::BadCharacter);
    }
    if name.chars().any(|c| c.is_control() || is_bidi_control(c)) {
        return Err(NameError::ControlCharacter);
    }
    if name == "." || name == ".." || name == MARKER || name.starts_with(TEMP_PREFIX) {
        return Err(NameError::Reserved(name.to_string()));
    }
    Ok(())
}

/// Unicode's bidirectional formatting characters (marks, embeddings,
/// overrides, isolates).
fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
    )
}

/// The memo table, its primary index by name and its status index.
pub struct MemoTable {
    /// The table.
    pub table: Table<Memo>,
    /// By name (primary).
    pub by_name: Index<Memo, str>,
    /// By status kind.
    pub by_status: Index<Memo, StatusKind>,
}

impl MemoTable {
    /// Declares the table.
    pub fn new() -> Result<MemoTable, statedb::Error> {
        let by_name: Index<Memo, str> =
            Index::unique("name", |m: &Memo, k| k.push(m.name.as_str()));
        let by_status = reconciler::new_status_index(|m: &Memo| &m.status);
        let table = Table::builder("memos", &by_name)
            .index(&by_status)
            .build()?;
        Ok(MemoTable {
            table,
            by_name,
            by_status,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(validate_name("hello.txt").is_ok());
        assert_eq!(validate_name(""), Err(NameError::Empty));
        assert_eq!(validate_name(&"x".repeat(256)), Err(NameError::TooLong));
        assert!(validate_name(&"x".repeat(255)).is_ok());
        for bad in ["a/b", "a\\b", "a\0b"] {
            assert_eq!(validate_name(bad), Err(NameError::BadCharacter));
        }
        for bad in [".", "..", MARKER, ".memos-tmp-1"] {
            assert!(matches!(validate_name(bad), Err(NameError::Reserved(_))));
        }
    }
}
