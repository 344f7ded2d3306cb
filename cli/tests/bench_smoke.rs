//! The benchmark runs end to end with tiny sizes and reports well-formed
//! figures. No timing is asserted: only that every figure is a finite,
//! positive number, and that the JSON, table and chart come out.

use checkpoint_storage_cli::bench::{self, BenchOptions, ProgressBar, Report};

#[test]
fn a_tiny_benchmark_run_reports_finite_positive_figures() {
    let dir = tempfile::tempdir().unwrap();
    let options = BenchOptions {
        dir: Some(dir.path().to_path_buf()),
        ..BenchOptions::smoke()
    };
    let report = bench::run(&options, &ProgressBar::hidden()).expect("the benchmark runs");

    let json = serde_json::to_string(&report).unwrap();
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    let figures = value["figures"].as_array().expect("figures");
    // 4 chunk sizes x 2 ways + vs disk + small states x 2 ways + 2 allocators x 2 + idle memory x 2
    // + directory fsync + subsumption x 2 + restore reads x 2.
    assert_eq!(figures.len(), 4 * 2 + 1 + 2 + 4 + 2 + 1 + 2 + 2, "{json}");
    for f in figures {
        for field in ["measured", "baseline", "ratio"] {
            let v = f[field].as_f64().unwrap_or_else(|| panic!("{field} of {f}"));
            assert!(v.is_finite() && v > 0.0, "{field} of {f}");
        }
        assert!(!f["key"].as_str().unwrap().is_empty());
    }
    let with_targets = figures.iter().filter(|f| !f["target"].is_null()).count();
    assert_eq!(
        with_targets,
        2 * 2 + 1 + 1 + 1 + 2,
        "64K and 4K (both ways), vs disk, start, memory, restore reads"
    );
    assert_eq!(value["machine"]["nproc"].as_u64().map(|n| n > 0), Some(true));

    let back: Report = serde_json::from_str(&json).expect("the JSON reads back");
    assert_eq!(back.figures.len(), figures.len());
    assert!(report.table().contains("vs disk"));

    let chart = dir.path().join("bench.svg");
    bench::write_chart(&report, &chart).unwrap();
    let svg = std::fs::read_to_string(&chart).unwrap();
    assert!(
        svg.starts_with("<svg") || svg.starts_with("<?xml"),
        "{}",
        &svg[..svg.len().min(80)]
    );
}

#[test]
fn out_of_range_library_options_are_refused_before_anything_runs() {
    let refused = |options: BenchOptions| match bench::run(&options, &ProgressBar::hidden()) {
        Err(bench::BenchError::Invalid(why)) => why,
        Err(e) => panic!("expected invalid settings, got {e}"),
        Ok(_) => panic!("expected invalid settings, the benchmark ran"),
    };
    let why = refused(BenchOptions {
        stream_bytes: 8796093022208 << 20,
        ..BenchOptions::smoke()
    });
    assert!(
        why.contains("more than the 1073741824 bytes a stream may have"),
        "{why}"
    );
    let why = refused(BenchOptions {
        memory_tenants: vec![u32::MAX],
        ..BenchOptions::smoke()
    });
    assert!(
        why.contains("4294967295 idle tenants is more than the allowed 100000"),
        "{why}"
    );
}
