//! Generates the tonic/prost code for `portcullis.v1` with the system `protoc`
//! (Debian `protobuf-compiler`; override with the `PROTOC` environment variable).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_protos(&["proto/portcullis/v1/verifier.proto"], &["proto"])?;
    Ok(())
}
