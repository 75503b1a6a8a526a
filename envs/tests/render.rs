//! The classic-control pictures: Gymnasium's sizes, colours and geometry, checked pixel by pixel
//! at known states; and `Env::render` through wrappers and boxes.

use rlpg_envs::render::{self, Rgb};
use rlpg_envs::{
    Acrobot, Action, CartPole, Env, EnvError, Frame, MountainCar, MountainCarContinuous,
    NormalizeObservation, Observation, Pendulum, RecordEpisodeStatistics, Space, Step, TimeLimit,
};

const WHITE: Rgb = [255, 255, 255];
const BLACK: Rgb = [0, 0, 0];
const POLE: Rgb = [202, 152, 101];
const AXLE: Rgb = [129, 132, 203];
const ROD: Rgb = [204, 77, 77];
const LINK: Rgb = [0, 204, 204];
const JOINT: Rgb = [204, 204, 0];
const WHEEL: Rgb = [128, 128, 128];

/// The pixel at `x` and `y` counted **up** from the bottom edge (Gymnasium's drawing
/// coordinates), with a message naming the place when it is off the frame.
fn at(frame: &Frame, x: u32, y_up: u32) -> Rgb {
    let row = frame.height() - 1 - y_up;
    frame.pixel(x, row).unwrap_or_else(|| panic!("({x}, {y_up}) is outside {frame:?}"))
}

fn assert_colour(frame: &Frame, x: u32, y_up: u32, want: Rgb, what: &str) {
    let got = at(frame, x, y_up);
    assert_eq!(got, want, "{what}: pixel ({x}, {y_up} up) of {frame:?} is {got:?}, want {want:?}");
}

#[test]
fn pictures_have_gymnasiums_sizes() {
    let size = |f: Frame| (f.width(), f.height(), f.rgb().len());
    assert_eq!(size(render::cartpole(&[0.0; 4])), (600, 400, 600 * 400 * 3));
    assert_eq!(size(render::pendulum(0.0, None)), (500, 500, 500 * 500 * 3));
    assert_eq!(size(render::acrobot(&[0.0; 4])), (500, 500, 500 * 500 * 3));
    assert_eq!(size(render::mountain_car(-0.5, 0.5)), (600, 400, 600 * 400 * 3));
}

#[test]
fn cartpole_draws_the_cart_at_x_and_the_pole_leaning_with_theta() {
    // 125 pixels per metre, the track at y = 100, the axle 7.5 px above it.
    let upright = render::cartpole(&[0.0; 4]);
    assert_colour(&upright, 300, 90, BLACK, "cart body below the track");
    assert_colour(&upright, 300, 100, BLACK, "track line");
    assert_colour(&upright, 10, 100, BLACK, "track line far left");
    assert_colour(&upright, 10, 101, WHITE, "above the track");
    assert_colour(&upright, 300, 107, AXLE, "axle");
    assert_colour(&upright, 300, 200, POLE, "upright pole");
    assert_colour(&upright, 300, 240, WHITE, "above the pole's top (227.5)");

    let moved = render::cartpole(&[1.0, 0.0, 0.0, 0.0]);
    assert_colour(&moved, 425, 90, BLACK, "cart 125 px right of centre at x = 1");
    assert_colour(&moved, 300, 90, WHITE, "nothing left behind");

    // Positive theta leans right: 92.5 px above the axle the pole is 92.5 tan(0.2) = 18.75 px
    // to the right.
    let right = render::cartpole(&[0.0, 0.0, 0.2, 0.0]);
    assert_colour(&right, 318, 200, POLE, "pole leaning right");
    assert_colour(&right, 300, 200, WHITE, "upright position empty");
    let left = render::cartpole(&[0.0, 0.0, -0.2, 0.0]);
    assert_colour(&left, 281, 200, POLE, "pole leaning left");
}

#[test]
fn pendulum_points_up_at_zero_and_turns_counter_clockwise() {
    let up = render::pendulum(0.0, None);
    assert_colour(&up, 250, 330, ROD, "rod above the axle");
    assert_colour(&up, 250, 170, WHITE, "nothing below the axle");
    assert_colour(&up, 250, 250, BLACK, "axle");
    let left = render::pendulum(std::f64::consts::FRAC_PI_2, None);
    assert_colour(&left, 170, 250, ROD, "theta = pi/2 points left");
    assert_colour(&left, 250, 330, WHITE, "no longer up");
}

