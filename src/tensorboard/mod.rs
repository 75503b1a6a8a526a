//! TensorBoard event files: [`TbLogger`] writes scalars, text, animated GIFs and the HParams
//! plugin's session records against the global env step, [`read_scalars`] reads scalars back.
//!
//! **HParams.** tensorboard-rs's `add_hparams` is unimplemented, so [`TbLogger::hparams_start`]
//! and [`TbLogger::hparams_end`] write the plugin's records themselves, as TensorBoard's own
//! `hparams` summary API does: a `Summary.Value` tagged `_hparams_/session_start_info` (or
//! `_hparams_/session_end_info`) whose metadata names the plugin `hparams` and carries a
//! serialized `HParamsPluginData` (the message types are tensorboard-proto's copies of
//! TensorBoard's `plugin_data.proto` and `api.proto`, same field numbers), with an empty string
//! tensor as the value. No experiment record is written: TensorBoard then builds the
//! experiment from every run's session start (the union of their hyperparameters) and offers
//! every scalar tag as a metric, its last value per run (`eval/mean_return`'s last value is the
//! final evaluation, its step the steps trained).
//!
//! **Flushing.** Records are buffered and pushed to the file at least every
//! [`FLUSH_INTERVAL`] of wall time (checked at each write), and synced at every
//! [`TbLogger::flush`] (the trainer flushes at every checkpoint), so TensorBoard sees a
//! running run's curves within seconds.
//!
//! [`trim_event_files`] cuts a run's event files back to the step a resumed run continues from.
//! This module is the one home of event files: nothing else in rlpg reads or writes them.
//!
//! An event file is a sequence of TFRecords (framing in `tfrecord.rs`, the one place that
//! frames, checks and parses records); each record's data is one serialized `tensorflow.Event`
//! protobuf. The first event carries only the file version.
//!
//! Summaries are built here from tensorboard-proto's types. (tensorboard-rs is not used: its
//! summary builders are a few lines each, it pulls in the `image` crate's tree, and its
//! `SummaryWriter` names its file `events.out.tfevents.{second}.{host}.{pid}.0` and
//! opens it with `File::create`, so a second writer in the same folder, process and second
//! would silently truncate the first writer's file; it also panics on every I/O error.) Here each
//! writer opens its file with `create_new` and a per-process counter in the last name field
//! (`....{pid}.{n}`), moving to the next `n` if a name is taken, so no two writers ever share or
//! clobber a file, and I/O errors are returned. TensorBoard reads every `*tfevents*` file in a
//! run directory, so a resumed run simply adds a file.

use std::fs::{File, OpenOptions};
mod run_info;
mod tfrecord;

pub use run_info::{config_hparams, config_markdown};

use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use protobuf::well_known_types::Value as ProtoValue;
use protobuf::{Message, RepeatedField};
use tensorboard_proto::api::Status;
use tensorboard_proto::event::Event;
use tensorboard_proto::plugin_hparams::{HParamsPluginData, SessionEndInfo, SessionStartInfo};
use tensorboard_proto::summary::{
    Summary, Summary_Value, SummaryMetadata, SummaryMetadata_PluginData,
};
use tensorboard_proto::tensor::TensorProto;
use tensorboard_proto::tensor_shape::{TensorShapeProto, TensorShapeProto_Dim};
use tensorboard_proto::types::DataType;

use crate::rundir::atomic_write;
use crate::video::{EncodedGif, gif_summary};
use tfrecord::{Damage, ProtoFields, Records, Wire, write_record};

/// Longest wall time a written record waits in the buffer before it is pushed to the file.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(2);

/// Tag of the HParams plugin's session start record.
pub const HPARAMS_SESSION_START_TAG: &str = "_hparams_/session_start_info";
/// Tag of the HParams plugin's session end record.
pub const HPARAMS_SESSION_END_TAG: &str = "_hparams_/session_end_info";

/// A hyperparameter's value as the HParams dashboard shows it (it takes only scalars).
#[derive(Clone, Debug, PartialEq)]
pub enum HParamValue {
    /// A number (integers are shown as numbers too).
    Number(f64),
    /// A string (lists and other values are written as their text).
    Text(String),
    /// A boolean.
    Bool(bool),
}

