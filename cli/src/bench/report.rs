//! The report of a benchmark: each run's raw results and the figures
//! derived from them (each paired with its baseline from the same run, the
//! ratio, and the target where there is one), and over all runs
//! (`bench --repeat N`) each figure's median with its min-max spread; as
//! JSON or a table.

use super::BenchError;
use super::machine::Machine;
use super::memory::MemoryResult;
use super::small_state::SmallStateResult;
use super::subsumption::SubsumptionResult;
use super::tenant_start::StartResult;
use super::throughput::ThroughputResult;
use serde::{Deserialize, Serialize};
use std::fmt::Write;

/// What a figure must reach.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum Target {
    /// `measured / baseline` at least this.
    MinRatio(f64),
    /// `measured` at most this (in the figure's unit).
    MaxValue(f64),
}

impl Target {
    fn met(self, measured: f64, ratio: f64) -> bool {
        match self {
            Target::MinRatio(min) => ratio >= min,
            Target::MaxValue(max) => measured <= max,
        }
    }

    fn describe(self, unit: &str) -> String {
        match self {
            Target::MinRatio(min) => format!(">= {min:.2}x"),
            Target::MaxValue(max) => format!("<= {max} {unit}"),
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Figure {
    /// Short name, for charts and scripts.
    pub key: String,
    pub benchmark: String,
    pub measured: f64,
    pub unit: String,
    pub baseline_label: String,
    pub baseline: f64,
    /// `measured / baseline`.
    pub ratio: f64,
    pub target: Option<Target>,
    pub met: Option<bool>,
    /// How the figure varied over the runs (`measured`, `baseline` and
    /// `ratio` are then medians over the runs); absent in reports written
    /// before `--repeat` existed.
    #[serde(default)]
    pub spread: Option<Spread>,
}

/// Smallest and largest value of a figure over the runs of one report.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    /// Runs the figure was measured in.
    pub runs: u32,
    pub measured_min: f64,
    pub measured_max: f64,
    pub ratio_min: f64,
    pub ratio_max: f64,
}

impl Figure {
    pub(super) fn new(
        key: String,
        benchmark: String,
        measured: f64,
        unit: &str,
        baseline_label: &str,
        baseline: f64,
    ) -> Self {
        Figure {
            key,
            benchmark,
            measured,
            unit: unit.to_string(),
            baseline_label: baseline_label.to_string(),
            baseline,
            ratio: measured / baseline,
            target: None,
            met: None,
            spread: None,
        }
    }

    pub(super) fn with_target(mut self, target: Target) -> Self {
        self.met = Some(target.met(self.measured, self.ratio));
        self.target = Some(target);
        self
    }
}

/// The run's settings, for reproducing it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Settings {
    pub bytes_per_chunk_size: u64,
    pub stream_bytes: u64,
    pub batch_bytes: usize,
    pub small_states: u64,
    pub start_samples: u32,
    pub memory_tenants: Vec<u32>,
    /// Full runs, one after the other (`--repeat`).
    #[serde(default = "one")]
    pub repeat: u32,
}

fn one() -> u32 {
    1
}

/// A benchmark: the settings, each figure over all runs (median and
/// spread), and every run on its own.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub machine: Machine,
    pub settings: Settings,
    /// Each figure's median over the runs, with its spread.
    pub figures: Vec<Figure>,
    /// The runs, in the order they ran (none in reports written before
    /// `--repeat` existed, which kept one run's results at the top level).
    #[serde(default)]
    pub runs: Vec<Run>,
}

/// One full run: raw results and the figures derived from them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Run {
    pub throughput: Vec<ThroughputResult>,
    pub small_state: SmallStateResult,
    /// A native tenant start (canonicalise and open the directory): the
    /// baseline of the tenant start figures.
    pub native_start: StartResult,
    pub tenant_start: Vec<StartResult>,
    pub memory: Vec<MemoryResult>,
    /// Checkpoint store: adding a checkpoint that subsumes one.
    #[serde(default)]
    pub subsumption: Vec<SubsumptionResult>,
    /// The component on the loopback S3 server against `object_store`.
    #[serde(default)]
    pub object_storage: Option<super::ObjectStorageResult>,
    pub figures: Vec<Figure>,
}

