//! The web view in a real browser: headless Chromium (Debian's `chromium`
//! and `chromium-driver`) driven over WebDriver loads `/statedb/ui` from
//! the running memos binary, and sees a created memo appear and a deleted
//! one disappear without a reload. A screenshot is kept under
//! `target/artifacts/` (or `$ARTIFACTS_DIR`).
//!
//! Without chromedriver the test is skipped, except under CI (`CI` set),
//! where it fails: `.ci/run` installs it.

mod harness;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use harness::*;

/// chromedriver on a free loopback port, killed on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn chromedriver() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("CHROMEDRIVER") {
        return Some(PathBuf::from(p));
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("chromedriver"))
            .find(|p| p.is_file())
    })
}

/// chromedriver, or `None` with a note (the test is then skipped); under
/// CI (`CI` set) a missing one fails the test.
fn chromedriver_or_skip() -> Option<PathBuf> {
    let found = chromedriver();
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "chromedriver is missing (apt-get install chromium chromium-driver)"
        );
        eprintln!("skipped: no chromedriver (apt-get install chromium chromium-driver)");
    }
    found
}

fn start_driver(bin: &PathBuf) -> Driver {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(bin)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn chromedriver");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver never listened");
        std::thread::sleep(Duration::from_millis(20));
    }
    Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    }
}

async fn browser(driver: &Driver) -> Client {
    let mut caps = serde_json::Map::new();
    let mut args = vec![
        "--headless=new",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,800",
    ];
    // Chromium's sandbox needs user namespaces; as root (CI containers)
    // it refuses to start with it.
    if unsafe_root() {
        args.push("--no-sandbox");
    }
    let mut options = serde_json::json!({ "args": args });
    if let Ok(bin) = std::env::var("CHROMIUM") {
        options["binary"] = bin.into();
    }
    caps.insert("goog:chromeOptions".into(), options);
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("start a browser session")
}

/// Whether we run as root (from `id -u`, without unsafe code).
fn unsafe_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// XPath of the grid row whose first cell is `name`.
fn row(name: &str) -> String {
    format!("//table[@id='grid']/tbody/tr[td[1]='{name}']")
}

/// Polls `f` until true; fails after 30 s with `what`.
async fn until_async<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn count(c: &Client, xpath: &str) -> usize {
    c.find_all(Locator::XPath(xpath))
        .await
        .map_or(0, |v| v.len())
}

