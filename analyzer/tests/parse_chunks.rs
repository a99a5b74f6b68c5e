//! The parser cuts a file into top-level chunks and parses them one by one
//! (`Masked::chunks`), so that a new version of a file costs only its
//! edited chunks (`ChunkMemo`). Both must be invisible in the facts: on the
//! real Linux 6.1 and 6.12 KVM trees, the facts of a chunked parse equal
//! those of one parse of the whole file, and a file parsed with the chunks
//! of another version of it already known gets the facts of a fresh parse.

mod parse_common;

use analyzer::parse::{parse_file, parse_file_reusing, parse_file_unchunked, ChunkMemo, ParseOptions};
use parse_common::*;

#[test]
fn chunked_facts_equal_whole_file_facts_on_real_trees() {
    for version in ["6.1", "6.12"] {
        let Some(root) = kernel_tree(version) else { continue };
        let files = kvm_files(&root);
        let mut differ = Vec::new();
        for (path, arch, bytes) in &files {
            let chunked = parse_file(path, arch.as_deref(), bytes);
            let whole = parse_file_unchunked(path, arch.as_deref(), bytes);
            if chunked != whole {
                differ.push(path.clone());
            }
        }
        assert!(files.len() > 100, "linux-{version}: {} files", files.len());
        assert!(differ.is_empty(), "linux-{version}: chunked facts differ in {differ:?}");
    }
}

#[test]
fn a_new_version_reusing_the_chunks_of_the_old_gets_fresh_facts() {
    let (Some(old), Some(new)) = (kernel_tree("6.1"), kernel_tree("6.12")) else { return };
    let old_files = kvm_files(&old);
    let memo = ChunkMemo::default();
    for (path, arch, bytes) in &old_files {
        parse_file_reusing(path, arch.as_deref(), bytes, ParseOptions::default(), Some(&memo));
    }
    // Cut into chunks: many per file (a chunk per function, roughly).
    let parsed = memo.stats().misses as usize;
    println!("linux-6.1: {} files, {parsed} chunks", old_files.len());
    assert!(parsed > 10 * old_files.len(), "{parsed} chunks in {} files", old_files.len());
    let mut compared = 0;
    let mut reused_somewhere = 0;
    for (path, arch, bytes) in kvm_files(&new) {
        let Some((_, _, old_bytes)) = old_files.iter().find(|(p, _, _)| *p == path) else { continue };
        if *old_bytes == bytes {
            continue;
        }
        let before = memo.stats();
        let reused = parse_file_reusing(&path, arch.as_deref(), &bytes, ParseOptions::default(), Some(&memo));
        let after = memo.stats();
        reused_somewhere += usize::from(after.hits > before.hits);
        assert_eq!(reused, parse_file(&path, arch.as_deref(), &bytes), "{path}");
        compared += 1;
    }
    println!("{compared} files changed, chunks reused in {reused_somewhere}; {:?}", memo.stats());
    assert!(compared > 50, "{compared} files changed between 6.1 and 6.12");
    assert!(reused_somewhere * 2 > compared, "chunks reused in {reused_somewhere} of {compared} changed files");
}

/// The chunks of `src`, as text.
fn chunks(src: &str) -> Vec<&str> {
    let m = analyzer::parse::recover_idioms(src.as_bytes());
    let cuts = m.chunks(src.as_bytes());
    assert_eq!(cuts.first().map(|r| r.start), Some(0));
    assert_eq!(cuts.last().map(|r| r.end), Some(src.len()));
    assert!(cuts.windows(2).all(|w| w[0].end == w[1].start), "{cuts:?}");
    cuts.into_iter().map(|r| &src[r]).collect()
}

