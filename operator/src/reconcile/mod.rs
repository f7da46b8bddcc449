//! One reconciliation of a DeepSeekDeployment: validate -> build desired children (pure) ->
//! server-side apply -> prune -> observe -> compute status (pure) -> write status -> Events.
//! The only code with side effects on the cluster, split into observe, apply and cleanup.

pub mod apply;
pub mod cleanup;
pub mod drain;
pub mod labels;
pub mod observe;
pub mod operations;
pub mod scale;
pub mod stats;

use std::sync::Arc;
use std::time::Duration;

use deepseek_crds::status::condition_types as ct;
use deepseek_crds::{DeepSeekDeployment, DeepSeekDeploymentStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Resource, ResourceExt};
use serde_json::{json, Value};

use crate::context::Context;
use crate::desired::{naming, ChildKind, Plan};
use crate::error::{Error, Result};
use crate::rollout::{self, Decision, RolloutEvent};
use crate::status::{self, SpecProblem, Transition};

/// Requeue while something is still converging (pods starting, model downloading).
pub const REQUEUE_PROGRESSING: Duration = Duration::from_secs(15);
/// Periodic resync of a settled resource (drift correction).
pub const REQUEUE_SETTLED: Duration = Duration::from_secs(300);
/// Attempts of a status write answered 409 before giving up this round.
pub const STATUS_ATTEMPTS: u32 = 5;

pub async fn reconcile(dsd: &DeepSeekDeployment, ctx: &Context) -> Result<Action> {
    let name = dsd.name_any();
    let (Some(ns), Some(uid)) = (dsd.namespace(), dsd.uid()) else {
        return Err(Error::MissingMetadata(name));
    };
    if let Some(stores) = &ctx.stores {
        stores.ready().await.map_err(|_| Error::CacheClosed)?;
    }
    let Some(fresh) = fresh_copy(dsd, ctx, &ns, &uid).await? else {
        ctx.forget(&uid);
        return Ok(Action::await_change());
    };
    let dsd = &fresh;
    let now = Time(Timestamp::now());
    // Referenced Secrets are not looked up: the operator has no right to read Secrets (least
    // privilege); a missing one shows on the pods that mount it.
    let problems = spec_problems(dsd);
    if !problems.is_empty() {
        tracing::warn!(problems = ?problems, "invalid spec; children left untouched");
        let st = status::invalid_spec(dsd, &problems, &now);
        finish(dsd, ctx, &ns, st).await?;
        return Ok(Action::requeue(REQUEUE_SETTLED));
    }
    let revision = ctx.revision(dsd);
    let observed = observe::observe(ctx, dsd).await?;
    let previous = dsd.status.clone().unwrap_or_default();
    let stats = router_stats(dsd, ctx, &previous).await;
    let input = status::rollout_observed(&revision, &observed, stats);
    let mut decision = rollout::decide(&dsd.spec, &previous, &input, &now);
    let held = drain::hold(ctx, dsd, &mut decision, &observed).await;
    let plan = Plan::from_decision(&decision, &revision.hash);
    let objects = ctx.desired_objects(dsd, &plan)?;
    let (objects, monitoring) = operations::gate_monitoring(ctx, dsd, objects).await?;
    let (outcome, full) = match apply_if_changed(ctx, &ns, &uid, &objects).await {
        Ok(done) => done,
        Err(e) => return Err(report_failure(dsd, ctx, &ns, e, &now).await),
    };
    let missing = scale::scale_kept(
        &ctx.client,
        &ns,
        &name,
        &revision.hash,
        &decision.replicas,
        &observed,
    )
    .await?;
    if !missing.is_empty() {
        tracing::warn!(?missing, "kept revisions without a Deployment");
    }
    let mut keep = outcome.applied.clone();
    keep.extend(outcome.skipped_missing_api.iter().cloned());
    keep.extend(
        decision
            .replicas
            .keys()
            .flat_map(|hash| serving_children(&name, hash)),
    );
    // A held revision keeps its Service: routers still on the old table resolve it.
    keep.extend(held.iter().map(|hash| apply::ChildRef {
        api_version: ChildKind::Service.api_version().into(),
        kind: ChildKind::Service.kind().into(),
        name: naming::revision_object_name(&name, hash),
    }));
    let sources = cleanup::Sources {
        stores: ctx.stores.as_ref(),
        list_uncached: full,
    };
    let pruned = cleanup::prune(&ctx.client, &ns, &name, &uid, &keep, sources).await?;
    tracing::debug!(applied = outcome.applied.len(), full, pruned = pruned.len(), revision = %revision.hash, weight = decision.weight, "children applied");
    let mut st = status::from_decision(dsd, &revision, &observed, &decision, &now);
    let ops = operations::observe(ctx, dsd, monitoring).await?;
    crate::status_ops::apply(&mut st, dsd, &ops, &now);
    let ready = st.condition(ct::READY).is_some_and(|c| c.status == "True");
    finish(dsd, ctx, &ns, st).await?;
    publish_rollout(dsd, ctx, &decision.events).await;
    let next = next_look(&decision, ready, ctx);
    if held.is_empty() {
        Ok(Action::requeue(next))
    } else {
        Ok(Action::requeue(next.min(drain::REQUEUE_DRAINING)))
    }
}

