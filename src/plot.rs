//! `rlpg plot`: learning curves of many runs on one chart, grouped, averaged over seeds with a
//! bootstrap confidence band.
//!
//! 1. **Runs.** Each path is a run directory (it holds `events.out.tfevents.*` files) or a folder
//!    searched for run directories at any depth. Event files are read with rlpg's own reader
//!    ([`read_scalars`]); a run's files are concatenated in name order (a resumed run adds one).
//! 2. **Groups.** Each run's `config.toml` is read as plain TOML (so plotting never needs the
//!    env to be registered or the config to be valid for this build): runs are grouped by every
//!    setting that differs between them except the seed and the bookkeeping settings that do not
//!    change what a run learns ([`BOOKKEEPING_KEYS`]), so a group holds the seeds of one setting
//!    (a sweep's grid points are groups of their own); or by the values of the dotted keys of
//!    [`PlotOptions::group_by`] (such as `pathwise.estimator`), averaging over the rest. A
//!    group's size is given in seeds (distinct `seed` values), and in runs as well when some
//!    runs share a seed.
//! 3. **Series.** The metric's points of each run, x = global env step, or wall-clock seconds
//!    since the run's first scalar ([`XAxis::Seconds`]; a resumed run's pause counts too),
//!    smoothed by a trailing moving average of [`PlotOptions::smooth`] points, then linearly
//!    interpolated onto [`PlotOptions::points`] evenly spaced x values spanning the range that
//!    **every** run of the group covers (so each point averages all seeds).
//! 4. **Band.** At each x: the mean over seeds and a 95% percentile bootstrap interval of that
//!    mean (resampling seeds with replacement, [`BOOTSTRAP_RESAMPLES`] times, from a fixed
//!    seed, so the output is deterministic). One seed gives a band of zero width.
//! 5. **Output.** A PNG through plotters' bitmap backend with DejaVu Sans from the `dejavu`
//!    crate (no system fonts), and optionally the aggregated series as CSV.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

use crate::{CONFIG_FILE, TbError, event_files, read_scalars};

/// Bootstrap resamples per x value.
pub const BOOTSTRAP_RESAMPLES: usize = 1000;
/// Seed of the bootstrap's resampling.
const BOOTSTRAP_SEED: u64 = 0x005e_ed0f_b007;
/// Width and height of the PNG in pixels.
pub const PLOT_SIZE: (u32, u32) = (1000, 620);

/// What the x axis measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum XAxis {
    /// Global environment steps (summed over the vector env's envs).
    #[default]
    Steps,
    /// Wall-clock seconds since the run's first logged scalar.
    Seconds,
}

impl XAxis {
    fn label(self) -> &'static str {
        match self {
            XAxis::Steps => "environment steps",
            XAxis::Seconds => "wall-clock time (s)",
        }
    }

    fn column(self) -> &'static str {
        match self {
            XAxis::Steps => "step",
            XAxis::Seconds => "seconds",
        }
    }
}

/// Settings of [`plot`].
#[derive(Clone, Debug, PartialEq)]
pub struct PlotOptions {
    /// The PNG to write.
    pub out: PathBuf,
    /// The scalar tag to plot.
    pub metric: String,
    /// What the x axis measures.
    pub x: XAxis,
    /// Trailing moving-average window, in logged points (1: no smoothing).
    pub smooth: usize,
    /// Group runs by the values of these dotted config keys (averaging over every other
    /// setting) instead of by every setting that differs.
    pub group_by: Vec<String>,
    /// Also write the aggregated series here as CSV.
    pub csv: Option<PathBuf>,
    /// Number of x values each group's curve is evaluated at (at least 2).
    pub points: usize,
    /// Draw the x axis on a log scale (x values below 1 are drawn at 1), e.g. to show agents
    /// whose step budgets differ a hundredfold on one chart. The CSV is unaffected.
    pub log_x: bool,
}

