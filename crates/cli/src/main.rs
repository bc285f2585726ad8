//! `sdb`: look inside a running rstatedb database through its HTTP
//! inspection API (`rstatedb-http`).
//!
//! ```text
//! sdb --url http://127.0.0.1:8080/statedb tables
//! sdb show memos
//! sdb get routes prefix 10.0.0.0/8 --index prefix -o yaml
//! sdb watch memos
//! ```

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use statedb_client::{Client, ClientError, Op};

mod render;

mod watch;

use render::Format;

/// Look inside a running rstatedb database: its tables, their objects by
/// any index, and their changes as they happen.
#[derive(Parser, Debug)]
#[command(name = "sdb", version)]
struct Args {
    /// Where the inspection API is mounted.
    #[arg(
        long,
        env = "STATEDB_URL",
        default_value = "http://127.0.0.1:8080/statedb",
        global = true
    )]
    url: String,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Output::Table, global = true)]
    output: Output,
    /// Width of tables (default: the terminal's; none when not a terminal).
    #[arg(long, global = true)]
    width: Option<u16>,
    #[command(subcommand)]
    command: Command,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Output {
    /// Aligned columns.
    Table,
    /// JSON (one line per change for `watch`).
    Json,
    /// YAML (one document per change for `watch`).
    Yaml,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// The tables: indexes, objects, revision, initialized, graveyard, lock holder.
    Tables,
    /// Every object of a table.
    Show {
        /// Table name.
        table: String,
        /// At most this many objects.
        #[arg(long)]
        limit: Option<usize>,
    },
    /// The objects a query finds: OP is get, list, prefix or lower_bound;
    /// KEY is text, parsed as the index's key type.
    Get {
        /// Table name.
        table: String,
        /// get, list, prefix or lower_bound.
        op: String,
        /// The key, as text.
        key: String,
        /// The index (default: the primary).
        #[arg(long, short)]
        index: Option<String>,
        /// At most this many objects.
        #[arg(long)]
        limit: Option<usize>,
    },
    /// The table's objects, then each change as it happens (like
    /// `kubectl get -w`); reconnects when the connection drops.
    Watch {
        /// Table name.
        table: String,
        /// Only changes after this revision (default: every object first).
        #[arg(long)]
        from: Option<u64>,
        /// Only what changes from now on.
        #[arg(long, conflicts_with = "from")]
        new: bool,
    },
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sdb: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), ClientError> {
    let client = Client::new(&args.url)?;
    let format = Format {
        output: args.output,
        width: args.width,
    };
    match args.command {
        Command::Tables => {
            let tables = client.tables().await?;
            print!("{}", format.tables(&tables));
        }
        Command::Show { table, limit } => {
            print!(
                "{}",
                format.objects(&client, &table, None, None, limit).await?
            );
        }
        Command::Get {
            table,
            op,
            key,
            index,
            limit,
        } => {
            let op: Op = op.parse().map_err(|reason| ClientError::Status {
                url: client.base().to_string(),
                status: 400,
                message: reason,
            })?;
            let found = format
                .objects(&client, &table, index.as_deref(), Some((op, &key)), limit)
                .await?;
            print!("{found}");
        }
        Command::Watch { table, from, new } => {
            let from = if new { None } else { Some(from.unwrap_or(0)) };
            watch::run(&client, &table, from, format).await?;
        }
    }
    Ok(())
}
