//! Videos of episodes: animated GIFs of rendered [`Frame`]s, a recorder that plays one episode
//! of any policy while rendering it, the TensorBoard image summary that shows such a GIF in the
//! Images dashboard, and single frames as PNG.
//!
//! **Size.** The built-in pictures are a few flat colours with anti-aliased edges, so the GIF
//! palette is built exactly from the colours that occur (first seen, first indexed; no
//! quantisation noise), and each frame after the first stores only the bounding box of the
//! pixels that changed, with unchanged pixels inside it transparent. Frames that change nothing
//! lengthen the previous frame's delay. A balanced 500-step CartPole-v1 episode (501 frames of
//! 600 × 400) encodes to 178 kB at full size and 111 kB at [`GifOptions::downscale`] 2
//! (300 × 200), in about 1 s (`tests/video.rs` measures it).
//!
//! **Colours beyond 255.** Pictures with more colours (a bridge env's photo-like frame) keep the
//! first 255 colours seen exactly and map every later colour to the nearest of them, which is
//! deterministic but coarse.
//!
//! **Memory.** Frames are compressed as they are pushed ([`GifEncoder::push`]), so an episode is
//! never held as raw RGB (501 CartPole frames would be 360 MB).

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use protobuf::{Message, RepeatedField};
use rlpg_envs::{ActionBuf, Env, EnvError, Frame};
use tensorboard_proto::event::Event;
use tensorboard_proto::summary::{Summary, Summary_Image, Summary_Value};

/// Everything that can go wrong while recording or encoding a video.
#[derive(Debug, thiserror::Error)]
pub enum VideoError {
    /// The environment failed to reset, step or render.
    #[error(transparent)]
    Env(#[from] EnvError),
    /// The policy (the `act` closure of [`record_episode`]) failed.
    #[error("the policy failed to act: {0}")]
    Act(Box<dyn std::error::Error + Send + Sync>),
    /// A frame does not have the size of the first frame of the video.
    #[error("frame {index} is {got_width}x{got_height} but the video is {width}x{height}")]
    FrameSize {
        /// Index of the offending frame in the video.
        index: usize,
        /// The video's frame width (after downscaling).
        width: u32,
        /// The video's frame height (after downscaling).
        height: u32,
        /// The offending frame's width (after downscaling).
        got_width: u32,
        /// The offending frame's height (after downscaling).
        got_height: u32,
    },
    /// The frames are larger than a GIF can be (65535 pixels a side), or empty.
    #[error("cannot make a GIF of {width}x{height} frames (each side must be 1..=65535)")]
    BadSize {
        /// Frame width (after downscaling).
        width: u32,
        /// Frame height (after downscaling).
        height: u32,
    },
    /// No frame was pushed.
    #[error("a video needs at least one frame")]
    NoFrames,
    /// The GIF or PNG encoder failed.
    #[error("cannot encode {what}: {message}")]
    Encode {
        /// `"GIF"` or `"PNG"`.
        what: &'static str,
        /// The encoder's message.
        message: String,
    },
    /// A file could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// How a GIF is encoded.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GifOptions {
    /// Frames per second of playback. GIF delays are whole hundredths of a second and browsers
    /// slow anything under 2/100 s down, so this is clamped to `1..=50`; fractional delays are
    /// spread so the average rate is exact (30 fps plays as 3, 3, 4, 3, 3, 4, … hundredths).
    pub fps: u32,
    /// Shrink each frame by this integer factor (pixel blocks averaged): 1 keeps the size, 2
    /// turns CartPole's 600 × 400 into 300 × 200.
    pub downscale: u32,
}

impl Default for GifOptions {
    /// 30 fps (Gymnasium's `render_fps` for Pendulum and MountainCar), full size.
    fn default() -> Self {
        Self { fps: 30, downscale: 1 }
    }
}

/// A finished GIF and its dimensions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodedGif {
    /// The GIF file's bytes.
    pub bytes: Vec<u8>,
    /// Frame width in pixels.
    pub width: u32,
    /// Frame height in pixels.
    pub height: u32,
    /// Frames pushed (including those merged into the previous frame's delay).
    pub frames: usize,
}

impl EncodedGif {
    /// Writes the GIF to `path`.
    pub fn write(&self, path: &Path) -> Result<(), VideoError> {
        std::fs::write(path, &self.bytes)
            .map_err(|source| VideoError::Io { path: path.to_owned(), source })
    }
}

/// Palette index 0 is transparency: real colours use 1..=255, so that a picture of a few
/// colours has small indices (and a short LZW code size) in every frame.
const TRANSPARENT: u8 = 0;

