//! `rlpg plot`: the command line of [`crate::plot`].

use std::path::PathBuf;
use std::time::Instant;

use crate::plot::{PlotError, PlotOptions, XAxis, plot};

/// What the x axis of `rlpg plot` measures.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub(super) enum XArg {
    /// Global environment steps.
    Steps,
    /// Wall-clock seconds since each run's first logged scalar.
    Seconds,
}

/// The arguments of `rlpg plot`.
#[derive(clap::Args, Debug)]
pub(super) struct PlotArgs {
    /// Run directories, or folders searched for run directories at any depth.
    #[arg(required = true, value_name = "RUN_OR_FOLDER")]
    paths: Vec<PathBuf>,
    /// The PNG to write (1000 × 620).
    #[arg(long, value_name = "FILE.png")]
    out: PathBuf,
    /// The scalar tag to plot, e.g. eval/mean_return or charts/episodic_return_mean100.
    #[arg(long, default_value = "charts/episodic_return", value_name = "TAG")]
    metric: String,
    /// What the x axis measures.
    #[arg(long, value_enum, default_value = "steps")]
    x: XArg,
    /// Trailing moving average over this many logged points before averaging seeds (1: none).
    #[arg(long, default_value_t = 1, value_name = "N")]
    smooth: usize,
    /// Group runs by the values of these dotted config keys (e.g. pathwise.estimator; repeat or
    /// separate with commas), averaging over every other setting. Without it, runs are grouped
    /// by every setting that differs between them except the seed (and bookkeeping such as
    /// checkpoint_every), so each curve averages the seeds of one setting.
    #[arg(long, value_name = "KEY", value_delimiter = ',')]
    group_by: Vec<String>,
    /// Also write the aggregated series (group, seeds, x, mean, 95% CI) as CSV.
    #[arg(long, value_name = "FILE.csv")]
    csv: Option<PathBuf>,
    /// x values each curve is evaluated at.
    #[arg(long, default_value_t = 100, value_name = "N")]
    points: usize,
    /// Log-scale x axis (for agents whose budgets differ a hundredfold).
    #[arg(long)]
    log_x: bool,
}

/// Draws the chart and prints one line per curve; bad input is one line on stderr.
pub(super) fn run(args: PlotArgs) -> Result<(), PlotError> {
    let started = Instant::now();
    let options = PlotOptions {
        out: args.out,
        metric: args.metric,
        x: match args.x {
            XArg::Steps => XAxis::Steps,
            XArg::Seconds => XAxis::Seconds,
        },
        smooth: args.smooth,
        group_by: args.group_by,
        csv: args.csv,
        points: args.points,
        log_x: args.log_x,
    };
    let summary = plot(&args.paths, &options)?;
    for g in &summary.groups {
        let last = g.mean.last().copied().unwrap_or(f64::NAN);
        let (lo, hi) = (g.low.last().copied(), g.high.last().copied());
        println!(
            "{}: {}, final mean {last:.1} (95% CI {:.1} .. {:.1})",
            g.label,
            g.size(),
            lo.unwrap_or(f64::NAN),
            hi.unwrap_or(f64::NAN)
        );
    }
    for skipped in &summary.skipped {
        eprintln!("skipped {} (no '{}' point)", skipped.display(), options.metric);
    }
    let runs: usize = summary.groups.iter().map(|g| g.runs.len()).sum();
    println!(
        "wrote {} ({runs} runs in {:.2} s)",
        options.out.display(),
        started.elapsed().as_secs_f64()
    );
    if let Some(csv) = &options.csv {
        println!("wrote {}", csv.display());
    }
    Ok(())
}

impl PlotError {
    /// Whether the error is the user's input (exit code 2) rather than a failure to write.
    pub(super) fn is_input_error(&self) -> bool {
        !matches!(self, PlotError::Draw { .. })
    }
}
