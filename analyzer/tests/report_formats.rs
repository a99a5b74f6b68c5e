//! The `kvmtk check` report formats on a hand-built report: one snapshot per
//! format, and the structural properties consumers rely on.

use analyzer::check::{ArchStatistics, CheckReport};
use analyzer::contexts::Step;
use analyzer::lock_order::LockOrderStats;
use analyzer::pipeline::InputWarning;
use analyzer::report::findings::{
    exit_code, render_github, render_json, render_sarif, render_text, render_warnings, RenderOptions, FINGERPRINT_KEY,
    SARIF_SCHEMA,
};
use analyzer::rules::{find_rule, fingerprint, Finding, Related, Severity, REGISTRY};
use serde_json::Value;

macro_rules! snapshot {
    ($name:literal, $value:expr) => {
        insta::with_settings!({
            snapshot_path => concat!(env!("CARGO_MANIFEST_DIR"), "/../snapshots"),
            prepend_module_to_snapshot => false,
        }, {
            insta::assert_snapshot!($name, $value);
        })
    };
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[allow(clippy::too_many_arguments)]
fn step(
    function: &str,
    file: &str,
    line: u32,
    col: u32,
    context: &str,
    held: &[&str],
    serialized_by: &[&str],
    via: Option<&str>,
) -> Step {
    Step {
        function: function.into(),
        file: file.into(),
        line,
        col,
        context: context.into(),
        held: strings(held),
        may_held: Vec::new(),
        serialized_by: strings(serialized_by),
        via: via.map(str::to_string),
    }
}

#[allow(clippy::too_many_arguments)]
fn finding(
    rule: &str,
    arch: &str,
    file: &str,
    line: u32,
    col: u32,
    function: &str,
    message: &str,
    evidence: Vec<Step>,
    related: Vec<Related>,
    symbols: &[&str],
) -> Finding {
    let info = find_rule(rule).unwrap();
    let symbols = strings(symbols);
    Finding {
        rule: info.id,
        name: info.name,
        severity: info.severity,
        arch: arch.into(),
        file: file.into(),
        line,
        col,
        function: function.into(),
        message: message.into(),
        evidence,
        related,
        fingerprint: fingerprint(info.id, arch, function, &symbols),
        symbols,
    }
}

const MAIN: &str = "virt/kvm/kvm_main.c";
const X86: &str = "arch/x86/kvm/x86.c";

/// The seed's two headline warts, as the rules report them.
fn report() -> CheckReport {
    let list_walk = finding(
        "HW001",
        "x86",
        X86,
        12201,
        2,
        "kvm_arch_hardware_enable",
        "`vm_list` walked with `list_for_each_entry` without kvm_lock (held by its writers), \
         reachable from ipi context that runs concurrently with them",
        vec![
            step("kvm_dev_ioctl", MAIN, 5032, 9, "ioctl", &[], &[], None),
            step("kvm_dev_ioctl_create_vm", MAIN, 4987, 7, "ioctl", &[], &[], None),
            step("kvm_create_vm", MAIN, 1164, 6, "ioctl", &[], &[], None),
            step("hardware_enable_all", MAIN, 5162, 2, "ioctl", &["kvm_count_lock"], &[], None),
            step(
                "hardware_enable_nolock",
                MAIN,
                5077,
                6,
                "ipi",
                &[],
                &["kvm_count_lock"],
                Some("on_each_cpu(hardware_enable_nolock)"),
            ),
            step("kvm_arch_hardware_enable", X86, 12201, 2, "ipi", &[], &["kvm_count_lock"], None),
        ],
        vec![
            Related {
                file: MAIN.into(),
                line: 1210,
                col: 2,
                message: "`vm_list` modified here by list_add() in kvm_create_vm() with {kvm_lock} held".into(),
            },
            Related {
                file: MAIN.into(),
                line: 1285,
                col: 2,
                message: "`vm_list` modified here by list_del() in kvm_destroy_vm() with {kvm_lock} held".into(),
            },
        ],
        &["vm_list", "list_for_each_entry"],
    );
    let mut starting = step(
        "kvm_starting_cpu",
        MAIN,
        5095,
        2,
        "cpuhp_starting",
        &[],
        &[],
        Some("cpuhp_setup_state_nocalls(kvm_starting_cpu)"),
    );
    starting.may_held = strings(&["kvm_count_lock"]);
    let sleep = finding(
        "HW007",
        "common",
        MAIN,
        5071,
        2,
        "hardware_enable_nolock",
        "`mutex_lock(&kvm_lock)` may sleep, reachable from cpuhp_starting context (interrupts off)",
        vec![starting, step("hardware_enable_nolock", MAIN, 5071, 2, "cpuhp_starting", &["kvm_count_lock"], &[], None)],
        vec![Related {
            file: "include/linux/cpuhotplug.h".into(),
            line: 150,
            col: 2,
            message: "`CPUHP_AP_KVM_STARTING` is in the STARTING section: callbacks run with interrupts off".into(),
        }],
        &["kvm_lock", "mutex_lock"],
    );
    CheckReport {
        tree: "linux-6.1".into(),
        arches: strings(&["x86", "arm64"]),
        findings: vec![list_walk, sleep],
        warnings: vec![InputWarning {
            path: "arch/arm64/kvm/arm.c".into(),
            line: Some(88),
            message: "unbalanced `#ifdef CONFIG_KVM` (the rest is analyzed)".into(),
        }],
        statistics: vec![ArchStatistics {
            arch: "x86".into(),
            lock_order: LockOrderStats {
                classes: 31,
                unknown_classes: 2,
                edges: 48,
                unresolved_completion_waits: 0,
                unresolved_work_waits: 1,
                cycle_search_cut: false,
                unresolved_thread_waits: 0,
            },
        }],
    }
}

#[test]
fn text_snapshot() {
    snapshot!("report_text", render_text(&report()));
}

#[test]
fn json_snapshot() {
    snapshot!("report_json", render_json(&report()));
}

/// The SARIF with what changes on its own (the rules' documentation, the
/// version) replaced, so the snapshot shows the mapping.
#[test]
fn sarif_snapshot() {
    let mut sarif: Value = serde_json::from_str(&render_sarif(&report())).unwrap();
    let driver = &mut sarif["runs"][0]["tool"]["driver"];
    driver["version"] = "[version]".into();
    driver["semanticVersion"] = "[version]".into();
    for rule in driver["rules"].as_array_mut().unwrap() {
        rule["fullDescription"]["text"] = "[doc]".into();
        rule["help"] = serde_json::json!({ "text": "[doc]", "markdown": "[doc]" });
    }
    snapshot!("report_sarif", serde_json::to_string_pretty(&sarif).unwrap());
}

#[test]
fn github_snapshot() {
    snapshot!("report_github", render_github(&report()));
}

#[test]
fn sarif_structure() {
    let report = report();
    let out = render_sarif(&report);
    let sarif: Value = serde_json::from_str(&out).expect("SARIF is JSON");
    assert_eq!(sarif["version"], "2.1.0");
    assert_eq!(sarif["$schema"], SARIF_SCHEMA);
    assert!(out.starts_with("{\n  \"$schema\": "), "$schema comes first");
    assert!(out.ends_with("}\n"));
    // It reads back as SARIF, too.
    let _: serde_sarif::sarif::Sarif = serde_json::from_str(&out).expect("SARIF reads back");

    let runs = sarif["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1);
    let driver = &runs[0]["tool"]["driver"];
    assert_eq!(driver["name"], "kvmtk");
    assert_eq!(driver["version"], env!("CARGO_PKG_VERSION"));
    let rules = driver["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 14);
    assert_eq!(rules.len(), REGISTRY.len());
    for (rule, info) in rules.iter().zip(REGISTRY) {
        assert_eq!(rule["id"], info.id);
        assert_eq!(rule["name"], info.name);
        assert_eq!(rule["shortDescription"]["text"], info.summary);
        assert_eq!(rule["defaultConfiguration"]["level"], info.severity.as_str());
        let doc = info.doc();
        if !doc.trim().is_empty() {
            assert_eq!(rule["help"]["markdown"], doc.trim());
        }
    }

    let results = runs[0]["results"].as_array().unwrap();
    assert_eq!(results.len(), report.findings.len());
    for (result, f) in results.iter().zip(&report.findings) {
        assert_eq!(result["ruleId"], f.rule);
        assert_eq!(rules[result["ruleIndex"].as_u64().unwrap() as usize]["id"], f.rule);
        assert_eq!(result["level"], f.severity.as_str());
        assert_eq!(result["message"]["text"], f.message.as_str());
        assert_eq!(result["partialFingerprints"][FINGERPRINT_KEY], f.fingerprint.as_str());
        let loc = &result["locations"][0]["physicalLocation"];
        assert_eq!(loc["artifactLocation"]["uri"], f.file.as_str());
        assert_eq!(loc["artifactLocation"]["uriBaseId"], "SRCROOT");
        assert_eq!(loc["region"]["startLine"], f.line);
        assert_eq!(loc["region"]["startColumn"], f.col);
        let flow = result["codeFlows"][0]["threadFlows"][0]["locations"].as_array().expect("codeFlows present");
        assert_eq!(flow.len(), f.evidence.len());
        for (tfl, step) in flow.iter().zip(&f.evidence) {
            let msg = tfl["location"]["message"]["text"].as_str().unwrap();
            assert!(msg.contains(&step.function) && msg.contains(&format!("[{}]", step.context)), "{msg}");
            assert_eq!(tfl["location"]["physicalLocation"]["region"]["startLine"], step.line);
        }
        assert!(flow[0]["location"]["message"]["text"].as_str().unwrap().starts_with("root: "));
        let related = result["relatedLocations"].as_array().unwrap();
        assert_eq!(related.len(), f.related.len());
        assert_eq!(related[0]["message"]["text"], f.related[0].message.as_str());
    }
    let notes = runs[0]["invocations"][0]["toolExecutionNotifications"].as_array().unwrap();
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0]["level"], "warning");
}

#[test]
fn json_structure() {
    let report = report();
    let json: Value = serde_json::from_str(&render_json(&report)).unwrap();
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(json["version"], 1);
    assert_eq!(json["tool"], "kvmtk");
    let mut top = keys(&json);
    top.sort();
    assert_eq!(top, ["arches", "findings", "statistics", "tool", "tree", "version", "warnings"]);
    // Statistics come last (a key added at the end keeps schema version 1).
    let text = render_json(&report);
    let at = |key: &str| text.find(&format!("\n  \"{key}\": ")).unwrap();
    assert!(at("warnings") < at("statistics") && text.ends_with("  ]\n}\n"), "{text}");
    let lock_order = &json["statistics"][0]["lock_order"];
    assert_eq!(json["statistics"][0]["arch"], "x86");
    assert_eq!(lock_order["unknown_classes"], 2);
    assert_eq!(lock_order["unresolved_work_waits"], 1);
    assert_eq!(lock_order["cycle_search_cut"], false);
    assert_eq!(lock_order["unresolved_thread_waits"], 0);
    let f = &json["findings"][0];
    let mut fk = keys(f);
    fk.sort();
    assert_eq!(
        fk,
        [
            "arch",
            "col",
            "evidence",
            "file",
            "fingerprint",
            "function",
            "line",
            "message",
            "name",
            "related",
            "rule",
            "severity",
            "symbols"
        ]
    );
    let mut sk = keys(&f["evidence"][0]);
    sk.sort();
    assert_eq!(sk, ["col", "context", "file", "function", "held", "line", "may_held", "serialized_by", "via"]);
    assert_eq!(f["evidence"][0]["via"], Value::Null);
    assert_eq!(f["evidence"][4]["via"], "on_each_cpu(hardware_enable_nolock)");
    assert_eq!(json["warnings"][0]["line"], 88);
    // Key order is the documented one, not alphabetical.
    let text = render_json(&report);
    let in_order = |keys: &[&str]| {
        let at: Vec<usize> = keys.iter().map(|k| text.find(&format!("\"{k}\": ")).unwrap()).collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "{keys:?} out of order");
    };
    in_order(&["version", "tool", "tree", "arches", "findings"]);
    in_order(&[
        "rule",
        "name",
        "severity",
        "arch",
        "file",
        "line",
        "col",
        "function",
        "message",
        "evidence",
        "context",
        "held",
        "may_held",
        "serialized_by",
        "via",
        "related",
        "symbols",
        "fingerprint",
        "warnings",
    ]);
    assert!(text.ends_with("}\n"));
}

