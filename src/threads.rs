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

/// The environment variable polars sizes its pool by, read once, when polars first needs it.
const POLARS_MAX_THREADS: &str = "POLARS_MAX_THREADS";

/// Use `n` worker threads (0: one per core), for strata and polars alike. Call once, at the
/// start of `main`, before any other thread starts and before polars is first used: polars reads
/// its thread count from the environment then, and never again. Errors when rayon's global pool
/// (used by code outside [`install`]) cannot be started.
pub fn set_count(n: usize) -> Result<(), rayon::ThreadPoolBuildError> {
    // Single-threaded at this point (the caller's contract), so changing the environment is
    // sound.
    std::env::set_var(POLARS_MAX_THREADS, n.to_string());
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build_global()
}

/// Run `f` on polars' worker pool, so that every `rayon` call inside it, strata's and polars'
/// own, shares that one pool ([`set_count`] sizes it; by default one thread per core).
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
