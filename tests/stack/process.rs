//! Starting and reaping server processes for tests.
//!
//! Every child is registered; when the test binary exits (normally or through a failed test's
//! `process::exit`), an `atexit` hook signals each one and removes the run's scratch directory,
//! so no server outlives the run even though shared servers live in statics that never drop.

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command},
    sync::{Mutex, Once, OnceLock},
    time::{Duration, Instant},
};

static CHILDREN: Mutex<Vec<(u32, i32)>> = Mutex::new(Vec::new());
static HOOK: Once = Once::new();

extern "C" fn reap_all() {
    if let Ok(children) = CHILDREN.lock() {
        for (pid, signal) in children.iter() {
            unsafe {
                libc::kill(*pid as i32, *signal);
            }
        }
    }
    if let Some(dir) = SCRATCH.get() {
        // Give servers a moment to exit before removing their files.
        std::thread::sleep(Duration::from_millis(200));
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Registers a child to be sent `signal` when the test binary exits.
pub fn register(child: &Child, signal: i32) {
    HOOK.call_once(|| unsafe {
        libc::atexit(reap_all);
    });
    CHILDREN.lock().unwrap().push((child.id(), signal));
}

pub fn unregister(pid: u32) {
    CHILDREN.lock().unwrap().retain(|(p, _)| *p != pid);
}

static SCRATCH: OnceLock<PathBuf> = OnceLock::new();

/// This run's scratch directory (removed at exit), readable by the server user.
pub fn scratch() -> &'static Path {
    SCRATCH.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("ferry-tests-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        HOOK.call_once(|| unsafe {
            libc::atexit(reap_all);
        });
        dir
    })
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The user servers run as: `initdb` and `postgres` refuse root, so as root they run as the
/// `postgres` system user (it exists wherever Debian's PostgreSQL is installed).
pub fn server_user() -> Option<(u32, u32)> {
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let name = std::ffi::CString::new("postgres").unwrap();
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    assert!(
        !pw.is_null(),
        "running as root, and there is no 'postgres' user to run the PostgreSQL server as \
         (install Debian's postgresql package, as .ci/run does)"
    );
    unsafe { Some(((*pw).pw_uid, (*pw).pw_gid)) }
}

/// A command that runs as [`server_user`].
pub fn as_server_user(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut command = Command::new(program);
    if let Some((uid, gid)) = server_user() {
        use std::os::unix::process::CommandExt;
        command.uid(uid).gid(gid);
    }
    command
}

/// Makes `path` (recursively) owned by the server user.
pub fn give_to_server_user(path: &Path) {
    if let Some((uid, gid)) = server_user() {
        let status = Command::new("chown")
            .arg("-R")
            .arg(format!("{uid}:{gid}"))
            .arg(path)
            .status()
            .unwrap();
        assert!(status.success(), "chown {}", path.display());
    }
}

/// Waits until something accepts TCP connections on `port`, or panics with `what` and `log`.
pub fn wait_for_port(port: u16, timeout: Duration, what: &str, log: &Path) {
    let started = Instant::now();
    while started.elapsed() < timeout {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = std::fs::read_to_string(log).unwrap_or_default();
    panic!("{what} did not start listening on port {port} within {timeout:?}; its log:\n{log}");
}