#[test]
fn text_structure() {
    let text = render_text(&report());
    let lines: Vec<&str> = text.lines().collect();
    // The input warning is not here: it goes to standard error.
    assert!(!text.contains("arch/arm64/kvm/arm.c:88"), "{text}");
    assert!(lines[0].starts_with("arch/x86/kvm/x86.c:12201:2: warning: `vm_list` walked"));
    assert!(lines[0].ends_with(" [HW001 unguarded-list-walk]"));
    assert!(lines[1].starts_with("virt/kvm/kvm_main.c:5032:9: note: root: [ioctl] kvm_dev_ioctl"));
    assert_eq!(lines[lines.len() - 2], "by rule: HW001 unguarded-list-walk 1, HW007 sleep-in-atomic 1");
    assert_eq!(
        *lines.last().unwrap(),
        "2 findings (1 error, 1 warning, 0 notes) in arches x86, arm64; 1 input warning"
    );
    assert!(!text.contains('\x1b'), "no colour codes");
    // Every line but the two summaries is `path:line[:col]: severity: ...`.
    for line in &lines[..lines.len() - 2] {
        let rest = line.split_once(": ").unwrap().1;
        assert!(["note: ", "warning: ", "error: "].iter().any(|s| rest.starts_with(s)), "{line}");
    }
}

