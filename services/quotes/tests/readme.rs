//! The README's configuration table is what `quotes settings --output markdown` prints, so it
//! lists every setting with the default and meaning the code declares. `UPDATE_README=1 cargo
//! test -p quotes --test readme` rewrites it.

use std::path::PathBuf;
use std::process::Command;

const BEGIN: &str = "<!-- settings:begin";
const END: &str = "<!-- settings:end -->";

#[test]
fn the_readme_lists_every_setting_as_declared() {
    let output = Command::new(env!("CARGO_BIN_EXE_quotes"))
        .args(["settings", "--output", "markdown"])
        .output()
        .expect("run quotes settings");
    assert!(output.status.success(), "{output:?}");
    let table = String::from_utf8(output.stdout).expect("UTF-8");
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../README.md");
    let readme = std::fs::read_to_string(&path).expect("README.md");
    let begin = readme
        .find(BEGIN)
        .expect("the README has the settings:begin marker");
    let begin = begin + readme[begin..].find('\n').expect("marker line") + 1;
    let end = readme
        .find(END)
        .expect("the README has the settings:end marker");
    if readme[begin..end] == table {
        return;
    }
    if std::env::var_os("UPDATE_README").is_some() {
        let updated = format!("{}{table}{}", &readme[..begin], &readme[end..]);
        std::fs::write(&path, updated).expect("write README.md");
        return;
    }
    panic!(
        "README.md's configuration table differs from the declared settings; run \
         `UPDATE_README=1 cargo test -p quotes --test readme`. Expected:\n{table}"
    );
}