/// The resource to decide on. Decisions must use the stored status, not a cached copy that
/// may predate our last write (a stale status would replay a rollout transition): the cached
/// copy is used when its resourceVersion is the newest this operator has read or written,
/// else the resource is read from the API server.
async fn fresh_copy(
    dsd: &DeepSeekDeployment,
    ctx: &Context,
    ns: &str,
    uid: &str,
) -> Result<Option<DeepSeekDeployment>> {
    if ctx.is_newest(uid, dsd.resource_version().as_deref()) {
        return Ok(Some(dsd.clone()));
    }
    let fresh = Api::<DeepSeekDeployment>::namespaced(ctx.client.clone(), ns)
        .get_opt(&dsd.name_any())
        .await?;
    if let Some(f) = &fresh {
        ctx.remember_version(uid, f.resource_version());
    }
    Ok(fresh)
}

/// Applies the children unless exactly these objects were applied within
/// `FULL_APPLY_INTERVAL` and every cached kind among them still exists (then the last outcome
/// stands and nothing is sent). Returns the outcome and whether this was a full apply.
async fn apply_if_changed(
    ctx: &Context,
    ns: &str,
    uid: &str,
    objects: &[Value],
) -> Result<(apply::ApplyOutcome, bool)> {
    let digest = apply::digest(objects);
    if let (Some(outcome), Some(stores)) = (ctx.recent_apply(uid, &digest), &ctx.stores) {
        let all_there = outcome.applied.iter().all(|c| {
            ChildKind::from_kind(&c.kind)
                .and_then(|k| stores.has(k, ns, &c.name))
                .unwrap_or(true)
        });
        if all_there {
            return Ok(((*outcome).clone(), false));
        }
    }
    let outcome = apply::apply_all(&ctx.client, ns, objects).await?;
    ctx.remember_apply(uid, digest, Arc::new(outcome.clone()));
    Ok((outcome, true))
}

/// Writes a failed round to status (`Ready=False`, the server's message) and, on the
/// transition, a Warning Event; returns the error for the controller's backoff. A failing
/// status write is logged: the apply error is what the caller must see.
async fn report_failure(
    dsd: &DeepSeekDeployment,
    ctx: &Context,
    ns: &str,
    err: Error,
    now: &Time,
) -> Error {
    let message = err.user_message();
    tracing::warn!(error = %message, "apply refused; reporting in status");
    let st = crate::status_failure::apply_failed(dsd, &message, now);
    if let Err(e) = finish(dsd, ctx, ns, st).await {
        tracing::warn!(error = %e, "could not write the failure to status");
    }
    err
}

/// The routers' figures, read only while a canary runs (nothing to judge otherwise).
async fn router_stats(
    dsd: &DeepSeekDeployment,
    ctx: &Context,
    previous: &DeepSeekDeploymentStatus,
) -> Option<rollout::Stats> {
    previous.canary_revision.as_ref()?;
    match ctx.stats.snapshot(dsd).await {
        Ok(stats) => Some(stats),
        Err(e) => {
            tracing::info!(error = %e, "router figures unavailable; canary analysis waits");
            None
        }
    }
}

/// A running canary is looked at every analysis interval (sooner when a pause ends).
fn next_look(decision: &Decision, ready: bool, ctx: &Context) -> Duration {
    if decision.canary.is_some() {
        let due = decision.requeue_after.unwrap_or(ctx.analysis_interval);
        return due.min(ctx.analysis_interval);
    }
    if ready {
        REQUEUE_SETTLED
    } else {
        REQUEUE_PROGRESSING
    }
}