/// The median of `values` (the mean of the middle two for an even count).
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// The figures of all runs in one list: per figure the medians of measured
/// value, baseline and ratio over the runs, the spread (min and max), and
/// the target judged on the medians. Every run must report the same
/// figures (they do: the same code ran with the same settings).
pub fn combine(runs: &[Vec<Figure>]) -> Result<Vec<Figure>, BenchError> {
    let Some(first) = runs.first() else {
        return Err(BenchError::Invalid("no run to report".into()));
    };
    first
        .iter()
        .map(|f| {
            let same: Vec<&Figure> = runs
                .iter()
                .map(|run| {
                    run.iter().find(|g| g.key == f.key).ok_or_else(|| {
                        BenchError::Invalid(format!("a run has no figure \"{}\" where the first has one", f.key))
                    })
                })
                .collect::<Result<_, _>>()?;
            let pick = |get: fn(&Figure) -> f64| same.iter().map(|g| get(g)).collect::<Vec<f64>>();
            let (measured, baseline, ratio) = (pick(|g| g.measured), pick(|g| g.baseline), pick(|g| g.ratio));
            let min = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
            let max = |v: &[f64]| v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let mut out = Figure {
                measured: median(&measured),
                baseline: median(&baseline),
                ratio: median(&ratio),
                met: None,
                spread: Some(Spread {
                    runs: same.len() as u32,
                    measured_min: min(&measured),
                    measured_max: max(&measured),
                    ratio_min: min(&ratio),
                    ratio_max: max(&ratio),
                }),
                ..f.clone()
            };
            out.met = out.target.map(|t| t.met(out.measured, out.ratio));
            Ok(out)
        })
        .collect()
}

/// Issue 12, large writes: 64 KiB and 1 MiB chunks against native Rust
/// with the same policy and against the disk.
const TARGET_LARGE: f64 = 0.97;
/// Issue 12, small writes through the default (host-batched) write:
/// 64 B and 4 KiB chunks against the disk at 1 MiB chunks.
const TARGET_SMALL_VS_DISK: f64 = 0.95;
/// Issue 12: inline states written in batches, against native.
const TARGET_INLINE_STATES: f64 = 0.5;
/// Issue 12: tenant start (pooling, median) and resident memory per idle
/// tenant (pooling).
pub const TARGET_START_US: f64 = 10.0;
pub const TARGET_IDLE_KIB: f64 = 48.0;

