//! The memos binary under racing clients and planted files (issue "memos
//! and the inspection tools", §1): the store and the table agree for every
//! interleaving, foreign files are never replaced or removed, the marker
//! is never written through a link, and limits hold under parallel
//! requests. Each test failed on the binary before the fix.

mod harness;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use harness::*;

/// Name → content as the API lists it (every memo done: nothing pending).
fn listed(s: &Server) -> BTreeMap<String, String> {
    let list: serde_json::Value =
        serde_json::from_str(&s.req("GET", "/memos?limit=1000", b"").body).unwrap();
    list.as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["name"].as_str().unwrap().to_string(),
                m["content"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Waits until every listed memo is done (deleted ones are gone).
fn settled(s: &Server) {
    until("every memo done", || {
        let list: serde_json::Value =
            serde_json::from_str(&s.req("GET", "/memos?limit=1000", b"").body).unwrap();
        list.as_array()
            .unwrap()
            .iter()
            .all(|m| m["status"]["kind"] == "done")
    });
}

/// The memo files on disk (the marker left out).
fn on_disk(s: &Server) -> BTreeMap<String, String> {
    entries(&s.dir)
        .into_iter()
        .filter(|e| e != ".memos-directory")
        .map(|e| {
            let content = std::fs::read_to_string(s.dir.join(&e)).unwrap();
            (e, content)
        })
        .collect()
}

#[test]
fn racing_posts_and_deletes_on_few_names_agree_after_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("memos");
    let s = Arc::new(start(&dir));
    let seq = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..4)
        .map(|c| {
            let (s, seq) = (s.clone(), seq.clone());
            std::thread::spawn(move || {
                for i in 0..100 {
                    let name = format!("n{}", (c * 7 + i * 3) % 4);
                    let n = seq.fetch_add(1, Ordering::Relaxed);
                    if (c + i) % 3 == 0 {
                        let st = s.req("DELETE", &format!("/memos/{name}"), b"").status;
                        assert!(st == 202 || st == 404, "DELETE {name}: {st}");
                    } else {
                        let body = format!("client {c} op {i} seq {n}");
                        let st = s
                            .req("POST", &format!("/memos/{name}"), body.as_bytes())
                            .status;
                        assert_eq!(st, 202, "POST {name}");
                    }
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    settled(&s);
    let before = listed(&s);
    assert_eq!(
        on_disk(&s),
        before,
        "disk and API disagree before the restart"
    );
    // A clean stop, then the same answers from the store.
    let mut s = Arc::into_inner(s).expect("clients done");
    sigterm(&mut s);
    let s = start(&dir);
    assert_eq!(listed(&s), before, "the store and the table disagreed");
    assert_eq!(s.req("POST", "/reconcile", b"").status, 202);
    until("full round", || s.full_round_ran());
    settled(&s);
    assert_eq!(on_disk(&s), before, "a restart changed the files");
}

/// Stops the server with SIGTERM and waits for it.
fn sigterm(s: &mut Server) {
    let pid = s.child.id().to_string();
    let ok = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    s.child.wait().unwrap();
}

#[test]
fn a_memo_never_replaces_or_removes_a_foreign_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("home");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("precious.txt"), b"irreplaceable").unwrap();
    let outside = tmp.path().join("outside.txt");
    std::fs::write(&outside, b"outside").unwrap();
    std::os::unix::fs::symlink(&outside, dir.join("link.txt")).unwrap();
    let s = start_with(&dir, &["--force"]);
    for name in ["precious.txt", "link.txt"] {
        assert_eq!(
            s.req("POST", &format!("/memos/{name}"), b"overwrite!")
                .status,
            202
        );
        until("error", || s.kind(name).as_deref() == Some("error"));
        let err = s.status_of(name).unwrap()["error"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(err.contains(name) && err.contains("foreign"), "{err}");
    }
    assert_eq!(
        std::fs::read(dir.join("precious.txt")).unwrap(),
        b"irreplaceable"
    );
    assert!(
        std::fs::symlink_metadata(dir.join("link.txt"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    // Deleting the memos leaves the files.
    for name in ["precious.txt", "link.txt"] {
        assert_eq!(s.req("DELETE", &format!("/memos/{name}"), b"").status, 202);
        until("memo gone", || {
            s.req("GET", &format!("/memos/{name}"), b"").status == 404
        });
    }
    assert_eq!(s.req("POST", "/reconcile", b"").status, 202);
    until("full round", || s.full_round_ran());
    assert_eq!(
        std::fs::read(dir.join("precious.txt")).unwrap(),
        b"irreplaceable"
    );
    assert!(std::fs::symlink_metadata(dir.join("link.txt")).is_ok());
    assert_eq!(std::fs::read(&outside).unwrap(), b"outside");
    // And health tells the truth about them.
    until("healthy", || s.req("GET", "/healthz", b"").status == 200);
    let health = s.req("GET", "/healthz", b"").body;
    assert!(
        health.contains("precious.txt") && health.contains("link.txt"),
        "{health}"
    );
}

#[test]
fn force_never_writes_through_a_symlinked_marker() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("home");
    std::fs::create_dir(&dir).unwrap();
    let victim = tmp.path().join("victim.txt");
    std::fs::write(&victim, b"do not touch").unwrap();
    std::os::unix::fs::symlink(&victim, dir.join(".memos-directory")).unwrap();
    for extra in [&[][..], &["--force"][..]] {
        let out = command(&dir, extra).output().unwrap();
        assert!(!out.status.success(), "started with {extra:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("not a regular file"), "{err}");
    }
    assert_eq!(std::fs::read(&victim).unwrap(), b"do not touch");
    assert!(
        std::fs::symlink_metadata(dir.join(".memos-directory"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
}

#[test]
fn limits_hold_under_parallel_requests() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Arc::new(start_with(
        &tmp.path().join("memos"),
        &["--max-memos", "5", "--max-total-bytes", "100000"],
    ));
    let parallel = |bodies: Vec<(String, Vec<u8>)>| -> usize {
        let handles: Vec<_> = bodies
            .into_iter()
            .map(|(name, body)| {
                let s = s.clone();
                std::thread::spawn(move || s.req("POST", &format!("/memos/{name}"), &body).status)
            })
            .collect();
        let statuses: Vec<u16> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert!(
            statuses.iter().all(|st| *st == 202 || *st == 507),
            "{statuses:?}"
        );
        statuses.iter().filter(|st| **st == 202).count()
    };
    // 20 new names at once, room for 5.
    let accepted = parallel((0..20).map(|i| (format!("m{i}"), b"x".to_vec())).collect());
    assert_eq!(accepted, 5);
    assert_eq!(listed(&s).len(), 5);
    // Ten 30 KB rewrites of the 5 at once (and of 5 new names, refused by
    // the count): at most 3 fit in 100,000 bytes.
    let names: Vec<String> = listed(&s).into_keys().collect();
    let accepted = parallel(
        (0..10)
            .map(|i| (names[i % 5].clone(), vec![b'y'; 30_000]))
            .collect(),
    );
    assert!(accepted >= 1, "room for at least one");
    let total: usize = listed(&s).values().map(String::len).sum();
    assert!(total <= 100_000, "{total} bytes stored");
    let metrics = s.req("GET", "/metrics", b"").body;
    let refused = |limit: &str| -> u64 {
        metrics
            .lines()
            .find(|l| l.starts_with(&format!("memos_refused_writes_total{{limit=\"{limit}\"}}")))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or(0)
    };
    assert_eq!(refused("max_memos"), 15);
    assert_eq!(refused("max_total_bytes"), (10 - accepted) as u64);
}

#[test]
fn directory_values_that_cannot_be_used_are_clear_and_leave_nothing_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let real = tmp.path().join("real");
    std::fs::create_dir(&real).unwrap();
    let link = tmp.path().join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let out = command(&link, &[]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is a symlink"), "{err}");
    assert!(
        entries(&real).is_empty(),
        "wrote through the link: {:?}",
        entries(&real)
    );
    let file = tmp.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    let out = command(&file, &[]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a directory"));
    let mut around = entries(tmp.path());
    around.sort();
    assert_eq!(
        around,
        ["file", "link", "real"],
        "something was left behind"
    );

    // `.` is the working directory, with its state beside it.
    let here = tmp.path().join("here");
    std::fs::create_dir(&here).unwrap();
    let mut child = command(std::path::Path::new("."), &[])
        .current_dir(&here)
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert!(line.starts_with("listening on"), "{line}");
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(entries(&here), [".memos-directory"]);
    assert!(tmp.path().join(".here.memos-state").is_dir());
}