/// The prefix TensorBoard looks for in file names.
const EVENT_FILE_PREFIX: &str = "events.out.tfevents.";

/// The last field of event file names made by this process; shared by all writers so that two
/// writers in one process never even try the same name.
static NEXT_FILE_INDEX: AtomicU64 = AtomicU64::new(0);

/// Writes scalars to a new TensorBoard event file in a log directory. The x-axis of every
/// scalar is the global environment step.
///
/// Writes are buffered; [`TbLogger::flush`] pushes them to the file and syncs it. Dropping the
/// logger flushes what is buffered but cannot report errors, so call `flush` at the end.
pub struct TbLogger {
    writer: BufWriter<File>,
    /// A second handle on the same file, to sync it (the buffered writer owns the first).
    file: File,
    path: PathBuf,
    /// When the buffer was last pushed to the file.
    last_push: Instant,
}

impl std::fmt::Debug for TbLogger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TbLogger").field("path", &self.path).finish_non_exhaustive()
    }
}

impl TbLogger {
    /// Creates `logdir` if needed and a new event file in it, never reusing an existing file.
    pub fn create(logdir: impl AsRef<Path>) -> io::Result<TbLogger> {
        let logdir = logdir.as_ref();
        std::fs::create_dir_all(logdir).map_err(|e| with_path(e, logdir))?;
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let host = hostname();
        let pid = std::process::id();
        let (file, path) = loop {
            let n = NEXT_FILE_INDEX.fetch_add(1, Ordering::Relaxed);
            let name = format!("{EVENT_FILE_PREFIX}{:010}.{host}.{pid}.{n}", now.as_secs());
            let path = logdir.join(name);
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(file) => break (file, path),
                // Another process with a recycled pid wrote here in the same second: next index.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(with_path(e, &path)),
            }
        };
        let sync_handle = file.try_clone().map_err(|e| with_path(e, &path))?;
        let mut logger = TbLogger {
            writer: BufWriter::new(file),
            file: sync_handle,
            path,
            last_push: Instant::now(),
        };
        let mut first = Event::new();
        first.set_wall_time(now.as_secs_f64());
        first.set_file_version("brain.Event:2".to_owned());
        logger.write_event(first)?;
        logger.flush()?;
        Ok(logger)
    }

    /// The event file this logger writes.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records `value` under `tag` (e.g. `charts/episodic_return`) at global env step `step`.
    /// TensorBoard stores scalars as `f32`, so the value is rounded to the nearest `f32`.
    pub fn scalar(&mut self, tag: &str, value: f64, step: u64) -> io::Result<()> {
        let mut entry = Summary_Value::new();
        entry.set_tag(tag.to_owned());
        entry.set_simple_value(value as f32);
        let mut summary = Summary::new();
        summary.set_value(RepeatedField::from(vec![entry]));
        self.write_summary(summary, step)
    }

    /// Records a Markdown `text` under `tag`, shown in TensorBoard's Text tab (e.g. the run's
    /// resolved config, once at step 0).
    pub fn text(&mut self, tag: &str, text: &str, step: u64) -> io::Result<()> {
        let mut plugin = SummaryMetadata_PluginData::new();
        plugin.set_plugin_name("text".to_owned());
        let mut metadata = SummaryMetadata::new();
        metadata.set_plugin_data(plugin);
        let mut dim = TensorShapeProto_Dim::new();
        dim.set_size(1);
        let mut shape = TensorShapeProto::new();
        shape.set_dim(RepeatedField::from_vec(vec![dim]));
        let mut tensor = TensorProto::new();
        tensor.set_dtype(DataType::DT_STRING);
        tensor.set_tensor_shape(shape);
        tensor.set_string_val(RepeatedField::from_vec(vec![text.as_bytes().to_vec()]));
        let mut value = Summary_Value::new();
        value.set_tag(tag.to_owned());
        value.set_metadata(metadata);
        value.set_tensor(tensor);
        let mut summary = Summary::new();
        summary.set_value(RepeatedField::from_vec(vec![value]));
        self.write_summary(summary, step)
    }

    /// Records an animated GIF under `tag` (e.g. `videos/eval`), shown in TensorBoard's Images
    /// dashboard (see [`gif_summary`]).
    pub fn gif(&mut self, tag: &str, gif: &EncodedGif, step: u64) -> io::Result<()> {
        self.write_summary(gif_summary(tag, gif), step)
    }

    /// Records the HParams plugin's session start at step 0: the run's hyperparameters, shown in
    /// TensorBoard's HParams dashboard next to every run's metrics. Write it once per run.
    pub fn hparams_start(&mut self, hparams: &[(String, HParamValue)]) -> io::Result<()> {
        let mut start = SessionStartInfo::new();
        for (name, value) in hparams {
            let mut v = ProtoValue::new();
            match value {
                HParamValue::Number(x) => v.set_number_value(*x),
                HParamValue::Text(t) => v.set_string_value(t.clone()),
                HParamValue::Bool(b) => v.set_bool_value(*b),
            }
            start.mut_hparams().insert(name.clone(), v);
        }
        start.set_start_time_secs(unix_now());
        let mut data = HParamsPluginData::new();
        data.set_version(0);
        data.set_session_start_info(start);
        self.hparams_record(HPARAMS_SESSION_START_TAG, &data, 0)
    }

    /// Records the HParams plugin's session end at `step` (the run finished, or failed).
    pub fn hparams_end(&mut self, success: bool, step: u64) -> io::Result<()> {
        let mut end = SessionEndInfo::new();
        end.set_status(if success { Status::STATUS_SUCCESS } else { Status::STATUS_FAILURE });
        end.set_end_time_secs(unix_now());
        let mut data = HParamsPluginData::new();
        data.set_version(0);
        data.set_session_end_info(end);
        self.hparams_record(HPARAMS_SESSION_END_TAG, &data, step)
    }

    fn hparams_record(&mut self, tag: &str, data: &HParamsPluginData, step: u64) -> io::Result<()> {
        let content = data
            .write_to_bytes()
            .map_err(|e| io::Error::other(format!("cannot encode HParams data: {e}")))?;
        let mut plugin = SummaryMetadata_PluginData::new();
        plugin.set_plugin_name("hparams".to_owned());
        plugin.set_content(content);
        let mut metadata = SummaryMetadata::new();
        metadata.set_plugin_data(plugin);
        // TensorBoard's own hparams summaries hold an empty string scalar as their value.
        let mut tensor = TensorProto::new();
        tensor.set_dtype(DataType::DT_STRING);
        tensor.set_tensor_shape(TensorShapeProto::new());
        tensor.set_string_val(RepeatedField::from_vec(vec![Vec::new()]));
        let mut value = Summary_Value::new();
        value.set_tag(tag.to_owned());
        value.set_metadata(metadata);
        value.set_tensor(tensor);
        let mut summary = Summary::new();
        summary.set_value(RepeatedField::from_vec(vec![value]));
        self.write_summary(summary, step)
    }

    /// Writes everything buffered to the file and syncs it to disk.
    pub fn flush(&mut self) -> io::Result<()> {
        self.writer.flush().map_err(|e| with_path(e, &self.path))?;
        self.last_push = Instant::now();
        self.file.sync_data().map_err(|e| with_path(e, &self.path))
    }

    fn write_summary(&mut self, summary: Summary, step: u64) -> io::Result<()> {
        let step = i64::try_from(step).map_err(|_| {
            io::Error::new(io::ErrorKind::InvalidInput, format!("step {step} exceeds i64::MAX"))
        })?;
        let mut event = Event::new();
        event.set_wall_time(unix_now());
        event.set_step(step);
        event.set_summary(summary);
        self.write_event(event)
    }

    fn write_event(&mut self, event: Event) -> io::Result<()> {
        let bytes = event
            .write_to_bytes()
            .map_err(|e| io::Error::other(format!("cannot encode event: {e}")))?;
        write_record(&mut self.writer, &bytes).map_err(|e| with_path(e, &self.path))?;
        if self.last_push.elapsed() >= FLUSH_INTERVAL {
            // Pushed to the file (readable by TensorBoard), not synced: syncing is for
            // checkpoints and the end.
            self.writer.flush().map_err(|e| with_path(e, &self.path))?;
            self.last_push = Instant::now();
        }
        Ok(())
    }
}