/// Derives the figures from the raw results.
pub fn figures(
    throughput: &[ThroughputResult],
    small: &SmallStateResult,
    native_start: &StartResult,
    starts: &[StartResult],
    memory: &[MemoryResult],
) -> Vec<Figure> {
    let mut out = Vec::new();
    // The disk's speed is measured once, at the largest chunk: every chunk
    // size is compared with it (the disk is the yardstick).
    let disk = throughput.iter().find_map(|t| t.disk_mib_s);
    for t in throughput {
        let size = human_bytes(t.chunk_bytes as u64);
        let large = t.chunk_bytes >= 65536;
        let target = large.then_some(Target::MinRatio(TARGET_LARGE));
        let short = short_bytes(t.chunk_bytes as u64);
        for (how, key, measured) in [
            ("write per chunk (default)", "call", t.component_mib_s),
            ("BufferedStateOutputStream", "batched", t.batched_mib_s),
        ] {
            let f = Figure::new(
                format!("{short} {key}"),
                format!("{size} chunks, {how}"),
                measured,
                "MiB/s",
                "native",
                t.native_mib_s,
            );
            out.push(match target {
                Some(target) => f.with_target(target),
                None => f,
            });
        }
        if let Some(disk) = disk {
            let target = if large { TARGET_LARGE } else { TARGET_SMALL_VS_DISK };
            out.push(
                Figure::new(
                    format!("{short} vs disk"),
                    format!("{size} chunks (default write) vs disk"),
                    t.component_mib_s,
                    "MiB/s",
                    "disk (one write + fsync)",
                    disk,
                )
                .with_target(Target::MinRatio(target)),
            );
        }
        if let Some(batch) = t.native_batch_mib_s {
            // What the default write costs over the plainest batching, and
            // how far even that gets against the disk.
            out.push(Figure::new(
                format!("{short} vs native batch"),
                format!("{size} chunks (default write) vs native batch"),
                t.component_mib_s,
                "MiB/s",
                "native plain batch",
                batch,
            ));
            if let Some(disk) = disk {
                out.push(Figure::new(
                    format!("{short} native batch vs disk"),
                    format!("{size} chunks, native plain batch vs disk"),
                    batch,
                    "MiB/s",
                    "disk (one write + fsync)",
                    disk,
                ));
            }
        }
    }
    out.push(Figure::new(
        format!("{}B states", small.state_bytes),
        format!("{} B states (inline), stream calls", small.state_bytes),
        small.component_per_s,
        "streams/s",
        "native",
        small.native_per_s,
    ));
    out.push(Figure::new(
        format!("{}B one call", small.state_bytes),
        format!("{} B states (inline), write_state", small.state_bytes),
        small.one_call_per_s,
        "streams/s",
        "native",
        small.native_per_s,
    ));
    out.push(
        Figure::new(
            format!("{}B batch", small.state_bytes),
            format!(
                "{} B states (inline), write_states ({} per call)",
                small.state_bytes,
                super::small_state::STATES_PER_CALL
            ),
            small.batched_per_s,
            "streams/s",
            "native",
            small.native_per_s,
        )
        .with_target(Target::MinRatio(TARGET_INLINE_STATES)),
    );
    for s in starts {
        let median = Figure::new(
            format!("p50 {}", s.allocator),
            format!("tenant start median, {}", s.allocator),
            s.median_us,
            "us",
            "native (open dir)",
            native_start.median_us,
        );
        out.push(if s.allocator == "pooling" {
            median.with_target(Target::MaxValue(TARGET_START_US))
        } else {
            median
        });
        out.push(Figure::new(
            format!("p99 {}", s.allocator),
            format!("tenant start p99, {}", s.allocator),
            s.p99_us,
            "us",
            "native (open dir)",
            native_start.p99_us,
        ));
    }
    for m in memory {
        let rss = Figure::new(
            format!("mem {} {}", s_alloc(&m.allocator), short_count(m.alive)),
            format!("idle tenant, {} x{} (VmRSS)", m.allocator, m.alive),
            m.per_tenant_kib,
            "KiB",
            "target",
            TARGET_IDLE_KIB,
        );
        let pss = m.pss_per_tenant_kib.map(|kib| {
            Figure::new(
                format!("pss {} {}", s_alloc(&m.allocator), short_count(m.alive)),
                format!("idle tenant, {} x{} (Pss: shared pages once)", m.allocator, m.alive),
                kib,
                "KiB",
                "target",
                TARGET_IDLE_KIB,
            )
        });
        let judged = |f: Figure| {
            if m.allocator == "pooling" {
                f.with_target(Target::MaxValue(TARGET_IDLE_KIB))
            } else {
                f
            }
        };
        out.push(judged(rss));
        out.extend(pss.map(judged));
    }
    out
}

/// Figures of the subsumption benchmark (cost per add: lower is better).
pub fn subsumption_figures(results: &[SubsumptionResult]) -> Vec<Figure> {
    results
        .iter()
        .map(|r| {
            Figure::new(
                format!("subsume {}", r.case),
                format!("subsume one checkpoint, {} shared files {}", r.shared_files, r.case),
                r.component_median_us,
                "us",
                "native (std::fs)",
                r.native_median_us,
            )
        })
        .collect()
}

