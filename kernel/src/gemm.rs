//! The matrix product everything else is built on: `c ← a · b + beta · c` on matrices that
//! live inside slices at any strides (a transpose is a change of strides, never a copy).
//!
//! Products with many rows go to `matrixmultiply`'s sgemm (bluss's pure-Rust packed kernels,
//! which pick AVX-512 or AVX2 micro-kernels at run time: about 150 GFLOP/s on one core of the
//! development machine on 256-wide products). Products of one to a few rows (acting on one
//! observation) skip its packing, which would copy the whole weight matrix for a few hundred
//! multiply-adds, and run as plain dot products or `axpy` loops along whichever stride of `b`
//! is contiguous, compiled for the CPU's widest vectors ([`crate::simd`]).
//!
//! Thin products of many rows (a network's 3- or 4-wide input layer, its 1-wide output) also
//! run faster as such loops in isolation, but changing how they are summed changes training
//! trajectories in the last bits, and the update gained only ~3% (measured 2026-12-08): they
//! stay with sgemm, whose results the learning tests' seeds were measured with.

/// A matrix inside a slice: element `(i, j)` of a `rows × cols` matrix is at
/// `offset + i·row_stride + j·col_stride`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct View {
    /// Index of element `(0, 0)`.
    pub offset: usize,
    /// Number of rows.
    pub rows: usize,
    /// Number of columns.
    pub cols: usize,
    /// Distance between vertically adjacent elements.
    pub row_stride: usize,
    /// Distance between horizontally adjacent elements.
    pub col_stride: usize,
}

impl View {
    /// A row-major `rows × cols` matrix at the start of a slice.
    pub fn dense(rows: usize, cols: usize) -> Self {
        Self { offset: 0, rows, cols, row_stride: cols, col_stride: 1 }
    }

    /// The transposed matrix (no copy).
    pub fn t(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }

