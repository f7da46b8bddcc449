//! Prints the DeepSeekDeployment CRD as YAML (`make crds` writes it to crds/deepseekdeployments.yaml).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    print!("{}", deepseek_crds::crd::crd_yaml()?);
    Ok(())
}