/// Schema-valid but semantically wrong spec fields (crds validation).
fn spec_problems(dsd: &DeepSeekDeployment) -> Vec<SpecProblem> {
    match deepseek_crds::validate_resource(dsd) {
        Ok(()) => Vec::new(),
        Err(errors) => errors
            .iter()
            .map(|e| SpecProblem {
                field: e.field().to_string(),
                message: e.to_string(),
            })
            .collect(),
    }
}

async fn finish(
    dsd: &DeepSeekDeployment,
    ctx: &Context,
    ns: &str,
    st: DeepSeekDeploymentStatus,
) -> Result<()> {
    let old = dsd.status.clone().unwrap_or_default();
    let changes = status::transitions(&old.conditions, &st.conditions);
    if st != old {
        write_status(ctx, ns, &dsd.name_any(), &st).await?;
    }
    publish(dsd, ctx, &changes).await;
    Ok(())
}

/// Server-side apply of the whole status through the status subresource; 409s (another
/// writer raced us) are retried with a short backoff.
pub async fn write_status(
    ctx: &Context,
    ns: &str,
    name: &str,
    st: &DeepSeekDeploymentStatus,
) -> Result<()> {
    let api: Api<DeepSeekDeployment> = Api::namespaced(ctx.client.clone(), ns);
    let body: Value = json!({
        "apiVersion": deepseek_crds::API_VERSION,
        "kind": deepseek_crds::KIND,
        "metadata": {"name": name, "namespace": ns},
        "status": st,
    });
    let pp = PatchParams::apply(apply::FIELD_MANAGER).force();
    for attempt in 1..=STATUS_ATTEMPTS {
        match api.patch_status(name, &pp, &Patch::Apply(&body)).await {
            Ok(written) => {
                // The written copy is the newest: the watch event it causes needs no re-read.
                if let Some(uid) = written.uid() {
                    ctx.remember_version(&uid, written.resource_version());
                }
                return Ok(());
            }
            Err(kube::Error::Api(s)) if s.code == 409 => {
                tracing::debug!(attempt, "status write conflicted; retrying");
                tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt))).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::StatusConflict {
        name: name.to_string(),
        attempts: STATUS_ATTEMPTS,
    })
}

/// One Event per condition transition; failures to publish are logged, never fatal.
async fn publish(dsd: &DeepSeekDeployment, ctx: &Context, changes: &[Transition]) {
    if changes.is_empty() {
        return;
    }
    let recorder = Recorder::new(ctx.client.clone(), ctx.reporter.clone());
    let reference = dsd.object_ref(&());
    for t in changes {
        let warning =
            t.status == "False" && (t.type_ == ct::READY || t.type_ == ct::MODEL_VERIFIED);
        let event = Event {
            type_: if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: t.reason.clone(),
            note: Some(truncate(
                &format!("{} is {}: {}", t.type_, t.status, t.message),
                1000,
            )),
            action: "Reconcile".into(),
            secondary: None,
        };
        if let Err(e) = recorder.publish(&event, &reference).await {
            tracing::warn!(error = %e, reason = %t.reason, "could not publish event");
        }
    }
}

/// One Event per rollout decision, with its numbers; failures are logged, never fatal.
async fn publish_rollout(dsd: &DeepSeekDeployment, ctx: &Context, events: &[RolloutEvent]) {
    if events.is_empty() {
        return;
    }
    let recorder = Recorder::new(ctx.client.clone(), ctx.reporter.clone());
    let reference = dsd.object_ref(&());
    for e in events {
        tracing::info!(reason = e.reason, message = %e.message, "rollout decision");
        let event = Event {
            type_: if e.warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: e.reason.to_string(),
            note: Some(truncate(&e.message, 1000)),
            action: "Rollout".into(),
            secondary: None,
        };
        if let Err(err) = recorder.publish(&event, &reference).await {
            tracing::warn!(error = %err, reason = e.reason, "could not publish event");
        }
    }
}

fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => s[..i].to_string(),
        None => s.to_string(),
    }
}

/// The per-revision children of a revision that still serves (kept until its successor is ready).
fn serving_children(name: &str, hash: &str) -> [apply::ChildRef; 2] {
    let object_name = naming::revision_object_name(name, hash);
    let child = |kind: ChildKind| apply::ChildRef {
        api_version: kind.api_version().into(),
        kind: kind.kind().into(),
        name: object_name.clone(),
    };
    [child(ChildKind::Deployment), child(ChildKind::ConfigMap)]
}
