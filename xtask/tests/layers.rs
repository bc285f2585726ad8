//! No module circles in any crate of the workspace: for each crate, the
//! top-level modules (declared in `src/lib.rs`, else `src/main.rs`) and
//! the modules each one names (`crate::m`, `crate::{a, b}`, a re-exported
//! name counting as its module, `super::m` in a top-level file) must form
//! a graph without cycles. A circle is how an import tangle starts; this
//! test names it. (statedb's own `tests/layers.rs` is stricter: its
//! declaration order is the layering.)

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits in the workspace")
        .to_path_buf()
}

/// The member crates, from the workspace manifest.
fn members() -> Vec<PathBuf> {
    let manifest = std::fs::read_to_string(workspace().join("Cargo.toml")).unwrap();
    let line = manifest
        .lines()
        .find(|l| l.trim_start().starts_with("members"))
        .expect("members = [...]");
    line.split('"')
        .skip(1)
        .step_by(2)
        .map(|m| workspace().join(m))
        .collect()
}

/// The crate root: `src/lib.rs`, else `src/main.rs`.
fn root(krate: &Path) -> Option<PathBuf> {
    ["lib.rs", "main.rs"]
        .iter()
        .map(|f| krate.join("src").join(f))
        .find(|p| p.is_file())
}

/// Code without comments and unit-test modules (tests may use anything).
fn code(file: &Path) -> String {
    let text = std::fs::read_to_string(file).unwrap();
    text.lines()
        .take_while(|l| l.trim() != "#[cfg(test)]")
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Top-level module names: `mod x;` and `pub mod x;` (inline modules
/// `mod x { .. }` live in the root file and are left out).
fn modules(root: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(root).unwrap();
    text.lines()
        .map(str::trim)
        .filter_map(|l| {
            let l = l
                .strip_prefix("pub(crate) ")
                .or(l.strip_prefix("pub "))
                .unwrap_or(l);
            l.strip_prefix("mod ")?
                .strip_suffix(';')
                .map(str::to_string)
        })
        .collect()
}

/// Names the root re-exports, with their module: `crate::Table` is a use
/// of `table`.
fn reexports(root: &Path) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(root).unwrap();
    let mut out = BTreeMap::new();
    for statement in text.split(';') {
        let statement = statement.split_whitespace().collect::<Vec<_>>().join(" ");
        let Some(rest) = statement.split("pub use ").nth(1) else {
            continue;
        };
        let Some((module, names)) = rest.split_once("::") else {
            continue;
        };
        let names = names.trim().trim_start_matches('{').trim_end_matches('}');
        for name in names.split(',').map(str::trim) {
            let name = name.rsplit(" as ").next().unwrap_or(name);
            let name = name.rsplit("::").next().unwrap_or(name);
            if !name.is_empty() {
                out.insert(name.to_string(), module.to_string());
            }
        }
    }
    out
}

fn ident(s: &str) -> String {
    s.chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

/// What follows each `prefix` in `code`: a name, or each name of a group.
fn named_after(code: &str, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = code[from..].find(prefix) {
        let at = from + i;
        from = at + prefix.len();
        let rest = &code[from..];
        // Only a path that starts here: not the tail of `a::crate::`, and
        // not the first half of `super::super::`.
        let before = code[..at].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
            || rest.starts_with(prefix)
        {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let inner = group.split('}').next().unwrap_or("");
            out.extend(inner.split(',').map(|n| ident(n.trim())));
        } else {
            out.push(ident(rest));
        }
    }
    out.retain(|n| !n.is_empty());
    out
}

/// The files of top-level module `m`: `m.rs` and everything under `m/`.
fn files(src: &Path, m: &str) -> Vec<(PathBuf, bool)> {
    let mut out = Vec::new();
    let flat = src.join(format!("{m}.rs"));
    if flat.is_file() {
        out.push((flat, true));
    }
    let mut dirs = vec![src.join(m)];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                // `m/mod.rs` is the module's own file: `super::` there is
                // the crate root.
                let top = p.file_name().is_some_and(|f| f == "mod.rs") && dir == src.join(m);
                out.push((p, top));
            }
        }
    }
    out
}

/// The module graph of one crate: module → modules it names.
fn graph(krate: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let Some(root) = root(krate) else {
        return BTreeMap::new();
    };
    let src = krate.join("src");
    let mods = modules(&root);
    let known: BTreeSet<&str> = mods.iter().map(String::as_str).collect();
    let reexports = reexports(&root);
    let mut g = BTreeMap::new();
    for m in &mods {
        let mut deps = BTreeSet::new();
        for (file, top) in files(&src, m) {
            let code = code(&file);
            let mut names = named_after(&code, "crate::");
            if top {
                names.extend(named_after(&code, "super::"));
            }
            for n in names {
                let n = reexports.get(&n).cloned().unwrap_or(n);
                if n != *m && known.contains(n.as_str()) {
                    deps.insert(n);
                }
            }
        }
        g.insert(m.clone(), deps);
    }
    g
}

/// A cycle of `g`, if there is one, as the path around it.
fn cycle(g: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit(
        g: &BTreeMap<String, BTreeSet<String>>,
        n: &str,
        marks: &mut BTreeMap<String, Mark>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match marks.get(n) {
            Some(Mark::Done) => return None,
            Some(Mark::Open) => {
                let start = path.iter().position(|p| p == n).unwrap_or(0);
                let mut c = path[start..].to_vec();
                c.push(n.to_string());
                return Some(c);
            }
            None => {}
        }
        marks.insert(n.to_string(), Mark::Open);
        path.push(n.to_string());
        for d in g.get(n).into_iter().flatten() {
            if let Some(c) = visit(g, d, marks, path) {
                return Some(c);
            }
        }
        path.pop();
        marks.insert(n.to_string(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    g.keys()
        .find_map(|n| visit(g, n, &mut marks, &mut Vec::new()))
}

#[test]
fn no_crate_has_a_module_circle() {
    let members = members();
    assert!(members.len() >= 8, "workspace members: {members:?}");
    let mut circles = Vec::new();
    let mut checked = 0;
    for krate in &members {
        let g = graph(krate);
        checked += usize::from(!g.is_empty());
        if let Some(c) = cycle(&g) {
            circles.push(format!("{}: {}", krate.display(), c.join(" -> ")));
        }
    }
    assert!(checked >= 8, "found modules in only {checked} crates");
    assert!(
        circles.is_empty(),
        "module circles:\n{}",
        circles.join("\n")
    );
}

#[test]
fn the_check_sees_a_circle_and_what_the_code_names() {
    let g: BTreeMap<String, BTreeSet<String>> = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec![]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.into_iter().map(String::from).collect()))
    .collect();
    assert_eq!(cycle(&g).unwrap(), ["a", "b", "c", "a"]);
    let acyclic: BTreeMap<String, BTreeSet<String>> = g
        .into_iter()
        .map(|(k, v)| {
            if k == "c" {
                (k, BTreeSet::new())
            } else {
                (k, v)
            }
        })
        .collect();
    assert_eq!(cycle(&acyclic), None);
    let code = "use crate::{a, b::X}; crate::c::f(); super::d::g(); super::super::e; x::crate::no";
    assert_eq!(named_after(code, "crate::"), ["a", "b", "c"]);
    assert_eq!(named_after(code, "super::"), ["d"]);
}

#[test]
fn the_reconciler_graph_is_seen() {
    let g = graph(&workspace().join("reconciler"));
    // The runner uses the retry queue; the builder starts the runner.
    assert!(g["runner"].contains("retries"), "{g:?}");
    assert!(g["builder"].contains("runner"), "{g:?}");
}