#[test]
fn pendulum_torque_arrow_opens_on_the_side_it_turns_from() {
    // |u| = 2: a 113.6 px arrow, circle radius 50 px around (250, 250). The
    // clockwise arrow (u < 0) leaves the upper-left quarter open; the counter-clockwise one
    // (u > 0) is its mirror image.
    let dark = |f: &Frame, x, y| at(f, x, y).iter().all(|&c| c < 64);
    let (upper_left, upper_right) = ((214, 285), (285, 285));
    let clockwise = render::pendulum(std::f64::consts::PI, Some(-2.0));
    assert!(!dark(&clockwise, upper_left.0, upper_left.1), "clockwise: open upper left");
    assert!(dark(&clockwise, upper_right.0, upper_right.1), "clockwise: arc upper right");
    let counter = render::pendulum(std::f64::consts::PI, Some(2.0));
    assert!(dark(&counter, upper_left.0, upper_left.1), "counter-clockwise: arc upper left");
    assert!(!dark(&counter, upper_right.0, upper_right.1), "counter-clockwise: open upper right");
    let none = render::pendulum(std::f64::consts::PI, Some(0.0));
    assert_eq!(none, render::pendulum(std::f64::consts::PI, None), "no torque, no arrow");
}

#[test]
fn acrobot_hangs_down_at_zero_below_the_goal_line() {
    let down = render::acrobot(&[0.0; 4]);
    assert_colour(&down, 250, 200, LINK, "first link below the pivot");
    assert_colour(&down, 250, 80, LINK, "second link below the first");
    assert_colour(&down, 250, 136, JOINT, "elbow joint 113.6 px below the pivot");
    assert_colour(&down, 250, 250, JOINT, "pivot joint");
    assert_colour(&down, 250, 300, WHITE, "nothing above the pivot");
    assert_colour(&down, 5, 363, BLACK, "goal line one link length above the pivot");
    // theta1 = pi/2 swings the first link to the right (Gymnasium: x = sin(theta1)).
    let swung = render::acrobot(&[std::f64::consts::FRAC_PI_2, 0.0, 0.0, 0.0]);
    assert_colour(&swung, 300, 250, LINK, "first link to the right");
    assert_colour(&swung, 250, 200, WHITE, "nothing below the pivot");
}

#[test]
fn mountain_car_sits_on_the_curve_at_its_position_with_the_goal_flag() {
    // 333.3 px per unit; the car's base is 10 px above the curve, its body 20 px tall.
    let height = |x: f64| (3.0 * x).sin() * 0.45 + 0.55;
    for position in [-0.5, -1.0, 0.2] {
        let frame = render::mountain_car(position, 0.5);
        // The body's middle: 10 px above its base point, tilted by cos(3 position) radians.
        let tilt = (3.0 * position).cos();
        let x = ((position + 1.2) * 600.0 / 1.8 - 10.0 * tilt.sin()) as u32;
        let y = (height(position) * 600.0 / 1.8 + 10.0 + 10.0 * tilt.cos()) as u32;
        assert_colour(&frame, x, y, BLACK, &format!("car body at position {position}"));
        assert_colour(&frame, x, y + 40, WHITE, &format!("sky above the car at {position}"));
    }
    let car = render::mountain_car(-0.5, 0.5);
    let wheel_x = ((-0.5 + 1.2) * 600.0 / 1.8 + 10.0 * (3.0f64 * -0.5).cos().cos()) as u32;
    let wheel_y = (height(-0.5) * 600.0 / 1.8 + 10.0) as u32;
    assert_colour(&car, wheel_x, wheel_y, WHEEL, "front wheel");
    // Flag at x = int(1.7 * 333.3) = 566, its triangle at 372..382 px up.
    assert_colour(&car, 570, 377, JOINT, "MountainCar-v0 flag at 0.5");
    assert_colour(&car, 566, 350, BLACK, "flag pole");
    let continuous = render::mountain_car(-0.5, 0.45);
    assert_colour(&continuous, 570, 377, WHITE, "no flag at 0.5 for the continuous car");
    assert_colour(&continuous, 554, 371, JOINT, "MountainCarContinuous-v0 flag at 0.45");
}

