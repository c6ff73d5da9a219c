//! The module graph's layering, checked from the sources (in the spirit of rust-analyzer's tidy tests): no cycles, and no layer reaching above itself.
//!
//! Each top-level module of `src/` may name (`crate::x`) only the modules listed for it below.
//! The rules say what ARCHITECTURE.md says: `ids` is a leaf; the domain imports nothing but
//! itself; the event envelope sits above the domain; the store knows nothing of the ledger,
//! the server or the CLI; only the CLI sits above the server.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// What each top-level module may depend on. A module missing here fails the test, so a new
/// module has to be placed in the layering on purpose.
const ALLOWED: &[(&str, &[&str])] = &[
    ("ids", &[]),
    ("clock", &[]),
    ("json_diff", &[]),
    ("domain", &[]),
    ("events", &["domain", "ids"]),
    ("chain", &["domain", "events"]),
    ("store", &["chain", "clock", "domain", "events", "ids"]),
    ("audit", &["domain", "events", "json_diff"]),
    ("subscription", &["events", "store"]),
    (
        "ledger",
        &[
            "audit",
            "chain",
            "clock",
            "domain",
            "events",
            "ids",
            "store",
            "subscription",
        ],
    ),
    (
        "maintenance",
        &[
            "audit", "chain", "clock", "domain", "events", "ids", "ledger", "store",
        ],
    ),
    (
        "server",
        &[
            "audit",
            "chain",
            "clock",
            "domain",
            "events",
            "ids",
            "json_diff",
            "ledger",
            "maintenance",
            "store",
        ],
    ),
    (
        "cli",
        &[
            "audit",
            "chain",
            "clock",
            "domain",
            "events",
            "ids",
            "json_diff",
            "ledger",
            "maintenance",
            "server",
            "store",
            "subscription",
        ],
    ),
    ("lib", &[]),
    ("main", &[]),
];

fn rust_files(directory: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(directory).expect("src/ is readable") {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            found.push(path);
        }
    }
}

/// `src/store/sled/writer.rs` → `store`; `src/ledger/mod.rs` → `ledger`.
fn top_module(source_root: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(source_root).unwrap();
    let first = relative.components().next().unwrap().as_os_str();
    first.to_string_lossy().trim_end_matches(".rs").to_string()
}

/// Every `crate::name` a file's code mentions (comments and doc comments left out).
fn crate_references(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or_default();
        let mut rest = code;
        while let Some(position) = rest.find("crate::") {
            let after = &rest[position + "crate::".len()..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                names.insert(name);
            }
            rest = after;
        }
    }
    names
}

/// The module graph: top-level module → the modules it names, with one file that does.
fn module_graph() -> BTreeMap<String, BTreeMap<String, PathBuf>> {
    let source_root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&source_root, &mut files);
    let mut graph: BTreeMap<String, BTreeMap<String, PathBuf>> = BTreeMap::new();
    for file in files {
        let module = top_module(&source_root, &file);
        let text = std::fs::read_to_string(&file).unwrap();
        let edges = graph.entry(module.clone()).or_default();
        for target in crate_references(&text) {
            if target != module {
                edges.entry(target).or_insert_with(|| file.clone());
            }
        }
    }
    graph
}

#[test]
fn every_module_depends_only_on_the_layers_below_it() {
    let allowed: BTreeMap<&str, BTreeSet<&str>> = ALLOWED
        .iter()
        .map(|(module, below)| (*module, below.iter().copied().collect()))
        .collect();
    let mut violations = Vec::new();
    for (module, edges) in module_graph() {
        let Some(permitted) = allowed.get(module.as_str()) else {
            violations.push(format!("{module} is not placed in the layering (ALLOWED)"));
            continue;
        };
        for (target, file) in edges {
            if !permitted.contains(target.as_str()) {
                violations.push(format!(
                    "{module} must not depend on {target} ({} names crate::{target})",
                    file.display()
                ));
            }
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

#[test]
fn the_module_graph_has_no_cycle() {
    let graph = module_graph();
    // Depth-first search; a module met again while still on the path closes a cycle.
    fn visit(
        module: &str,
        graph: &BTreeMap<String, BTreeMap<String, PathBuf>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|on_path| on_path == module) {
            let mut cycle = path[start..].to_vec();
            cycle.push(module.to_string());
            return Some(cycle);
        }
        if done.contains(module) {
            return None;
        }
        path.push(module.to_string());
        for target in graph.get(module).into_iter().flat_map(BTreeMap::keys) {
            if let Some(cycle) = visit(target, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(module.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for module in graph.keys() {
        if let Some(cycle) = visit(module, &graph, &mut Vec::new(), &mut done) {
            panic!("the module graph has a cycle: {}", cycle.join(" → "));
        }
    }
}

#[test]
fn the_reference_scanner_sees_code_and_skips_comments() {
    let text = "use crate::domain::Charge;\n// crate::server is only mentioned\nlet x = crate::ids::charge_id(); /// crate::cli\n";
    let names: Vec<String> = crate_references(text).into_iter().collect();
    assert_eq!(names, ["domain", "ids"]);
}
