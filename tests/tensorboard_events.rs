//! TensorBoard event files: what `TbLogger` writes, `read_scalars` reads back exactly; damage is
//! detected and a killed writer's partial last record is tolerated.

use std::path::{Path, PathBuf};

use rlpg::{ScalarLog, TbError, TbLogger, event_files, read_scalars};

mod common;
use common::Scratch;

/// The scalars `write_sample` logs: (tag, value, step).
const SAMPLE: &[(&str, f64, u64)] = &[
    ("charts/episodic_return", 21.5, 128),
    ("charts/SPS", 10_432.0, 128),
    ("losses/policy_loss", -0.123_456_789_012_345, 256),
    ("charts/episodic_return", 500.0, 4_000_000_000),
    ("losses/value_loss", 0.0, 0),
];

/// Writes `SAMPLE` (plus a text record, which readers of scalars skip) and returns the file.
fn write_sample(dir: &Path) -> PathBuf {
    let mut tb = TbLogger::create(dir).expect("create logger");
    tb.text("config", "```toml\nenv = \"CartPole-v1\"\n```", 0).expect("text");
    for &(tag, value, step) in SAMPLE {
        tb.scalar(tag, value, step).expect("scalar");
    }
    tb.flush().expect("flush");
    tb.path().to_owned()
}

fn expected_sample() -> Vec<(String, u64, f32)> {
    SAMPLE.iter().map(|&(tag, value, step)| (tag.to_owned(), step, value as f32)).collect()
}

fn as_triples(log: &ScalarLog) -> Vec<(String, u64, f32)> {
    log.scalars.iter().map(|s| (s.tag.clone(), s.step, s.value)).collect()
}

#[test]
fn scalars_read_back_exactly_as_f32_with_their_steps_and_wall_times() {
    let dir = Scratch::new("tb-roundtrip");
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    let path = write_sample(&dir);
    let name = path.file_name().expect("file name").to_string_lossy().into_owned();
    assert!(
        name.starts_with("events.out.tfevents."),
        "TensorBoard only reads files named events.out.tfevents.*: {name}"
    );

    let log = read_scalars(&path).expect("readable");
    assert_eq!(log.truncated_at, None, "a flushed file is complete");
    assert_eq!(
        as_triples(&log),
        expected_sample(),
        "tags, steps and f32 values must survive the round trip"
    );
    for s in &log.scalars {
        assert!(
            s.wall_time >= before - 1.0 && s.wall_time <= before + 60.0,
            "wall time {} should be the time of writing (~{before})",
            s.wall_time
        );
    }
    assert_eq!(
        log.series("charts/episodic_return"),
        vec![(128, 21.5), (4_000_000_000, 500.0)],
        "series() selects one tag in order"
    );
}

#[test]
fn two_loggers_in_one_folder_and_second_get_separate_files() {
    let dir = Scratch::new("tb-two-writers");
    let mut a = TbLogger::create(&dir).expect("first logger");
    let mut b = TbLogger::create(&dir).expect("second logger");
    assert_ne!(a.path(), b.path(), "two writers must never share a file");
    a.scalar("from/a", 1.0, 1).expect("a");
    b.scalar("from/b", 2.0, 2).expect("b");
    a.flush().expect("flush a");
    b.flush().expect("flush b");
    let files = event_files(&dir).expect("list");
    assert_eq!(files.len(), 2, "one file per writer: {files:?}");
    let tags = |p: &Path| -> Vec<String> {
        read_scalars(p).expect("readable").scalars.into_iter().map(|s| s.tag).collect()
    };
    assert_eq!(tags(a.path()), ["from/a"], "the first writer's file holds only its scalars");
    assert_eq!(tags(b.path()), ["from/b"], "the second writer's file holds only its scalars");
}

#[test]
fn event_files_lists_only_event_files_in_name_order() {
    let dir = Scratch::new("tb-listing");
    std::fs::write(dir.join("config.toml"), "x = 1").expect("write");
    std::fs::write(dir.join("events.out.tfevents.0000000002.h.1.0"), b"").expect("write");
    std::fs::write(dir.join("events.out.tfevents.0000000001.h.1.0"), b"").expect("write");
    std::fs::create_dir(dir.join("events.out.tfevents.dir")).expect("mkdir");
    let names: Vec<String> = event_files(&dir)
        .expect("list")
        .iter()
        .map(|p| p.file_name().expect("name").to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        ["events.out.tfevents.0000000001.h.1.0", "events.out.tfevents.0000000002.h.1.0"]
    );
}