#[test]
fn frames_check_their_buffer_length() {
    assert!(Frame::from_rgb(2, 2, vec![0; 12]).is_some());
    assert!(Frame::from_rgb(2, 2, vec![0; 11]).is_none());
    assert_eq!(Frame::filled(3, 1, [1, 2, 3]).pixel(2, 0), Some([1, 2, 3]));
    assert_eq!(Frame::filled(3, 1, [1, 2, 3]).pixel(3, 0), None);
}

/// CartPole drawn from its last observation.
struct Drawn(CartPole, Observation);

impl Env for Drawn {
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
        self.1 = self.0.reset(seed)?;
        Ok(self.1.clone())
    }
    fn step(&mut self, action: Action<'_>) -> Result<Step, EnvError> {
        let step = self.0.step(action)?;
        self.1 = step.obs.clone();
        Ok(step)
    }
    fn render(&self) -> Result<Frame, EnvError> {
        Ok(render::cartpole(&[0, 1, 2, 3].map(|i| f64::from(self.1[i]))))
    }
}

#[test]
fn wrappers_and_boxes_forward_render_and_the_default_is_a_clear_error() {
    let mut inner = Drawn(CartPole::new(), Observation::new());
    inner.reset(Some(5)).expect("reset");
    let want = inner.render().expect("render");
    let wrapped = NormalizeObservation::new(RecordEpisodeStatistics::new(TimeLimit::new(inner, 9)));
    let boxed: Box<dyn Env> = Box::new(wrapped);
    assert_eq!(boxed.render().expect("forwarded"), want);

    let err = Box::new(Plain(CartPole::new())).render().expect_err("Plain has no render");
    assert!(matches!(err, EnvError::RenderUnsupported { .. }), "{err:?}");
}

/// CartPole without a picture: `render` is the trait's default.
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
fn every_builtin_env_draws_its_own_state() {
    let mut cartpole = CartPole::new();
    cartpole.reset(Some(3)).expect("reset");
    cartpole.step(Action::Discrete(1)).expect("step");
    assert_eq!(cartpole.render().expect("render"), render::cartpole(&cartpole.state()));

    let mut acrobot = Acrobot::new();
    acrobot.reset(Some(3)).expect("reset");
    acrobot.step(Action::Discrete(2)).expect("step");
    assert_eq!(acrobot.render().expect("render"), render::acrobot(&acrobot.state()));

    let mut car = MountainCar::new();
    car.reset(Some(3)).expect("reset");
    car.step(Action::Discrete(2)).expect("step");
    assert_eq!(car.render().expect("render"), render::mountain_car(car.state()[0], 0.5));

    let mut car = MountainCarContinuous::new();
    car.reset(Some(3)).expect("reset");
    car.step(Action::Continuous(&[0.7])).expect("step");
    assert_eq!(car.render().expect("render"), render::mountain_car(car.state()[0], 0.45));

    // Pendulum draws the clipped torque of the last step, and no arrow after a reset.
    let mut pendulum = Pendulum::new();
    pendulum.reset(Some(3)).expect("reset");
    let theta = pendulum.state()[0];
    assert_eq!(pendulum.render().expect("render"), render::pendulum(theta, None));
    pendulum.step(Action::Continuous(&[5.0])).expect("step");
    let theta = pendulum.state()[0];
    assert_eq!(pendulum.render().expect("render"), render::pendulum(theta, Some(2.0)));
    pendulum.reset(Some(4)).expect("reset");
    let theta = pendulum.state()[0];
    assert_eq!(pendulum.render().expect("render"), render::pendulum(theta, None));

    // Through the registry's wrappers, every built-in env renders.
    for id in
        ["CartPole-v1", "Pendulum-v1", "Acrobot-v1", "MountainCar-v0", "MountainCarContinuous-v0"]
    {
        let mut env = rlpg_envs::make(id).expect("registered");
        env.reset(Some(0)).expect("reset");
        let frame = env.render().unwrap_or_else(|e| panic!("{id}: {e}"));
        assert!(frame.width() >= 500 && frame.height() >= 400, "{id}: {frame:?}");
    }
}
