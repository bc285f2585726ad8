//! What `cargo xtask ci` checks of the crates we would publish: their
//! features, their examples, and the packaged crates as a user gets them.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{cargo, run};

/// The published packages (the libraries and `sdb`), in dependency order.
const LIBRARIES: [&str; 6] = [
    "rstatedb-part",
    "rstatedb",
    "rstatedb-reconciler",
    "rstatedb-http",
    "rstatedb-client",
    "rstatedb-cli",
];

/// Crates a default build of each package must not pull. memos: the
/// README's main demo must build on a machine without `protoc`, which the
/// etcd client's build needs.
const NOT_BY_DEFAULT: [(&str, &[&str]); 4] = [
    ("rstatedb-part", &["serde", "serde_json"]),
    (
        "rstatedb",
        &["serde", "serde_json", "prometheus", "governor"],
    ),
    ("rstatedb-reconciler", &["serde_json", "governor"]),
    ("memos", &["etcd-client", "rstatedb-etcd"]),
];

/// The runnable examples, by package.
const EXAMPLES: [(&str, &str); 5] = [
    ("rstatedb-part", "transactions"),
    ("rstatedb", "tables_and_watches"),
    ("rstatedb", "change_iterator"),
    ("rstatedb-reconciler", "minimal"),
    ("rstatedb-reconciler", "batch"),
];

