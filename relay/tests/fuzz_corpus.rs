//! The session fuzz target's corpus (`fuzz/corpus/session/`) and every input that once broke
//! something (`fuzz/regressions/session/`), replayed through the same scripted sessions the
//! fuzzer runs (`videocall_relay::script`): each must run to its end with everything that
//! must hold holding, and the corpus as a whole must reach deep states (people admitted,
//! media forwarded), or it no longer tests much.

use std::path::{Path, PathBuf};

use videocall_relay::script;

fn inputs(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.sort();
    files
}

#[test]
fn the_session_corpus_and_regressions_replay_cleanly_and_reach_deep_states() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let corpus = inputs(&fuzz.join("corpus/session"));
    let regressions = inputs(&fuzz.join("regressions/session"));
    assert!(
        corpus.len() >= 50,
        "the session corpus has {} inputs: run scripts/fuzz.sh",
        corpus.len()
    );
    let mut total = script::Summary::default();
    for path in corpus.iter().chain(&regressions) {
        let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let summary = script::run(&data);
        total.steps += summary.steps;
        total.admitted += summary.admitted;
        total.refused += summary.refused;
        total.control_frames += summary.control_frames;
        total.media_frames += summary.media_frames;
    }
    println!("{total:?}");
    assert!(total.admitted > 100, "{total:?}");
    assert!(total.refused > 10, "{total:?}");
    assert!(total.media_frames > 10, "{total:?}");
    assert!(total.control_frames > 100, "{total:?}");
}
