//! Pictures of environments: the RGB [`Frame`] that [`crate::Env::render`] returns, and
//! drawings of the classic-control environments from their state that look like Gymnasium's
//! `render_mode="rgb_array"` pictures (same sizes, geometry and colours).
//!
//! Drawn in pure Rust by a small rasteriser of its own (anti-aliased convex and simple polygons,
//! discs, thick lines): the five pictures need nothing more, and a 2-D graphics crate would be
//! this crate's largest dependency for a few hundred lines of use. The crate stays light enough
//! to be the base of a policy runner with no libtorch.

mod canvas;
mod classic;

pub use classic::{
    ACROBOT_SIZE, CARTPOLE_SIZE, MOUNTAIN_CAR_SIZE, PENDULUM_SIZE, acrobot, cartpole, mountain_car,
    pendulum,
};

/// An 8-bit RGB colour.
pub type Rgb = [u8; 3];

/// An RGB picture: `height` rows of `width` pixels, top row first, 3 bytes per pixel (the layout
/// of Gymnasium's `rgb_array`, `(height, width, 3)` `uint8`).
#[derive(Clone, PartialEq, Eq)]
pub struct Frame {
    width: u32,
    height: u32,
    rgb: Vec<u8>,
}

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Frame({}x{})", self.width, self.height)
    }
}

impl Frame {
    /// A `width` × `height` frame of one colour.
    pub fn filled(width: u32, height: u32, colour: Rgb) -> Self {
        let pixels = width as usize * height as usize;
        Self { width, height, rgb: colour.repeat(pixels) }
    }

    /// A frame holding `rgb` (rows top first, 3 bytes per pixel); `None` unless
    /// `rgb.len() == width * height * 3`.
    pub fn from_rgb(width: u32, height: u32, rgb: Vec<u8>) -> Option<Self> {
        let len = (width as usize).checked_mul(height as usize)?.checked_mul(3)?;
        (rgb.len() == len).then_some(Self { width, height, rgb })
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// The pixels, rows top first, 3 bytes (R, G, B) per pixel.
    pub fn rgb(&self) -> &[u8] {
        &self.rgb
    }

    /// The pixel bytes, without copying.
    pub fn into_rgb(self) -> Vec<u8> {
        self.rgb
    }

    /// The colour of the pixel in column `x` and row `y` (row 0 at the top), if inside.
    pub fn pixel(&self, x: u32, y: u32) -> Option<Rgb> {
        if x >= self.width || y >= self.height {
            return None;
        }
        let i = (y as usize * self.width as usize + x as usize) * 3;
        Some([self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]])
    }

    /// Mixes `colour` into the pixel at (`col`, `row`) with weight `alpha` in `[0, 1]`.
    fn blend(&mut self, col: usize, row: usize, colour: Rgb, alpha: f64) {
        let i = (row * self.width as usize + col) * 3;
        for (dst, src) in self.rgb[i..i + 3].iter_mut().zip(colour) {
            let mixed = f64::from(*dst) * (1.0 - alpha) + f64::from(src) * alpha;
            *dst = mixed.round().clamp(0.0, 255.0) as u8;
        }
    }
}
