//! `sdb watch`: a table's changes as they happen, one line (or document)
//! each.

use futures::StreamExt;
use serde_json::Value;
use statedb_client::{Client, ClientError, Event, RemoteObject, ResyncReason};

use crate::Output;
use crate::render::Format;

/// Prints the changes of `table` after `from` until the stream ends with
/// a permanent error (or the process is stopped).
pub async fn run(
    client: &Client,
    table: &str,
    from: Option<u64>,
    format: Format,
) -> Result<(), ClientError> {
    let columns = client
        .tables()
        .await?
        .into_iter()
        .find(|t| t.name == table)
        .and_then(|t| t.columns);
    let mut lines = Lines {
        format,
        header: columns,
        widths: Vec::new(),
        printed: false,
    };
    let mut changes = client.table::<Value>(table).changes(from);
    // One line when an outage starts and one when it ends, not one per
    // attempt (the stream retries with backoff).
    let mut outage: Option<std::time::Instant> = None;
    while let Some(item) = changes.next().await {
        if item.is_ok()
            && let Some(since) = outage.take()
        {
            eprintln!("sdb: reconnected after {:.1?}", since.elapsed());
        }
        match item {
            Ok(Event::Resync(reason)) if lines.printed => {
                eprintln!("sdb: {}", resync_message(reason))
            }
            Ok(Event::Resync(_)) => {}
            Ok(Event::Upsert(o)) => lines.print("upsert", o),
            Ok(Event::Delete(o)) => lines.print("delete", o),
            Err(e) if e.is_permanent() => return Err(e),
            Err(e) => {
                if outage.is_none() {
                    eprintln!("sdb: {e}; retrying quietly until the server answers");
                    outage = Some(std::time::Instant::now());
                }
            }
        }
    }
    Ok(())
}

/// What a resync means for the person watching.
fn resync_message(reason: ResyncReason) -> &'static str {
    match reason {
        ResyncReason::Restarted => {
            "the server restarted (its revisions began again); the whole table follows"
        }
        ResyncReason::MissedDeletes => {
            "deletes were missed while disconnected; the whole table follows"
        }
        _ => "the stream could not resume; the whole table follows",
    }
}

/// Change lines; in table format, columns that widen as wider cells come
/// (a stream has no last row to measure).
struct Lines {
    format: Format,
    header: Option<Vec<String>>,
    widths: Vec<usize>,
    printed: bool,
}

impl Lines {
    fn print(&mut self, change: &str, o: RemoteObject<Value>) {
        match self.format.output {
            Output::Table => self.print_row(change, &o),
            Output::Json => {
                let v = serde_json::json!({
                    "change": change, "revision": o.revision, "object": o.object,
                });
                println!("{v}");
            }
            Output::Yaml => {
                let v = serde_json::json!({
                    "change": change, "revision": o.revision, "object": o.object,
                });
                print!("---\n{}", self.format.document(&v));
            }
        }
        self.printed = true;
    }

    fn print_row(&mut self, change: &str, o: &RemoteObject<Value>) {
        let header = self
            .header
            .get_or_insert_with(|| match &o.object {
                Value::Object(map) => map.keys().cloned().collect(),
                _ => vec!["value".to_string()],
            })
            .clone();
        let cells: Vec<String> = match (&o.cells, &o.object) {
            (Some(cells), _) => cells.clone(),
            (None, Value::Object(map)) => header.iter().map(|h| cell(map.get(h))).collect(),
            (None, other) => vec![cell(Some(other))],
        };
        let mut row = vec![o.revision.to_string(), change.to_string()];
        row.extend(cells);
        if !self.printed {
            let mut names = vec!["REVISION".to_string(), "CHANGE".to_string()];
            names.extend(header.iter().map(|h| h.to_uppercase()));
            self.widen(&names);
            self.widen(&row);
            self.printed = true;
            println!("{}", self.line(&names));
        }
        self.widen(&row);
        println!("{}", self.line(&row));
    }

    fn widen(&mut self, cells: &[String]) {
        if self.widths.len() < cells.len() {
            self.widths.resize(cells.len(), 0);
        }
        for (w, c) in self.widths.iter_mut().zip(cells) {
            *w = (*w).max(c.chars().count());
        }
    }

    fn line(&self, cells: &[String]) -> String {
        let padded: Vec<String> = cells
            .iter()
            .zip(&self.widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        padded.join("  ").trim_end().to_string()
    }
}

/// A JSON field as a cell: strings as they are, anything else as JSON.
fn cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}
