//! Fixed-length tables backed by transparent huge pages where the kernel allows.
//!
//! The engine's large tables (orders, levels, id table, price cache, accounts, positions) are
//! read at random, one or two cache lines per access spread over tens of MiB. With 4 KiB pages
//! nearly every such access also misses the TLB (a page walk before the cache miss); with
//! 2 MiB pages all of them fit the TLB. Such a table is mapped fresh (`mmap`, so no page of it
//! was ever touched), its 2 MiB-aligned part is advised `MADV_HUGEPAGE` and only then filled,
//! so the kernel can back it with huge pages at the first touch. A hint only: with
//! transparent huge pages off, or off Linux, or for a table under 2 MiB, it is an ordinary
//! allocation, and the contents are the same either way.

use std::ptr::NonNull;

const HUGE_PAGE: usize = 2 << 20;

/// `len` values of `T` in one allocation; derefs to `[T]`.
pub(crate) struct Huge<T: Copy> {
    ptr: NonNull<T>,
    len: usize,
    /// Bytes mapped with `mmap` at `map` (0: allocated by a `Vec` instead).
    mapped: usize,
    map: *mut u8,
}

// SAFETY: `Huge` owns its values like a `Box<[T]>` does.
unsafe impl<T: Copy + Send> Send for Huge<T> {}
// SAFETY: shared access only hands out `&[T]`.
unsafe impl<T: Copy + Sync> Sync for Huge<T> {}

impl<T: Copy> Huge<T> {
    /// `len` copies of `value`.
    pub(crate) fn new(len: usize, value: T) -> Self {
        let bytes = len * std::mem::size_of::<T>();
        #[cfg(target_os = "linux")]
        if bytes >= HUGE_PAGE && std::mem::align_of::<T>() <= HUGE_PAGE {
            if let Some(h) = Self::mapped(len, bytes, value) {
                return h;
            }
        }
        let mut v = std::mem::ManuallyDrop::new(vec![value; len].into_boxed_slice());
        Self {
            ptr: NonNull::new(v.as_mut_ptr()).expect("a Box's pointer is not null"),
            len,
            mapped: 0,
            map: std::ptr::null_mut(),
        }
    }

    #[cfg(target_os = "linux")]
    fn mapped(len: usize, bytes: usize, value: T) -> Option<Self> {
        // One huge page more than needed, so that the table can start on a 2 MiB boundary.
        let mapped = bytes.checked_add(HUGE_PAGE)?;
        // SAFETY: an anonymous private mapping at an address the kernel chooses; checked below.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                mapped,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if map == libc::MAP_FAILED {
            return None;
        }
        let map = map.cast::<u8>();
        let offset = (map as usize).next_multiple_of(HUGE_PAGE) - map as usize;
        // SAFETY: `offset < HUGE_PAGE`, so the table's `bytes` lie inside the mapping.
        let start = unsafe { map.add(offset) };
        let advised = bytes.next_multiple_of(HUGE_PAGE).min(mapped - offset);
        // SAFETY: the range is inside the mapping; the advice changes how its pages are backed,
        // never their contents. Failure (huge pages off) leaves ordinary pages.
        unsafe {
            libc::madvise(start.cast(), advised, libc::MADV_HUGEPAGE);
        }
        let ptr = start.cast::<T>();
        for i in 0..len {
            // SAFETY: in bounds of the mapping, aligned (a 2 MiB boundary plus a multiple of
            // `size_of::<T>()`, and `align_of::<T>() <= HUGE_PAGE`), not yet initialised.
            unsafe { ptr.add(i).write(value) };
        }
        Some(Self {
            ptr: NonNull::new(ptr)?,
            len,
            mapped,
            map,
        })
    }
}

impl<T: Copy> Drop for Huge<T> {
    fn drop(&mut self) {
        if self.mapped > 0 {
            #[cfg(target_os = "linux")]
            // SAFETY: `map`/`mapped` are exactly what `mmap` returned; nothing borrows it now.
            unsafe {
                libc::munmap(self.map.cast(), self.mapped);
            }
        } else {
            // SAFETY: rebuilt from the parts of the boxed slice `new` leaked.
            drop(unsafe {
                Box::from_raw(std::ptr::slice_from_raw_parts_mut(
                    self.ptr.as_ptr(),
                    self.len,
                ))
            });
        }
    }
}

impl<T: Copy> std::ops::Deref for Huge<T> {
    type Target = [T];
    #[inline(always)]
    fn deref(&self) -> &[T] {
        // SAFETY: `ptr` holds `len` initialised values owned by `self`.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: Copy> std::ops::DerefMut for Huge<T> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as for `deref`, and `&mut self` is unique.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: Copy + std::fmt::Debug> std::fmt::Debug for Huge<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<T: Copy + PartialEq> PartialEq for Huge<T> {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_and_large_tables_hold_their_values() {
        for len in [0, 1, 1000, (3 << 20) / 8 + 5] {
            let mut t = Huge::new(len, 7_u64);
            assert_eq!(t.len(), len);
            assert!(t.iter().all(|&v| v == 7));
            if len > 0 {
                t[len - 1] = 9;
                assert_eq!(t[len - 1], 9);
            }
            let u = Huge::new(len, 7_u64);
            assert_eq!(t == u, len == 0);
        }
    }

    #[test]
    fn large_tables_start_on_a_huge_page_boundary() {
        let t = Huge::new(4 << 20, 1_u8);
        if cfg!(target_os = "linux") {
            assert_eq!(t.as_ptr() as usize % HUGE_PAGE, 0);
        }
    }
}
