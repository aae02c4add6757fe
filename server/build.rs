//! Embeds the GraphQL operation files of `../operations` in the server, so that the MCP tools
//! they define ship inside the binary. Adding a file there adds a tool at the next build; no Rust
//! code names the files.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../operations");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("reading {}: {error}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "graphql"))
        .collect();
    files.sort();
    let mut code = String::from("/// The operation files of `operations/`: (file name, text).\n");
    code.push_str("pub(crate) const OPERATION_FILES: &[(&str, &str)] = &[\n");
    for path in &files {
        let name = path.file_name().expect("a file name").to_string_lossy();
        let absolute = path.canonicalize().expect("an existing file");
        writeln!(code, "    ({name:?}, include_str!({:?})),", absolute.display().to_string())
            .expect("writing to a string");
    }
    code.push_str("];\n");
    let out = Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR is set by cargo"))
        .join("operations.rs");
    std::fs::write(&out, code).unwrap_or_else(|error| panic!("writing {}: {error}", out.display()));
}