/// Byte offsets at which each record of `bytes` starts.
fn record_offsets(bytes: &[u8]) -> Vec<usize> {
    let mut offsets = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        offsets.push(at);
        let len = u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes")) as usize;
        at += 16 + len;
    }
    assert_eq!(at, bytes.len(), "records must tile the file exactly");
    offsets
}

#[test]
fn a_flipped_data_byte_or_length_byte_is_reported_as_corruption_at_its_record() {
    let dir = Scratch::new("tb-corrupt");
    let path = write_sample(&dir);
    let pristine = std::fs::read(&path).expect("read");
    let offsets = record_offsets(&pristine);
    // Records: file version, text, then the scalars; damage the second scalar.
    let victim = offsets[3];

    let mut damaged = pristine.clone();
    damaged[victim + 12 + 3] ^= 0x40;
    std::fs::write(&path, &damaged).expect("write");
    match read_scalars(&path) {
        Err(TbError::Corrupt { offset, what, .. }) => {
            assert_eq!(offset, victim as u64, "the error should point at the damaged record");
            assert!(what.contains("data checksum"), "{what}");
        }
        other => panic!("a flipped data byte must be detected, got {other:?}"),
    }

    let mut damaged = pristine.clone();
    damaged[victim + 1] ^= 0x01;
    std::fs::write(&path, &damaged).expect("write");
    match read_scalars(&path) {
        Err(e @ TbError::Corrupt { .. }) => {
            assert!(e.to_string().contains("length checksum"), "{e}");
            assert!(
                e.to_string().contains(&victim.to_string()),
                "the message names the offset: {e}"
            );
        }
        other => panic!("a flipped length byte must be detected, got {other:?}"),
    }
}

#[test]
fn a_truncated_last_record_ends_the_log_without_an_error() {
    let dir = Scratch::new("tb-truncated");
    let path = write_sample(&dir);
    let pristine = std::fs::read(&path).expect("read");
    let last = *record_offsets(&pristine).last().expect("records");
    let all_but_last = {
        let mut e = expected_sample();
        e.pop();
        e
    };
    // Cut inside the data, inside the header, and just before the final checksum.
    for cut in [pristine.len() - 1, last + 5, last + 12, pristine.len() - 4] {
        std::fs::write(&path, &pristine[..cut]).expect("write");
        let log =
            read_scalars(&path).unwrap_or_else(|e| panic!("cut at {cut}: must not fail: {e}"));
        assert_eq!(
            log.truncated_at,
            Some(last as u64),
            "cut at {cut}: truncation is reported where the record starts"
        );
        assert_eq!(
            as_triples(&log),
            all_but_last,
            "cut at {cut}: every complete record is still read"
        );
    }
    // A crash can also leave the tail zero-filled.
    let mut zero_tail = pristine[..last].to_vec();
    zero_tail.extend_from_slice(&[0u8; 40]);
    std::fs::write(&path, &zero_tail).expect("write");
    let log = read_scalars(&path).expect("zero-filled tail is tolerated");
    assert_eq!(log.truncated_at, Some(last as u64));
    assert_eq!(as_triples(&log), all_but_last);
}

#[test]
fn a_missing_file_is_an_io_error_naming_it() {
    let dir = Scratch::new("tb-missing");
    let e = read_scalars(dir.join("nope")).expect_err("missing");
    assert!(matches!(e, TbError::Io { .. }), "{e:?}");
    assert!(e.to_string().contains("nope"), "{e}");
}

#[test]
fn a_step_beyond_i64_is_an_error_not_a_panic() {
    let dir = Scratch::new("tb-huge-step");
    let mut tb = TbLogger::create(&dir).expect("create");
    let e = tb.scalar("x", 1.0, u64::MAX).expect_err("event steps are int64");
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{e}");
}
