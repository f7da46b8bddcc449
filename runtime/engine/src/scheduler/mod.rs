//! Pure continuous-batching policy (no model, no threads, no clocks): which sequences run in the
//! next forward pass and how many of their tokens. Sequences wait in FIFO order, join the running
//! set under a batch-size limit, and each step feeds decodes first (one token each) and then
//! prefill chunks under a per-step token budget, so a long prompt never stalls the decodes. The KV
//! budget (in tokens) is enforced by admission and by preempting the newest running sequence,
//! which later recomputes its cache from its known tokens (prompt + generated so far).

use std::collections::VecDeque;

use thiserror::Error;

/// Engine-assigned sequence id.
pub type SeqId = u64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchedulerConfig {
    /// Most sequences in one forward pass.
    pub max_batch_size: usize,
    /// Most tokens fed in one forward pass (decodes + prefill chunks).
    pub max_step_tokens: usize,
    /// KV cache capacity in tokens, summed over all sequences.
    pub kv_capacity_tokens: usize,
}

/// One sequence's share of a step: feed its known tokens `start..start + len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepItem {
    pub id: SeqId,
    /// Position of the first token fed (= tokens already cached).
    pub start: usize,
    pub len: usize,
    /// The chunk reaches the last known token, so its logits yield the next token.
    pub sample: bool,
}

/// What the engine runs next.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Step {
    pub items: Vec<StepItem>,
    /// Sequences whose KV cache must be dropped; they wait to be recomputed.
    pub preempted: Vec<SeqId>,
}

#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum SchedulerError {
    #[error("sequence {id} needs {needed} KV tokens but the cache holds {capacity}")]
    TooLarge {
        id: SeqId,
        needed: usize,
        capacity: usize,
    },
    #[error("sequence {0} is already scheduled")]
    Duplicate(SeqId),
    #[error("sequence {0} is not scheduled")]
    Unknown(SeqId),
}

#[derive(Debug, Clone, Copy)]
struct SeqState {
    id: SeqId,
    /// Tokens the engine knows: prompt + generated.
    known: usize,
    /// Tokens whose keys/values are in the cache.
    cached: usize,
}

impl SeqState {
    fn pending(&self) -> usize {
        self.known - self.cached
    }
}

#[derive(Debug)]
pub struct Scheduler {
    cfg: SchedulerConfig,
    waiting: VecDeque<SeqState>,
    /// In admission order: the last one is the first to be preempted.
    running: Vec<SeqState>,
}

impl Scheduler {
    pub fn new(cfg: SchedulerConfig) -> Self {
        Self {
            cfg,
            waiting: VecDeque::new(),
            running: Vec::new(),
        }
    }

    /// Queues a new sequence. It must be able to finish alone within the KV budget.
    pub fn add(
        &mut self,
        id: SeqId,
        prompt_len: usize,
        max_new: usize,
    ) -> Result<(), SchedulerError> {
        if self.position(id).is_some() {
            return Err(SchedulerError::Duplicate(id));
        }
        let needed = prompt_len + max_new;
        if needed > self.cfg.kv_capacity_tokens {
            let capacity = self.cfg.kv_capacity_tokens;
            return Err(SchedulerError::TooLarge {
                id,
                needed,
                capacity,
            });
        }
        self.waiting.push_back(SeqState {
            id,
            known: prompt_len,
            cached: 0,
        });
        Ok(())
    }

    /// Removes a sequence (finished, cancelled, client gone). Returns whether it was there.
    pub fn remove(&mut self, id: SeqId) -> bool {
        if let Some(i) = self.running.iter().position(|s| s.id == id) {
            self.running.remove(i);
            return true;
        }
        if let Some(i) = self.waiting.iter().position(|s| s.id == id) {
            self.waiting.remove(i);
            return true;
        }
        false
    }

    /// Records that a step item ran: its tokens are now cached.
    pub fn complete(&mut self, item: &StepItem) -> Result<(), SchedulerError> {
        let s = self.running_mut(item.id)?;
        s.cached = (s.cached + item.len).min(s.known);
        Ok(())
    }

