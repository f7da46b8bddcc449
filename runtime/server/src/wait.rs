//! Waiting for a request's next engine event under its deadlines: time to first token and
//! total time, both from arrival (queue wait included). While waiting, the engine's health is
//! checked every tick, so a request whose engine died or hung ends with an error instead of
//! waiting forever; idle gaps can be reported for SSE keep-alive comments.

use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::{ApiError, AppState};
use deepseek_engine::engine::Event;

/// How often a waiting request looks at the engine's health.
const HEALTH_TICK: Duration = Duration::from_millis(200);

/// One request's deadlines and idle clock.
pub struct Clock {
    started: Instant,
    first_token: Duration,
    total: Duration,
    seen_event: bool,
    last_activity: Instant,
}

impl Clock {
    pub fn new(st: &AppState, started: Instant) -> Self {
        Self {
            started,
            first_token: st.bounds.first_token_timeout,
            total: st.bounds.request_timeout,
            seen_event: false,
            last_activity: Instant::now(),
        }
    }

    fn deadline(&self) -> (Instant, ApiError) {
        let total = (
            self.started + self.total,
            ApiError::RequestTimeout {
                secs: self.total.as_secs_f64(),
            },
        );
        if self.seen_event || self.first_token >= self.total {
            total
        } else {
            (
                self.started + self.first_token,
                ApiError::FirstTokenTimeout {
                    secs: self.first_token.as_secs_f64(),
                },
            )
        }
    }
}

pub enum Next {
    Event(Event),
    /// Nothing happened for the keep-alive interval.
    Idle,
}

/// The next event, `Idle` after `keepalive` without one, or the error that ends the request: a
/// deadline passed, the engine stopped or is stuck. Dropping the receiver on error frees the
/// sequence at the engine's next step.
pub async fn next_event(
    st: &AppState,
    rx: &mut mpsc::UnboundedReceiver<Event>,
    clock: &mut Clock,
    keepalive: Option<Duration>,
) -> Result<Next, ApiError> {
    loop {
        let (deadline, late) = clock.deadline();
        let now = Instant::now();
        if now >= deadline {
            return Err(late);
        }
        let mut wake = (now + HEALTH_TICK).min(deadline);
        if let Some(k) = keepalive {
            wake = wake.min(clock.last_activity + k);
        }
        tokio::select! {
            biased;
            ev = rx.recv() => {
                return match ev {
                    Some(ev) => {
                        clock.seen_event = true;
                        clock.last_activity = Instant::now();
                        Ok(Next::Event(ev))
                    }
                    None => Err(ApiError::EngineStopped),
                };
            }
            _ = tokio::time::sleep_until(wake.into()) => {
                let state = st.engine.state();
                if state.is_dead() {
                    return Err(ApiError::EngineUnavailable(state.as_str()));
                }
                if keepalive.is_some_and(|k| clock.last_activity.elapsed() >= k) {
                    clock.last_activity = Instant::now();
                    return Ok(Next::Idle);
                }
            }
        }
    }
}