/// One frame already LZW-compressed, waiting for the global palette to be final.
struct EncodedFrame {
    left: u16,
    top: u16,
    width: u16,
    height: u16,
    /// Delay in hundredths of a second.
    delay: u16,
    transparent: bool,
    lzw: Vec<u8>,
}

/// Builds an animated GIF frame by frame (see the module doc for how it stays small).
pub struct GifEncoder {
    options: GifOptions,
    size: Option<(u32, u32)>,
    /// Colours in palette order; `palette[i]` has index `i + 1`.
    palette: Vec<[u8; 3]>,
    index_of: HashMap<[u8; 3], u8>,
    /// The picture as displayed after the last frame, as palette indices.
    shown: Vec<u8>,
    frames: Vec<EncodedFrame>,
    pushed: usize,
    /// Hundredths of a second elapsed at the start of the next frame, times `fps`.
    clock: u64,
}

impl fmt::Debug for GifEncoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GifEncoder")
            .field("options", &self.options)
            .field("size", &self.size)
            .field("frames", &self.pushed)
            .finish_non_exhaustive()
    }
}

impl GifEncoder {
    /// An empty video; the first frame pushed fixes its size.
    pub fn new(options: GifOptions) -> Self {
        let options =
            GifOptions { fps: options.fps.clamp(1, 50), downscale: options.downscale.max(1) };
        Self {
            options,
            size: None,
            palette: Vec::new(),
            index_of: HashMap::new(),
            shown: Vec::new(),
            frames: Vec::new(),
            pushed: 0,
            clock: 0,
        }
    }

    /// Frames pushed so far.
    pub fn frames(&self) -> usize {
        self.pushed
    }

    /// Appends `frame`, which must have the size of the first frame.
    pub fn push(&mut self, frame: &Frame) -> Result<(), VideoError> {
        let frame = downscale(frame, self.options.downscale);
        let (width, height) = (frame.width(), frame.height());
        let (w, h) = *self.size.get_or_insert((width, height));
        if (width, height) != (w, h) {
            return Err(VideoError::FrameSize {
                index: self.pushed,
                width: w,
                height: h,
                got_width: width,
                got_height: height,
            });
        }
        if !(1..=u32::from(u16::MAX)).contains(&w) || !(1..=u32::from(u16::MAX)).contains(&h) {
            return Err(VideoError::BadSize { width: w, height: h });
        }
        // Flat pictures repeat the previous pixel's colour almost everywhere: skip the lookup.
        let mut last = None;
        let mut indices = Vec::with_capacity(w as usize * h as usize);
        for p in frame.rgb().chunks_exact(3) {
            let colour = [p[0], p[1], p[2]];
            let i = match last {
                Some((c, i)) if c == colour => i,
                _ => self.index(colour),
            };
            last = Some((colour, i));
            indices.push(i);
        }
        let delay = self.next_delay();
        self.pushed += 1;
        let (w, h) = (w as usize, h as usize);
        if self.frames.is_empty() {
            self.frames.push(encoded(0, 0, w, h, delay, false, &indices));
            self.shown = indices;
            return Ok(());
        }
        let Some((x0, y0, x1, y1)) = changed_box(&self.shown, &indices, w) else {
            // Nothing changed: show the previous frame longer.
            let last = self.frames.last_mut().expect("a frame was pushed");
            last.delay = last.delay.saturating_add(delay);
            return Ok(());
        };
        let mut patch = Vec::with_capacity((x1 - x0) * (y1 - y0));
        for y in y0..y1 {
            let row = y * w;
            for x in x0..x1 {
                let (old, new) = (self.shown[row + x], indices[row + x]);
                patch.push(if old == new { TRANSPARENT } else { new });
            }
        }
        self.frames.push(encoded(x0, y0, x1 - x0, y1 - y0, delay, true, &patch));
        self.shown = indices;
        Ok(())
    }

