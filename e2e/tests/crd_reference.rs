//! docs/crd-reference.md is exactly what the generator prints from the CRD schema.

use deepseek_e2e::{crd_docs, repo};

#[test]
fn the_crd_reference_doc_matches_the_crd_schema() -> anyhow::Result<()> {
    let generated = crd_docs::generate()?;
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(repo::path("docs/crd-reference.md"), &generated)?;
    }
    let committed = repo::read("docs/crd-reference.md")?;
    assert!(
        committed == generated,
        "docs/crd-reference.md is out of date: run `make crds` (or UPDATE_DOCS=1 cargo test -p deepseek-e2e --test crd_reference)"
    );
    for field in [
        "spec.model.files[].sha256",
        "spec.rollout.steps[].weight",
        "status.conditions",
    ] {
        assert!(
            generated.contains(&format!("`{field}`")),
            "{field} missing from the reference"
        );
    }
    Ok(())
}
