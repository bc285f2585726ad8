//! Output: aligned columns, JSON or YAML.

use comfy_table::{ContentArrangement, Table};
use serde::Serialize;
use statedb_client::{Client, ClientError, Op, TableSummary};

use crate::Output;

/// How to print.
#[derive(Clone, Copy, Debug)]
pub struct Format {
    pub output: Output,
    pub width: Option<u16>,
}

impl Format {
    /// Columns with an upper-case header, no borders, fit to the width.
    pub fn table(&self, header: &[String], rows: &[Vec<String>]) -> String {
        let mut t = Table::new();
        t.load_style(comfy_table::presets::NOTHING)
            .set_content_arrangement(ContentArrangement::Dynamic)
            .set_header(header.iter().map(|h| h.to_uppercase()));
        if let Some(w) = self.width {
            t.set_width(w);
        }
        for row in rows {
            t.add_row(row.clone());
        }
        for c in t.column_iter_mut() {
            c.set_padding((0, 2));
        }
        let mut out = t.trim_fmt();
        out.push('\n');
        out
    }

    /// `value` as pretty JSON or YAML.
    pub fn document<V: Serialize>(&self, value: &V) -> String {
        match self.output {
            Output::Yaml => serde_yaml_ng::to_string(value).unwrap_or_else(|e| format!("# {e}\n")),
            _ => serde_json::to_string_pretty(value).unwrap_or_else(|e| format!("\"{e}\"")) + "\n",
        }
    }

    pub fn tables(&self, tables: &[TableSummary]) -> String {
        if self.output != Output::Table {
            return self.document(&tables);
        }
        let header = [
            "name",
            "objects",
            "revision",
            "initialized",
            "graveyard",
            "locked by",
            "indexes",
        ]
        .map(String::from);
        let rows: Vec<Vec<String>> = tables
            .iter()
            .map(|t| {
                let indexes: Vec<String> = t
                    .indexes
                    .iter()
                    .map(|i| match (i.primary, i.unique, i.lpm) {
                        (true, ..) => format!("{} (primary)", i.name),
                        (false, true, true) => format!("{} (unique, lpm)", i.name),
                        (false, true, false) => format!("{} (unique)", i.name),
                        (false, false, true) => format!("{} (lpm)", i.name),
                        (false, false, false) => i.name.clone(),
                    })
                    .collect();
                vec![
                    t.name.clone(),
                    t.objects.to_string(),
                    t.revision.to_string(),
                    t.initialized.to_string(),
                    t.graveyard.to_string(),
                    t.locked_by.as_ref().map_or_else(
                        || "-".to_string(),
                        |h| format!("{} ({} ms)", h.handle, h.held_for_ms),
                    ),
                    indexes.join(", "),
                ]
            })
            .collect();
        self.table(&header, &rows)
    }

    /// The objects of `table` a query finds (all without one).
    pub async fn objects(
        &self,
        client: &Client,
        table: &str,
        index: Option<&str>,
        query: Option<(Op, &str)>,
        limit: Option<usize>,
    ) -> Result<String, ClientError> {
        let remote = client.table::<serde_json::Value>(table);
        if self.output == Output::Table {
            let rows = remote.rows(index, query, limit).await?;
            return Ok(self.table(&rows.header, &rows.rows));
        }
        let found = remote.find(index, query, limit).await?;
        // The hex primary key is for programs; people read the object.
        let shown: Vec<Shown<'_>> = found
            .iter()
            .map(|o| Shown {
                revision: o.revision,
                object: &o.object,
            })
            .collect();
        Ok(self.document(&shown))
    }
}

/// An object as people read it: its revision and itself.
#[derive(Serialize)]
struct Shown<'a> {
    revision: u64,
    object: &'a serde_json::Value,
}
