//! A small fixed-size thread pool for the matmul kernels. The calling thread works too, so a
//! pool of `threads` runs `threads - 1` workers. Workers spin briefly after a job (decode calls
//! come back-to-back, microseconds apart) and then park on a condvar, so an idle server or a
//! CPU shared with another process is not starved by busy-waiting. Work inside a job is handed
//! out in small chunks from an atomic counter, so a thread slowed down by a competing process
//! simply takes fewer chunks. And the caller never waits for a worker that has not started:
//! once the caller has run out of chunks it closes the job, and waits only for workers that
//! joined (and so are mid-chunk). A descheduled worker costs nothing, which is what keeps
//! throughput up when the cores are shared (rayon-style "everyone must check in" collapses).
//!
//! Panics: a panic in the job, on a worker or on the caller, is contained and re-raised on the
//! caller once every worker has left the job. Workers catch it (and always leave the job through
//! a drop guard), and the caller catches its own share, closes the job and waits for the
//! workers before unwinding, so no worker can still run a closure whose stack frame is gone. The
//! pool stays usable. Re-raising on the caller (the engine thread) rather than swallowing is a
//! choice: a kernel that panicked left its output half-written, so the engine must not trust the
//! step; the engine thread catches the panic, stops, and liveness fails so Kubernetes restarts
//! the pod (see the engine's health).

use std::any::Any;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a worker (or the caller waiting for workers) spins before parking.
const SPIN: Duration = Duration::from_micros(30);

type JobFn = dyn Fn() + Sync;

/// A job pointer with its lifetime erased; see `ThreadPool::run` for why this is sound.
#[derive(Clone, Copy)]
struct JobPtr(*const JobFn);
// SAFETY: the pointee is `Sync` and outlives every use (the submitter waits for all workers).
unsafe impl Send for JobPtr {}

struct Shared {
    /// The open job; `None` once the submitter closed it (late workers then skip it).
    job: Mutex<Option<JobPtr>>,
    wake: Condvar,
    /// Bumped once per job; workers compare it with the last one they ran.
    epoch: AtomicU64,
    /// Workers that joined the current job and have not finished it.
    active: AtomicUsize,
    /// Workers parked on `wake` (or about to): a submitter skips the wake-up syscall when 0.
    parked: AtomicUsize,
    done_lock: Mutex<()>,
    done: Condvar,
    shutdown: AtomicBool,
    /// The first panic a worker caught in the current job, re-raised on the submitter.
    worker_panic: Mutex<Option<Box<dyn Any + Send>>>,
}

/// What the matmul needs from a pool: run a closure once on each of `threads()` threads.
/// Implemented by `ThreadPool`; benches implement it for rayon to compare the two.
pub trait Executor: Sync {
    fn threads(&self) -> usize;
    fn run(&self, f: &(dyn Fn() + Sync));
}

impl Executor for ThreadPool {
    fn threads(&self) -> usize {
        ThreadPool::threads(self)
    }
    fn run(&self, f: &(dyn Fn() + Sync)) {
        ThreadPool::run(self, f)
    }
}

pub struct ThreadPool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    /// Serialises submitters: one job at a time.
    submit: Mutex<()>,
}

impl ThreadPool {
    /// A pool whose jobs run on `threads` threads in total (the caller included); min 1.
    pub fn new(threads: usize) -> Self {
        let shared = Arc::new(Shared {
            job: Mutex::new(None),
            wake: Condvar::new(),
            epoch: AtomicU64::new(0),
            active: AtomicUsize::new(0),
            parked: AtomicUsize::new(0),
            done_lock: Mutex::new(()),
            done: Condvar::new(),
            shutdown: AtomicBool::new(false),
            worker_panic: Mutex::new(None),
        });
        let workers = (1..threads.max(1))
            .map(|i| {
                let s = Arc::clone(&shared);
                std::thread::Builder::new()
                    .name(format!("kernel-{i}"))
                    .spawn(move || worker_loop(&s))
                    .ok()
            })
            .collect::<Option<Vec<_>>>()
            .unwrap_or_default();
        Self {
            shared,
            workers,
            submit: Mutex::new(()),
        }
    }

    /// Threads a job runs on (workers plus the caller).
    pub fn threads(&self) -> usize {
        self.workers.len() + 1
    }