#[test]
fn text_without_findings() {
    let empty = CheckReport {
        tree: "t".into(),
        arches: strings(&["x86"]),
        findings: vec![],
        warnings: vec![],
        statistics: vec![],
    };
    assert_eq!(render_text(&empty), "0 findings (0 errors, 0 warnings, 0 notes) in arch x86\n");
    assert_eq!(render_github(&empty), "");
    let json: Value = serde_json::from_str(&render_json(&empty)).unwrap();
    assert_eq!(json["findings"], serde_json::json!([]));
    let sarif: Value = serde_json::from_str(&render_sarif(&empty)).unwrap();
    assert_eq!(sarif["runs"][0]["results"], serde_json::json!([]));
}

#[test]
fn github_escaping() {
    let mut r = report();
    r.findings[0].message = "50% of `a, b`: one\r\ntwo".into();
    r.findings[0].file = "arch/x86/kvm/a,b:c.c".into();
    r.warnings[0].path = String::new();
    r.warnings[0].line = None;
    let out = render_github(&r);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "one line per annotation:\n{out}");
    assert_eq!(
        lines[2],
        "::notice title=kvmtk input::1 input warning (what they name was skipped, the rest analyzed):\
         %0Akvmtk: warning: unbalanced `#ifdef CONFIG_KVM` (the rest is analyzed)"
    );
    assert!(
        lines[0].starts_with(
            "::warning file=arch/x86/kvm/a%2Cb%3Ac.c,line=12201,col=2,title=HW001 unguarded-list-walk::\
             50%25 of `a, b`: one%0D%0Atwo%0Achain: [ioctl] kvm_dev_ioctl -> kvm_dev_ioctl_create_vm -> \
             kvm_create_vm -> hardware_enable_all -> [ipi] hardware_enable_nolock -> kvm_arch_hardware_enable%0A\
             related: virt/kvm/kvm_main.c:1210:2: "
        ),
        "{}",
        lines[0]
    );
    assert!(lines[1].starts_with("::error file=virt/kvm/kvm_main.c,line=5071,col=2,title=HW007 sleep-in-atomic::"));
    assert_eq!(
        lines[3],
        "::notice title=kvmtk summary::2 findings (1 error, 1 warning, 0 notes); \
         by rule: HW001 unguarded-list-walk 1, HW007 sleep-in-atomic 1"
    );
    // Only the command separator `::` after the properties; none in the data.
    for line in &lines {
        let (_, data) = line[2..].split_once("::").unwrap();
        assert!(!data.contains('\n') && !data.contains('\r'));
    }
}

