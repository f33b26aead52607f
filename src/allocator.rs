//! Settings of the binary's allocator (mimalloc), applied at start by `strata` and by the
//! benchmarks so that they time the same thing.
//!
//! Pipeline position: none; process set-up before the first stage.

use libmimalloc_sys::{mi_option_get, mi_option_set, mi_option_t, mi_option_use_numa_nodes};

/// mimalloc's `mi_option_purge_delay`, the option just before `use_numa_nodes` in its option
/// list (the crate does not export it; a test checks it by its default, 1,000 ms).
const PURGE_DELAY: mi_option_t = mi_option_use_numa_nodes - 1;

/// Keep freed memory for reuse instead of returning it to the operating system a second after
/// it is freed (mimalloc's default). A run frees its decoding buffers and then builds its outputs;
/// memory given back has to be faulted in and zeroed again, which on a virtual machine was a
/// fifth of the write stage's CPU (BENCHMARKS.md, "Reading faster and keeping freed memory").
/// Peak memory rises by about 0.1 GB at 1.2 million patients, 0.7-0.9 GB at 5.8 million. A
/// purge delay set in the environment (`MIMALLOC_PURGE_DELAY`, or its old name
/// `MIMALLOC_RESET_DELAY`) is left as it is. Call before any other thread starts.
pub fn keep_freed_memory() {
    if delay_in_environment() {
        return;
    }
    // SAFETY: sets one of mimalloc's global options; it is read, not cached, when purging.
    unsafe { mi_option_set(PURGE_DELAY, -1) }
}

/// Whether the environment sets mimalloc's purge delay.
fn delay_in_environment() -> bool {
    ["MIMALLOC_PURGE_DELAY", "MIMALLOC_RESET_DELAY"]
        .iter()
        .any(|v| std::env::var_os(v).is_some())
}

/// The purge delay now in force, in milliseconds (-1: never).
pub fn purge_delay() -> std::ffi::c_long {
    // SAFETY: reads one of mimalloc's global options.
    unsafe { mi_option_get(PURGE_DELAY) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The option index is the purge delay's: its default is 1,000 ms, the only option with that
    /// default, and the setting takes (checked only when the environment sets no delay).
    #[test]
    fn the_purge_delay_is_the_option_set() {
        if delay_in_environment() {
            return;
        }
        assert_eq!(purge_delay(), 1000);
        keep_freed_memory();
        assert_eq!(purge_delay(), -1);
    }
}