impl PlotOptions {
    /// Plots `charts/episodic_return` against env steps into `out`, no smoothing, 100 points.
    pub fn new(out: impl Into<PathBuf>) -> Self {
        Self {
            out: out.into(),
            metric: "charts/episodic_return".to_owned(),
            x: XAxis::Steps,
            smooth: 1,
            group_by: Vec::new(),
            csv: None,
            points: 100,
            log_x: false,
        }
    }
}

/// Why a plot could not be made. Each is one line naming the file or value at fault.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// A path holds no event files, in it or in any folder below it.
    #[error("no TensorBoard event files (events.out.tfevents.*) in {} or any folder below it", path.display())]
    NoEventFiles {
        /// The path given.
        path: PathBuf,
    },
    /// A path or file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// An event file is damaged.
    #[error(transparent)]
    EventFile(#[from] TbError),
    /// No run logged the requested tag.
    #[error("no run has the tag '{tag}'; tags found: {}", available.join(", "))]
    UnknownTag {
        /// The tag asked for.
        tag: String,
        /// Every tag the runs have.
        available: Vec<String>,
    },
    /// A run's config is missing, unreadable, or lacks the key to group by.
    #[error("{}: {message}", path.display())]
    Config {
        /// The `config.toml`.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The runs of a group share no stretch of the x axis.
    #[error("the runs of '{group}' do not overlap on the x axis ({detail})")]
    NoOverlap {
        /// The group's label.
        group: String,
        /// The ranges that do not meet.
        detail: String,
    },
    /// An option is out of range.
    #[error("{0}")]
    BadOption(String),
    /// The chart could not be drawn or written.
    #[error("cannot draw {}: {message}", path.display())]
    Draw {
        /// The PNG.
        path: PathBuf,
        /// The backend's message.
        message: String,
    },
}

/// One plotted curve.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupSeries {
    /// The legend label without the seed count: `env / agent` and each other setting that tells
    /// the groups apart (`env / agent, key = value, ...`), or `key = value, ...` of the keys
    /// grouped by.
    pub label: String,
    /// The runs averaged, in path order.
    pub runs: Vec<PathBuf>,
    /// The distinct seeds among them (runs without a `seed` count as one each).
    pub seeds: usize,
    /// The x values.
    pub x: Vec<f64>,
    /// Mean over runs at each x.
    pub mean: Vec<f64>,
    /// Lower end of the 95% bootstrap interval of the mean at each x.
    pub low: Vec<f64>,
    /// Upper end of the 95% bootstrap interval of the mean at each x.
    pub high: Vec<f64>,
}

impl GroupSeries {
    /// How many seeds the group averages, and how many runs when that is more: `5 seeds`,
    /// `1 seed`, `8 runs of 4 seeds`.
    pub fn size(&self) -> String {
        let plural = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
        if self.runs.len() > self.seeds {
            format!("{} of {}", plural(self.runs.len(), "run"), plural(self.seeds, "seed"))
        } else {
            plural(self.seeds, "seed")
        }
    }
}

/// What [`plot`] drew.
#[derive(Clone, Debug, PartialEq)]
pub struct PlotSummary {
    /// The curves, sorted by label.
    pub groups: Vec<GroupSeries>,
    /// Runs left out because they have no point of the metric (e.g. no episode finished yet).
    pub skipped: Vec<PathBuf>,
}

/// Config keys that do not change what a run learns, left out of the automatic grouping (with
/// `seed`, which tells the runs of one group apart).
pub const BOOKKEEPING_KEYS: &[&str] = &[
    "checkpoint_every",
    "keep_checkpoints",
    "checkpoint_replay_buffer",
    "log_every",
    "capture_video_every",
    "env_threads",
    "torch_threads",
];

/// One run's metric series and its settings.
struct Run {
    path: PathBuf,
    group: String,
    seed: Option<String>,
    settings: BTreeMap<String, String>,
    points: Vec<(f64, f64)>,
}