/// Seconds since the Unix epoch.
fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs_f64()
}

/// The host name as it may appear in a file name (no path separators).
fn hostname() -> String {
    let name = gethostname::gethostname().to_string_lossy().into_owned();
    let clean: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
        .collect();
    if clean.is_empty() { "localhost".to_owned() } else { clean }
}

fn with_path(e: io::Error, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// One scalar read back from an event file.
#[derive(Clone, Debug, PartialEq)]
pub struct ScalarEvent {
    /// The tag, e.g. `charts/episodic_return`.
    pub tag: String,
    /// The global env step it was logged at.
    pub step: u64,
    /// The value (TensorBoard stores `f32`).
    pub value: f32,
    /// Seconds since the Unix epoch when it was written.
    pub wall_time: f64,
}

/// The scalars of one event file, and where it ends early if its writer was killed.
#[derive(Clone, Debug, PartialEq)]
pub struct ScalarLog {
    /// Every scalar in file order.
    pub scalars: Vec<ScalarEvent>,
    /// Byte offset of an incomplete last record (a writer killed mid-write), if there is one.
    /// Everything before it was read and checked; the incomplete record is ignored.
    pub truncated_at: Option<u64>,
}

impl ScalarLog {
    /// The `(step, value)` pairs logged under `tag`, in file order.
    pub fn series(&self, tag: &str) -> Vec<(u64, f32)> {
        self.scalars.iter().filter(|s| s.tag == tag).map(|s| (s.step, s.value)).collect()
    }
}

/// Why an event file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TbError {
    /// The file could not be read.
    #[error("cannot read event file {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// A complete record is damaged: a checksum does not match or its event cannot be decoded.
    #[error("event file {} is corrupt at byte {offset}: {what}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Byte offset of the damaged record.
        offset: u64,
        /// What is wrong.
        what: String,
    },
}

