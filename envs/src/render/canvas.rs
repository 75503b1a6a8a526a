//! A small anti-aliased rasteriser: filled polygons (unions of them), circles and thick lines in
//! flat colours on an RGB [`Frame`].
//!
//! Coordinates are Gymnasium's drawing coordinates before its final flip: pixels, `x` to the
//! right and `y` **up** from the bottom edge, so the geometry of its `render()` methods ports
//! unchanged. Pixel `(col, row)` of the frame covers `x ∈ [col, col + 1)` and
//! `y ∈ (height − row − 1, height − row]`.
//!
//! Anti-aliasing is by coverage: each pixel row is sampled on [`SUBSAMPLES`] horizontal lines, and
//! along each line the exact covered length of every pixel is added up. Coverage is rounded to
//! multiples of `1 / COVERAGE_LEVELS`, so that a picture of a few flat colours keeps a small
//! exact palette (which keeps GIFs of it small).

use super::{Frame, Rgb};

/// Horizontal sample lines per pixel row.
const SUBSAMPLES: usize = 4;
/// Coverage is rounded to multiples of `1 / COVERAGE_LEVELS` before blending.
const COVERAGE_LEVELS: f64 = 8.0;

/// A point in drawing coordinates (pixels, `y` up).
pub(crate) type Point = (f64, f64);

/// A frame being drawn on, in `y`-up coordinates.
pub(crate) struct Canvas {
    frame: Frame,
}

impl Canvas {
    /// A `width` × `height` canvas filled with `background`.
    pub(crate) fn new(width: u32, height: u32, background: Rgb) -> Self {
        Self { frame: Frame::filled(width, height, background) }
    }

    /// The finished picture.
    pub(crate) fn into_frame(self) -> Frame {
        self.frame
    }

    /// Fills the union of `polygons` (each a closed outline, even-odd rule) with `colour`,
    /// blending its anti-aliased edges once over what is below.
    pub(crate) fn fill_polygons(&mut self, polygons: &[&[Point]], colour: Rgb) {
        let (w, h) = (self.frame.width() as f64, self.frame.height() as f64);
        // Bounding box in screen coordinates (y down), clipped to the frame.
        let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for &(x, y) in polygons.iter().flat_map(|p| p.iter()) {
            if !(x.is_finite() && y.is_finite()) {
                return; // a non-finite state draws nothing rather than garbage
            }
            let sy = h - y;
            (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(sy), y1.max(sy));
        }
        let col0 = x0.floor().max(0.0) as usize;
        let col1 = x1.ceil().min(w) as usize;
        let row0 = y0.floor().max(0.0) as usize;
        let row1 = y1.ceil().min(h) as usize;
        if col0 >= col1 || row0 >= row1 {
            return;
        }
        let bw = col1 - col0;
        let mut mask = vec![0f64; bw];
        let mut shape = vec![0f64; bw];
        let mut crossings = Vec::new();
        for row in row0..row1 {
            mask.iter_mut().for_each(|m| *m = 0.0);
            for polygon in polygons {
                shape.iter_mut().for_each(|s| *s = 0.0);
                for k in 0..SUBSAMPLES {
                    // The sample line, converted back to y-up coordinates.
                    let y = h - (row as f64 + (k as f64 + 0.5) / SUBSAMPLES as f64);
                    crossings.clear();
                    for (i, &(ax, ay)) in polygon.iter().enumerate() {
                        let (bx, by) = polygon[(i + 1) % polygon.len()];
                        // Half-open in y so that a vertex on the line counts once.
                        if (ay <= y) != (by <= y) {
                            crossings.push(ax + (y - ay) / (by - ay) * (bx - ax));
                        }
                    }
                    crossings.sort_by(f64::total_cmp);
                    for span in crossings.chunks_exact(2) {
                        add_span(&mut shape, col0, span[0], span[1]);
                    }
                }
                for (m, s) in mask.iter_mut().zip(&shape) {
                    *m = m.max(*s / SUBSAMPLES as f64);
                }
            }
            for (i, &m) in mask.iter().enumerate() {
                let c = (m.min(1.0) * COVERAGE_LEVELS).round() / COVERAGE_LEVELS;
                if c > 0.0 {
                    self.frame.blend(col0 + i, row, colour, c);
                }
            }
        }
    }

    /// Fills one polygon.
    pub(crate) fn fill_polygon(&mut self, polygon: &[Point], colour: Rgb) {
        self.fill_polygons(&[polygon], colour);
    }

    /// Fills the disc of `radius` around `centre`.
    pub(crate) fn fill_circle(&mut self, centre: Point, radius: f64, colour: Rgb) {
        self.fill_polygon(&circle(centre, radius), colour);
    }

    /// pygame's `gfxdraw.filled_circle(x, y, r)` at integer pixel `(x, y)`: the pixels whose
    /// centres lie within `r` of that pixel's centre.
    pub(crate) fn fill_pixel_circle(&mut self, x: i64, y: i64, r: i64, colour: Rgb) {
        self.fill_circle((x as f64 + 0.5, y as f64 + 0.5), r as f64 + 0.5, colour);
    }

    /// Draws the line through `points` with the given `width`, joints rounded.
    pub(crate) fn stroke_polyline(&mut self, points: &[Point], width: f64, colour: Rgb) {
        if points.len() < 2 {
            return;
        }
        let half = width / 2.0;
        let mut pieces: Vec<Vec<Point>> = Vec::new();
        for pair in points.windows(2) {
            let ((ax, ay), (bx, by)) = (pair[0], pair[1]);
            let len = (bx - ax).hypot(by - ay);
            if len == 0.0 {
                continue;
            }
            let (nx, ny) = (-(by - ay) / len * half, (bx - ax) / len * half);
            pieces.push(vec![
                (ax + nx, ay + ny),
                (bx + nx, by + ny),
                (bx - nx, by - ny),
                (ax - nx, ay - ny),
            ]);
        }
        if width > 1.5 {
            for &p in &points[1..points.len() - 1] {
                pieces.push(circle(p, half));
            }
        }
        let refs: Vec<&[Point]> = pieces.iter().map(Vec::as_slice).collect();
        self.fill_polygons(&refs, colour);
    }
}

/// Adds the covered length of `[a, b)` to each pixel of `row` (whose first entry is column
/// `col0`).
fn add_span(row: &mut [f64], col0: usize, a: f64, b: f64) {
    let a = (a - col0 as f64).max(0.0);
    let b = (b - col0 as f64).min(row.len() as f64);
    if a >= b {
        return;
    }
    let (first, last) = (a.floor() as usize, (b.ceil() as usize).min(row.len()));
    for (i, cell) in row.iter_mut().enumerate().take(last).skip(first) {
        let lo = a.max(i as f64);
        let hi = b.min(i as f64 + 1.0);
        *cell += (hi - lo).max(0.0);
    }
}

/// A disc as a polygon, fine enough that no edge strays a tenth of a pixel from the circle.
pub(crate) fn circle((cx, cy): Point, radius: f64) -> Vec<Point> {
    let n = ((std::f64::consts::TAU * radius).ceil() as usize).clamp(12, 256);
    (0..n)
        .map(|i| {
            let a = std::f64::consts::TAU * i as f64 / n as f64;
            (cx + radius * a.cos(), cy + radius * a.sin())
        })
        .collect()
}

/// `p` rotated by `angle` radians (counter-clockwise in `y`-up coordinates, as pygame's
/// `Vector2.rotate_rad` before the flip).
pub(crate) fn rotate((x, y): Point, angle: f64) -> Point {
    let (s, c) = angle.sin_cos();
    (x * c - y * s, x * s + y * c)
}
