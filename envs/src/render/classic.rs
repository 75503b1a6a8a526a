//! The classic-control pictures, with the geometry, sizes and colours of Gymnasium's
//! `classic_control` `render()` methods (pygame drawing, `y` up, flipped at the end).

use std::f64::consts::{FRAC_PI_2, PI};

use super::canvas::{Canvas, Point, rotate};
use super::{Frame, Rgb};

const WHITE: Rgb = [255, 255, 255];
const BLACK: Rgb = [0, 0, 0];

/// Width and height of [`cartpole`]'s picture.
pub const CARTPOLE_SIZE: (u32, u32) = (600, 400);
/// Width and height of [`pendulum`]'s picture.
pub const PENDULUM_SIZE: (u32, u32) = (500, 500);
/// Width and height of [`acrobot`]'s picture.
pub const ACROBOT_SIZE: (u32, u32) = (500, 500);
/// Width and height of [`mountain_car`]'s picture.
pub const MOUNTAIN_CAR_SIZE: (u32, u32) = (600, 400);

/// A rectangle `[l, r] × [b, t]` rotated by `angle` about the origin, then moved by `(dx, dy)`.
fn box_at(l: f64, r: f64, b: f64, t: f64, angle: f64, (dx, dy): Point) -> [Point; 4] {
    [(l, b), (l, t), (r, t), (r, b)].map(|c| {
        let (x, y) = rotate(c, angle);
        (x + dx, y + dy)
    })
}

/// CartPole-v1 in state `[x, x_dot, theta, theta_dot]`: a black cart on a black track, the
/// brown pole (positive `theta` leans right) on a blue axle. 600 × 400.
pub fn cartpole(state: &[f64; 4]) -> Frame {
    const X_THRESHOLD: f64 = 2.4;
    const HALF_POLE_LENGTH: f64 = 0.5;
    let (width, height) = CARTPOLE_SIZE;
    let scale = f64::from(width) / (2.0 * X_THRESHOLD);
    let (pole_width, pole_len) = (10.0, scale * 2.0 * HALF_POLE_LENGTH);
    let (cart_width, cart_height) = (50.0, 30.0);
    let axle_offset = cart_height / 4.0;
    let cart_x = state[0] * scale + f64::from(width) / 2.0;
    let cart_y = 100.0;

    let mut canvas = Canvas::new(width, height, WHITE);
    let (l, r) = (-cart_width / 2.0, cart_width / 2.0);
    let (b, t) = (-cart_height / 2.0, cart_height / 2.0);
    canvas.fill_polygon(&box_at(l, r, b, t, 0.0, (cart_x, cart_y)), BLACK);
    let (l, r) = (-pole_width / 2.0, pole_width / 2.0);
    let (b, t) = (-pole_width / 2.0, pole_len - pole_width / 2.0);
    let pole = box_at(l, r, b, t, -state[2], (cart_x, cart_y + axle_offset));
    canvas.fill_polygon(&pole, [202, 152, 101]);
    let axle = (cart_x.trunc() as i64, (cart_y + axle_offset) as i64);
    canvas.fill_pixel_circle(axle.0, axle.1, (pole_width / 2.0) as i64, [129, 132, 203]);
    let track = box_at(0.0, f64::from(width), cart_y, cart_y + 1.0, 0.0, (0.0, 0.0));
    canvas.fill_polygon(&track, BLACK);
    canvas.into_frame()
}

/// Pendulum-v1 at angle `theta` (0 upright, positive counter-clockwise): a red rod with rounded
/// ends on a black axle, and, if `last_u` (the last torque applied) is given, a black arrow
/// around the axle whose size is proportional to `|last_u|` and which turns the way the torque
/// does (Gymnasium's `clockwise.png`, drawn as an arc). 500 × 500.
pub fn pendulum(theta: f64, last_u: Option<f64>) -> Frame {
    let (dim, _) = PENDULUM_SIZE;
    let bound = 2.2;
    let scale = f64::from(dim) / (bound * 2.0);
    let offset = f64::from(dim / 2);
    let rod_length = scale;
    let rod_width = 0.2 * scale;
    let red = [204, 77, 77];

    let mut canvas = Canvas::new(dim, dim, WHITE);
    let angle = theta + FRAC_PI_2;
    let rod = box_at(0.0, rod_length, -rod_width / 2.0, rod_width / 2.0, angle, (offset, offset));
    canvas.fill_polygon(&rod, red);
    let r = (rod_width / 2.0) as i64;
    canvas.fill_pixel_circle(offset as i64, offset as i64, r, red);
    let (ex, ey) = rotate((rod_length, 0.0), angle);
    canvas.fill_pixel_circle((ex + offset) as i64, (ey + offset) as i64, r, red);
    if let Some(u) = last_u.filter(|u| u.is_finite() && *u != 0.0) {
        torque_arrow(&mut canvas, (offset, offset), scale * u.abs() / 2.0, u > 0.0);
    }
    let axle_r = (0.05 * scale) as i64;
    canvas.fill_pixel_circle(offset as i64, offset as i64, axle_r, BLACK);
    canvas.into_frame()
}

