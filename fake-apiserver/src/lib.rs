//! In-process fake Kubernetes API server (filled in by the fake-apiserver work).
