//! Every metric name, label and bucket as a constant (to be written).
