//! GIF videos of rendered episodes: exact round trips, size of a CartPole episode, the episode
//! recorder, and the TensorBoard image event.

use std::time::Instant;

use rlpg::envs::{
    Action, ActionBuf, CartPole, Env, EnvError, EnvSnapshot, Frame, Observation, Space, Step,
    TimeLimit, render,
};
use rlpg::video::{GifEncoder, GifOptions, encode_gif, gif_event, gif_summary, record_episode};

/// CartPole drawn from its observation (the lead gives the real envs their `render`).
struct RenderedCartPole {
    env: CartPole,
    obs: Observation,
}

impl Env for RenderedCartPole {
    fn id(&self) -> &str {
        self.env.id()
    }
    fn observation_space(&self) -> &Space {
        self.env.observation_space()
    }
    fn action_space(&self) -> &Space {
        self.env.action_space()
    }
    fn reset(&mut self, seed: Option<u64>) -> Result<Observation, EnvError> {
        self.obs = self.env.reset(seed)?;
        Ok(self.obs.clone())
    }
    fn step(&mut self, action: Action<'_>) -> Result<Step, EnvError> {
        let step = self.env.step(action)?;
        self.obs = step.obs.clone();
        Ok(step)
    }
    fn snapshot(&self) -> Result<EnvSnapshot, EnvError> {
        self.env.snapshot()
    }
    fn render(&self) -> Result<Frame, EnvError> {
        let s = &self.obs;
        Ok(render::cartpole(&[s[0], s[1], s[2], s[3]].map(f64::from)))
    }
}

fn cartpole() -> TimeLimit<RenderedCartPole> {
    TimeLimit::new(RenderedCartPole { env: CartPole::new(), obs: Observation::new() }, 500)
}

/// A hand-made controller that balances CartPole for the whole 500 steps.
fn balance(obs: &[f32], _masks: Option<&[bool]>) -> Result<ActionBuf, String> {
    let push = obs[2] + 0.5 * obs[3] + 0.05 * obs[0] + 0.1 * obs[1];
    Ok(ActionBuf::Discrete(usize::from(push > 0.0)))
}

/// Decodes a GIF into the full picture shown after each of its frames, as RGB.
fn decode(bytes: &[u8]) -> (Vec<Vec<u8>>, Vec<u16>) {
    let mut options = gif::DecodeOptions::new();
    options.set_color_output(gif::ColorOutput::RGBA);
    let mut decoder = options.read_info(bytes).expect("GIF header");
    let (w, h) = (decoder.width() as usize, decoder.height() as usize);
    let mut canvas = vec![0u8; w * h * 3];
    let (mut pictures, mut delays) = (Vec::new(), Vec::new());
    while let Some(frame) = decoder.read_next_frame().expect("GIF frame") {
        for y in 0..frame.height as usize {
            for x in 0..frame.width as usize {
                let src = (y * frame.width as usize + x) * 4;
                if frame.buffer[src + 3] == 0 {
                    continue; // transparent: the previous picture shows through
                }
                let dst = ((frame.top as usize + y) * w + frame.left as usize + x) * 3;
                canvas[dst..dst + 3].copy_from_slice(&frame.buffer[src..src + 3]);
            }
        }
        pictures.push(canvas.clone());
        delays.push(frame.delay);
    }
    (pictures, delays)
}

#[test]
fn a_gif_shows_exactly_the_frames_pushed_with_repeats_merged_into_delays() {
    let frames: Vec<Frame> = [0.0, 0.05, 0.05, 0.05, -0.1, 0.3]
        .iter()
        .map(|&theta| render::cartpole(&[theta * 2.0, 0.0, theta, 0.0]))
        .collect();
    let gif = encode_gif(&frames, GifOptions { fps: 50, downscale: 1 }).expect("encode");
    assert_eq!((gif.width, gif.height, gif.frames), (600, 400, 6));
    let (pictures, delays) = decode(&gif.bytes);
    // Frames 2 and 3 repeat frame 1: one GIF frame shown three times as long.
    assert_eq!(delays, vec![2, 6, 2, 2], "delays in 1/100 s");
    let distinct = [&frames[0], &frames[1], &frames[4], &frames[5]];
    for (i, (picture, frame)) in pictures.iter().zip(distinct).enumerate() {
        assert!(picture == frame.rgb(), "decoded picture {i} differs from the frame pushed");
    }
}

#[test]
fn thirty_fps_spreads_hundredths_so_the_rate_is_exact() {
    let frames: Vec<Frame> = (0..6).map(|i| render::pendulum(f64::from(i) * 0.1, None)).collect();
    let gif = encode_gif(&frames, GifOptions::default()).expect("encode");
    let (_, delays) = decode(&gif.bytes);
    assert_eq!(delays, vec![3, 4, 3, 3, 4, 3], "30 fps as whole hundredths");
}

