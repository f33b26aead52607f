//! Worker threads: strata's parallel work and polars' run on one pool.
//!
//! Pipeline position: none; process set-up before the first stage (the binary and the
//! benchmarks).
//!
//! polars (0.55) runs its own parallel work (Parquet and CSV encoding, its readers) on its own
//! rayon pool, one thread per core. strata's parallel work ran on rayon's global pool, one thread
//! per core again, and strata calls polars from its workers (every PCN's files are written in
//! parallel). A worker that calls polars keeps taking strata's work while polars' pool works, so
//! twice as many threads as cores competed for them. Running the whole job on polars' pool
//! instead gives one thread per core for both: on the 1.2M benchmark cohort the nightly run took a
//! median 2.95 s against 3.22 s, with a third less system time (6 interleaved rounds, outputs
//! byte-identical; BENCHMARKS.md, "One pool for strata and polars").

/// Set up the process's threads. Call once, at the start of `main`, before any other thread
/// starts and before polars is first used (polars and rayon read these settings from the
/// environment then, and never again).
///
/// - `threads`: `Some(n)` for `n` worker threads (at least 1), strata and polars alike; `None`
///   leaves polars' own default (`POLARS_MAX_THREADS` if set, else one per core).
/// - The threads get the main thread's usual 8 MiB stack unless `RUST_MIN_STACK` says otherwise:
///   each subcommand's serial code (settings, model cards, the disclosure LPs) now runs on a worker
///   of the pool, whose default would be 2 MiB.
pub fn prepare(threads: Option<usize>) {
    // SAFETY (soundness of changing the environment): the caller guarantees that no other thread
    // exists yet, so nothing reads the environment concurrently.
    if std::env::var_os("RUST_MIN_STACK").is_none() {
        std::env::set_var("RUST_MIN_STACK", (8usize << 20).to_string());
    }
    if let Some(n) = threads {
        let n = n.max(1).to_string();
        std::env::set_var("POLARS_MAX_THREADS", &n);
        // Rayon's global pool, for code run outside [`install`]: the same size, started lazily.
        std::env::set_var("RAYON_NUM_THREADS", &n);
    }
}

/// Run `f` on polars' worker pool, so that every `rayon` call inside it, strata's and polars'
/// own, shares that one pool ([`prepare`] sizes it; by default `POLARS_MAX_THREADS` if set, else
/// one thread per core).
pub fn install<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    polars_core::runtime::THREAD_POOL.install(f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rayon::prelude::*;

    #[test]
    fn strata_and_polars_share_one_pool_inside() {
        let pool = &polars_core::runtime::THREAD_POOL;
        let inside = install(|| {
            (0..64)
                .into_par_iter()
                .map(|_| {
                    (
                        pool.current_thread_index().is_some(),
                        rayon::current_num_threads(),
                        polars_core::runtime::RAYON.current_num_threads(),
                    )
                })
                .collect::<Vec<_>>()
        });
        for (on_polars_pool, strata_threads, polars_threads) in inside {
            assert!(on_polars_pool, "strata's work ran off polars' pool");
            assert_eq!(strata_threads, pool.current_num_threads());
            assert_eq!(polars_threads, strata_threads);
        }
        // Outside, strata's work runs on rayon's global pool, not polars'.
        let outside = (0..64)
            .into_par_iter()
            .map(|_| pool.current_thread_index().is_some())
            .collect::<Vec<_>>();
        assert!(outside.iter().all(|on| !on));
    }
}
