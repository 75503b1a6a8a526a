//! The training progress bar (feature `progress`) and the step rate it shows.

use super::LoopSettings;

#[cfg(feature = "progress")]
/// The bar for a run at `position`, when `settings.progress` asks for one.
pub(super) fn progress_bar(
    settings: &LoopSettings,
    position: u64,
) -> Option<indicatif::ProgressBar> {
    if !settings.progress {
        return None;
    }
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(settings.total_timesteps),
        indicatif::ProgressDrawTarget::stderr(),
    );
    let style = indicatif::ProgressStyle::with_template(
        "{elapsed_precise} [{wide_bar}] {human_pos}/{human_len} steps {rate} {msg}",
    )
    .map(|s| {
        s.progress_chars("=> ").with_key(
            "rate",
            |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{}", human_rate(state.per_sec()));
            },
        )
    });
    if let Ok(style) = style {
        bar.set_style(style);
    }
    bar.set_position(position);
    Some(bar)
}

/// A rate of steps for people: three significant figures with a k/M suffix (`45.5k steps/s`,
/// `812 steps/s`, `1.25M steps/s`), where indicatif's `{per_sec}` prints `45,510.0148/s`.
pub fn human_rate(per_second: f64) -> String {
    if !per_second.is_finite() || per_second < 0.0 {
        return "- steps/s".to_owned();
    }
    let (value, suffix) = match per_second {
        r if r >= 999_500.0 => (r / 1e6, "M"),
        r if r >= 999.5 => (r / 1e3, "k"),
        r => (r, ""),
    };
    let decimals = match value {
        v if v >= 99.95 => 0,
        v if v >= 9.995 => 1,
        _ => 2,
    };
    let decimals = if suffix.is_empty() && value >= 9.995 { 0 } else { decimals };
    format!("{value:.decimals$}{suffix} steps/s")
}

/// Without the `progress` feature there is no bar: the loop's bar calls go to this type, which
/// draws nothing.
#[cfg(not(feature = "progress"))]
pub(super) fn progress_bar(_settings: &LoopSettings, _position: u64) -> Option<NoBar> {
    None
}

/// The progress bar when the `progress` feature is off: never constructed.
#[cfg(not(feature = "progress"))]
pub(super) enum NoBar {}

#[cfg(not(feature = "progress"))]
impl NoBar {
    pub(super) fn abandon(self) {}
    pub(super) fn finish_and_clear(self) {}
    pub(super) fn set_position(&self, _: u64) {}
    pub(super) fn set_message(&self, _: String) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_rounded_for_people() {
        for (rate, text) in [
            (45_510.014_8, "45.5k steps/s"),
            (999.4, "999 steps/s"),
            (999.6, "1.00k steps/s"),
            (812.3, "812 steps/s"),
            (12.34, "12 steps/s"),
            (4.567, "4.57 steps/s"),
            (0.0, "0.00 steps/s"),
            (123_456.0, "123k steps/s"),
            (1_254_000.0, "1.25M steps/s"),
            (f64::NAN, "- steps/s"),
        ] {
            assert_eq!(human_rate(rate), text, "rate {rate}");
        }
    }
}