#[test]
fn a_file_is_cut_between_top_level_items_only() {
    let src = "\
#include <linux/kvm_host.h>
static DEFINE_MUTEX(kvm_lock);
int a;

static int f(void)
{
#ifdef CONFIG_X
\tif (a) {
#else
\tif (!a) {
#endif
\t\ta = 1;
\t}
\treturn 0;
}
EXPORT_SYMBOL_GPL(f);
__weak
int g(void) { return 1; } /* trailing comment */
int h(void) { return 2; }
#ifdef CONFIG_Y
int y1;
int y2;
#endif
struct s {
\tint x;
}
;
int last";
    assert_eq!(
        chunks(src),
        [
            // After the `;` of the masked `DEFINE_MUTEX` (it becomes `int (kvm_lock);`).
            "#include <linux/kvm_host.h>\nstatic DEFINE_MUTEX(kvm_lock);\n",
            "int a;\n",
            // The `#if` inside the body and its split braces stay inside.
            "\nstatic int f(void)\n{\n#ifdef CONFIG_X\n\tif (a) {\n#else\n\tif (!a) {\n#endif\n\t\ta = 1;\n\t}\n\treturn 0;\n}\n",
            // A blanked macro statement's `;` is no cut; nor a `}` with a comment after it.
            "EXPORT_SYMBOL_GPL(f);\n__weak\nint g(void) { return 1; } /* trailing comment */\nint h(void) { return 2; }\n",
            // An `#if` block at file scope is one chunk with what follows it.
            "#ifdef CONFIG_Y\nint y1;\nint y2;\n#endif\nstruct s {\n\tint x;\n}\n;\n",
            "int last",
        ]
    );
}

#[test]
fn a_header_inside_its_include_guard_is_one_chunk() {
    let src = "#ifndef _KVM_T_H\n#define _KVM_T_H\nint a;\nint b(void);\n#endif\n";
    assert_eq!(chunks(src), [src]);
}

#[test]
fn an_edit_reuses_the_other_chunks_moved_and_gives_fresh_facts() {
    let old = "\
static DEFINE_SPINLOCK(l);

static int f(struct kvm *kvm)
{
\tspin_lock(&l);
\tg(kvm);
\tspin_unlock(&l);
\treturn 0;
}

int h(void)
{
\tlist_for_each_entry(kvm, &vm_list, vm_list)
\t\tf(kvm);
\treturn 0;
}
";
    // Lines added above `h`, and `f` edited: `h` is the same chunk, moved.
    let new = old.replace("\tg(kvm);\n", "\tg(kvm);\n\tg2(kvm);\n\tg3(kvm);\n");
    let memo = ChunkMemo::default();
    let parse =
        |src: &str| parse_file_reusing("virt/kvm/t.c", None, src.as_bytes(), ParseOptions::default(), Some(&memo));
    assert_eq!(parse(old), parse_file("virt/kvm/t.c", None, old.as_bytes()));
    let first = memo.stats();
    assert_eq!((first.hits, first.misses), (0, 3));
    let facts = parse(&new);
    assert_eq!(facts, parse_file("virt/kvm/t.c", None, new.as_bytes()));
    let second = memo.stats();
    // The lock and `h` reused, `f` parsed again.
    assert_eq!((second.hits, second.misses), (2, 4));
    let h = facts.functions.iter().find(|f| f.name == "h").unwrap();
    assert_eq!(h.span.line, 13);
    assert_eq!(&new[h.span.start as usize..h.span.start as usize + 5], "int h");
}

/// The budget decides the same whatever the memo holds: a chunk taken from
/// the memo costs the work of its parse.
#[test]
fn the_work_budget_counts_the_chunks_taken_from_the_memo() {
    // A hostile chunk (tree-sitter's recovery never converges on it, see
    // `bounds_fuzz_regressions.rs`) after ordinary ones.
    let mut hostile = b"static int ordinary(int x)\n{\n\treturn x + 1;\n}\n\n".repeat(50);
    hostile.extend_from_slice(b"D|0(|F((())");
    hostile.extend([b'\n'; 50]);
    hostile.push(b';');
    let memo = ChunkMemo::default();
    let parse = |b: &[u8]| parse_file_reusing("virt/kvm/t.c", None, b, ParseOptions::default(), Some(&memo));
    let fresh = parse_file("virt/kvm/t.c", None, &hostile);
    assert!(fresh.diagnostics.iter().any(|d| d.message.contains("work budget")), "{:?}", fresh.diagnostics);
    assert_eq!(parse(&hostile), fresh);
    // Again, the ordinary chunks now from the memo.
    let before = memo.stats();
    assert_eq!(parse(&hostile), fresh);
    assert!(memo.stats().hits > before.hits);
}