#[test]
fn github_notice_for_notes() {
    let mut r = report();
    r.findings.truncate(1);
    r.findings[0].severity = Severity::Note;
    assert!(render_github(&r).lines().next().unwrap().starts_with("::notice file="));
}

#[test]
fn exit_codes() {
    let r = report(); // one warning, one error
    assert_eq!(exit_code(&r, Severity::Note), 1);
    assert_eq!(exit_code(&r, Severity::Warning), 1);
    assert_eq!(exit_code(&r, Severity::Error), 1);
    let mut warn_only = report();
    warn_only.findings.retain(|f| f.severity == Severity::Warning);
    assert_eq!(exit_code(&warn_only, Severity::Error), 0);
    assert_eq!(exit_code(&warn_only, Severity::Warning), 1);
    let mut notes = report();
    for f in &mut notes.findings {
        f.severity = Severity::Note;
    }
    assert_eq!(exit_code(&notes, Severity::Warning), 0);
    assert_eq!(exit_code(&notes, Severity::Note), 1);
    let none = CheckReport { findings: vec![], ..report() };
    assert_eq!(exit_code(&none, Severity::Note), 0, "input warnings never fail the check");
}

/// Standard error: the lock-order statistics with `--verbose` only, after
/// the input warnings; a cut cycle search is a warning either way.
#[test]
fn lock_order_statistics_on_stderr() {
    let opts = RenderOptions::default();
    let quiet = render_warnings(&report(), false, &opts);
    assert!(!quiet.contains("lock order"), "{quiet}");
    let verbose = render_warnings(&report(), true, &opts);
    let lines: Vec<&str> = verbose.lines().collect();
    assert!(lines[0].starts_with("arch/arm64/kvm/arm.c:88: warning: "), "{verbose}");
    assert_eq!(
        lines[1],
        "kvmtk: lock order, x86: 48 edges over 31 classes (2 unknown, each kept apart); \
         waits with no known target (no edge): 0 completion waits, 1 work flush, 0 thread stops"
    );
    // An arch whose every lock and wait was resolved says nothing.
    let mut resolved = report();
    resolved.warnings.clear();
    resolved.statistics[0].lock_order.unknown_classes = 0;
    resolved.statistics[0].lock_order.unresolved_work_waits = 0;
    assert_eq!(render_warnings(&resolved, true, &opts), "");
    let mut cut = report();
    cut.warnings.clear();
    cut.statistics[0].lock_order.cycle_search_cut = true;
    assert_eq!(
        render_warnings(&cut, false, &opts),
        "kvmtk: warning: lock order, x86: the cycle search hit its step budget; HW014 cycles may be missing\n"
    );
}
