//! `demo --file-merging` writes 1,000 small states into a handful of files
//! and restores them; the file-merging bench rows come out well-formed.

use checkpoint_storage_cli::bench::file_merging;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_checkpoint-storage");

#[test]
fn merged_demo_writes_few_files_and_restores() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["demo", "--file-merging", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("1000 states, "), "{stdout}");
    assert!(stdout.contains("Segment File State: /checkpoints/"), "{stdout}");
    assert!(stdout.contains("restore in a fresh instance: 1000 states"), "{stdout}");
    // Four subtasks' shared files, one exclusive file, the metadata.
    let mut files = 0;
    let mut stack = vec![dir.path().to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(d).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                files += 1;
            }
        }
    }
    assert_eq!(files, 6, "{stdout}");
}

#[test]
fn file_merging_bench_rows_are_well_formed() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = checkpoint_storage_host::Plugin::load().unwrap();
    let rows = file_merging::measure(&plugin, dir.path(), 1).unwrap();
    assert_eq!(rows.len(), 2);
    let (plain, merged) = (&rows[0], &rows[1]);
    assert_eq!((plain.variant, merged.variant), ("unmerged", "merged"));
    assert_eq!(plain.state_bytes, merged.state_bytes);
    assert!(merged.files < 10, "{merged:?}");
    assert!(plain.files > merged.files, "{plain:?}");
    assert_eq!(merged.bytes_on_disk, merged.state_bytes, "segments are back to back");
    for r in &rows {
        assert!(r.states_per_s.is_finite() && r.states_per_s > 0.0, "{r:?}");
        assert!(r.space_amplification > 0.0, "{r:?}");
    }
    assert!(file_merging::table(&rows).contains("merged"));
    assert!(file_merging::measure(&plugin, dir.path(), 0).is_err());
}