impl Report {
    /// A plain-text table of the figures, then notes. With more than one
    /// run, each value is the median and the range over the runs follows it
    /// in brackets.
    pub fn table(&self) -> String {
        let repeated = self.runs.len() > 1;
        let rows: Vec<[String; 6]> = self
            .figures
            .iter()
            .map(|f| {
                let (measured, ratio) = match f.spread.filter(|_| repeated) {
                    Some(s) => (
                        format!(
                            "{} {} [{}-{}]",
                            num(f.measured),
                            f.unit,
                            num(s.measured_min),
                            num(s.measured_max)
                        ),
                        format!("{:.2} [{:.2}-{:.2}]", f.ratio, s.ratio_min, s.ratio_max),
                    ),
                    None => (format!("{} {}", num(f.measured), f.unit), format!("{:.2}", f.ratio)),
                };
                [
                    f.benchmark.clone(),
                    measured,
                    format!("{} ({})", num(f.baseline), f.baseline_label),
                    ratio,
                    f.target.map_or_else(String::new, |t| t.describe(&f.unit)),
                    match f.met {
                        Some(true) => "met".into(),
                        Some(false) => "MISSED".into(),
                        None => String::new(),
                    },
                ]
            })
            .collect();
        let header = ["benchmark", "measured", "baseline", "ratio", "target", ""].map(String::from);
        let widths: Vec<usize> = (0..6)
            .map(|i| {
                rows.iter()
                    .chain([&header])
                    .map(|r| r[i].chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        let m = &self.machine;
        let _ = writeln!(
            out,
            "machine: {} cores, {}, {} MiB RAM, Linux {}; {}",
            m.nproc, m.cpu_model, m.memory_mib, m.kernel, m.filesystem
        );
        if repeated {
            let _ = writeln!(
                out,
                "{} runs: each value is the median over the runs, [min-max] its spread; a target is judged on the median",
                self.runs.len()
            );
        }
        for r in std::iter::once(&header).chain(&rows) {
            let line: Vec<String> = r.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
            let _ = writeln!(out, "{}", line.join("  ").trim_end());
        }
        let allocators = self.runs.first().map_or(&[][..], |r| &r.tenant_start[..]);
        for (i, s) in allocators.iter().enumerate() {
            let over_runs = |get: fn(&StartResult) -> f64| {
                let v: Vec<f64> = self
                    .runs
                    .iter()
                    .filter_map(|r| r.tenant_start.get(i))
                    .map(get)
                    .collect();
                median(&v)
            };
            let _ = writeln!(
                out,
                "tenant start, {} (medians): create tenant {:.1} us + open worker view {:.1} us; drop afterwards {:.1} us",
                s.allocator,
                over_runs(|s| s.create_median_us),
                over_runs(|s| s.open_view_median_us),
                over_runs(|s| s.drop_median_us)
            );
        }
        for mem in self.runs.iter().flat_map(|r| &r.memory).filter_map(|m| m.note.as_ref()) {
            let _ = writeln!(out, "note: {mem}");
        }
        out
    }
}

fn num(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

fn short_bytes(n: u64) -> String {
    human_bytes(n)
        .replace(" KiB", "K")
        .replace(" MiB", "M")
        .replace(" B", "B")
}

fn short_count(n: u32) -> String {
    if n >= 1000 && n.is_multiple_of(1000) {
        format!("{}k", n / 1000)
    } else {
        n.to_string()
    }
}

fn s_alloc(allocator: &str) -> &str {
    if allocator == "pooling" { "pool" } else { allocator }
}

fn human_bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 20 && n.is_multiple_of(1 << 20) => format!("{} MiB", n >> 20),
        n if n >= 1 << 10 && n.is_multiple_of(1 << 10) => format!("{} KiB", n >> 10),
        n => format!("{n} B"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_decide_met() {
        let f = Figure::new("x".into(), "x".into(), 90.0, "MiB/s", "native", 100.0).with_target(Target::MinRatio(0.9));
        assert_eq!(f.met, Some(true));
        let f = Figure::new("y".into(), "y".into(), 21.0, "us", "native", 2.0).with_target(Target::MaxValue(20.0));
        assert_eq!(f.met, Some(false));
    }

    #[test]
    fn repeated_runs_give_medians_with_their_spread_and_judge_the_median() {
        let run = |measured: f64| {
            vec![
                Figure::new("s".into(), "start".into(), measured, "us", "native", 2.0)
                    .with_target(Target::MaxValue(10.0)),
            ]
        };
        // One run far over the target does not decide: the median does.
        let figures = combine(&[run(8.0), run(30.0), run(9.0)]).unwrap();
        let f = &figures[0];
        assert_eq!((f.measured, f.baseline, f.ratio), (9.0, 2.0, 4.5));
        assert_eq!(f.met, Some(true));
        let s = f.spread.unwrap();
        assert_eq!((s.runs, s.measured_min, s.measured_max), (3, 8.0, 30.0));
        assert_eq!((s.ratio_min, s.ratio_max), (4.0, 15.0));
        // An even count takes the mean of the middle two.
        assert_eq!(combine(&[run(8.0), run(12.0)]).unwrap()[0].measured, 10.0);
        assert_eq!(combine(&[run(8.0), run(12.0)]).unwrap()[0].met, Some(true));
    }

    #[test]
    fn runs_that_disagree_on_their_figures_are_refused() {
        let a = vec![Figure::new("a".into(), "a".into(), 1.0, "us", "x", 1.0)];
        let b = vec![Figure::new("b".into(), "b".into(), 1.0, "us", "x", 1.0)];
        match combine(&[a, b]) {
            Err(BenchError::Invalid(why)) => assert!(why.contains("no figure \"a\""), "{why}"),
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert!(matches!(combine(&[]), Err(BenchError::Invalid(_))));
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human_bytes(64), "64 B");
        assert_eq!(human_bytes(4096), "4 KiB");
        assert_eq!(human_bytes(1 << 20), "1 MiB");
    }
}