/// Reads the runs under `paths`, aggregates them as the module doc describes, draws the PNG
/// `options.out` (and the CSV `options.csv`), and returns the curves.
pub fn plot(paths: &[impl AsRef<Path>], options: &PlotOptions) -> Result<PlotSummary, PlotError> {
    let summary = aggregate(paths, options)?;
    if let Some(csv) = &options.csv {
        std::fs::write(csv, to_csv(&summary, options.x))
            .map_err(|source| PlotError::Io { path: csv.clone(), source })?;
    }
    draw(&summary, options)?;
    Ok(summary)
}

/// Everything of [`plot`] but the files it writes.
pub fn aggregate(
    paths: &[impl AsRef<Path>],
    options: &PlotOptions,
) -> Result<PlotSummary, PlotError> {
    if options.points < 2 {
        return Err(PlotError::BadOption(format!(
            "points must be at least 2, got {}",
            options.points
        )));
    }
    if paths.is_empty() {
        return Err(PlotError::BadOption("no run directory or folder given".to_owned()));
    }
    let mut dirs = Vec::new();
    for path in paths {
        let path = path.as_ref();
        let found = find_runs(path)?;
        if found.is_empty() {
            return Err(PlotError::NoEventFiles { path: path.to_path_buf() });
        }
        dirs.extend(found);
    }
    let mut runs = Vec::new();
    let mut skipped = Vec::new();
    let mut tags = BTreeSet::new();
    for dir in dirs {
        let points = read_series(&dir, &options.metric, options.x, &mut tags)?;
        if points.is_empty() {
            skipped.push(dir);
            continue;
        }
        let settings = settings_of(&dir)?;
        let seed = settings.get("seed").cloned();
        let points = smooth(&points, options.smooth.max(1));
        runs.push(Run { path: dir, group: String::new(), seed, settings, points });
    }
    label_groups(&mut runs, &options.group_by)?;
    if runs.is_empty() {
        return Err(PlotError::UnknownTag {
            tag: options.metric.clone(),
            available: tags.into_iter().collect(),
        });
    }
    let mut groups: BTreeMap<String, Vec<Run>> = BTreeMap::new();
    for run in runs {
        groups.entry(run.group.clone()).or_default().push(run);
    }
    let groups = groups
        .into_iter()
        .map(|(label, runs)| combine(label, runs, options.points))
        .collect::<Result<_, _>>()?;
    Ok(PlotSummary { groups, skipped })
}

/// `path` itself if it holds event files, else every folder below it that does (not looking
/// inside run directories, not following symbolic links), sorted.
fn find_runs(path: &Path) -> Result<Vec<PathBuf>, PlotError> {
    let io = |source| PlotError::Io { path: path.to_owned(), source };
    let meta = std::fs::metadata(path).map_err(io)?;
    if !meta.is_dir() {
        return Err(io(io::Error::other(
            "not a directory (give a run directory or a folder of runs)",
        )));
    }
    if !event_files(path).map_err(io)?.is_empty() {
        return Ok(vec![path.to_owned()]);
    }
    let mut children = Vec::new();
    for entry in std::fs::read_dir(path).map_err(io)? {
        let entry = entry.map_err(io)?;
        if entry.file_type().map_err(io)?.is_dir() {
            children.push(entry.path());
        }
    }
    children.sort();
    let mut runs = Vec::new();
    for child in children {
        runs.extend(find_runs(&child)?);
    }
    Ok(runs)
}

/// The run's `(x, value)` points of `tag` in step order; records every tag seen in `tags`.
fn read_series(
    dir: &Path,
    tag: &str,
    x: XAxis,
    tags: &mut BTreeSet<String>,
) -> Result<Vec<(f64, f64)>, PlotError> {
    let files =
        event_files(dir).map_err(|source| PlotError::Io { path: dir.to_owned(), source })?;
    let mut scalars = Vec::new();
    for file in files {
        scalars.extend(read_scalars(&file)?.scalars);
    }
    let start = scalars.iter().map(|s| s.wall_time).fold(f64::INFINITY, f64::min);
    let mut points = Vec::new();
    for s in &scalars {
        if !tags.contains(&s.tag) {
            tags.insert(s.tag.clone());
        }
        if s.tag == tag && s.value.is_finite() {
            let at = match x {
                XAxis::Steps => s.step as f64,
                XAxis::Seconds => s.wall_time - start,
            };
            points.push((at, f64::from(s.value)));
        }
    }
    // Stable: points logged at the same step keep their file order.
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    Ok(points)
}

