//! A bounds-checked, safe front for `gemm::gemm` (f32) on strided views of slices.
//!
//! `gemm` is an `unsafe fn` taking raw pointers and strides; the views here check, once per
//! call, that every element the strides can reach lies inside the borrowed slice, and the
//! borrow checker rules out the destination aliasing an input.
#![allow(unsafe_code)]

/// A read-only `rows × cols` matrix inside `data`: element (i, j) is
/// `data[i * row_stride + j * col_stride]`.
#[derive(Debug, Clone, Copy)]
pub struct Mat<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

/// A writable `rows × cols` matrix inside `data` with contiguous rows `row_stride` apart.
#[derive(Debug)]
pub struct MatMut<'a> {
    data: &'a mut [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
}

/// Whether the last element of a strided `rows × cols` view is inside a slice of `len`.
fn fits(len: usize, rows: usize, cols: usize, row_stride: usize, col_stride: usize) -> bool {
    if rows == 0 || cols == 0 {
        return true;
    }
    let last = (rows - 1)
        .checked_mul(row_stride)
        .zip((cols - 1).checked_mul(col_stride))
        .and_then(|(a, b)| a.checked_add(b));
    // Strides become `isize` for gemm, so the reach must fit there too.
    last.is_some_and(|last| last < len && isize::try_from(last).is_ok())
}

impl<'a> Mat<'a> {
    /// Row-major `rows × cols` with rows `row_stride` apart, starting at `data[0]`.
    ///
    /// # Panics
    /// If the view reaches past the end of `data` (a shape bug in the caller).
    pub fn new(data: &'a [f32], rows: usize, cols: usize, row_stride: usize) -> Self {
        assert!(
            fits(data.len(), rows, cols, row_stride, 1),
            "{rows}x{cols} view with row stride {row_stride} exceeds {} elements",
            data.len()
        );
        Self {
            data,
            rows,
            cols,
            row_stride,
            col_stride: 1,
        }
    }

    /// The transpose, as a view of the same elements (no copy).
    pub fn t(self) -> Self {
        Self {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
        }
    }
}

impl<'a> MatMut<'a> {
    /// Row-major `rows × cols` with rows `row_stride` apart, starting at `data[0]`.
    ///
    /// # Panics
    /// If the view reaches past the end of `data` (a shape bug in the caller).
    pub fn new(data: &'a mut [f32], rows: usize, cols: usize, row_stride: usize) -> Self {
        assert!(
            fits(data.len(), rows, cols, row_stride, 1),
            "{rows}x{cols} view with row stride {row_stride} exceeds {} elements",
            data.len()
        );
        Self {
            data,
            rows,
            cols,
            row_stride,
        }
    }
}

