//! `deepseek-operator`: run | crd | render | manifests.
fn main() {}
