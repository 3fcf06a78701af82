//! What the kernels need from a float type, and the storage plumbing shared by
//! every op: f32 for training, f64 for finite-difference gradient checks.

use candle_core::{Layout, bail};
use std::cell::Cell;
use std::ops::{Add, AddAssign, Div, Mul, Sub};
use std::thread::LocalKey;

/// The float types the kernels run on.
pub trait Float:
    Copy
    + Send
    + Sync
    + 'static
    + PartialOrd
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + AddAssign
{
    const ZERO: Self;
    const ONE: Self;
    fn from_f64(v: f64) -> Self;
    fn to_f64(self) -> f64;
    fn sqrt(self) -> Self;
    fn is_nan(self) -> bool;
    /// This thread's reusable scratch buffer of this type (see `with_scratch`).
    fn scratch() -> &'static LocalKey<Cell<Vec<Self>>>;
}

thread_local! {
    static SCRATCH_F32: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
    static SCRATCH_F64: Cell<Vec<f64>> = const { Cell::new(Vec::new()) };
}

/// Runs `f` on a buffer of `len` elements whose contents are unspecified (the
/// caller overwrites before reading), reused across calls on this thread. The
/// im2col buffers are tens of MiB; a fresh allocation each call costs a page
/// fault and a zeroing per 4 KiB page. A nested call simply gets a new buffer.
pub fn with_scratch<T: Float, R>(len: usize, f: impl FnOnce(&mut [T]) -> R) -> R {
    let mut buf = T::scratch().with(Cell::take);
    if buf.len() < len {
        buf.resize(len, T::ZERO);
    }
    let result = f(&mut buf[..len]);
    T::scratch().with(|cell| {
        // Keep the larger of this buffer and any a nested call left behind.
        let other = cell.take();
        cell.set(if other.len() > buf.len() { other } else { buf });
    });
    result
}

impl Float for f32 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    fn to_f64(self) -> f64 {
        self as f64
    }
    fn sqrt(self) -> Self {
        f32::sqrt(self)
    }
    fn is_nan(self) -> bool {
        f32::is_nan(self)
    }
    fn scratch() -> &'static LocalKey<Cell<Vec<Self>>> {
        &SCRATCH_F32
    }
}

impl Float for f64 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    fn from_f64(v: f64) -> Self {
        v
    }
    fn to_f64(self) -> f64 {
        self
    }
    fn sqrt(self) -> Self {
        f64::sqrt(self)
    }
    fn is_nan(self) -> bool {
        f64::is_nan(self)
    }
    fn scratch() -> &'static LocalKey<Cell<Vec<Self>>> {
        &SCRATCH_F64
    }
}

/// The contiguous slice a layout views, or an error for strided views (the
/// public entry points make their inputs contiguous, so this only guards misuse).
pub fn contiguous<'a, T>(data: &'a [T], layout: &Layout, op: &str) -> candle_core::Result<&'a [T]> {
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => bail!("{op}: expected a contiguous tensor"),
    }
}

/// Runs `f` on the contiguous f32 or f64 slices of two storages of the same
/// dtype and wraps its result back into a storage.
macro_rules! dispatch2 {
    ($op:expr, ($a:expr, $la:expr), ($b:expr, $lb:expr), |$x:ident, $y:ident| $body:expr) => {{
        use candle_core::CpuStorage;
        use candle_core::backend::BackendStorage;
        use $crate::kernels::float::contiguous;
        match ($a, $b) {
            (CpuStorage::F32(a), CpuStorage::F32(b)) => {
                let $x = contiguous(a, $la, $op)?;
                let $y = contiguous(b, $lb, $op)?;
                CpuStorage::F32($body)
            }
            (CpuStorage::F64(a), CpuStorage::F64(b)) => {
                let $x = contiguous(a, $la, $op)?;
                let $y = contiguous(b, $lb, $op)?;
                CpuStorage::F64($body)
            }
            (a, b) => candle_core::bail!(
                "{}: unsupported dtypes {:?} / {:?} (f32 or f64, both the same)",
                $op,
                a.dtype(),
                b.dtype()
            ),
        }
    }};
}

/// As `dispatch2`, for three storages.
macro_rules! dispatch3 {
    ($op:expr, ($a:expr, $la:expr), ($b:expr, $lb:expr), ($c:expr, $lc:expr), |$x:ident, $y:ident, $z:ident| $body:expr) => {{
        use candle_core::CpuStorage;
        use candle_core::backend::BackendStorage;
        use $crate::kernels::float::contiguous;
        match ($a, $b, $c) {
            (CpuStorage::F32(a), CpuStorage::F32(b), CpuStorage::F32(c)) => {
                let $x = contiguous(a, $la, $op)?;
                let $y = contiguous(b, $lb, $op)?;
                let $z = contiguous(c, $lc, $op)?;
                CpuStorage::F32($body)
            }
            (CpuStorage::F64(a), CpuStorage::F64(b), CpuStorage::F64(c)) => {
                let $x = contiguous(a, $la, $op)?;
                let $y = contiguous(b, $lb, $op)?;
                let $z = contiguous(c, $lc, $op)?;
                CpuStorage::F64($body)
            }
            (a, b, c) => candle_core::bail!(
                "{}: unsupported dtypes {:?} / {:?} / {:?} (f32 or f64, all the same)",
                $op,
                a.dtype(),
                b.dtype(),
                c.dtype()
            ),
        }
    }};
}

pub(crate) use {dispatch2, dispatch3};

/// A raw pointer that may cross rayon tasks. Each task writes a disjoint part
/// of the buffer it points into; the code that builds one says why.
#[derive(Clone, Copy)]
pub struct SendPtr<T>(pub *mut T);

// SAFETY: only used to hand disjoint regions of one buffer to parallel tasks,
// which is checked where each `SendPtr` is created.
unsafe impl<T> Send for SendPtr<T> {}

impl<T> SendPtr<T> {
    /// The pointer. A method, not `.0`, so that closures capture the whole
    /// (Send) wrapper rather than the bare pointer field.
    pub fn get(self) -> *mut T {
        self.0
    }
}
// SAFETY: as above.
unsafe impl<T> Sync for SendPtr<T> {}
