//! Apply series steps 1-3 cumulatively to a kernel tree directory, writing
//! the edited files in place (use on a copy), one step per invocation:
//! `t13_apply DIR STEP` (STEP = 1, 2 or 3; earlier steps must be applied).
use std::collections::BTreeMap;

use analyzer::api::ApiModel;
use analyzer::check::check;
use analyzer::pipeline::ParsedTree;
use analyzer::rules::RuleSelection;
use analyzer::source::{SourceOptions, SourceSpec};
use patchgen::transform::{TransformInput, SERIES};

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().expect("DIR"));
    let step: usize = args.next().expect("STEP").parse().expect("step number");
    let tree = ParsedTree::load(&SourceSpec::Dir(dir.clone()), &SourceOptions::default()).expect("tree");
    let api = ApiModel::default();
    let findings = check(&tree, &api, &RuleSelection::default());
    let t = &SERIES[step - 1];
    let input = TransformInput { tree: &tree, api: &api, findings: &findings };
    let change = match (t.plan)(&input) {
        Ok(c) => c,
        Err(r) => {
            eprintln!("refused: {r}");
            std::process::exit(2);
        }
    };
    let files: BTreeMap<String, Vec<u8>> =
        tree.source.files.iter().map(|f| (f.path.clone(), f.bytes.clone())).collect();
    let out = patchgen::edit::apply(&files, &change.edits).expect("edits apply");
    for (path, bytes) in out {
        std::fs::write(dir.join(&path), bytes).expect("write");
        eprintln!("wrote {path}");
    }
    println!("Subject: [PATCH] {}\n\n{}\n\nremoves: {:?}", change.subject, change.body, change.removes);
}
