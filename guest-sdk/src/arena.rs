//! The guest's global allocator on `wasm32` (feature `call-arena`, on by
//! default): a small bump arena in front of the system allocator.
//!
//! Why: a call lowers every string of the request into the guest with one
//! `cabi_realloc` each (an Okta request has 40 to 60), builds a few vectors,
//! and frees all of it when the call returns. With wasi-libc's dlmalloc that
//! malloc/free traffic was a fifth of a warm call (perf, `reuse` mode). Here
//! an allocation is a pointer bump, a free a counter decrement, and when the
//! last arena allocation of a call is freed the arena starts over.
//!
//! Nothing is ever moved or reused while alive, so nothing a plugin keeps
//! across calls (a `static` cache, say) is at risk: it only keeps its arena
//! bytes, and once the arena is full allocations go to the system allocator,
//! exactly as without the arena. Requests too big for the arena do the same.

// An allocator is `unsafe` by contract; each block says why it is sound.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::{Cell, UnsafeCell};

/// Enough for a typical request, its lifted vectors, the resolver's
/// temporaries and its answer; more spills to the system allocator. Zeroed
/// statics live in `.bss`: no data segment, and with a copy-on-write memory
/// image the host resets only the pages a call dirtied.
const ARENA_BYTES: usize = 64 * 1024;

#[repr(C, align(16))]
struct Bytes([u8; ARENA_BYTES]);

/// The allocator. One per guest, installed by the SDK as `#[global_allocator]`.
pub struct CallArena {
    bytes: UnsafeCell<Bytes>,
    /// Offset of the first free byte.
    next: Cell<usize>,
    /// Arena allocations not yet freed; at zero the arena starts over.
    live: Cell<usize>,
    /// Inside [`CallArena::outside`]: allocations go to the system allocator.
    outside: Cell<bool>,
}

// SAFETY: only on wasm32 without the `atomics` target feature: such a guest
// has exactly one thread, so the cells are never accessed concurrently.
// (Natively the type is only built by this module's tests, one per test.)
#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
unsafe impl Sync for CallArena {}

impl CallArena {
    pub const fn new() -> CallArena {
        CallArena {
            bytes: UnsafeCell::new(Bytes([0; ARENA_BYTES])),
            next: Cell::new(0),
            live: Cell::new(0),
            outside: Cell::new(false),
        }
    }

    /// Runs `f` with its allocations made by the system allocator: for what
    /// is kept across calls on purpose (the SDK's settings cache), which
    /// would otherwise keep the arena from starting over.
    pub fn outside<R>(&self, f: impl FnOnce() -> R) -> R {
        let was = self.outside.replace(true);
        let r = f();
        self.outside.set(was);
        r
    }

    fn base(&self) -> usize {
        self.bytes.get() as usize
    }

    fn owns(&self, ptr: *mut u8) -> bool {
        (ptr as usize).wrapping_sub(self.base()) < ARENA_BYTES
    }

    /// A bump allocation, or null when the arena cannot fit `layout` (or
    /// inside [`CallArena::outside`]).
    fn bump(&self, layout: Layout) -> *mut u8 {
        if self.outside.get() {
            return std::ptr::null_mut();
        }
        let base = self.base();
        // Rounded on the address, so any alignment is honoured; `align` is a
        // power of two (a `Layout` guarantees it), so a mask does it without
        // the division `next_multiple_of` would compile to.
        let mask = layout.align() - 1;
        let Some(start) = (base + self.next.get())
            .checked_add(mask)
            .map(|a| a & !mask)
        else {
            return std::ptr::null_mut();
        };
        let end = start.saturating_add(layout.size());
        if end > base + ARENA_BYTES {
            return std::ptr::null_mut();
        }
        self.next.set(end - base);
        self.live.set(self.live.get() + 1);
        start as *mut u8
    }

    /// Frees an arena allocation (`owns(ptr)` holds).
    fn release(&self, ptr: *mut u8, size: usize) {
        let live = self.live.get() - 1;
        self.live.set(live);
        if live == 0 {
            self.next.set(0);
        } else if ptr as usize + size == self.base() + self.next.get() {
            // The topmost allocation: its bytes can be handed out again.
            self.next.set(ptr as usize - self.base());
        }
    }
}

impl Default for CallArena {
    fn default() -> Self {
        CallArena::new()
    }
}