/// `dst = scale · lhs · rhs`, or `dst += scale · lhs · rhs` when `accumulate`, on the calling
/// thread (the encoder parallelises across sequences instead).
///
/// # Panics
/// If the shapes do not chain: `lhs` is m×k, `rhs` k×n and `dst` m×n.
pub fn matmul(dst: MatMut<'_>, lhs: Mat<'_>, rhs: Mat<'_>, scale: f32, accumulate: bool) {
    assert!(
        lhs.cols == rhs.rows && dst.rows == lhs.rows && dst.cols == rhs.cols,
        "matmul shapes {}x{} · {}x{} → {}x{}",
        lhs.rows,
        lhs.cols,
        rhs.rows,
        rhs.cols,
        dst.rows,
        dst.cols
    );
    if dst.rows == 0 || dst.cols == 0 {
        return;
    }
    // The constructors checked that every stride times index fits in `isize`.
    let stride = |s: usize| s as isize;
    // SAFETY: each view's reachable elements lie inside its slice (checked by the
    // constructors, including the `isize` range of the offsets); `dst` is borrowed mutably
    // and the inputs shared, so they cannot overlap; the dimensions were checked to chain
    // above. gemm reads `dst` only when `read_dst` is true.
    unsafe {
        gemm::gemm(
            dst.rows,
            dst.cols,
            lhs.cols,
            dst.data.as_mut_ptr(),
            1,
            stride(dst.row_stride),
            accumulate,
            lhs.data.as_ptr(),
            stride(lhs.col_stride),
            stride(lhs.row_stride),
            rhs.data.as_ptr(),
            stride(rhs.col_stride),
            stride(rhs.row_stride),
            1.0,
            scale,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, seed: usize) -> Vec<f32> {
        (0..n)
            .map(|i| ((i * 7919 + seed * 104_729) % 1000) as f32 / 500.0 - 1.0)
            .collect()
    }

    /// Naive triple loop; strides are (row, column), shape is (m, k, n).
    fn naive(
        a: &[f32],
        (a_rs, a_cs): (usize, usize),
        b: &[f32],
        (b_rs, b_cs): (usize, usize),
        (m, k, n): (usize, usize, usize),
    ) -> Vec<f64> {
        let mut out = vec![0.0f64; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = (0..k)
                    .map(|p| f64::from(a[i * a_rs + p * a_cs]) * f64::from(b[p * b_rs + j * b_cs]))
                    .sum();
            }
        }
        out
    }

    fn assert_close(got: &[f32], row_stride: usize, want: &[f64], n: usize) {
        for (i, row) in want.chunks(n).enumerate() {
            for (j, &w) in row.iter().enumerate() {
                let g = f64::from(got[i * row_stride + j]);
                assert!((g - w).abs() < 1e-4, "({i},{j}): {g} vs {w}");
            }
        }
    }

    #[test]
    fn dense_shapes_match_a_naive_matmul() {
        // Odd sizes exercise gemm's edge tiles.
        for (m, k, n) in [
            (1, 1, 1),
            (3, 5, 7),
            (65, 384, 1152),
            (130, 1536, 384),
            (17, 32, 9),
        ] {
            let a = values(m * k, 1);
            let b = values(k * n, 2);
            let mut c = vec![f32::NAN; m * n];
            matmul(
                MatMut::new(&mut c, m, n, n),
                Mat::new(&a, m, k, k),
                Mat::new(&b, k, n, n),
                1.0,
                false,
            );
            assert_close(&c, n, &naive(&a, (k, 1), &b, (n, 1), (m, k, n)), n);
        }
    }

    #[test]
    fn strided_and_transposed_views_match_a_naive_matmul() {
        // Attention's shape: Q·Kᵀ with Q and K heads inside a wider row, scaled, written into
        // a column block of a wider destination.
        let (m, k, n, wide) = (11, 8, 13, 40);
        let q = values(m * wide, 3);
        let kk = values(n * wide, 4);
        let mut c = vec![0.0f32; m * 30];
        let lhs = Mat::new(&q[5..], m, k, wide);
        let rhs = Mat::new(&kk[9..], n, k, wide).t();
        matmul(MatMut::new(&mut c[4..], m, n, 30), lhs, rhs, 0.5, false);
        let want: Vec<f64> = naive(&q[5..], (wide, 1), &kk[9..], (1, wide), (m, k, n))
            .into_iter()
            .map(|v| v * 0.5)
            .collect();
        assert_close(&c[4..], 30, &want, n);
        // Everything outside the m × n block at column 4 is untouched.
        for (i, row) in c.chunks(30).enumerate() {
            for (j, &v) in row.iter().enumerate() {
                let inside = i < m && (4..4 + n).contains(&j);
                assert!(inside || v == 0.0, "({i},{j}) was written");
            }
        }
    }

    #[test]
    fn accumulate_adds_to_the_destination() {
        let (m, k, n) = (4, 6, 5);
        let a = values(m * k, 5);
        let b = values(k * n, 6);
        let mut c = vec![2.0f32; m * n];
        matmul(
            MatMut::new(&mut c, m, n, n),
            Mat::new(&a, m, k, k),
            Mat::new(&b, k, n, n),
            1.0,
            true,
        );
        let want: Vec<f64> = naive(&a, (k, 1), &b, (n, 1), (m, k, n))
            .into_iter()
            .map(|v| v + 2.0)
            .collect();
        assert_close(&c, n, &want, n);
    }

    #[test]
    #[should_panic(expected = "exceeds")]
    fn a_view_past_the_slice_is_refused() {
        let data = vec![0.0f32; 10];
        let _ = Mat::new(&data, 3, 4, 4);
    }

    #[test]
    #[should_panic(expected = "matmul shapes")]
    fn mismatched_shapes_are_refused() {
        let a = vec![0.0f32; 6];
        let mut c = vec![0.0f32; 4];
        matmul(
            MatMut::new(&mut c, 2, 2, 2),
            Mat::new(&a, 2, 3, 3),
            Mat::new(&a, 2, 3, 3),
            1.0,
            false,
        );
    }
}