/// The settings of the run in `dir`: its `config.toml` flattened into dotted keys.
fn settings_of(dir: &Path) -> Result<BTreeMap<String, String>, PlotError> {
    let path = dir.join(CONFIG_FILE);
    let fail = |message: String| PlotError::Config { path: path.clone(), message };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| fail(format!("cannot read the run's config: {e}")))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| fail(format!("not valid TOML: {}", e.message())))?;
    fn flatten(prefix: &str, table: &toml::Table, out: &mut BTreeMap<String, String>) {
        for (key, value) in table {
            let key = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
            match value {
                toml::Value::Table(inner) => flatten(&key, inner, out),
                toml::Value::String(s) => {
                    out.insert(key, s.clone());
                }
                other => {
                    out.insert(key, other.to_string());
                }
            }
        }
    }
    let mut settings = BTreeMap::new();
    flatten("", &table, &mut settings);
    for key in ["env", "agent"] {
        if !settings.contains_key(key) {
            return Err(fail(format!("has no '{key}' key")));
        }
    }
    Ok(settings)
}

/// Sets each run's group label: by the values of `group_by`, or by every setting that differs
/// between the runs (see the module docs).
fn label_groups(runs: &mut [Run], group_by: &[String]) -> Result<(), PlotError> {
    let value = |run: &Run, key: &str| run.settings.get(key).map_or("-", String::as_str).to_owned();
    if !group_by.is_empty() {
        for run in runs.iter_mut() {
            let mut parts = Vec::new();
            for key in group_by {
                let Some(v) = run.settings.get(key) else {
                    return Err(PlotError::Config {
                        path: run.path.join(CONFIG_FILE),
                        message: format!("has no key '{key}' to group by"),
                    });
                };
                parts.push(format!("{key} = {v}"));
            }
            run.group = parts.join(", ");
        }
        return Ok(());
    }
    let keys: BTreeSet<&String> = runs.iter().flat_map(|r| r.settings.keys()).collect();
    let differing: Vec<String> = keys
        .into_iter()
        .filter(|k| !["env", "agent", "seed"].contains(&k.as_str()))
        .filter(|k| !BOOKKEEPING_KEYS.contains(&k.as_str()))
        .filter(|k| runs.iter().any(|r| value(r, k) != value(&runs[0], k)))
        .cloned()
        .collect();
    for run in runs.iter_mut() {
        let mut label = format!("{} / {}", value(run, "env"), value(run, "agent"));
        for key in &differing {
            let _ = write!(label, ", {key} = {}", value(run, key));
        }
        run.group = label;
    }
    Ok(())
}

/// Trailing moving average over `window` points (fewer at the start).
fn smooth(points: &[(f64, f64)], window: usize) -> Vec<(f64, f64)> {
    let mut sum = 0.0;
    points
        .iter()
        .enumerate()
        .map(|(i, &(x, y))| {
            sum += y;
            if i >= window {
                sum -= points[i - window].1;
            }
            (x, sum / (i + 1).min(window) as f64)
        })
        .collect()
}

/// Linear interpolation of sorted `points` at `x` (inside their range).
fn interpolate(points: &[(f64, f64)], x: f64) -> f64 {
    let i = points.partition_point(|p| p.0 < x);
    if i == 0 {
        return points[0].1;
    }
    if i == points.len() {
        return points[i - 1].1;
    }
    let ((x0, y0), (x1, y1)) = (points[i - 1], points[i]);
    if x1 == x0 { y1 } else { y0 + (y1 - y0) * (x - x0) / (x1 - x0) }
}

