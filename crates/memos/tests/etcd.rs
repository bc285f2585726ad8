//! Two memos instances on one etcd, each with its own directory: a memo
//! written through either reaches both directories, a delete through the
//! other removes it from both, a restart relists, and a memo put straight
//! into etcd under a name the API would refuse never reaches the disk.
//! Against a real etcd server (skipped with a reason when none is
//! installed; a failure under CI=true).

#![cfg(feature = "etcd")]

#[path = "../../etcd/tests/etcd_server/mod.rs"]
#[allow(dead_code)]
mod etcd_server;

mod harness;

use std::path::Path;

use etcd_server::Etcd;
use harness::{Server, request, start_with, until};

/// An instance on `dir` whose desired state is in etcd at `etcd`.
fn start(dir: &Path, state: &Path, etcd: &str) -> Server {
    let state = state.to_str().expect("a UTF-8 temporary path");
    start_with(dir, &["--state-dir", state, "--etcd", etcd])
}

fn read(dir: &Path, name: &str) -> Option<String> {
    std::fs::read_to_string(dir.join(name)).ok()
}

#[test]
fn two_instances_share_the_memos_in_etcd() {
    let Some(etcd) = Etcd::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (a_dir, b_dir) = (tmp.path().join("a"), tmp.path().join("b"));
    let (a_state, b_state) = (tmp.path().join("a-state"), tmp.path().join("b-state"));
    let a = start(&a_dir, &a_state, &etcd.endpoint());
    let b = start(&b_dir, &b_state, &etcd.endpoint());

    let code = request(a.addr, "POST", "/memos/shared", b"from a").status;
    assert_eq!(code, 202);
    until("the memo in both directories", || {
        read(&a_dir, "shared").as_deref() == Some("from a")
            && read(&b_dir, "shared").as_deref() == Some("from a")
    });
    let code = request(b.addr, "POST", "/memos/shared", b"from b").status;
    assert_eq!(code, 202);
    until("the update in both", || {
        read(&a_dir, "shared").as_deref() == Some("from b")
            && read(&b_dir, "shared").as_deref() == Some("from b")
    });
    let harness::Resp { status: code, body } = request(b.addr, "GET", "/healthz", b"");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("etcd /memos/: revision"), "{body}");

    // Deleting through b removes it from both directories.
    let code = request(b.addr, "DELETE", "/memos/shared", b"").status;
    assert_eq!(code, 202);
    until("deleted from both", || {
        read(&a_dir, "shared").is_none() && read(&b_dir, "shared").is_none()
    });
    assert_eq!(request(b.addr, "DELETE", "/memos/shared", b"").status, 404);

    // A restarted instance lists etcd again: memos written meanwhile
    // arrive, and its files of memos deleted meanwhile are pruned.
    request(a.addr, "POST", "/memos/stays", b"1");
    request(a.addr, "POST", "/memos/goes", b"2");
    until("both in b", || {
        read(&b_dir, "goes").is_some() && read(&b_dir, "stays").is_some()
    });
    drop(b);
    request(a.addr, "DELETE", "/memos/goes", b"");
    request(a.addr, "POST", "/memos/new", b"3");
    let b = start(&b_dir, &b_state, &etcd.endpoint());
    until("b caught up after its restart", || {
        read(&b_dir, "goes").is_none()
            && read(&b_dir, "stays").as_deref() == Some("1")
            && read(&b_dir, "new").as_deref() == Some("3")
    });
    let harness::Resp {
        status: code,
        body: list,
    } = request(b.addr, "GET", "/memos", b"");
    assert_eq!(code, 200);
    assert!(
        list.contains("\"stays\"") && list.contains("\"new\""),
        "{list}"
    );
    drop((a, b));
}

#[test]
fn a_name_the_api_refuses_never_reaches_the_disk_from_etcd() {
    let Some(etcd) = Etcd::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("memos");
    let a = start(&dir, &tmp.path().join("state"), &etcd.endpoint());
    // Written straight into etcd, bypassing the API's checks.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = statedb_etcd::etcd_client::Client::connect([etcd.endpoint()], None)
            .await
            .unwrap();
        let w = statedb_etcd::Writer::new(client, "/memos/");
        w.put("../escape", "x").await.unwrap();
        w.put("fine", "ok").await.unwrap();
    });
    until("the valid memo", || {
        read(&dir, "fine").as_deref() == Some("ok")
    });
    assert!(read(tmp.path(), "escape").is_none());
    let list = request(a.addr, "GET", "/memos", b"").body;
    assert!(!list.contains("escape"), "{list}");
}

/// etcd goes away: writes get 503 and `/healthz` says so (it said 200 OK
/// while every POST failed); when etcd is back, both recover.
#[test]
fn healthz_reports_an_etcd_outage_and_recovers() {
    let Some(mut etcd) = Etcd::start() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("memos");
    let a = start(&dir, &tmp.path().join("state"), &etcd.endpoint());
    assert_eq!(request(a.addr, "POST", "/memos/before", b"1").status, 202);
    until("healthy", || {
        request(a.addr, "GET", "/healthz", b"").status == 200
    });

    etcd.stop();
    until("a write refused", || {
        request(a.addr, "POST", "/memos/during", b"2").status == 503
    });
    until("health says so", || {
        let r = request(a.addr, "GET", "/healthz", b"");
        r.status == 503 && r.body.contains("etcd")
    });

    etcd.restart();
    until("writes work again", || {
        request(a.addr, "POST", "/memos/after", b"3").status == 202
    });
    until("healthy again", || {
        request(a.addr, "GET", "/healthz", b"").status == 200
    });
    until("the memo written after", || {
        read(&dir, "after").as_deref() == Some("3")
    });
}