/// Reads every scalar (`simple_value`) of the event file at `path`, checking both checksums of
/// every record. Other summaries (text, histograms) are skipped. An incomplete final record is
/// not an error: reading stops there and [`ScalarLog::truncated_at`] says where.
pub fn read_scalars(path: impl AsRef<Path>) -> Result<ScalarLog, TbError> {
    let path = path.as_ref();
    let bytes =
        std::fs::read(path).map_err(|source| TbError::Io { path: path.to_owned(), source })?;
    let corrupt = |offset: usize, what: String| TbError::Corrupt {
        path: path.to_owned(),
        offset: offset as u64,
        what,
    };
    let mut scalars = Vec::new();
    let mut records = Records::new(&bytes);
    loop {
        match records.next_record() {
            Ok(Some(record)) => decode_event(record.data, &mut scalars)
                .map_err(|what| corrupt(record.offset, what))?,
            Ok(None) => return Ok(ScalarLog { scalars, truncated_at: None }),
            Err(Damage::Incomplete { offset }) => {
                return Ok(ScalarLog { scalars, truncated_at: Some(offset as u64) });
            }
            Err(Damage::Corrupt { offset, what }) => return Err(corrupt(offset, what.to_owned())),
        }
    }
}

/// The event files (`events.out.tfevents.*`) directly in `dir`, sorted by name (which sorts
/// them by creation second).
pub fn event_files(dir: impl AsRef<Path>) -> io::Result<Vec<PathBuf>> {
    let dir = dir.as_ref();
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| with_path(e, dir))? {
        let entry = entry.map_err(|e| with_path(e, dir))?;
        if entry.file_name().to_string_lossy().starts_with(EVENT_FILE_PREFIX)
            && entry.file_type().map_err(|e| with_path(e, dir))?.is_file()
        {
            files.push(entry.path());
        }
    }
    files.sort();
    Ok(files)
}

/// Rewrites every TensorBoard event file of `run_dir` to hold only the records up to `step`
/// (the step of the checkpoint a run resumes from), dropping later ones and a record cut short
/// by a crash, so that the resumed run's new event file continues the curves without duplicate
/// or overlapping steps. Each file is replaced atomically; files that need no change are left
/// alone. Returns the number of scalar-bearing records dropped.
pub fn trim_event_files(run_dir: &Path, step: u64) -> io::Result<usize> {
    let mut dropped = 0;
    for path in event_files(run_dir)? {
        let bytes = std::fs::read(&path).map_err(|e| with_path(e, &path))?;
        let (kept, removed) = keep_records_up_to(&bytes, step);
        if kept.len() != bytes.len() {
            atomic_write(&path, &kept).map_err(|e| with_path(e, &path))?;
        }
        dropped += removed;
    }
    Ok(dropped)
}