    /// Runs `f` once on every thread of the pool (the caller included) and returns when all
    /// have finished. `f` splits the work itself, typically through an atomic chunk counter.
    /// A panic of `f` on any thread is re-raised here, after every worker has left the job.
    pub fn run(&self, f: &(dyn Fn() + Sync)) {
        if self.workers.is_empty() {
            f();
            return;
        }
        let _one_at_a_time = self.submit.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: only the lifetime is erased. This function does not return (nor unwind: the
        // caller's own call is caught below) before `active` drops back to zero, i.e. before
        // every worker has finished calling `f` (a worker leaves through a drop guard, even when
        // `f` panics), and workers never touch the pointer outside a job they were counted into.
        let ptr: *const JobFn = unsafe { std::mem::transmute::<&(dyn Fn() + Sync), _>(f) };
        {
            let mut job = self.shared.job.lock().unwrap_or_else(|e| e.into_inner());
            *job = Some(JobPtr(ptr));
            self.shared.epoch.fetch_add(1, Ordering::SeqCst);
        }
        if self.shared.parked.load(Ordering::SeqCst) != 0 {
            self.shared.wake.notify_all();
        }
        let mine = catch_unwind(AssertUnwindSafe(f));
        // All chunks are claimed (or the caller panicked). Close the job: from here no worker
        // can join, and those that joined (counted in `active` under the same lock) are
        // finishing their last chunk.
        *self.shared.job.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.wait_done();
        let theirs = self
            .shared
            .worker_panic
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Err(payload) = mine {
            resume_unwind(payload);
        }
        if let Some(payload) = theirs {
            resume_unwind(payload);
        }
    }

    fn wait_done(&self) {
        let mut spin = Spin::new();
        while self.shared.active.load(Ordering::Acquire) != 0 {
            if spin.expired() {
                let guard = self
                    .shared
                    .done_lock
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                if self.shared.active.load(Ordering::Acquire) != 0 {
                    // A timeout guards against a lost wake-up; the loop re-checks anyway.
                    let _ = self
                        .shared
                        .done
                        .wait_timeout(guard, Duration::from_millis(1));
                }
            } else {
                std::hint::spin_loop();
            }
        }
    }
}

fn worker_loop(s: &Shared) {
    let mut seen = 0u64;
    loop {
        let job = wait_for_job(s, &mut seen);
        let Some(JobPtr(ptr)) = job else { return };
        let _leave = LeaveJob(s);
        // SAFETY: this worker joined (incremented `active`) while the job was open, and the
        // submitter keeps the closure alive until `active` is back to zero, which cannot
        // happen before `_leave` decrements it (after the call, panicking or not).
        let result = catch_unwind(AssertUnwindSafe(|| unsafe { (*ptr)() }));
        if let Err(payload) = result {
            let mut slot = s.worker_panic.lock().unwrap_or_else(|e| e.into_inner());
            slot.get_or_insert(payload);
        }
    }
}

/// Leaves the current job when dropped: the decrement of `active` the submitter waits for
/// happens on every path out of a job, unwinding included.
struct LeaveJob<'a>(&'a Shared);

impl Drop for LeaveJob<'_> {
    fn drop(&mut self) {
        let s = self.0;
        if s.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            let _g = s.done_lock.lock().unwrap_or_else(|e| e.into_inner());
            s.done.notify_one();
        }
    }
}

/// Spins, then parks, until a job newer than `seen` is posted; `None` means shut down.
fn wait_for_job(s: &Shared, seen: &mut u64) -> Option<JobPtr> {
    let mut spin = Spin::new();
    loop {
        if s.shutdown.load(Ordering::Acquire) {
            return None;
        }
        if s.epoch.load(Ordering::Acquire) != *seen {
            let job = s.job.lock().unwrap_or_else(|e| e.into_inner());
            *seen = s.epoch.load(Ordering::Acquire);
            if let Some(j) = *job {
                // Joining under the lock orders it before the submitter's close.
                s.active.fetch_add(1, Ordering::AcqRel);
                return Some(j);
            }
            continue;
        }
        if !spin.expired() {
            std::hint::spin_loop();
            continue;
        }
        let job = s.job.lock().unwrap_or_else(|e| e.into_inner());
        // Counted before the re-check, under the job lock: a submitter posts under that lock,
        // then reads `parked`, so it either sees this worker parked or this worker sees the
        // new epoch.
        s.parked.fetch_add(1, Ordering::SeqCst);
        if s.epoch.load(Ordering::Acquire) == *seen && !s.shutdown.load(Ordering::Acquire) {
            let _ = s.wake.wait_timeout(job, Duration::from_millis(100));
        }
        s.parked.fetch_sub(1, Ordering::SeqCst);
        spin = Spin::new();
    }
}

/// A spin budget of `SPIN` that reads the clock only every 64 polls (reading it on every poll
/// cost 4% of a decode step).
struct Spin {
    start: Instant,
    polls: u32,
}

impl Spin {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            polls: 0,
        }
    }

    fn expired(&mut self) -> bool {
        self.polls = self.polls.wrapping_add(1);
        self.polls.is_multiple_of(64) && self.start.elapsed() > SPIN
    }
}

/// Runs `f(i)` for every `i` in `0..n` on the pool, tasks handed out one at a time (so uneven
/// tasks balance), and returns the results in order.
pub fn map_tasks<T, E, F>(pool: &E, n: usize, f: F) -> Vec<T>
where
    T: Send + Sync,
    E: Executor + ?Sized,
    F: Fn(usize) -> T + Sync,
{
    let slots: Vec<OnceLock<T>> = (0..n).map(|_| OnceLock::new()).collect();
    let next = AtomicUsize::new(0);
    let work = || loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= n {
            break;
        }
        let _ = slots[i].set(f(i));
    };
    if n <= 1 {
        work();
    } else {
        pool.run(&work);
    }
    // `run` returns only after every thread that took a task has finished it, and the caller
    // itself took tasks until none were left: every slot is set.
    slots
        .into_iter()
        .map(|s| s.into_inner().expect("every task ran"))
        .collect()
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        {
            let _g = self.shared.job.lock().unwrap_or_else(|e| e.into_inner());
            self.shared.shutdown.store(true, Ordering::Release);
        }
        self.shared.wake.notify_all();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

static GLOBAL: OnceLock<ThreadPool> = OnceLock::new();

/// Sizes the process-wide kernel pool (the server's `--threads`). Only the first call (or
/// first use) decides; returns false when the pool already existed with another size.
pub fn init_global(threads: usize) -> bool {
    GLOBAL.get_or_init(|| ThreadPool::new(threads)).threads() == threads.max(1)
}

/// The process-wide kernel pool; sized from the machine's parallelism if never initialised.
pub fn global() -> &'static ThreadPool {
    GLOBAL.get_or_init(|| {
        ThreadPool::new(std::thread::available_parallelism().map_or(1, |n| n.get()))
    })
}

#[cfg(test)]
#[path = "pool_tests.rs"]
mod tests;
