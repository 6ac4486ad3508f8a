//! Records the commit the `ferry` binary is built from, for `ferry --version`: `FERRY_COMMIT`
//! when set (a release build from a source archive), else what `git` says of the checkout,
//! else `unknown`.

use std::{path::Path, process::Command};

fn main() {
    println!("cargo:rerun-if-env-changed=FERRY_COMMIT");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let git = repo.join(".git");
    // A new commit moves HEAD or the branch it names.
    for file in ["HEAD", "packed-refs"] {
        println!("cargo:rerun-if-changed={}", git.join(file).display());
    }
    if let Ok(head) = std::fs::read_to_string(git.join("HEAD"))
        && let Some(reference) = head.trim().strip_prefix("ref: ")
    {
        println!("cargo:rerun-if-changed={}", git.join(reference).display());
    }
    let commit = std::env::var("FERRY_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| {
            let out = Command::new("git")
                .arg("-C")
                .arg(&repo)
                .args(["rev-parse", "--short=12", "HEAD"])
                .output()
                .ok()?;
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        })
        .filter(|c| c.chars().all(|ch| ch.is_ascii_alphanumeric()))
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=FERRY_COMMIT={commit}");
}
