//! The Python client examples of examples/python against a real server on 127.0.0.1 with the
//! real SmolLM2-135M GGUF: what a user copies must work against the runtime as shipped.

mod common;
#[path = "common/real.rs"]
mod real;

use real::*;

fn run_example(base: &str, script: &str, args: &[&str]) -> anyhow::Result<String> {
    let root = deepseek_test_support::workspace_root();
    let python = root.join(".venv/bin/python");
    anyhow::ensure!(
        python.exists(),
        "{} is missing: run `make test-deps`",
        python.display()
    );
    let out = std::process::Command::new(python)
        .arg(root.join(script))
        .args(args)
        .env("BASE_URL", format!("{base}/v1"))
        .env("MODEL", REAL_MODEL_NAME)
        .env("MAX_TOKENS", "16")
        .output()?;
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    anyhow::ensure!(out.status.success(), "{script} failed:\n{log}");
    Ok(log)
}

#[tokio::test]
async fn the_python_examples_work_against_the_real_runtime() -> anyhow::Result<()> {
    let base = tokio::task::spawn_blocking(start_real_server).await?;
    let b = base.clone();
    let log = tokio::task::spawn_blocking(move || {
        run_example(&b, "examples/python/openai_client.py", &[])
    })
    .await??;
    assert!(
        log.contains("plain: ") && log.contains("streamed: "),
        "{log}"
    );
    assert!(log.contains("usage: prompt="), "{log}");
    let log = tokio::task::spawn_blocking(move || {
        run_example(
            &base,
            "examples/python/customer_service.py",
            &["I want a refund for the shoes I returned"],
        )
    })
    .await??;
    // The route is printed in brackets: one of the three flows, whatever the small model says.
    assert!(
        ["[returns]", "[technical]", "[general]"]
            .iter()
            .any(|r| log.contains(r)),
        "{log}"
    );
    assert!(log.contains("  -> "), "{log}");
    Ok(())
}