    /// The finished GIF, looping forever.
    pub fn finish(self) -> Result<EncodedGif, VideoError> {
        let (width, height) = self.size.ok_or(VideoError::NoFrames)?;
        let fail =
            |e: gif::EncodingError| VideoError::Encode { what: "GIF", message: e.to_string() };
        // Index 0 (transparency) gets the first real colour, so a viewer that ignores
        // transparency still shows something sensible.
        let first = self.palette.first().copied().unwrap_or([0, 0, 0]);
        let mut palette = first.to_vec();
        palette.extend(self.palette.iter().flatten());
        let mut encoder =
            gif::Encoder::new(Vec::new(), width as u16, height as u16, &palette).map_err(fail)?;
        encoder.set_repeat(gif::Repeat::Infinite).map_err(fail)?;
        for f in &self.frames {
            let frame = gif::Frame {
                delay: f.delay,
                // Keep: the next frame's transparent pixels show this one.
                dispose: gif::DisposalMethod::Keep,
                transparent: f.transparent.then_some(TRANSPARENT),
                left: f.left,
                top: f.top,
                width: f.width,
                height: f.height,
                buffer: Cow::Borrowed(&f.lzw),
                ..gif::Frame::default()
            };
            encoder.write_lzw_pre_encoded_frame(&frame).map_err(fail)?;
        }
        let bytes = encoder.into_inner().map_err(fail)?;
        Ok(EncodedGif { bytes, width, height, frames: self.pushed })
    }

    /// The palette index of `colour`, adding it while there is room and otherwise taking the
    /// nearest colour already in the palette.
    fn index(&mut self, colour: [u8; 3]) -> u8 {
        if let Some(&i) = self.index_of.get(&colour) {
            return i;
        }
        let i = if self.palette.len() < 255 {
            self.palette.push(colour);
            self.palette.len() as u8
        } else {
            let distance = |p: &[u8; 3]| -> i32 {
                p.iter().zip(colour).map(|(&a, b)| (i32::from(a) - i32::from(b)).pow(2)).sum()
            };
            let nearest = (0..self.palette.len()).min_by_key(|&k| distance(&self.palette[k]));
            nearest.map_or(1, |k| k as u8 + 1)
        };
        self.index_of.insert(colour, i);
        i
    }

    /// The delay of the next frame in hundredths of a second, rounding the running clock so
    /// the average frame rate is exact.
    fn next_delay(&mut self) -> u16 {
        let fps = u64::from(self.options.fps);
        let start = (self.clock * 100 + fps / 2) / fps;
        self.clock += 1;
        let end = (self.clock * 100 + fps / 2) / fps;
        (end - start).clamp(2, u64::from(u16::MAX)) as u16
    }
}

/// LZW-compresses one frame's indices.
fn encoded(
    x: usize,
    y: usize,
    w: usize,
    h: usize,
    delay: u16,
    transparent: bool,
    indices: &[u8],
) -> EncodedFrame {
    let mut frame = gif::Frame {
        width: w as u16,
        height: h as u16,
        buffer: Cow::Borrowed(indices),
        ..gif::Frame::default()
    };
    frame.make_lzw_pre_encoded();
    EncodedFrame {
        left: x as u16,
        top: y as u16,
        width: w as u16,
        height: h as u16,
        delay,
        transparent,
        lzw: frame.buffer.into_owned(),
    }
}

/// The smallest box `(x0, y0, x1, y1)` (exclusive ends) holding every pixel where `old` and
/// `new` differ, or `None` if none does.
fn changed_box(old: &[u8], new: &[u8], width: usize) -> Option<(usize, usize, usize, usize)> {
    let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0, 0);
    for (y, (a, b)) in old.chunks_exact(width).zip(new.chunks_exact(width)).enumerate() {
        if a == b {
            continue;
        }
        let first = a.iter().zip(b).position(|(p, q)| p != q).expect("rows differ");
        let last = a.iter().zip(b).rposition(|(p, q)| p != q).expect("rows differ");
        (x0, x1) = (x0.min(first), x1.max(last + 1));
        (y0, y1) = (y0.min(y), y + 1);
    }
    (x1 > 0).then_some((x0, y0, x1, y1))
}

/// `frame` shrunk by `factor` (each output pixel the rounded mean of a `factor` × `factor`
/// block; a partial block at the right or bottom edge is dropped).
fn downscale(frame: &Frame, factor: u32) -> Cow<'_, Frame> {
    if factor <= 1 {
        return Cow::Borrowed(frame);
    }
    let (w, h) = ((frame.width() / factor).max(1), (frame.height() / factor).max(1));
    let f = factor as usize;
    let mut rgb = Vec::with_capacity(w as usize * h as usize * 3);
    let src = frame.rgb();
    let stride = frame.width() as usize * 3;
    for y in 0..h as usize {
        for x in 0..w as usize {
            let mut sum = [0u32; 3];
            let mut n = 0u32;
            for yy in y * f..((y + 1) * f).min(frame.height() as usize) {
                for xx in x * f..((x + 1) * f).min(frame.width() as usize) {
                    let i = yy * stride + xx * 3;
                    for c in 0..3 {
                        sum[c] += u32::from(src[i + c]);
                    }
                    n += 1;
                }
            }
            rgb.extend(sum.map(|s| ((s + n / 2) / n) as u8));
        }
    }
    Cow::Owned(Frame::from_rgb(w, h, rgb).expect("size computed from w and h"))
}

