//! Generates the `thinkbank.v1` Rust code from `proto/` with the pure-Rust `protox` compiler
//! (no system `protoc`), and writes the file descriptor set used by gRPC server reflection.

use std::{env, fs, path::PathBuf};

use prost::Message;

const PROTO_ROOT: &str = "proto";
const PROTO_FILES: &[&str] = &[
    "proto/thinkbank/v1/ai_worker.proto",
    "proto/thinkbank/v1/assets.proto",
    "proto/thinkbank/v1/chat.proto",
    "proto/thinkbank/v1/collections.proto",
    "proto/thinkbank/v1/embeddings.proto",
    "proto/thinkbank/v1/health.proto",
    "proto/thinkbank/v1/search.proto",
    "proto/thinkbank/v1/tenants.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // tonic-prost-build 0.14 no longer emits these itself.
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed={PROTO_ROOT}");
    for file in PROTO_FILES {
        println!("cargo:rerun-if-changed={file}");
    }

    let fds = protox::compile(PROTO_FILES, [PROTO_ROOT])?;
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(
        out_dir.join("thinkbank_descriptor.bin"),
        fds.encode_to_vec(),
    )?;

    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        // Uploads can be large: every `bytes` field is `Bytes`, so it is not copied again.
        .bytes(".thinkbank.v1")
        .compile_fds(fds)?;
    Ok(())
}
