//! The arrows point down: a module may use modules of its own layer or
//! below, never above. Every `crate::` path in every source file is checked
//! against the table in `docs/architecture.md`'s order; a module missing
//! from the table fails too, so the table stays complete.

use std::path::{Path, PathBuf};

/// Layers, lowest first, as module path prefixes (the longest prefix that
/// matches decides).
const LAYERS: &[(&str, &[&str])] = &[
    (
        "base",
        &[
            "units",
            "glob",
            "counters",
            "stats",
            "logline",
            "statefile",
            "sys",
            "now",
            "first_exit",
        ],
    ),
    (
        "codecs and phone families",
        &[
            "dhcp::options",
            "dhcp::packet",
            "dhcp::show",
            "dhcp::client",
            "families",
            "files::path",
            "files::tftp::packet",
            "files::http::wire",
            "files::http::conditional",
        ],
    ),
    ("configuration", &["config"]),
    (
        "protocol cores",
        &[
            "dhcp::engine",
            "dhcp::classes",
            "dhcp::clock",
            "dhcp::flood",
            "dhcp::ratelimit",
            "dns::zone",
            "dns::reply",
            "leases::table",
            "leases::pages",
            "leases",
            "files::resolve",
            "files::sweep",
            "files::owners",
            "files::tftp::window",
            "files::tftp::receive",
            "daemon::reload",
        ],
    ),
    (
        "services and what they show",
        &[
            "dhcp",
            "dns",
            "net",
            "leases::store",
            "leases::repair",
            "files",
            "time",
            "inventory",
            "site",
            "admin",
            "daemon",
            "explain",
        ],
    ),
    (
        "commands",
        &[
            "serve",
            "recover",
            "lab",
            "demo",
            "fuzz",
            "main",
            "runtime",
            "shutdown_signal",
        ],
    ),
];

fn layer_of(path: &str) -> Option<(usize, &'static str)> {
    let mut best: Option<(usize, usize, &'static str)> = None;
    for (i, (_, prefixes)) in LAYERS.iter().enumerate() {
        for p in *prefixes {
            let hit = path == *p || path.starts_with(&format!("{p}::"));
            if hit && best.is_none_or(|(_, len, _)| p.len() > len) {
                best = Some((i, p.len(), LAYERS[i].0));
            }
        }
    }
    best.map(|(i, _, name)| (i, name))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// `src/dhcp/engine/tests.rs` -> `dhcp::engine::tests`.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .filter(|c| c != "mod")
        .collect();
    parts.join("::")
}

/// The module paths after each `crate::` in `text` (line comments left
/// out), with the line each starts on. A group `crate::a::{b::c, d}` (over
/// several lines too) gives `a::b::c` and `a::d`, so an item of a module
/// above its group's is seen.
fn used(text: &str) -> Vec<(usize, String)> {
    let code: Vec<&str> = text
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect();
    let joined = code.join("\n");
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(at) = joined[from..].find("crate::") {
        let start = from + at + "crate::".len();
        let line = joined[..start].matches('\n').count() + 1;
        let (paths, end) = paths_at(&joined, start, "");
        out.extend(paths.into_iter().map(|p| (line, p)));
        from = end.max(start);
    }
    out
}

/// The paths of one use tree at `at` in `s`, each after `prefix`, and where
/// the tree ends.
fn paths_at(s: &str, at: usize, prefix: &str) -> (Vec<String>, usize) {
    let b = s.as_bytes();
    let mut i = at;
    while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b':') {
        i += 1;
    }
    let head = s[at..i].trim_end_matches(':');
    let base = match (prefix.is_empty(), head.is_empty()) {
        (true, _) => head.to_string(),
        (false, true) => prefix.to_string(),
        (false, false) => format!("{prefix}::{head}"),
    };
    if b.get(i) != Some(&b'{') {
        return (vec![base], i);
    }
    // A group: each item at depth one, recursively.
    let mut out = Vec::new();
    let mut j = i + 1;
    loop {
        while j < b.len() && (b[j].is_ascii_whitespace() || b[j] == b',') {
            j += 1;
        }
        match b.get(j) {
            None => return (out, j),
            Some(b'}') => return (out, j + 1),
            _ => {}
        }
        let (items, end) = paths_at(s, j, &base);
        out.extend(
            items
                .into_iter()
                .map(|p| p.strip_suffix("::self").map_or(p.clone(), str::to_string)),
        );
        // Skip ` as name` and anything else up to the item's end.
        j = end;
        while j < b.len() && b[j] != b',' && b[j] != b'}' {
            j += 1;
        }
    }
}

#[test]
fn no_module_uses_one_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut wrong = Vec::new();
    for file in &files {
        let module = module_of(&src, file);
        if module == "lib" {
            continue;
        }
        let Some((mine, my_layer)) = layer_of(&module) else {
            wrong.push(format!(
                "{}: module `{module}` is in no layer of tests/layers.rs",
                file.display()
            ));
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap();
        for (line, path) in used(&text) {
            match layer_of(&path) {
                Some((theirs, their_layer)) if theirs > mine => wrong.push(format!(
                    "{}:{line}: `{module}` ({my_layer}) uses `crate::{path}` ({their_layer}), a layer above it",
                    file.display()
                )),
                Some(_) => {}
                None => wrong.push(format!(
                    "{}:{line}: `crate::{path}` is in no layer of tests/layers.rs",
                    file.display()
                )),
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_checker_sees_an_upward_use() {
    // A configuration module that used the server would be refused.
    let (config, _) = layer_of("config::check").unwrap();
    let (server, _) = layer_of("dhcp::server").unwrap();
    assert!(server > config);
    let (options, _) = layer_of("dhcp::options").unwrap();
    assert!(options < config);
    assert_eq!(
        used("use crate::dhcp::server::Dhcp; // crate::demo\nlet x = crate::now();"),
        [
            (1, "dhcp::server::Dhcp".to_string()),
            (2, "now".to_string())
        ]
    );
    assert_eq!(
        module_of(Path::new("/s"), Path::new("/s/dhcp/engine/tests.rs")),
        "dhcp::engine::tests"
    );
    assert_eq!(
        module_of(Path::new("/s"), Path::new("/s/config/mod.rs")),
        "config"
    );
}