    /// One past the largest index the matrix touches (0 for an empty one).
    pub fn end(&self) -> usize {
        if self.rows == 0 || self.cols == 0 {
            0
        } else {
            self.offset + (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride + 1
        }
    }

    #[inline]
    fn at(&self, i: usize, j: usize) -> usize {
        self.offset + i * self.row_stride + j * self.col_stride
    }
}

/// Products with at most this many rows run as plain loops instead of packed sgemm, when the
/// loops can run along contiguous memory.
const SMALL_ROWS: usize = 8;

/// `c ← a · b + beta · c` for matrices inside slices. With `beta = 0`, `c`'s previous values
/// are ignored (NaN included).
///
/// # Panics
/// If the shapes do not chain or a matrix reaches past its slice: a bug in the caller.
pub fn gemm(a: &[f32], av: View, b: &[f32], bv: View, beta: f32, c: &mut [f32], cv: View) {
    assert!(av.cols == bv.rows && av.rows == cv.rows && bv.cols == cv.cols, "gemm shapes");
    assert!(av.end() <= a.len() && bv.end() <= b.len() && cv.end() <= c.len(), "gemm bounds");
    if cv.rows == 0 || cv.cols == 0 {
        return;
    }
    // A few rows (acting on a few observations): plain loops along whichever stride of `b` is
    // contiguous, instead of packing all of `b` for a handful of multiply-adds per element.
    let rows_contiguous = bv.col_stride == 1 && cv.col_stride == 1;
    let cols_contiguous = bv.row_stride == 1 && av.col_stride == 1;
    if av.rows <= SMALL_ROWS && (rows_contiguous || cols_contiguous) {
        crate::simd::wide(
            #[inline(always)]
            || small(a, av, b, bv, beta, c, cv),
        );
        return;
    }
    let stride = |s: usize| s as isize;
    // SAFETY: the asserts above keep every index the product touches inside its slice; `c` is
    // borrowed mutably, so it cannot alias `a` or `b`.
    unsafe {
        matrixmultiply::sgemm(
            av.rows,
            av.cols,
            bv.cols,
            1.0,
            a.as_ptr().add(av.offset),
            stride(av.row_stride),
            stride(av.col_stride),
            b.as_ptr().add(bv.offset),
            stride(bv.row_stride),
            stride(bv.col_stride),
            beta,
            c.as_mut_ptr().add(cv.offset),
            stride(cv.row_stride),
            stride(cv.col_stride),
        );
    }
}

/// [`gemm`] for a few rows of `a`: per row, `axpy` along `b`'s rows when they are contiguous,
/// dot products along its columns otherwise.
#[inline(always)]
fn small(a: &[f32], av: View, b: &[f32], bv: View, beta: f32, c: &mut [f32], cv: View) {
    for i in 0..av.rows {
        for j in 0..cv.cols {
            let cij = &mut c[cv.at(i, j)];
            *cij = if beta == 0.0 { 0.0 } else { beta * *cij };
        }
        if bv.col_stride == 1 && cv.col_stride == 1 {
            // c[i, :] += a[i, k] · b[k, :], b's rows contiguous.
            let row = cv.at(i, 0);
            let out = &mut c[row..row + cv.cols];
            for k in 0..av.cols {
                let x = a[av.at(i, k)];
                if x != 0.0 {
                    let start = bv.at(k, 0);
                    for (y, &w) in out.iter_mut().zip(&b[start..start + bv.cols]) {
                        *y += x * w;
                    }
                }
            }
        } else {
            // c[i, j] += ⟨a[i, :], b[:, j]⟩, both contiguous.
            let row = &a[av.at(i, 0)..av.at(i, 0) + av.cols];
            for j in 0..cv.cols {
                let start = bv.at(0, j);
                let column = &b[start..start + bv.rows];
                c[cv.at(i, j)] += dot(row, column);
            }
        }
    }
}

/// `⟨x, y⟩` over eight running sums (so the loop vectorizes), added up at the end.
#[inline(always)]
fn dot(x: &[f32], y: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let (xs, ys) = (x.chunks_exact(8), y.chunks_exact(8));
    let tail: f32 = xs.remainder().iter().zip(ys.remainder()).map(|(a, b)| a * b).sum();
    for (a, b) in xs.zip(ys) {
        for k in 0..8 {
            lanes[k] += a[k] * b[k];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &[f32], av: View, b: &[f32], bv: View, beta: f32, c: &mut [f32], cv: View) {
        for i in 0..av.rows {
            for j in 0..bv.cols {
                let mut s = 0.0f64;
                for k in 0..av.cols {
                    s += f64::from(a[av.at(i, k)]) * f64::from(b[bv.at(k, j)]);
                }
                let old =
                    if beta == 0.0 { 0.0 } else { f64::from(beta) * f64::from(c[cv.at(i, j)]) };
                c[cv.at(i, j)] = (s + old) as f32;
            }
        }
    }

    fn values(n: usize, seed: u32) -> Vec<f32> {
        let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                (x % 2001) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn every_size_and_layout_matches_a_naive_product() {
        for rows in [1, 2, 3, 4, 5, 9, 64] {
            for (k, n) in [(3, 5), (16, 7), (64, 64)] {
                for (a_t, b_t, beta) in
                    [(false, false, 0.0), (true, false, 1.0), (false, true, 0.5), (true, true, 0.0)]
                {
                    let a = values(rows * k, 1);
                    let b = values(k * n, 2);
                    let av = if a_t { View::dense(k, rows).t() } else { View::dense(rows, k) };
                    let bv = if b_t { View::dense(n, k).t() } else { View::dense(k, n) };
                    let mut c = values(rows * n, 3);
                    let mut want = c.clone();
                    gemm(&a, av, &b, bv, beta, &mut c, View::dense(rows, n));
                    naive(&a, av, &b, bv, beta, &mut want, View::dense(rows, n));
                    let err = c.iter().zip(&want).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max);
                    assert!(err < 1e-4, "rows {rows}, k {k}, n {n}, a_t {a_t}, b_t {b_t}: {err}");
                }
            }
        }
    }

    #[test]
    fn beta_zero_ignores_what_was_in_c() {
        let a = [1.0, 2.0];
        let b = [3.0, 4.0];
        let mut c = [f32::NAN];
        gemm(&a, View::dense(1, 2), &b, View::dense(2, 1), 0.0, &mut c, View::dense(1, 1));
        assert_eq!(c, [11.0]);
    }
}
