//! The control-plane messages the browser needs (JoinMeeting), as plain prost types: the page
//! speaks grpc-web over `fetch` itself, so it needs no tonic client in the WebAssembly.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "../protocol/proto/videocall/control/v1/control.proto";
    println!("cargo:rerun-if-changed={proto}");
    let descriptors = protox::compile([proto], ["../protocol/proto"])?;
    prost_build::Config::new().compile_fds(descriptors)?;
    Ok(())
}