/// Encodes `frames` as one looping GIF (see [`GifEncoder`]).
pub fn encode_gif(frames: &[Frame], options: GifOptions) -> Result<EncodedGif, VideoError> {
    let mut encoder = GifEncoder::new(options);
    for frame in frames {
        encoder.push(frame)?;
    }
    encoder.finish()
}

/// What [`record_episode`] played.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordedEpisode {
    /// Sum of the rewards.
    pub episode_return: f64,
    /// Steps taken.
    pub length: usize,
    /// Whether the episode ended by itself (`terminated` or `truncated`) rather than at
    /// `max_steps`.
    pub done: bool,
}

/// Plays one episode on `env`, reset with `seed`, choosing each action with `act` from the
/// observation, and pushes a rendered frame into `video` after the reset and after every step
/// (so `length + 1` frames, as Gymnasium's `RecordVideo`). Stops when the episode ends or after
/// `max_steps` steps. `act` sees the env's own observations: a caller that trained on
/// normalised observations normalises inside `act`; and, when the env declares action masks
/// (`Env::masks_actions`), the mask of the state (`None` otherwise).
///
/// Frames go straight into the encoder rather than into a `Vec<Frame>`: a CartPole episode of
/// 500 raw frames would take 360 MB.
pub fn record_episode<E>(
    env: &mut dyn Env,
    seed: Option<u64>,
    max_steps: usize,
    mut act: impl FnMut(&[f32], Option<&[bool]>) -> Result<ActionBuf, E>,
    video: &mut GifEncoder,
) -> Result<RecordedEpisode, VideoError>
where
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut obs = env.reset(seed)?;
    video.push(&env.render()?)?;
    let mut episode = RecordedEpisode { episode_return: 0.0, length: 0, done: false };
    let mut mask = vec![true; if env.masks_actions() { env.action_space().mask_len() } else { 0 }];
    while episode.length < max_steps {
        let masks = if mask.is_empty() {
            None
        } else {
            env.action_mask(&mut mask)?;
            Some(&mask[..])
        };
        let action = act(&obs, masks).map_err(|e| VideoError::Act(e.into()))?;
        let step = env.step(action.as_action())?;
        episode.episode_return += step.reward;
        episode.length += 1;
        video.push(&env.render()?)?;
        if step.done() {
            episode.done = true;
            break;
        }
        obs = step.obs;
    }
    Ok(episode)
}

/// The TensorBoard summary that shows `gif` under `tag` in the Images dashboard, animated
/// (`Summary.Value.image` with the GIF bytes as its encoded image; TensorBoard passes them to
/// the browser as they are). Write it in an event at the global step, as scalars are.
pub fn gif_summary(tag: &str, gif: &EncodedGif) -> Summary {
    let mut image = Summary_Image::new();
    image.set_width(gif.width as i32);
    image.set_height(gif.height as i32);
    image.set_colorspace(3); // RGB
    image.set_encoded_image_string(gif.bytes.clone());
    let mut value = Summary_Value::new();
    value.set_tag(tag.to_owned());
    value.set_image(image);
    let mut summary = Summary::new();
    summary.set_value(RepeatedField::from_vec(vec![value]));
    summary
}

/// A serialized `tensorflow.Event` holding [`gif_summary`] at `step` and `wall_time` (seconds
/// since the Unix epoch): the payload of one TFRecord of an event file.
pub fn gif_event(tag: &str, gif: &EncodedGif, step: u64, wall_time: f64) -> Vec<u8> {
    let mut event = Event::new();
    event.set_wall_time(wall_time);
    event.set_step(i64::try_from(step).unwrap_or(i64::MAX));
    event.set_summary(gif_summary(tag, gif));
    event.write_to_bytes().expect("an Event of set fields always serializes")
}

/// Writes `frame` as an RGB PNG at `path` (for a still of an episode).
pub fn write_png(frame: &Frame, path: &Path) -> Result<(), VideoError> {
    let io = |source| VideoError::Io { path: path.to_owned(), source };
    let file = std::fs::File::create(path).map_err(io)?;
    let fail = |e: png::EncodingError| VideoError::Encode { what: "PNG", message: e.to_string() };
    let mut encoder =
        png::Encoder::new(std::io::BufWriter::new(file), frame.width(), frame.height());
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(fail)?;
    writer.write_image_data(frame.rgb()).map_err(fail)?;
    writer.finish().map_err(fail)
}
