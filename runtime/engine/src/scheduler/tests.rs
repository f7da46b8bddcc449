//! Pure policy tests: admission, budgets, preemption, cancellation.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use super::*;

fn sched(max_batch_size: usize, max_step_tokens: usize, kv_capacity_tokens: usize) -> Scheduler {
    Scheduler::new(SchedulerConfig {
        max_batch_size,
        max_step_tokens,
        kv_capacity_tokens,
    })
}

/// Runs a step the way the engine does: every item completes, sampling items get a token.
fn run(s: &mut Scheduler) -> Step {
    let step = s.schedule();
    for item in &step.items {
        s.complete(item).unwrap();
        if item.sample {
            s.push_token(item.id).unwrap();
        }
    }
    step
}

fn ids(step: &Step) -> Vec<SeqId> {
    step.items.iter().map(|i| i.id).collect()
}

#[test]
fn admits_no_more_than_the_max_batch_size() {
    let mut s = sched(2, 100, 1000);
    for id in 0..3 {
        s.add(id, 4, 10).unwrap();
    }
    let step = run(&mut s);
    assert_eq!(ids(&step), vec![0, 1]);
    assert_eq!((s.running_len(), s.waiting_len()), (2, 1));
}

#[test]
fn a_finished_sequence_makes_room_for_the_next_one() {
    let mut s = sched(1, 100, 1000);
    s.add(1, 4, 10).unwrap();
    s.add(2, 4, 10).unwrap();
    run(&mut s);
    assert!(s.remove(1));
    let step = run(&mut s);
    assert_eq!(
        step.items,
        vec![StepItem {
            id: 2,
            start: 0,
            len: 4,
            sample: true
        }]
    );
}

#[test]
fn decodes_one_token_per_sequence_after_prefill() {
    let mut s = sched(4, 100, 1000);
    s.add(1, 5, 10).unwrap();
    s.add(2, 3, 10).unwrap();
    run(&mut s);
    let step = run(&mut s);
    assert_eq!(
        step.items,
        vec![
            StepItem {
                id: 1,
                start: 5,
                len: 1,
                sample: true
            },
            StepItem {
                id: 2,
                start: 3,
                len: 1,
                sample: true
            },
        ]
    );
}

#[test]
fn chunks_a_long_prompt_under_the_step_token_budget() {
    let mut s = sched(4, 8, 1000);
    s.add(1, 20, 10).unwrap();
    let chunks: Vec<StepItem> = (0..3).flat_map(|_| run(&mut s).items).collect();
    assert_eq!(
        chunks,
        vec![
            StepItem {
                id: 1,
                start: 0,
                len: 8,
                sample: false
            },
            StepItem {
                id: 1,
                start: 8,
                len: 8,
                sample: false
            },
            StepItem {
                id: 1,
                start: 16,
                len: 4,
                sample: true
            },
        ]
    );
}

#[test]
fn a_long_prefill_does_not_stall_running_decodes() {
    let mut s = sched(4, 8, 1000);
    s.add(1, 3, 10).unwrap();
    run(&mut s);
    s.add(2, 50, 10).unwrap();
    for _ in 0..4 {
        let step = run(&mut s);
        assert_eq!(
            step.items[0],
            StepItem {
                id: 1,
                start: step.items[0].start,
                len: 1,
                sample: true
            }
        );
        assert_eq!(step.items[1].id, 2);
        assert_eq!(
            step.items[1].len, 7,
            "the prefill takes what the decode leaves"
        );
    }
}

#[test]
fn waits_to_admit_until_the_whole_prompt_fits_in_kv_memory() {
    let mut s = sched(4, 100, 20);
    s.add(1, 10, 5).unwrap();
    s.add(2, 12, 5).unwrap();
    let step = run(&mut s);
    assert_eq!(ids(&step), vec![1]);
    assert_eq!(s.waiting_len(), 1);
    s.remove(1);
    assert_eq!(ids(&run(&mut s)), vec![2]);
}

#[test]
fn rejects_a_sequence_that_could_never_fit_the_kv_budget() {
    let mut s = sched(4, 100, 20);
    assert_eq!(
        s.add(7, 15, 10),
        Err(SchedulerError::TooLarge {
            id: 7,
            needed: 25,
            capacity: 20
        })
    );
    assert!(s.is_idle());
}

#[test]
fn preempts_the_newest_sequence_when_decodes_run_out_of_kv_memory() {
    let mut s = sched(4, 100, 10);
    s.add(1, 4, 6).unwrap();
    s.add(2, 4, 6).unwrap();
    run(&mut s); // both prefilled: 8 cached, each knows 5
    run(&mut s); // 10 cached: memory full
    let step = run(&mut s);
    assert_eq!(step.preempted, vec![2]);
    assert_eq!(
        step.items,
        vec![StepItem {
            id: 1,
            start: 5,
            len: 1,
            sample: true
        }]
    );
    assert_eq!((s.running_len(), s.waiting_len(), s.kv_used()), (1, 1, 6));
}

#[test]
fn a_preempted_sequence_recomputes_its_prompt_and_generated_tokens() {
    let mut s = sched(4, 100, 10);
    s.add(1, 4, 6).unwrap();
    s.add(2, 4, 6).unwrap();
    run(&mut s);
    run(&mut s);
    run(&mut s); // 2 preempted knowing 6 tokens (4 prompt + 2 generated)
    s.remove(1);
    let step = run(&mut s);
    assert_eq!(
        step.items,
        vec![StepItem {
            id: 2,
            start: 0,
            len: 6,
            sample: true
        }]
    );
}

#[test]
fn never_exceeds_the_kv_budget_and_finishes_every_sequence_under_pressure() {
    let (cap, max_new) = (64, 6);
    let mut s = sched(8, 16, cap);
    let mut generated = std::collections::HashMap::new();
    for id in 0..20u64 {
        let prompt = 3 + (id as usize * 7) % 25;
        s.add(id, prompt, max_new).unwrap();
        generated.insert(id, 0usize);
    }
    for _ in 0..2000 {
        if s.is_idle() {
            break;
        }
        let step = s.schedule();
        assert!(!step.items.is_empty(), "no progress");
        let fed: usize = step.items.iter().map(|i| i.len).sum();
        assert!(s.kv_used() + fed <= cap, "over the KV budget");
        assert!(fed <= 16, "over the step budget");
        for item in &step.items {
            s.complete(item).unwrap();
            if item.sample {
                let n = generated.get_mut(&item.id).unwrap();
                *n += 1;
                if *n == max_new {
                    s.remove(item.id);
                } else {
                    s.push_token(item.id).unwrap();
                }
            }
        }
    }
    assert!(s.is_idle());
    assert!(generated.values().all(|&n| n == max_new));
}

#[test]
fn cancels_waiting_and_running_sequences() {
    let mut s = sched(1, 100, 1000);
    s.add(1, 4, 10).unwrap();
    s.add(2, 4, 10).unwrap();
    run(&mut s);
    assert!(s.remove(2), "waiting");
    assert!(s.remove(1), "running");
    assert!(!s.remove(1));
    assert!(s.is_idle());
    assert!(s.schedule().items.is_empty());
}

#[test]
fn reports_unknown_and_duplicate_sequences() {
    let mut s = sched(1, 100, 1000);
    s.add(1, 4, 10).unwrap();
    assert_eq!(s.add(1, 4, 10), Err(SchedulerError::Duplicate(1)));
    assert_eq!(s.push_token(9), Err(SchedulerError::Unknown(9)));
}
