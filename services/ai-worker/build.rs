//! Rebuilds the worker when one of its migrations (`migrations/worker`) is added or edited: `sqlx::migrate!` embeds the
//! directory's files at compile time, and cargo does not watch that directory by itself.

fn main() {
    println!("cargo:rerun-if-changed=../../migrations/worker");
}
