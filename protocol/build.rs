//! Compiles the .proto files with `protox` (pure Rust), so no `protoc` is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "proto/videocall/media/v1/media.proto",
        "proto/videocall/mesh/v1/mesh.proto",
    ];
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    let descriptors = protox::compile(protos, ["proto"])?;
    prost_build::Config::new()
        // Payloads become `bytes::Bytes`: decoding from a `Bytes` buffer then
        // slices it instead of copying, and forwarding never copies a payload.
        .bytes(["."])
        .compile_fds(descriptors)?;
    Ok(())
}
