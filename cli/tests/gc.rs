//! `checkpoint-storage gc` as a user runs it, and the lifecycle part of
//! `demo`.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_checkpoint-storage");
const JOB: &str = "0123456789abcdef0123456789abcdef";

fn run(args: &[&str], dir: &std::path::Path) -> (bool, String, String) {
    let out = Command::new(BIN).args(args).arg(dir).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn gc_is_a_dry_run_by_default_and_deletes_with_delete() {
    let dir = tempfile::tempdir().unwrap();
    let chk = dir.path().join(JOB).join("chk-3");
    std::fs::create_dir_all(&chk).unwrap();
    std::fs::write(chk.join("orphan"), vec![0; 1234]).unwrap();
    std::fs::write(chk.join("._metadata_temp-x"), b"{").unwrap();

    // Default grace (1h): everything is young, nothing would go.
    let (ok, out, err) = run(&["gc"], dir.path());
    assert!(ok, "{out}{err}");
    assert!(out.contains("0 orphans"), "{out}");
    assert!(
        out.contains("2 unreferenced files younger than the grace period kept"),
        "{out}"
    );

    let (ok, out, err) = run(&["gc", "--grace", "0s"], dir.path());
    assert!(ok, "{out}{err}");
    assert!(out.contains("would delete         1234 B"), "{out}");
    assert!(out.contains("(unfinished metadata)"), "{out}");
    assert!(chk.join("orphan").exists(), "a dry run deletes nothing");

    let (ok, out, err) = run(&["gc", "--grace", "0s", "--delete", "--json"], dir.path());
    assert!(ok, "{out}{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["deleted"], true);
    assert_eq!(report["orphans"].as_array().unwrap().len(), 3, "two files and chk-3");
    assert!(!chk.exists());
}

#[test]
fn gc_refuses_bad_arguments_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, _, err) = run(&["gc", "--grace", "soon"], dir.path());
    assert!(!ok);
    assert!(err.contains("'soon' is not a duration"), "{err}");
    let (ok, _, err) = run(&["gc"], std::path::Path::new("/definitely/not/here"));
    assert!(!ok);
    assert!(err.contains("cannot collect in /definitely/not/here"), "{err}");
}

#[test]
fn demo_shows_subsumption_with_two_retained() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, out, err) = run(&["demo", "--tenants", "1", "--dir"], dir.path());
    assert!(ok, "{out}{err}");
    assert!(out.contains("execution.checkpointing.num-retained = 2"), "{out}");
    assert!(out.contains("subsumed checkpoint [1]"), "{out}");
    assert_eq!(out.matches("every byte equal").count(), 2, "{out}");
    let job_dirs: Vec<_> = std::fs::read_dir(dir.path().join("lifecycle"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(job_dirs.len(), 1);
    assert!(!job_dirs[0].join("chk-1").exists());
    assert!(job_dirs[0].join("chk-2/_metadata").exists());
    assert!(job_dirs[0].join("chk-3/_metadata").exists());
    // shared-11 (used by 2), shared-2 and shared-3 remain; shared-1 is gone.
    assert_eq!(std::fs::read_dir(job_dirs[0].join("shared")).unwrap().count(), 3);
    assert!(out.contains("1 unreferenced shared file(s) deleted"), "{out}");
    // Nothing is left for the orphan collection.
    let (ok, out, _) = run(&["gc", "--grace", "0s"], &dir.path().join("lifecycle"));
    assert!(ok && out.contains("0 orphans"), "{out}");
}