fn artifacts() -> PathBuf {
    std::env::var_os("ARTIFACTS_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/artifacts"),
        PathBuf::from,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_view_follows_inserts_and_deletes_live() {
    let Some(bin) = chromedriver_or_skip() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let s = start(&tmp.path().join("memos"));
    assert_eq!(s.req("POST", "/memos/first", b"hello").status, 202);
    until("first done", || {
        s.req("GET", "/statedb?format=table", b"")
            .body
            .contains("done")
    });

    let driver = start_driver(&bin);
    let c = browser(&driver).await;
    c.goto(&format!("http://{}/statedb/ui#memos", s.addr))
        .await
        .unwrap();
    until_async("the memos table in the list", || async {
        count(&c, "//ul[@id='tables']//a[@data-table='memos']").await == 1
    })
    .await;
    until_async("the existing memo in the grid", || async {
        count(&c, &row("first")).await == 1
    })
    .await;
    let header = c.find(Locator::Css("#grid thead")).await.unwrap();
    assert_eq!(
        header
            .text()
            .await
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["name", "status", "delete", "bytes", "error"],
        "the memo's own columns"
    );
    // A reload would forget this.
    c.execute("window.__kept = 42;", vec![]).await.unwrap();

    // An insert appears, and its status follows to done.
    assert_eq!(s.req("POST", "/memos/second", b"two").status, 202);
    until_async("the new memo, reconciled", || async {
        count(&c, &format!("{}[td[2]='done']", row("second"))).await == 1
    })
    .await;

    // Clicking a row shows the object as JSON.
    c.find(Locator::XPath(&row("second")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let json = c.find(Locator::Css("#json")).await.unwrap();
    until_async("the object's JSON", || async {
        json.text()
            .await
            .unwrap_or_default()
            .contains("\"content\": \"two\"")
    })
    .await;

    // A delete fades and disappears.
    assert_eq!(s.req("DELETE", "/memos/first", b"").status, 202);
    until_async("the deleted memo gone from the grid", || async {
        count(&c, &row("first")).await == 0
    })
    .await;
    assert_eq!(count(&c, &row("second")).await, 1);

    // The filter hides rows that do not match.
    c.find(Locator::Css("#filter"))
        .await
        .unwrap()
        .send_keys("nomatch")
        .await
        .unwrap();
    until_async("the filtered row hidden", || async {
        count(
            &c,
            "//table[@id='grid']/tbody/tr[contains(@class,'hidden')]",
        )
        .await
            == 1
    })
    .await;

    let kept = c.execute("return window.__kept;", vec![]).await.unwrap();
    assert_eq!(kept, serde_json::json!(42), "the page was reloaded");

    // A row still fading out when the view goes to another table and
    // back must not take the new row of the same key with it when its
    // fade ends: that row must still go when deleted.
    assert_eq!(s.req("POST", "/memos/again", b"1").status, 202);
    until_async("the memo to delete", || async {
        count(&c, &format!("{}[td[2]='done']", row("again"))).await == 1
    })
    .await;
    assert_eq!(s.req("DELETE", "/memos/again", b"").status, 202);
    let fading = format!("{}[contains(@class,'deleted')]", row("again"));
    until_async("the deleted row fading", || async {
        count(&c, &fading).await == 1
    })
    .await;
    c.execute(
        "window.__fadeStart = performance.now(); location.hash = '#elsewhere';",
        vec![],
    )
    .await
    .unwrap();
    assert_eq!(s.req("POST", "/memos/again", b"2").status, 202);
    c.execute("location.hash = '#memos';", vec![])
        .await
        .unwrap();
    until_async("the new row of the same key", || async {
        count(&c, &row("again")).await == 1 && count(&c, &fading).await == 0
    })
    .await;
    // The old row's fade (1 s) is over ...
    until_async("the old fade over", || async {
        c.execute(
            "return performance.now() - window.__fadeStart > 1200;",
            vec![],
        )
        .await
        .is_ok_and(|v| v == serde_json::json!(true))
    })
    .await;
    // ... and the new row still follows its changes: a delete removes it.
    assert_eq!(s.req("DELETE", "/memos/again", b"").status, 202);
    until_async("the new row gone after its delete", || async {
        count(&c, &row("again")).await == 0
    })
    .await;

    // Cleared, every row shows again; one more memo for the picture.
    let filter = c.find(Locator::Css("#filter")).await.unwrap();
    filter.clear().await.unwrap();
    filter.send_keys("\u{E004}").await.unwrap(); // Tab: the change event
    assert_eq!(s.req("POST", "/memos/third", b"three!").status, 202);
    until_async("every row shown", || async {
        count(
            &c,
            "//table[@id='grid']/tbody/tr[contains(@class,'hidden')]",
        )
        .await
            == 0
            && count(&c, &format!("{}[td[2]='done']", row("third"))).await == 1
    })
    .await;
    let png = c.screenshot().await.unwrap();
    let dir = artifacts();
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("memos-web-view.png");
    std::fs::write(&path, png).unwrap();
    eprintln!("screenshot: {}", path.display());
    c.close().await.unwrap();
}

/// The web view as a user expects it (issue "memos and the inspection
/// tools", §3): an unknown table says so instead of "reconnecting…"
/// forever; no favicon request; the count follows the filter; sorting does
/// not flash unchanged rows and new rows land in sort order; the column
/// names and the table list stay in view when the grid scrolls; a narrow
/// window keeps the count visible.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_view_behaves_as_a_user_expects() {
    let Some(bin) = chromedriver_or_skip() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let s = start(&tmp.path().join("memos"));
    for i in 0..40 {
        assert_eq!(s.req("POST", &format!("/memos/m{i:02}"), b"x").status, 202);
    }
    until("all done", || {
        !s.req("GET", "/statedb?format=table", b"")
            .body
            .contains("pending")
    });
    let driver = start_driver(&bin);
    let c = browser(&driver).await;
    let js = |script: &'static str| {
        let c = c.clone();
        async move { c.execute(script, vec![]).await.unwrap() }
    };

    // An unknown table.
    c.goto(&format!("http://{}/statedb/ui#nope", s.addr))
        .await
        .unwrap();
    until_async("the unknown table named", || async {
        let status = c
            .find(Locator::Css("#status"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        status.contains("no table") && status.contains("nope")
    })
    .await;
    // No favicon request: the page names an empty icon.
    assert_eq!(
        js("return document.querySelector('link[rel=icon]').getAttribute('href');").await,
        serde_json::json!("data:,")
    );

    c.execute("location.hash = '#memos';", vec![])
        .await
        .unwrap();
    until_async("40 rows", || async {
        count(&c, "//table[@id='grid']/tbody/tr").await == 40
    })
    .await;
    let count_text = || async {
        c.find(Locator::Css("#count"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    assert_eq!(count_text().await, "40 objects");
    // The count follows the filter.
    let filter = c.find(Locator::Css("#filter")).await.unwrap();
    filter.send_keys("m1").await.unwrap();
    until_async("the filtered count", || async {
        count_text().await == "10 of 40 objects"
    })
    .await;
    filter.clear().await.unwrap();
    filter.send_keys("\u{E004}").await.unwrap();
    until_async("the whole count", || async {
        count_text().await == "40 objects"
    })
    .await;

    // Sorting: wait until no row flashes, sort, and none does.
    until_async("the flashes over", || async {
        count(&c, "//table[@id='grid']/tbody/tr[contains(@class,'flash')]").await == 0
    })
    .await;
    c.find(Locator::XPath("//table[@id='grid']/thead//th[1]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.find(Locator::XPath("//table[@id='grid']/thead//th[1]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert_eq!(
        count(&c, "//table[@id='grid']/tbody/tr[contains(@class,'flash')]").await,
        0,
        "sorting flashed unchanged rows"
    );
    // Descending by name: a new row lands in its place.
    assert_eq!(s.req("POST", "/memos/m25x", b"y").status, 202);
    until_async("the new row in sort order", || async {
        js("const n = [...document.querySelectorAll('#grid tbody tr')].map(t => t.children[0].textContent);
            return n.indexOf('m25x') === n.indexOf('m26') + 1 && n.indexOf('m25x') === n.indexOf('m25') - 1;")
            .await
            == serde_json::json!(true)
    })
    .await;

    // Scrolling the grid: its column names and the table list stay in view.
    c.set_window_size(1000, 400).await.unwrap();
    js("document.querySelector('#rows').scrollTop = 100000; return 0;").await;
    until_async("scrolled", || async {
        js("return document.querySelector('#rows').scrollTop > 0;").await == serde_json::json!(true)
    })
    .await;
    let in_view = js("
        const inView = (el) => { const r = el.getBoundingClientRect();
          return r.height > 0 && r.top >= 0 && r.bottom <= window.innerHeight; };
        return [inView(document.querySelector('#grid thead th')),
                inView(document.querySelector('#tables a')),
                inView(document.querySelector('header'))];")
    .await;
    assert_eq!(
        in_view,
        serde_json::json!([true, true, true]),
        "lost from view while scrolling"
    );

    // A narrow window: the count is still visible.
    c.set_window_size(420, 700).await.unwrap();
    let visible = js("
        const r = document.querySelector('#count').getBoundingClientRect();
        return r.width > 0 && r.left >= 0 && r.right <= window.innerWidth && r.top >= 0 && r.bottom <= window.innerHeight;")
    .await;
    assert_eq!(
        visible,
        serde_json::json!(true),
        "the count is cut off in a narrow window"
    );
    c.close().await.unwrap();
}
