//! A real etcd server for the tests: started from the `etcd` binary on
//! the PATH (Debian's `etcd-server`) on free loopback ports with a
//! temporary data directory, stopped on drop. Shared by the tests of
//! this crate and of the memos example.

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A running (or stopped) etcd server of a test.
pub struct Etcd {
    child: Option<Child>,
    dir: PathBuf,
    client_port: u16,
    peer_port: u16,
}

/// A loopback port that was free a moment ago and that no other server
/// of this test process was given. The tests of a binary run in parallel
/// threads: without the record, two of them could be handed the same
/// port (released between the probe and etcd's bind, or while a server
/// is stopped for a restart), and one test's client would then talk to
/// the other test's etcd.
fn free_port() -> u16 {
    static GIVEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    unrecorded_port(&mut given, || {
        TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free loopback port")
    })
}

/// The first port from `probe` not in `given`, recorded there.
fn unrecorded_port(given: &mut BTreeSet<u16>, mut probe: impl FnMut() -> u16) -> u16 {
    loop {
        let port = probe();
        if given.insert(port) {
            return port;
        }
    }
}

#[test]
fn a_port_is_handed_out_once() {
    let mut given = BTreeSet::new();
    let mut probes = [5, 5, 7, 5, 7, 9].into_iter();
    let mut next = || unrecorded_port(&mut given, || probes.next().expect("a probe"));
    assert_eq!([next(), next(), next()], [5, 7, 9]);
}

impl Etcd {
    /// Starts a server, or returns `None` (printing why) when no `etcd`
    /// binary is installed. Under `CI=true` a missing etcd fails the test.
    pub fn start() -> Option<Etcd> {
        let found = Command::new("etcd")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            assert!(
                std::env::var("CI").is_err(),
                "CI=true but no etcd binary: .ci/run installs etcd-server"
            );
            eprintln!("skipped: no `etcd` on the PATH (install Debian's etcd-server)");
            return None;
        }
        let dir = std::env::temp_dir().join(format!(
            "statedb-etcd-test-{}-{}",
            std::process::id(),
            free_port()
        ));
        let mut etcd = Etcd {
            child: None,
            dir,
            client_port: free_port(),
            peer_port: free_port(),
        };
        etcd.run();
        Some(etcd)
    }

    /// The client URL.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    fn run(&mut self) {
        let client = self.endpoint();
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let child = Command::new("etcd")
            .args(["--name", "test", "--data-dir"])
            .arg(&self.dir)
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("test={peer}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start etcd");
        self.child = Some(child);
        // Ready once it answers on its client port.
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.client_port)).is_err() {
            assert!(Instant::now() < deadline, "etcd did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the server (its data stays).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same ports and data.
    pub fn restart(&mut self) {
        self.stop();
        self.run();
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