/// The group's curve: runs interpolated on a shared grid, mean and bootstrap band.
fn combine(label: String, runs: Vec<Run>, points: usize) -> Result<GroupSeries, PlotError> {
    let lo = runs.iter().map(|r| r.points[0].0).fold(f64::NEG_INFINITY, f64::max);
    let hi = runs.iter().map(|r| r.points[r.points.len() - 1].0).fold(f64::INFINITY, f64::min);
    if lo > hi {
        let detail = runs
            .iter()
            .map(|r| {
                let (a, b) = (r.points[0].0, r.points[r.points.len() - 1].0);
                format!("{}: {a}..{b}", r.path.display())
            })
            .collect::<Vec<_>>()
            .join("; ");
        return Err(PlotError::NoOverlap { group: label, detail });
    }
    let n = if lo == hi { 1 } else { points };
    let x: Vec<f64> = (0..n)
        .map(|i| if n == 1 { lo } else { lo + (hi - lo) * i as f64 / (n - 1) as f64 })
        .collect();
    let values: Vec<Vec<f64>> =
        runs.iter().map(|r| x.iter().map(|&at| interpolate(&r.points, at)).collect()).collect();
    let resamples = bootstrap_indices(runs.len());
    let mut mean = Vec::with_capacity(n);
    let (mut low, mut high) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let mut means = vec![0.0; resamples.len()];
    for j in 0..n {
        let column: Vec<f64> = values.iter().map(|v| v[j]).collect();
        mean.push(column.iter().sum::<f64>() / column.len() as f64);
        for (m, sample) in means.iter_mut().zip(&resamples) {
            *m = sample.iter().map(|&k| column[k]).sum::<f64>() / sample.len() as f64;
        }
        means.sort_by(f64::total_cmp);
        low.push(percentile(&means, 0.025));
        high.push(percentile(&means, 0.975));
    }
    let seed_values: BTreeSet<&str> = runs.iter().filter_map(|r| r.seed.as_deref()).collect();
    let seeds = seed_values.len() + runs.iter().filter(|r| r.seed.is_none()).count();
    Ok(GroupSeries {
        label,
        runs: runs.into_iter().map(|r| r.path).collect(),
        seeds,
        x,
        mean,
        low,
        high,
    })
}

/// [`BOOTSTRAP_RESAMPLES`] resamples of `n` indices drawn with replacement, the same for every x
/// of a group (so the band is a smooth function of x), from a fixed seed.
fn bootstrap_indices(n: usize) -> Vec<Vec<usize>> {
    let mut state = BOOTSTRAP_SEED;
    let mut next = move || {
        // SplitMix64: tiny, and its stream is fixed by its definition.
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    (0..BOOTSTRAP_RESAMPLES)
        .map(|_| {
            (0..n)
                .map(|_| ((next() >> 11) as f64 / (1u64 << 53) as f64 * n as f64) as usize)
                .collect()
        })
        .collect()
}

/// The `q` quantile of `sorted` with linear interpolation between order statistics (NumPy's
/// default).
fn percentile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let (i, frac) = (pos.floor() as usize, pos.fract());
    match sorted.get(i + 1) {
        Some(&next) => sorted[i] + (next - sorted[i]) * frac,
        None => sorted[i],
    }
}

/// The aggregated series as CSV: `group,seeds,{step|seconds},mean,ci_low,ci_high`.
pub fn to_csv(summary: &PlotSummary, x: XAxis) -> String {
    let mut out = format!("group,seeds,{},mean,ci_low,ci_high\n", x.column());
    for g in &summary.groups {
        let label = if g.label.contains([',', '"']) {
            format!("\"{}\"", g.label.replace('"', "\"\""))
        } else {
            g.label.clone()
        };
        for j in 0..g.x.len() {
            let _ = writeln!(
                out,
                "{label},{},{},{},{},{}",
                g.seeds, g.x[j], g.mean[j], g.low[j], g.high[j]
            );
        }
    }
    out
}

