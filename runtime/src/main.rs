//! `deepseek-runtime`: serve | bench (fetch, backup, restore, route come with their issues).
fn main() {}
