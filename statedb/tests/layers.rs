//! The crate's modules form layers: `src/lib.rs` declares them from the
//! bottom up, and each may use only modules declared before it. This test
//! reads the sources and fails on any use of a module declared later (which
//! is how an import loop would start).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Module names in declaration order, from `mod x;` lines of lib.rs.
fn declared_order() -> Vec<String> {
    let lib = std::fs::read_to_string(src().join("lib.rs")).unwrap();
    lib.lines()
        .filter_map(|l| l.trim().strip_prefix("mod "))
        .filter_map(|l| l.strip_suffix(';'))
        .map(str::to_string)
        .collect()
}

/// Names the crate root re-exports, with the module they come from:
/// `crate::Table` is a use of `table`.
fn reexports() -> HashMap<String, String> {
    let lib = std::fs::read_to_string(src().join("lib.rs")).unwrap();
    let mut out = HashMap::new();
    // One statement per item, however rustfmt wrapped it.
    let statements: Vec<String> = lib
        .split(';')
        .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    for statement in &statements {
        let Some(rest) = statement
            .rsplit("pub use ")
            .next()
            .filter(|_| statement.contains("pub use "))
        else {
            continue;
        };
        let Some((module, names)) = rest.split_once("::") else {
            continue;
        };
        let names = names.trim().trim_start_matches('{').trim_end_matches('}');
        for name in names.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            out.insert(name.to_string(), module.to_string());
        }
    }
    out
}

/// The files of a module: `x.rs` and everything under `x/`.
fn module_files(name: &str) -> Vec<PathBuf> {
    let mut files = vec![src().join(format!("{name}.rs"))];
    let dir = src().join(name);
    if dir.is_dir() {
        for entry in std::fs::read_dir(dir).unwrap() {
            files.push(entry.unwrap().path());
        }
    }
    files
}

/// The crate modules (or re-exported names) a file names as `crate::m`
/// or `crate::{a, b}`, outside comments and unit-test modules (tests may
/// use the whole crate).
fn uses(file: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(file).unwrap();
    let code: Vec<&str> = text
        .lines()
        .take_while(|l| l.trim() != "#[cfg(test)]")
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect();
    let code = code.join(" ");
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut out = Vec::new();
    let mut rest = code.as_str();
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let inner = group.split('}').next().unwrap_or("");
            out.extend(
                inner
                    .split(',')
                    .map(|n| ident(n.trim()))
                    .filter(|n| !n.is_empty()),
            );
        } else {
            out.push(ident(rest));
        }
    }
    out
}

#[test]
fn every_module_uses_only_modules_below_it() {
    let order = declared_order();
    assert!(order.len() > 10, "lib.rs declares the modules: {order:?}");
    let rank: HashMap<&str, usize> = order
        .iter()
        .enumerate()
        .map(|(i, m)| (m.as_str(), i))
        .collect();
    let reexports = reexports();
    assert!(reexports.contains_key("Table"), "{reexports:?}");
    let mut upward = Vec::new();
    for (i, module) in order.iter().enumerate() {
        for file in module_files(module) {
            for used in uses(&file) {
                // A re-exported name counts as its module; other names
                // (`crate::Revision`, defined in lib.rs) are below all.
                let used = reexports.get(&used).cloned().unwrap_or(used);
                if let Some(&r) = rank.get(used.as_str())
                    && r > i
                {
                    upward.push(format!("{} uses crate::{used}", file.display()));
                }
            }
        }
    }
    assert!(
        upward.is_empty(),
        "imports against the layering:\n{}",
        upward.join("\n")
    );
}
