//! CPU linear-layer kernels for GGUF block formats (SIMD with runtime detection + portable
//! fallback). The model's linear layers (`model::linear`) call into this module on CPU.
