//! Prints the DeepSeekDeployment field reference (Markdown) generated from the CRD schema:
//! `cargo run -q -p deepseek-e2e --bin crd-docs > docs/crd-reference.md`.

fn main() -> anyhow::Result<()> {
    print!("{}", deepseek_e2e::crd_docs::generate()?);
    Ok(())
}
