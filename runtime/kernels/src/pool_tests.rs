//! The compute pool: every chunk once, panics contained, no job outlives its caller.

use super::*;

#[test]
fn every_chunk_runs_exactly_once_over_many_back_to_back_jobs() {
    let pool = ThreadPool::new(3);
    for job in 0..2000usize {
        let chunks = 1 + job % 17;
        let next = AtomicUsize::new(0);
        let hits: Vec<AtomicUsize> = (0..chunks).map(|_| AtomicUsize::new(0)).collect();
        pool.run(&|| loop {
            let c = next.fetch_add(1, Ordering::Relaxed);
            if c >= chunks {
                break;
            }
            hits[c].fetch_add(1, Ordering::Relaxed);
        });
        assert!(
            hits.iter().all(|h| h.load(Ordering::Relaxed) == 1),
            "job {job}"
        );
    }
}

#[test]
fn jobs_submitted_from_several_threads_do_not_interleave_or_get_lost() {
    let pool = ThreadPool::new(2);
    let total = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| {
                for _ in 0..300 {
                    let next = AtomicUsize::new(0);
                    pool.run(&|| {
                        while next.fetch_add(1, Ordering::Relaxed) < 4 {
                            total.fetch_add(1, Ordering::Relaxed);
                        }
                    });
                }
            });
        }
    });
    assert_eq!(total.load(Ordering::Relaxed), 3 * 300 * 4);
}

#[test]
fn map_tasks_returns_every_result_in_order() {
    let pool = ThreadPool::new(3);
    for n in [0, 1, 2, 7, 100] {
        let got = map_tasks(&pool, n, |i| i * i);
        assert_eq!(got, (0..n).map(|i| i * i).collect::<Vec<_>>());
    }
}

/// Holds the job open until a worker thread (not the caller) has joined it.
fn wait_for_a_worker(joined: &AtomicBool) {
    let start = Instant::now();
    while !joined.load(Ordering::SeqCst) && start.elapsed() < Duration::from_secs(5) {
        std::thread::yield_now();
    }
}

fn on_worker() -> bool {
    std::thread::current()
        .name()
        .is_some_and(|n| n.starts_with("kernel-"))
}

#[test]
fn a_worker_panic_reaches_the_caller_and_the_pool_keeps_working() {
    let pool = ThreadPool::new(2);
    let joined = AtomicBool::new(false);
    let caught = catch_unwind(AssertUnwindSafe(|| {
        pool.run(&|| {
            if on_worker() {
                joined.store(true, Ordering::SeqCst);
                panic!("injected worker panic");
            }
            wait_for_a_worker(&joined);
        })
    }));
    let payload = caught.expect_err("the worker's panic is re-raised on the caller");
    assert_eq!(
        payload.downcast_ref::<&str>(),
        Some(&"injected worker panic")
    );
    // Before the fix the worker never decremented `active`: this job hung forever.
    let ran = AtomicUsize::new(0);
    pool.run(&|| {
        ran.fetch_add(1, Ordering::SeqCst);
    });
    assert!(ran.load(Ordering::SeqCst) >= 1);
    assert_eq!(pool.shared.active.load(Ordering::SeqCst), 0);
}

#[test]
fn a_caller_panic_waits_for_the_workers_still_inside_the_job() {
    let pool = ThreadPool::new(2);
    let joined = AtomicBool::new(false);
    let worker_done = Arc::new(AtomicBool::new(false));
    let caught = {
        // The closure borrows this frame's `local`: the caller may only unwind out of `run`
        // once the worker is done reading it (before the fix it unwound at once).
        #[allow(clippy::useless_vec)] // heap memory the unwinding frees: a late read is a UAF
        let local = vec![1u8; 64];
        let done = worker_done.clone();
        catch_unwind(AssertUnwindSafe(|| {
            pool.run(&|| {
                if on_worker() {
                    joined.store(true, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(200));
                    assert_eq!(local.iter().map(|&b| b as usize).sum::<usize>(), 64);
                    done.store(true, Ordering::SeqCst);
                } else {
                    wait_for_a_worker(&joined);
                    panic!("injected caller panic");
                }
            })
        }))
    };
    assert!(caught.is_err());
    assert!(
        worker_done.load(Ordering::SeqCst),
        "run unwound while a worker was still inside the job"
    );
}

#[test]
fn parked_workers_wake_up_for_a_later_job() {
    let pool = ThreadPool::new(2);
    std::thread::sleep(SPIN * 50); // long past the spin: the worker is parked
    let ran = AtomicUsize::new(0);
    pool.run(&|| {
        ran.fetch_add(1, Ordering::SeqCst);
        // Hold the job open until the other thread has joined (or give up after 2 s).
        let start = Instant::now();
        while ran.load(Ordering::SeqCst) < 2 && start.elapsed() < Duration::from_secs(2) {
            std::thread::yield_now();
        }
    });
    assert_eq!(ran.load(Ordering::SeqCst), 2);
}