    /// Records a newly sampled token, to be fed at the next step.
    pub fn push_token(&mut self, id: SeqId) -> Result<(), SchedulerError> {
        self.running_mut(id)?.known += 1;
        Ok(())
    }

    pub fn running_len(&self) -> usize {
        self.running.len()
    }

    pub fn waiting_len(&self) -> usize {
        self.waiting.len()
    }

    pub fn is_idle(&self) -> bool {
        self.running.is_empty() && self.waiting.is_empty()
    }

    /// KV tokens held by running sequences.
    pub fn kv_used(&self) -> usize {
        self.running.iter().map(|s| s.cached).sum()
    }

    pub fn config(&self) -> &SchedulerConfig {
        &self.cfg
    }

    /// Plans the next forward pass. Empty when there is nothing to do.
    pub fn schedule(&mut self) -> Step {
        let mut step = Step::default();
        loop {
            self.make_room_for_decodes(&mut step.preempted);
            step.items = self.plan();
            // Only prefill chunks that cannot get KV room block progress: free the newest.
            if !step.items.is_empty() || self.running.len() <= 1 {
                return step;
            }
            self.preempt_newest(&mut step.preempted);
        }
    }

    fn plan(&mut self) -> Vec<StepItem> {
        let mut items = Vec::new();
        let mut budget = self.cfg.max_step_tokens;
        let mut kv_free = self.cfg.kv_capacity_tokens.saturating_sub(self.kv_used());
        for s in self.running.iter().filter(|s| s.pending() == 1) {
            if budget == 0 || kv_free == 0 {
                break;
            }
            items.push(StepItem {
                id: s.id,
                start: s.cached,
                len: 1,
                sample: true,
            });
            budget -= 1;
            kv_free -= 1;
        }
        for s in self.running.iter().filter(|s| s.pending() > 1) {
            let len = s.pending().min(budget).min(kv_free);
            if len == 0 {
                continue;
            }
            items.push(StepItem {
                id: s.id,
                start: s.cached,
                len,
                sample: len == s.pending(),
            });
            budget -= len;
            kv_free -= len;
        }
        self.admit(&mut items, budget, kv_free);
        items
    }

    /// Moves waiting sequences (FIFO, no overtaking) into the running set while the batch, the
    /// step budget and the KV budget (their whole known context must fit) allow.
    fn admit(&mut self, items: &mut Vec<StepItem>, mut budget: usize, mut kv_free: usize) {
        while let Some(front) = self.waiting.front().copied() {
            if self.running.len() >= self.cfg.max_batch_size || budget == 0 || kv_free < front.known
            {
                break;
            }
            self.waiting.pop_front();
            let len = front.known.min(budget);
            items.push(StepItem {
                id: front.id,
                start: 0,
                len,
                sample: len == front.known,
            });
            budget -= len;
            kv_free -= len;
            self.running.push(front);
        }
    }

    /// Decodes must not starve for memory: preempt the newest sequences until every decoding
    /// sequence can append its one token.
    fn make_room_for_decodes(&mut self, preempted: &mut Vec<SeqId>) {
        loop {
            let decodes = self.running.iter().filter(|s| s.pending() == 1).count();
            let kv_free = self.cfg.kv_capacity_tokens.saturating_sub(self.kv_used());
            if decodes <= kv_free || self.running.len() <= 1 {
                return;
            }
            self.preempt_newest(preempted);
        }
    }

    fn preempt_newest(&mut self, preempted: &mut Vec<SeqId>) {
        if let Some(mut s) = self.running.pop() {
            s.cached = 0;
            preempted.push(s.id);
            // Back to the front: it was admitted before everything still waiting.
            self.waiting.push_front(s);
        }
    }

    fn running_mut(&mut self, id: SeqId) -> Result<&mut SeqState, SchedulerError> {
        self.running
            .iter_mut()
            .find(|s| s.id == id)
            .ok_or(SchedulerError::Unknown(id))
    }

    fn position(&self, id: SeqId) -> Option<()> {
        let known = self
            .running
            .iter()
            .chain(self.waiting.iter())
            .any(|s| s.id == id);
        known.then_some(())
    }
}

#[cfg(test)]
mod tests;