/// The records of an event file whose step is at most `step`, up to the first record that is
/// incomplete or fails its checksums, and how many complete records were dropped.
fn keep_records_up_to(bytes: &[u8], step: u64) -> (Vec<u8>, usize) {
    let mut kept = Vec::with_capacity(bytes.len());
    let mut dropped = 0;
    let mut records = Records::new(bytes);
    while let Ok(Some(record)) = records.next_record() {
        if event_step(record.data).is_some_and(|s| s <= step) {
            kept.extend_from_slice(record.frame);
        } else {
            dropped += 1;
        }
    }
    (kept, dropped)
}

/// The `step` (field 2) of a serialized `tensorflow.Event`, 0 when absent (the file-version
/// event); `None` when the event cannot be decoded.
fn event_step(data: &[u8]) -> Option<u64> {
    let mut step = 0;
    let mut fields = ProtoFields::new(data);
    while let Some((number, value)) = fields.next_field().ok()? {
        if let (2, Wire::Varint(v)) = (number, value) {
            // A negative i64 step is never written by rlpg; treat it as past any step.
            step = u64::try_from(v as i64).unwrap_or(u64::MAX);
        }
    }
    Some(step)
}

/// Decodes the fields of a `tensorflow.Event` this reader needs (`wall_time` = 1, `step` = 2,
/// `summary` = 5) and appends its scalars. Hand-decoded rather than through protobuf 2's
/// parser: a few fields, and a checksum-valid but hostile file cannot make it recurse.
fn decode_event(data: &[u8], out: &mut Vec<ScalarEvent>) -> Result<(), String> {
    let mut wall_time = 0.0;
    let mut step = 0i64;
    let mut summaries = Vec::new();
    let mut fields = ProtoFields::new(data);
    while let Some((number, value)) = fields.next_field()? {
        match (number, value) {
            (1, Wire::Fixed64(bits)) => wall_time = f64::from_bits(bits),
            (2, Wire::Varint(v)) => step = v as i64,
            (5, Wire::Bytes(summary)) => summaries.push(summary),
            (1 | 2 | 5, other) => {
                return Err(format!("event field {number} has wire type {other:?}"));
            }
            _ => {}
        }
    }
    let step = u64::try_from(step).map_err(|_| format!("negative step {step}"))?;
    for summary in summaries {
        let mut fields = ProtoFields::new(summary);
        while let Some((number, value)) = fields.next_field()? {
            if let (1, Wire::Bytes(value)) = (number, value) {
                if let Some((tag, value)) = decode_summary_value(value)? {
                    out.push(ScalarEvent { tag, step, value, wall_time });
                }
            }
        }
    }
    Ok(())
}

/// `Summary.Value`: `tag` = 1, `simple_value` = 2. `None` for values that are not scalars.
fn decode_summary_value(data: &[u8]) -> Result<Option<(String, f32)>, String> {
    let mut tag = String::new();
    let mut simple_value = None;
    let mut fields = ProtoFields::new(data);
    while let Some((number, value)) = fields.next_field()? {
        match (number, value) {
            (1, Wire::Bytes(bytes)) => {
                tag =
                    String::from_utf8(bytes.to_vec()).map_err(|_| "tag is not UTF-8".to_owned())?
            }
            (2, Wire::Fixed32(bits)) => simple_value = Some(f32::from_bits(bits)),
            _ => {}
        }
    }
    Ok(simple_value.map(|v| (tag, v)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_step_reads_field_two_and_defaults_to_zero() {
        // wall_time (field 1, fixed64), step (field 2, varint 300).
        let mut data = vec![0x09];
        data.extend_from_slice(&1.5f64.to_le_bytes());
        data.extend_from_slice(&[0x10, 0xac, 0x02]);
        assert_eq!(event_step(&data), Some(300));
        assert_eq!(event_step(&data[..9]), Some(0), "no step field means step 0");
        assert_eq!(event_step(&[0x10]), None, "a truncated varint is undecodable");
    }
}
