//! Ctrl-C and SIGTERM while training ([`StopSignals`]), for `rlpg train` and `rlpg sweep`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::run::RunError;

/// Ctrl-C and SIGTERM while training: the first sets `stop` (the loop checkpoints and returns)
/// and records which signal came; a second one exits at once with 128 + its number. Exiting
/// without cleanup is safe because every checkpoint and config is written atomically and event
/// files tolerate a cut-off last record.
pub(super) struct StopSignals {
    pub(super) stop: Arc<AtomicBool>,
    pub(super) which: Arc<AtomicUsize>,
}

impl StopSignals {
    pub(super) fn install() -> Result<Self, RunError> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        let stop = Arc::new(AtomicBool::new(false));
        let which = Arc::new(AtomicUsize::new(0));
        for signal in [SIGINT, SIGTERM] {
            let installed = signal_hook::flag::register_conditional_shutdown(
                signal,
                128 + signal,
                Arc::clone(&stop),
            )
            .and_then(|_| {
                signal_hook::flag::register_usize(signal, Arc::clone(&which), signal as usize)
            })
            // Registered last: the conditional shutdown above must see the flag as it was
            // before this signal, so that only a second signal exits.
            .and_then(|_| signal_hook::flag::register(signal, Arc::clone(&stop)));
            installed.map_err(RunError::Signals)?;
        }
        Ok(Self { stop, which })
    }

    /// 128 + the number of the signal that stopped training (130 for SIGINT, 143 for SIGTERM).
    pub(super) fn exit_code(&self) -> u8 {
        let signal = self.which.load(Ordering::SeqCst);
        u8::try_from(128 + signal).unwrap_or(1)
    }
}
