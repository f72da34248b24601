//! The checked-in CRDs are exactly what the types generate.

#[test]
fn checked_in_crds_match_the_types() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../crds");
    for (name, generated) in videocall_operator::crd::crd_documents().expect("render CRDs") {
        let path = dir.join(name);
        let checked_in =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            checked_in == generated,
            "{} is stale: run `cargo run -p videocall-operator -- crdgen --out-dir crds`",
            path.display()
        );
    }
}
