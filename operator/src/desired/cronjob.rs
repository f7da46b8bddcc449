//! The backup CronJob of `spec.backup`: each run fetches and verifies the model files exactly as
//! a runtime pod does (the same `fetch` init container; a PVC source is verified in place), then
//! `deepseek-runtime backup --src /models --dest DEST --keep N` copies them with their SHA256
//! manifest into a new generation, verifies the copy and prunes old generations.
//!
//! DEST is `/backup/PATH` on the destination PVC, or `s3://BUCKET/PREFIX` with `--s3-endpoint` /
//! `--s3-region` and the Secret's `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` through `envFrom`
//! (the conventions of the fetch init container).

use std::collections::BTreeMap;

use deepseek_crds::{BackupSpec, DeepSeekDeploymentSpec};
use k8s_openapi::api::batch::v1::{CronJob, CronJobSpec, JobSpec, JobTemplateSpec};
use k8s_openapi::api::core::v1::{
    Container, EnvFromSource, PersistentVolumeClaimVolumeSource, PodSpec, PodTemplateSpec,
    SecretEnvSource, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::containers::{self, MODEL_DIR, RUNTIME_BINARY, TMP_VOLUME};
use super::deployment;
use super::security::AUTH_VOLUME;
use super::{naming, BuildConfig, BuildError, ChildKind, DesiredChild, Owner};

/// Where the destination PVC is mounted in the backup container.
pub const BACKUP_DIR: &str = "/backup";
/// Name of the destination volume.
pub const BACKUP_VOLUME: &str = "backup";
/// Name of the backup container.
pub const BACKUP_CONTAINER: &str = "backup";
/// Retries of a failed backup run before the Job is marked failed.
pub const BACKOFF_LIMIT: i32 = 2;

/// `--dest` of `backup`: a directory on the destination PVC or an S3 URI.
pub fn destination_uri(backup: &BackupSpec) -> String {
    let dest = &backup.destination;
    if let Some(s3) = &dest.s3 {
        format!("s3://{}/{}", s3.bucket, s3.prefix)
    } else if let Some(pvc) = &dest.pvc {
        if pvc.path.is_empty() {
            BACKUP_DIR.to_string()
        } else {
            format!("{BACKUP_DIR}/{}", pvc.path.trim_end_matches('/'))
        }
    } else {
        String::new() // rejected by validation before any builder runs
    }
}

/// Arguments of the backup container.
pub fn backup_args(backup: &BackupSpec) -> Vec<String> {
    let mut args = vec![
        "backup".into(),
        "--src".into(),
        MODEL_DIR.into(),
        "--dest".into(),
        destination_uri(backup),
        "--keep".into(),
        backup.keep.to_string(),
    ];
    if let Some(s3) = &backup.destination.s3 {
        if let Some(endpoint) = &s3.endpoint {
            args.extend(["--s3-endpoint".into(), endpoint.clone()]);
        }
        if let Some(region) = &s3.region {
            args.extend(["--s3-region".into(), region.clone()]);
        }
    }
    args
}

fn backup_container(spec: &DeepSeekDeploymentSpec, backup: &BackupSpec, image: &str) -> Container {
    let env_from = backup
        .destination
        .s3
        .as_ref()
        .and_then(|s| s.secret_ref.as_ref())
        .map(|s| {
            vec![EnvFromSource {
                secret_ref: Some(SecretEnvSource {
                    name: s.name.clone(),
                    optional: Some(false),
                }),
                ..EnvFromSource::default()
            }]
        });
    let mount = |name: &str, path: &str, read_only: bool| VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: read_only.then_some(true),
        ..VolumeMount::default()
    };
    let mut mounts = vec![
        // The same view of the model files the fetch init container verified.
        containers::model_mount(spec, true),
        mount(TMP_VOLUME, "/tmp", false),
    ];
    if backup.destination.pvc.is_some() {
        mounts.push(mount(BACKUP_VOLUME, BACKUP_DIR, false));
    }
    Container {
        name: BACKUP_CONTAINER.into(),
        image: Some(image.into()),
        command: Some(vec![RUNTIME_BINARY.into()]),
        args: Some(backup_args(backup)),
        env_from,
        resources: Some(containers::tool_resources()),
        volume_mounts: Some(mounts),
        security_context: Some(containers::container_security()),
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        ..Container::default()
    }
}

/// The pod's volumes: the model volume and scratch of a runtime pod (not its auth Secrets), plus
/// the destination PVC.
fn volumes(spec: &DeepSeekDeploymentSpec, backup: &BackupSpec) -> Vec<Volume> {
    let mut volumes: Vec<Volume> = deployment::volumes(spec)
        .into_iter()
        .filter(|v| v.name != AUTH_VOLUME)
        .collect();
    if let Some(pvc) = &backup.destination.pvc {
        volumes.push(Volume {
            name: BACKUP_VOLUME.into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: pvc.claim_name.clone(),
                read_only: Some(false),
            }),
            ..Volume::default()
        });
    }
    volumes
}

/// Labels of the backup pods: the deployment's name and `component: backup`, but not the
/// `managed-by` label, so the controller never mistakes them for runtime pods.
pub fn pod_labels(dsd_name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), "deepseek".to_string()),
        (
            "app.kubernetes.io/instance".to_string(),
            dsd_name.to_string(),
        ),
        (naming::LABEL_DEPLOYMENT.to_string(), dsd_name.to_string()),
        (
            naming::LABEL_COMPONENT.to_string(),
            naming::COMPONENT_BACKUP.to_string(),
        ),
    ])
}

pub(crate) fn build(
    owner: &Owner,
    spec: &DeepSeekDeploymentSpec,
    cfg: &BuildConfig,
    backup: &BackupSpec,
) -> Result<DesiredChild, BuildError> {
    let name = naming::backup_name(&owner.name);
    let image = naming::runtime_image(spec, cfg);
    let mut labels = naming::common_labels(&owner.name);
    labels.insert(
        naming::LABEL_COMPONENT.to_string(),
        naming::COMPONENT_BACKUP.to_string(),
    );
    let pod = PodSpec {
        init_containers: Some(vec![containers::fetch_container(spec, image)]),
        containers: vec![backup_container(spec, backup, image)],
        volumes: Some(volumes(spec, backup)),
        restart_policy: Some("Never".into()),
        security_context: Some(deployment::pod_security()),
        automount_service_account_token: Some(false),
        enable_service_links: Some(false),
        ..PodSpec::default()
    };
    let cron = CronJob {
        metadata: owner.child_meta(name.clone(), labels),
        spec: CronJobSpec {
            schedule: backup.schedule.clone(),
            suspend: Some(backup.suspend),
            // Two copies racing into the same destination would prune each other's generation.
            concurrency_policy: Some("Forbid".into()),
            starting_deadline_seconds: Some(3600),
            successful_jobs_history_limit: Some(3),
            failed_jobs_history_limit: Some(3),
            job_template: JobTemplateSpec {
                metadata: None,
                spec: Some(JobSpec {
                    backoff_limit: Some(BACKOFF_LIMIT),
                    template: PodTemplateSpec {
                        metadata: Some(ObjectMeta {
                            labels: Some(pod_labels(&owner.name)),
                            ..ObjectMeta::default()
                        }),
                        spec: Some(pod),
                    },
                    ..JobSpec::default()
                }),
            },
            ..CronJobSpec::default()
        },
        ..CronJob::default()
    };
    owner.child(ChildKind::CronJob, &name, &cron)
}
