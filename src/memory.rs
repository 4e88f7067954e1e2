//! Process memory: a thread that hands freed heap memory back to the kernel, started by
//! `livegate run` and by `livegate-bench` (which measures the proxy as `run` runs it).

use std::time::Duration;

/// How often freed heap memory is handed back to the kernel.
const TRIM_INTERVAL: Duration = Duration::from_secs(1);

/// glibc keeps what tokio's worker threads free in their arenas and returns it only from
/// the top of each heap, so after bursts (connection floods, a fast publisher) RSS stays
/// at its high-water mark and creeps up burst after burst (32 → 110 MiB over seven floods
/// of 1000 connections). `malloc_trim(0)` releases every free page of every arena: RSS
/// then follows the load back down, and relay throughput is unchanged (BENCHMARKS.md,
/// "Memory returned after bursts"; jemalloc and mimalloc did worse there).
pub fn trim_freed_memory_periodically() {
    let spawned = std::thread::Builder::new()
        .name("malloc-trim".into())
        .spawn(|| {
            loop {
                std::thread::sleep(TRIM_INTERVAL);
                // SAFETY: malloc_trim only takes glibc's own arena locks.
                unsafe { libc::malloc_trim(0) };
            }
        });
    if let Err(error) = spawned {
        eprintln!(
            "livegate: cannot start the malloc-trim thread ({error}); freed memory stays with the process"
        );
    }
}
