//! DeepSeekDeployment custom resource types (filled in by the crds work).
