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
    // 4 chunk sizes x (2 ways + vs disk) + the 2 chunk sizes below the batch x (vs the native
    // plain batch, that batch vs disk) + small states x 3 ways + 2 allocators x 2 + idle memory
    // x 2 allocators x (VmRSS, Pss) + directory fsync + subsumption x 2 + restore reads x 2 + object storage (stream,
    // small objects).
    assert_eq!(figures.len(), 4 * 3 + 2 * 2 + 3 + 4 + 2 * 2 + 1 + 2 + 2 + 2, "{json}");
    for key in [
        "s3 stream",
        "s3 small",
        "64B native batch vs disk",
        "4K vs native batch",
        "mem pool 8",
        "pss pool 8",
    ] {
        assert!(figures.iter().any(|f| f["key"] == key), "{key} in {json}");
    }
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
        2 * 2 + 4 + 1 + 1 + 2 + 2,
        "64K and 1M (both ways), every chunk size vs disk, batched small states, start, memory (VmRSS, Pss), restore reads"
    );
    assert_eq!(value["machine"]["nproc"].as_u64().map(|n| n > 0), Some(true));

    let back: Report = serde_json::from_str(&json).expect("the JSON reads back");
    assert_eq!(back.figures.len(), figures.len());
    assert!(report.table().contains("vs disk"));
    // One run: every figure is that run's own, with no spread to speak of.
    assert_eq!(report.runs.len(), 1);
    for (f, own) in report.figures.iter().zip(&report.runs[0].figures) {
        assert_eq!(
            (f.key.as_str(), f.measured, f.ratio),
            (own.key.as_str(), own.measured, own.ratio)
        );
        let s = f.spread.expect("a spread");
        assert_eq!((s.runs, s.ratio_min, s.ratio_max), (1, f.ratio, f.ratio));
    }

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
fn repeated_runs_report_each_figure_as_the_median_of_the_runs_with_its_spread() {
    let dir = tempfile::tempdir().unwrap();
    let options = BenchOptions {
        dir: Some(dir.path().to_path_buf()),
        repeat: 3,
        ..BenchOptions::smoke()
    };
    let report = bench::run(&options, &ProgressBar::hidden()).expect("the benchmark runs");
    assert_eq!(report.settings.repeat, 3);
    assert_eq!(report.runs.len(), 3);
    for (i, f) in report.figures.iter().enumerate() {
        let mut ratios: Vec<f64> = report.runs.iter().map(|r| r.figures[i].ratio).collect();
        assert!(report.runs.iter().all(|r| r.figures[i].key == f.key), "{}", f.key);
        ratios.sort_by(f64::total_cmp);
        let s = f.spread.expect("a spread");
        assert_eq!(s.runs, 3);
        assert_eq!(
            (s.ratio_min, f.ratio, s.ratio_max),
            (ratios[0], ratios[1], ratios[2]),
            "{}",
            f.key
        );
        assert!(
            s.measured_min <= f.measured && f.measured <= s.measured_max,
            "{}",
            f.key
        );
        if let (Some(target), Some(met)) = (f.target, f.met) {
            let judged = match target {
                bench::Target::MinRatio(min) => f.ratio >= min,
                bench::Target::MaxValue(max) => f.measured <= max,
            };
            assert_eq!(met, judged, "{} is judged on its median", f.key);
        }
    }
    let table = report.table();
    assert!(table.contains("3 runs"), "{table}");
    assert!(table.contains('['), "the table shows the spread: {table}");
    let json = serde_json::to_string(&report).unwrap();
    let back: Report = serde_json::from_str(&json).expect("the JSON reads back");
    assert_eq!(back.runs.len(), 3);
    let chart = dir.path().join("bench.svg");
    bench::write_chart(&report, &chart).unwrap();
    assert!(std::fs::metadata(&chart).unwrap().len() > 0);
}

#[test]
fn a_report_written_before_repeat_existed_still_reads() {
    // The shape of the reports committed before: one run's results at the
    // top level, figures without a spread.
    let old = r#"{
        "machine": {"nproc": 2, "cpu_model": "AMD EPYC", "memory_mib": 24105, "kernel": "6.18",
                    "filesystem": "ext4 on /dev/vda (/)", "dir": "/tmp/x"},
        "settings": {"bytes_per_chunk_size": 268435456, "stream_bytes": 4194304, "batch_bytes": 65536,
                     "small_states": 200000, "start_samples": 2000, "memory_tenants": [1000, 10000]},
        "throughput": [], "small_state": {"state_bytes": 100, "streams": 1, "native_per_s": 1.0, "component_per_s": 1.0},
        "figures": [{"key": "p50 pooling", "benchmark": "tenant start median, pooling", "measured": 17.7,
                     "unit": "us", "baseline_label": "native (open dir)", "baseline": 2.2, "ratio": 8.1,
                     "target": {"kind": "max_value", "value": 20.0}, "met": true}]
    }"#;
    let report: Report = serde_json::from_str(old).expect("an earlier report reads");
    assert!(report.runs.is_empty());
    assert_eq!(report.settings.repeat, 1);
    assert!(report.figures.iter().all(|f| f.spread.is_none()));
    assert!(report.table().contains("tenant start"), "{}", report.table());
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
    for repeat in [0, bench::MAX_REPEAT + 1] {
        let why = refused(BenchOptions {
            repeat,
            ..BenchOptions::smoke()
        });
        assert!(why.contains("the benchmark runs from 1 to 100 times"), "{why}");
    }
}