/// Each package builds without its default features (every feature is
/// built and tested by the all-features clippy and test runs), and no
/// default build pulls the optional crates (nor memos the etcd client).
pub fn features() -> Result<(), String> {
    for p in LIBRARIES {
        // `sdb` is a binary; the others are libraries.
        let target = if p == "rstatedb-cli" {
            "--bins"
        } else {
            "--lib"
        };
        let mut c = cargo();
        c.args([
            "check",
            "--locked",
            target,
            "--no-default-features",
            "-p",
            p,
        ]);
        run(&format!("{p} without default features"), c)?;
    }
    for (p, banned) in NOT_BY_DEFAULT {
        let out = cargo()
            .args([
                "tree", "--locked", "-e", "normal", "--prefix", "none", "-p", p,
            ])
            .output()
            .map_err(|e| format!("cargo tree: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "cargo tree -p {p} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let tree = String::from_utf8_lossy(&out.stdout);
        let pulled: Vec<&str> = tree
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|name| banned.contains(name))
            .collect();
        if !pulled.is_empty() {
            return Err(format!("a default build of {p} pulls {pulled:?}"));
        }
        eprintln!("==> a default build of {p} pulls none of {banned:?}");
    }
    Ok(())
}

/// Runs every example.
pub fn examples() -> Result<(), String> {
    for (p, example) in EXAMPLES {
        let mut c = cargo();
        c.args(["run", "--locked", "-q", "-p", p, "--example", example]);
        run(&format!("example {p}/{example}"), c)?;
    }
    Ok(())
}

/// Packages the libraries (cargo builds each packaged crate against the
/// others), unpacks the `.crate` files, and builds and runs a crate
/// outside the workspace that depends on them the way the README says
/// and runs the README's example.
pub fn package() -> Result<(), String> {
    let root = workspace_root()?;
    let version = workspace_version(&root)?;
    let target = target_dir(&root);
    forget_earlier_packages(&version, &target);
    let mut c = cargo();
    c.args(["package", "--locked"]);
    for p in LIBRARIES {
        c.args(["-p", p]);
    }
    run("cargo package (the published crates, verified)", c)?;

    let work = target.join("package-check");
    let _ = std::fs::remove_dir_all(&work);
    let unpacked = work.join("crates");
    std::fs::create_dir_all(&unpacked).map_err(|e| format!("{}: {e}", unpacked.display()))?;
    let mut patches = String::new();
    for p in LIBRARIES {
        let file = target.join(format!("package/{p}-{version}.crate"));
        let mut tar = Command::new("tar");
        tar.arg("-xzf").arg(&file).arg("-C").arg(&unpacked);
        run(&format!("unpack {}", file.display()), tar)?;
        let dir = unpacked.join(format!("{p}-{version}"));
        patches.push_str(&format!(
            "{p} = {{ path = {:?} }}\n",
            dir.display().to_string()
        ));
    }

    let readme =
        std::fs::read_to_string(root.join("README.md")).map_err(|e| format!("README.md: {e}"))?;
    let dependencies = fenced_block(&readme, "toml")
        .ok_or("README.md has no ```toml block with the dependency lines")?;
    let example = fenced_block(&readme, "rust").ok_or("README.md has no ```rust example")?;
    let consumer = work.join("consumer");
    std::fs::create_dir_all(consumer.join("src")).map_err(|e| e.to_string())?;
    let manifest = format!(
        "[package]\nname = \"consumer\"\nversion = \"0.0.0\"\nedition = \"2024\"\npublish = false\n\n\
         {dependencies}\n\
         # The unpublished crates come from their unpacked .crate files.\n\
         [patch.crates-io]\n{patches}\n[workspace]\n"
    );
    write(&consumer.join("Cargo.toml"), &manifest)?;
    write(&consumer.join("src/main.rs"), &example)?;
    let mut c = cargo();
    c.args(["run", "--offline", "--manifest-path"])
        .arg(consumer.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", work.join("target"));
    run("a crate outside the workspace runs the README example", c)
}

/// Cargo unpacks the crates it verifies against into its registry cache,
/// keyed by the temporary registry's path and the version, and builds them
/// in `target/package`, where a registry crate of the same version counts
/// as unchanged: a second run with the same target directory and version
/// would verify against the first run's sources and build. These crates
/// are not published, so every copy comes from an earlier run of this
/// check: remove them, and the packaging directory.
fn forget_earlier_packages(version: &str, target: &Path) {
    let _ = std::fs::remove_dir_all(target.join("package"));
    // Their build in the shared target directory counts as fresh too:
    // forgetting the fingerprints of our crates rebuilds them (a
    // few seconds), from whichever source each build now names.
    if let Ok(entries) = std::fs::read_dir(target.join("debug/.fingerprint")) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let ours = LIBRARIES.iter().any(|p| {
                name.strip_prefix(p)
                    .and_then(|rest| rest.strip_prefix('-'))
                    .is_some_and(|hash| hash.chars().all(|c| c.is_ascii_hexdigit()))
            });
            if ours {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    let Some(home) = home else { return };
    for kind in ["src", "cache"] {
        let Ok(registries) = std::fs::read_dir(home.join("registry").join(kind)) else {
            continue;
        };
        for registry in registries.flatten() {
            for p in LIBRARIES {
                let dir = registry.path().join(format!("{p}-{version}"));
                let _ = std::fs::remove_dir_all(&dir);
                let _ = std::fs::remove_file(registry.path().join(format!("{p}-{version}.crate")));
            }
        }
    }
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

/// The body of the first ```` ```lang ```` block of a markdown text.
fn fenced_block(markdown: &str, lang: &str) -> Option<String> {
    let mut lines = markdown.lines();
    lines.find(|l| l.trim() == format!("```{lang}"))?;
    let body: Vec<&str> = lines.take_while(|l| l.trim() != "```").collect();
    Some(body.join("\n") + "\n")
}

/// Where cargo builds: `CARGO_TARGET_DIR` if set, else `target/`.
fn target_dir(root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => root.join(dir),
        None => root.join("target"),
    }
}

fn workspace_root() -> Result<PathBuf, String> {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").map_err(|e| e.to_string())?;
    Path::new(&manifest)
        .parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| "xtask has no parent directory".to_string())
}

/// `version = "…"` of `[workspace.package]`.
fn workspace_version(root: &Path) -> Result<String, String> {
    let toml = std::fs::read_to_string(root.join("Cargo.toml")).map_err(|e| e.to_string())?;
    toml.lines()
        .skip_while(|l| l.trim() != "[workspace.package]")
        .find_map(|l| {
            let v = l.trim().strip_prefix("version")?.trim().strip_prefix('=')?;
            Some(v.trim().trim_matches('"').to_string())
        })
        .ok_or_else(|| "no version in [workspace.package]".to_string())
}

#[cfg(test)]
mod tests {
    use super::fenced_block;

    #[test]
    fn finds_the_first_block_of_a_language() {
        let md = "text\n```toml\n[dependencies]\na = \"1\"\n```\n```rust\nfn main() {}\n```\n";
        assert_eq!(
            fenced_block(md, "toml").unwrap(),
            "[dependencies]\na = \"1\"\n"
        );
        assert_eq!(fenced_block(md, "rust").unwrap(), "fn main() {}\n");
        assert!(fenced_block(md, "sh").is_none());
    }
}