// SAFETY: arena blocks are disjoint ranges of `bytes`, properly aligned and
// handed out once until freed (`next` only moves back over freed bytes: to
// zero when none is live, or over the topmost block when it is freed); every
// other pointer comes from and goes back to `System`, which `owns` tells apart
// by address.
unsafe impl GlobalAlloc for CallArena {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = self.bump(layout);
        if p.is_null() {
            // SAFETY: forwarded with the caller's guarantees.
            unsafe { System.alloc(layout) }
        } else {
            p
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = self.bump(layout);
        if p.is_null() {
            // SAFETY: forwarded with the caller's guarantees.
            unsafe { System.alloc_zeroed(layout) }
        } else {
            // Arena bytes may hold an earlier call's data.
            // SAFETY: `p` is a fresh block of `layout.size()` bytes.
            unsafe { p.write_bytes(0, layout.size()) };
            p
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if self.owns(ptr) {
            self.release(ptr, layout.size());
        } else {
            // SAFETY: not an arena block, so it came from `System`.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !self.owns(ptr) {
            // SAFETY: not an arena block, so it came from `System`.
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        let base = self.base();
        // Inside `outside`, a growing block moves to the system allocator.
        let top = ptr as usize + layout.size() == base + self.next.get() && !self.outside.get();
        if top && ptr as usize + new_size <= base + ARENA_BYTES {
            // The topmost block grows or shrinks in place.
            self.next.set(ptr as usize + new_size - base);
            return ptr;
        }
        if new_size <= layout.size() {
            return ptr;
        }
        // SAFETY: the caller guarantees `new_size` with `layout.align()` is a
        // valid layout.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: `new_layout` has a non-zero size (it exceeds the old one).
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both blocks are live and disjoint; the old one holds
            // `layout.size()` initialised-or-not bytes, all of which move.
            unsafe {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size());
            }
            self.release(ptr, layout.size());
        }
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).expect("a valid layout")
    }

    /// Fills a block with `byte` (the allocator contract lets us write it).
    fn fill(p: *mut u8, size: usize, byte: u8) {
        // SAFETY: `p` is a live block of at least `size` bytes.
        unsafe { p.write_bytes(byte, size) }
    }

    fn holds(p: *mut u8, size: usize, byte: u8) -> bool {
        // SAFETY: `p` is a live block of at least `size` bytes.
        unsafe { std::slice::from_raw_parts(p, size) }
            .iter()
            .all(|&b| b == byte)
    }

    #[test]
    fn a_call_s_blocks_are_bumped_and_the_arena_starts_over_when_all_are_freed() {
        let a = CallArena::new();
        // SAFETY (whole test): every block is freed once with its own layout.
        unsafe {
            let x = a.alloc(layout(10, 1));
            let y = a.alloc(layout(8, 8));
            assert!(a.owns(x) && a.owns(y));
            assert!((y as usize).is_multiple_of(8));
            assert_eq!(y as usize, (x as usize + 10).next_multiple_of(8));
            a.dealloc(x, layout(10, 1));
            assert_eq!(a.live.get(), 1);
            a.dealloc(y, layout(8, 8));
            assert_eq!((a.live.get(), a.next.get()), (0, 0));
            assert_eq!(
                a.alloc(layout(10, 1)),
                x,
                "the next call reuses the same bytes"
            );
        }
    }

    #[test]
    fn a_block_kept_across_calls_is_never_handed_out_again() {
        let a = CallArena::new();
        // SAFETY (whole test): blocks are used only while live.
        unsafe {
            let kept = a.alloc(layout(32, 8));
            fill(kept, 32, 0xAB);
            for round in 0..10_000u32 {
                // A call: several blocks, freed in another order than made.
                let size = 1 + (round as usize * 7) % 300;
                let b1 = a.alloc(layout(size, 4));
                let b2 = a.alloc(layout(64, 16));
                fill(b1, size, 1);
                fill(b2, 64, 2);
                a.dealloc(b1, layout(size, 4));
                a.dealloc(b2, layout(64, 16));
            }
            assert!(holds(kept, 32, 0xAB));
            assert_eq!(a.live.get(), 1);
        }
    }

    #[test]
    fn what_does_not_fit_goes_to_the_system_allocator() {
        let a = CallArena::new();
        // SAFETY (whole test): blocks are used only while live, freed once.
        unsafe {
            let big = a.alloc(layout(ARENA_BYTES + 1, 8));
            assert!(!big.is_null() && !a.owns(big));
            fill(big, ARENA_BYTES + 1, 7);
            // Fill the arena, then one more block spills.
            let most = a.alloc(layout(ARENA_BYTES - 64, 16));
            assert!(a.owns(most));
            let spilled = a.alloc(layout(128, 16));
            assert!(!spilled.is_null() && !a.owns(spilled));
            assert_eq!(a.live.get(), 1, "spilled blocks are not counted");
            a.dealloc(spilled, layout(128, 16));
            a.dealloc(big, layout(ARENA_BYTES + 1, 8));
            a.dealloc(most, layout(ARENA_BYTES - 64, 16));
            assert_eq!((a.live.get(), a.next.get()), (0, 0));
        }
    }

    #[test]
    fn what_is_allocated_outside_does_not_keep_the_arena_from_starting_over() {
        let a = CallArena::new();
        // SAFETY (whole test): blocks are used only while live, freed once.
        unsafe {
            let kept = a.outside(|| a.alloc(layout(24, 8)));
            assert!(!kept.is_null() && !a.owns(kept));
            let x = a.alloc(layout(10, 1));
            assert!(a.owns(x), "outside ends with its closure");
            // Even the topmost arena block, grown inside `outside`, moves out.
            fill(x, 10, 9);
            let moved = a.outside(|| a.realloc(x, layout(10, 1), 20));
            assert!(!a.owns(moved) && holds(moved, 10, 9));
            assert_eq!(a.live.get(), 0);
            a.dealloc(moved, layout(20, 1));
            let x = a.alloc(layout(10, 1));
            a.dealloc(x, layout(10, 1));
            assert_eq!((a.live.get(), a.next.get()), (0, 0));
            a.dealloc(kept, layout(24, 8));
        }
    }

    #[test]
    fn freeing_the_topmost_block_gives_its_bytes_back() {
        let a = CallArena::new();
        // SAFETY (whole test): blocks are freed once with their own layout.
        unsafe {
            let x = a.alloc(layout(16, 16));
            let y = a.alloc(layout(100, 1));
            a.dealloc(y, layout(100, 1));
            assert_eq!(a.alloc(layout(50, 1)), y);
            assert!(a.owns(x) && a.live.get() == 2);
        }
    }

    #[test]
    fn realloc_grows_the_top_in_place_and_moves_others_with_their_bytes() {
        let a = CallArena::new();
        // SAFETY (whole test): blocks are used only while live.
        unsafe {
            let x = a.alloc(layout(8, 8));
            fill(x, 8, 3);
            // On top: grows in place.
            let x2 = a.realloc(x, layout(8, 8), 40);
            assert_eq!(x2, x);
            assert!(holds(x2, 8, 3));
            // Not on top any more: moves, bytes copied.
            let y = a.alloc(layout(4, 4));
            fill(x2, 40, 5);
            let x3 = a.realloc(x2, layout(40, 8), 80);
            assert_ne!(x3, x2);
            assert!(a.owns(x3) && (x3 as usize).is_multiple_of(8));
            assert!(holds(x3, 40, 5));
            assert_eq!(a.live.get(), 2);
            // Shrinking never moves.
            assert_eq!(a.realloc(x3, layout(80, 8), 10), x3);
            // Growing past the arena spills to the system allocator.
            let x4 = a.realloc(x3, layout(10, 8), ARENA_BYTES * 2);
            assert!(!a.owns(x4));
            assert!(holds(x4, 10, 5));
            a.dealloc(x4, layout(ARENA_BYTES * 2, 8));
            a.dealloc(y, layout(4, 4));
            assert_eq!((a.live.get(), a.next.get()), (0, 0));
        }
    }

    #[test]
    fn zeroed_blocks_are_zero_even_on_reused_bytes_and_large_alignments_hold() {
        let a = CallArena::new();
        // SAFETY (whole test): blocks are used only while live.
        unsafe {
            let x = a.alloc(layout(256, 1));
            fill(x, 256, 0xFF);
            a.dealloc(x, layout(256, 1));
            let z = a.alloc_zeroed(layout(256, 1));
            assert_eq!(z, x);
            assert!(holds(z, 256, 0));
            let page = a.alloc(layout(10, 4096));
            assert!(a.owns(page) && (page as usize).is_multiple_of(4096));
            // An alignment the arena cannot honour is not bumped.
            assert!(a.bump(layout(1, 1 << (usize::BITS - 2))).is_null());
        }
    }
}