/// A readable y-axis label, with units, for the tags rlpg logs.
fn metric_label(tag: &str) -> String {
    match tag {
        "charts/episodic_return" => "episodic return (sum of rewards)".to_owned(),
        "charts/episodic_length" => "episode length (steps)".to_owned(),
        "charts/SPS" => "throughput (env steps / s)".to_owned(),
        "eval/mean_return" => "evaluation return (mean over episodes)".to_owned(),
        other => other.to_owned(),
    }
}

/// Line colours (Matplotlib's tab10), the band drawn in the same colour, translucent.
pub(crate) const COLOURS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

fn draw(summary: &PlotSummary, options: &PlotOptions) -> Result<(), PlotError> {
    let path = &options.out;
    let fail = |message: String| PlotError::Draw { path: path.clone(), message };
    register_embedded_font().map_err(|m| fail(m.to_owned()))?;
    // Log scale: the chart's x coordinate is log10(x), its labels show x again.
    let to_axis = |x: f64| if options.log_x { x.max(1.0).log10() } else { x };
    let (mut x0, mut x1, mut y0, mut y1) =
        (f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY);
    for g in &summary.groups {
        for j in 0..g.x.len() {
            (x0, x1) = (x0.min(to_axis(g.x[j])), x1.max(to_axis(g.x[j])));
            (y0, y1) = (y0.min(g.low[j]), y1.max(g.high[j]));
        }
    }
    if x1 <= x0 {
        (x0, x1) = (x0 - 0.5, x1 + 0.5);
    }
    let pad = if y1 > y0 { 0.05 * (y1 - y0) } else { 0.5_f64.max(0.05 * y0.abs()) };
    let (y0, y1) = (y0 - pad, y1 + pad);

    let root = BitMapBackend::new(path, PLOT_SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(e.to_string()))?;
    let smoothing = match options.smooth {
        0 | 1 => String::new(),
        n => format!(", moving average of {n} points"),
    };
    let caption =
        format!("{}: mean over seeds, shaded 95% bootstrap CI{smoothing}", options.metric);
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(|e| fail(e.to_string()))?;
    let x_desc = if options.log_x {
        format!("{} (log scale)", options.x.label())
    } else {
        options.x.label().to_owned()
    };
    let x_label = |v: &f64| short_number(if options.log_x { 10f64.powf(*v) } else { *v });
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(metric_label(&options.metric))
        .x_label_formatter(&x_label)
        .y_label_formatter(&|v| trim(*v))
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 17))
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(|e| fail(e.to_string()))?;
    for (i, g) in summary.groups.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let band: Vec<(f64, f64)> =
            g.x.iter()
                .zip(&g.high)
                .map(|(&x, &y)| (to_axis(x), y))
                .chain(g.x.iter().zip(&g.low).rev().map(|(&x, &y)| (to_axis(x), y)))
                .collect();
        chart
            .draw_series(std::iter::once(Polygon::new(band, colour.mix(0.2).filled())))
            .map_err(|e| fail(e.to_string()))?;
        let label = format!("{} ({})", g.label, g.size());
        chart
            .draw_series(LineSeries::new(
                g.x.iter().zip(&g.mean).map(|(&x, &y)| (to_axis(x), y)),
                colour.stroke_width(2),
            ))
            .map_err(|e| fail(e.to_string()))?
            .label(label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(3))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .label_font(("sans-serif", 16))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .draw()
        .map_err(|e| fail(e.to_string()))?;
    root.present().map_err(|e| fail(e.to_string()))
}

/// x-axis numbers: `2k`, `1.5M`, plain below 1,000.
fn short_number(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{}M", trim(v / 1e6))
    } else if a >= 1e3 {
        format!("{}k", trim(v / 1e3))
    } else {
        trim(v)
    }
}

fn trim(v: f64) -> String {
    let s = format!("{v:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".to_owned() } else { s.to_owned() }
}

/// Registers DejaVu Sans (shipped inside the `dejavu` crate) as plotters' `sans-serif`, once
/// per process, so charts need no system font.
pub(crate) fn register_embedded_font() -> Result<(), &'static str> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular()).is_ok()
    });
    if ok { Ok(()) } else { Err("the embedded DejaVu Sans font could not be parsed") }
}
