//! Replays the committed fuzz corpus (`tests/fuzz/corpus/<target>/`)
//! through the harnesses of `dialtone::fuzz` on stable Rust, so every input
//! a fuzzer ever kept (seeds, and each crash once fixed) is checked on every
//! change. docs/testing.md says how to run the fuzzers themselves.

use std::path::Path;

#[test]
fn every_corpus_file_passes_its_harness() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz/corpus");
    let mut total = 0;
    for (name, harness) in dialtone::fuzz::TARGETS {
        let dir = root.join(name);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no corpus for {name}");
        for f in &files {
            let data = std::fs::read(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            let outcome = std::panic::catch_unwind(|| harness(&data));
            assert!(outcome.is_ok(), "{name}: {} fails its harness", f.display());
            total += 1;
        }
    }
    eprintln!("{total} corpus files replayed");
}