/// Gymnasium's torque arrow in a `size` × `size` square centred on `centre`: an open circle
/// (about 266° of it) ending in an arrow head, clockwise, or counter-clockwise (mirrored left to
/// right) if `counter_clockwise`.
fn torque_arrow(canvas: &mut Canvas, (cx, cy): Point, size: f64, counter_clockwise: bool) {
    let radius = 0.44 * size;
    let line = (0.028 * size).max(1.0);
    let mirror = if counter_clockwise { -1.0 } else { 1.0 };
    // Angles measured counter-clockwise from +x; the clockwise arc runs from the top (90°)
    // down through the right side to just past the left (-176°).
    let (start, end) = (FRAC_PI_2, -PI - 4f64.to_radians());
    let steps = 64;
    let at = |a: f64, r: f64| (cx + mirror * r * a.cos(), cy + r * a.sin());
    let arc: Vec<Point> =
        (0..=steps).map(|i| at(start + (end - start) * i as f64 / steps as f64, radius)).collect();
    canvas.stroke_polyline(&arc, line, BLACK);
    // The head: a triangle at the arc's end pointing along the direction of travel.
    let (head_len, head_half) = (0.17 * size, 0.065 * size);
    let base = at(end, radius);
    let tangent = (mirror * end.sin(), -end.cos()); // d/da of at() reversed: clockwise travel
    let norm = tangent.0.hypot(tangent.1);
    let (tx, ty) = (tangent.0 / norm, tangent.1 / norm);
    let head = [
        (base.0 - ty * head_half, base.1 + tx * head_half),
        (base.0 + tx * head_len, base.1 + ty * head_len),
        (base.0 + ty * head_half, base.1 - tx * head_half),
    ];
    canvas.fill_polygon(&head, BLACK);
}

/// Acrobot-v1 in state `[theta1, theta2, theta1_dot, theta2_dot]` (both 0: hanging straight
/// down): two teal links with yellow joints below a black line at the height the tip must reach.
/// 500 × 500.
pub fn acrobot(state: &[f64; 4]) -> Frame {
    const LINK_LENGTH_1: f64 = 1.0;
    const LINK_LENGTH_2: f64 = 1.0;
    let (dim, _) = ACROBOT_SIZE;
    let bound = LINK_LENGTH_1 + LINK_LENGTH_2 + 0.2;
    let scale = f64::from(dim) / (bound * 2.0);
    let offset = f64::from(dim) / 2.0;

    let mut canvas = Canvas::new(dim, dim, WHITE);
    // pygame draws a one-pixel line on the integer row its float coordinate truncates to.
    let goal_y = (scale + offset).trunc();
    let (left, right) = (-2.2 * scale + offset, 2.2 * scale + offset);
    canvas.fill_polygon(&box_at(left, right, goal_y, goal_y + 1.0, 0.0, (0.0, 0.0)), BLACK);
    let joints = [
        (0.0, 0.0),
        (LINK_LENGTH_1 * state[0].sin() * scale, -LINK_LENGTH_1 * state[0].cos() * scale),
    ];
    let angles = [state[0] - FRAC_PI_2, state[0] + state[1] - FRAC_PI_2];
    let lengths = [LINK_LENGTH_1 * scale, LINK_LENGTH_2 * scale];
    for ((x, y), (angle, length)) in joints.into_iter().zip(angles.into_iter().zip(lengths)) {
        let (x, y) = (x + offset, y + offset);
        let link = box_at(0.0, length, -0.1 * scale, 0.1 * scale, angle, (x, y));
        canvas.fill_polygon(&link, [0, 204, 204]);
        canvas.fill_pixel_circle(x as i64, y as i64, (0.1 * scale) as i64, [204, 204, 0]);
    }
    canvas.into_frame()
}

/// MountainCar-v0 (`goal_position` 0.5) or MountainCarContinuous-v0 (`goal_position` 0.45) with
/// the car at `position`: the black curve `0.45 sin(3x) + 0.55`, the black car tilted with the
/// slope on two grey wheels, and a yellow flag at the goal. 600 × 400.
pub fn mountain_car(position: f64, goal_position: f64) -> Frame {
    const MIN_POSITION: f64 = -1.2;
    const MAX_POSITION: f64 = 0.6;
    let height_at = |x: f64| (3.0 * x).sin() * 0.45 + 0.55;
    let (width, height) = MOUNTAIN_CAR_SIZE;
    let scale = f64::from(width) / (MAX_POSITION - MIN_POSITION);
    let (car_width, car_height) = (40.0, 20.0);
    let clearance = 10.0;

    let mut canvas = Canvas::new(width, height, WHITE);
    let curve: Vec<Point> = (0..100)
        .map(|i| {
            let x = MIN_POSITION + (MAX_POSITION - MIN_POSITION) * i as f64 / 99.0;
            ((x - MIN_POSITION) * scale, height_at(x) * scale)
        })
        .collect();
    canvas.stroke_polyline(&curve, 1.0, BLACK);

    let tilt = (3.0 * position).cos();
    let base = ((position - MIN_POSITION) * scale, clearance + height_at(position) * scale);
    let car = box_at(-car_width / 2.0, car_width / 2.0, 0.0, car_height, tilt, base);
    canvas.fill_polygon(&car, BLACK);
    for dx in [car_width / 4.0, -car_width / 4.0] {
        let (x, y) = rotate((dx, 0.0), tilt);
        let wheel = ((x + base.0) as i64, (y + base.1) as i64);
        canvas.fill_pixel_circle(wheel.0, wheel.1, (car_height / 2.5) as i64, [128, 128, 128]);
    }

    let flag_x = ((goal_position - MIN_POSITION) * scale) as i64 as f64;
    let flag_y1 = (height_at(goal_position) * scale) as i64 as f64;
    let flag_y2 = flag_y1 + 50.0;
    let pole = box_at(flag_x, flag_x + 1.0, flag_y1, flag_y2 + 1.0, 0.0, (0.0, 0.0));
    canvas.fill_polygon(&pole, BLACK);
    let flag = [(flag_x, flag_y2), (flag_x, flag_y2 - 10.0), (flag_x + 25.0, flag_y2 - 5.0)];
    canvas.fill_polygon(&flag, [204, 204, 0]);
    canvas.into_frame()
}