#[test]
fn downscaling_halves_each_side_and_averages_blocks() {
    let frame = render::cartpole(&[0.0; 4]);
    let gif = encode_gif(std::slice::from_ref(&frame), GifOptions { fps: 50, downscale: 2 })
        .expect("encode");
    assert_eq!((gif.width, gif.height), (300, 200));
    let (pictures, _) = decode(&gif.bytes);
    // The cart's centre, (300, 300 - 100) at full size, is black at half size too; a far corner
    // stays white.
    let px = |x: usize, y: usize| &pictures[0][(y * 300 + x) * 3..(y * 300 + x) * 3 + 3];
    assert_eq!(px(150, 153), [0, 0, 0], "cart centre");
    assert_eq!(px(10, 10), [255, 255, 255], "background");
}

#[test]
fn frames_of_another_size_are_an_error_naming_both_sizes() {
    let mut video = GifEncoder::new(GifOptions::default());
    video.push(&render::cartpole(&[0.0; 4])).expect("first frame");
    let err = video.push(&render::pendulum(0.0, None)).expect_err("500x500 after 600x400");
    assert_eq!(err.to_string(), "frame 1 is 500x500 but the video is 600x400");
    let err = GifEncoder::new(GifOptions::default()).finish().expect_err("no frames");
    assert_eq!(err.to_string(), "a video needs at least one frame");
}

#[test]
fn a_recorded_500_step_cartpole_episode_is_well_under_2_mb() {
    let mut env = cartpole();
    for downscale in [1, 2] {
        let start = Instant::now();
        let mut video = GifEncoder::new(GifOptions { fps: 50, downscale });
        let episode =
            record_episode(&mut env, Some(3), 10_000, balance, &mut video).expect("record");
        assert_eq!(episode.length, 500, "the controller balances to the time limit");
        assert!(episode.done && episode.episode_return == 500.0);
        let gif = video.finish().expect("encode");
        assert_eq!(gif.frames, 501, "the reset frame and one per step");
        let mb = gif.bytes.len() as f64 / 1e6;
        println!(
            "CartPole 500 steps, {}x{}: {} bytes ({mb:.3} MB) in {:.2} s",
            gif.width,
            gif.height,
            gif.bytes.len(),
            start.elapsed().as_secs_f64()
        );
        assert!(mb < 1.0, "{mb:.3} MB at downscale {downscale}: not well under 2 MB");
        if let Ok(dir) = std::env::var("RLPG_VIDEO_DIR") {
            let path = std::path::Path::new(&dir).join(format!("cartpole_{downscale}.gif"));
            gif.write(&path).expect("write the GIF");
        }
    }
}

/// CartPole without a picture (the built-in one renders): `render` is the trait's default.
struct Plain(CartPole);

impl Env for Plain {
    fn id(&self) -> &str {
        self.0.id()
    }
    fn observation_space(&self) -> &Space {
        self.0.observation_space()
    }
    fn action_space(&self) -> &Space {
        self.0.action_space()
    }
    fn reset(&mut self, seed: Option<u64>) -> Result<Observation, EnvError> {
        self.0.reset(seed)
    }
    fn step(&mut self, action: Action<'_>) -> Result<Step, EnvError> {
        self.0.step(action)
    }
}

#[test]
fn record_episode_stops_at_max_steps_and_reports_policy_and_render_errors() {
    let mut env = cartpole();
    let mut video = GifEncoder::new(GifOptions::default());
    let episode = record_episode(&mut env, Some(0), 7, balance, &mut video).expect("record");
    assert_eq!((episode.length, episode.done, video.frames()), (7, false, 8));

    let failing = |_: &[f32], _: Option<&[bool]>| -> Result<ActionBuf, String> {
        Err("no checkpoint".into())
    };
    let err = record_episode(&mut env, Some(0), 7, failing, &mut video).expect_err("act fails");
    assert_eq!(err.to_string(), "the policy failed to act: no checkpoint");

    let mut plain = Plain(CartPole::new());
    let err = record_episode(&mut plain, Some(0), 7, balance, &mut video).expect_err("no render");
    assert_eq!(err.to_string(), "CartPole-v1: this environment cannot render itself (Env::render)");
}

#[test]
fn the_tensorboard_event_holds_the_gif_as_an_image_summary() {
    use protobuf::Message;
    let gif = encode_gif(&[render::acrobot(&[0.0; 4])], GifOptions::default()).expect("encode");
    let summary = gif_summary("videos/eval", &gif);
    let image = summary.get_value()[0].get_image();
    assert_eq!((image.get_width(), image.get_height(), image.get_colorspace()), (500, 500, 3));
    let bytes = gif_event("videos/eval", &gif, 4096, 1.5e9);
    let event = tensorboard_proto::event::Event::parse_from_bytes(&bytes).expect("an Event");
    assert_eq!((event.get_step(), event.get_wall_time()), (4096, 1.5e9));
    let value = &event.get_summary().get_value()[0];
    assert_eq!(value.get_tag(), "videos/eval");
    assert!(value.get_image().get_encoded_image_string() == gif.bytes.as_slice());
    assert!(gif.bytes.starts_with(b"GIF89a"));
}
