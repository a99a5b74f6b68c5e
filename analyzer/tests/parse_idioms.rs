//! The parser on small kernel-style snippets: each idiom, its exact
//! facts and exact byte offsets into the original text.

mod parse_common;

use analyzer::facts::*;
use analyzer::parse::{parse_file, parse_file_with, recover_idioms, ParseOptions};
use parse_common::{calls, events, visit_stmts};

fn parse(src: &str) -> FileFacts {
    let f = parse_file("t.c", None, src.as_bytes());
    assert!(f.diagnostics.is_empty(), "unexpected diagnostics: {:?}", f.diagnostics);
    f
}

fn at(src: &str, s: Span) -> &str {
    &src[s.start as usize..s.end as usize]
}

fn func<'a>(f: &'a FileFacts, name: &str) -> &'a Function {
    f.functions.iter().find(|x| x.name == name).unwrap_or_else(|| panic!("no {name}"))
}

fn loops(b: &Block) -> Vec<&Stmt> {
    let mut v = Vec::new();
    visit_stmts(b, &mut |s| {
        if matches!(s, Stmt::Loop { .. }) {
            v.push(s)
        }
    });
    v
}

#[test]
fn masking_keeps_length_and_offsets() {
    let src = "static __init int f(void)\n{\n\tfor_each_online_cpu(cpu)\n\t\tg(cpu);\n}\n";
    let m = recover_idioms(src.as_bytes());
    assert_eq!(m.bytes.len(), src.len());
    let masked = String::from_utf8(m.bytes.clone()).unwrap();
    assert!(masked.contains("\twhile              (cpu)"), "{masked}");
    assert!(masked.starts_with("static        int f(void)"), "{masked}");
}

#[test]
fn iterator_macro_with_block() {
    let src = "\
int kvm_sync_all(void)
{
	struct kvm *kvm;

	list_for_each_entry(kvm, &vm_list, vm_list) {
		kvm_sync_one(kvm);
	}
	return 0;
}
";
    let f = parse(src);
    let fun = func(&f, "kvm_sync_all");
    let l = loops(&fun.body);
    assert_eq!(l.len(), 1);
    let Stmt::Loop { span, kind: LoopKind::Iterator { macro_name, args }, head, body } = l[0] else {
        panic!("{:?}", l[0])
    };
    assert_eq!(macro_name, "list_for_each_entry");
    assert!(at(src, *span).starts_with("list_for_each_entry(kvm, &vm_list, vm_list) {"));
    assert!(at(src, *span).ends_with('}'));
    let texts: Vec<_> = args.iter().map(|a| a.text.as_str()).collect();
    assert_eq!(texts, ["kvm", "&vm_list", "vm_list"]);
    assert_eq!(at(src, args[1].span), "&vm_list");
    assert_eq!(args[1].ident.as_deref(), Some("vm_list"));
    assert!(args[1].address_of);
    // `kvm` is a local; the member name is not an access.
    assert_eq!(
        head,
        &vec![Event::Access(Access {
            name: "vm_list".into(),
            span: args[1].span.with_offset(1),
            kind: AccessKind::AddressOf
        })]
    );
    let c = calls(body);
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].callee, Callee::Direct("kvm_sync_one".into()));
}

trait SpanExt {
    fn with_offset(self, n: u32) -> Span;
}
impl SpanExt for Span {
    fn with_offset(self, n: u32) -> Span {
        Span { start: self.start + n, col: self.col + n, ..self }
    }
}

#[test]
fn iterator_macro_with_single_statement() {
    let src = "\
static void fixup_all(void)
{
	int cpu;

	for_each_online_cpu(cpu)
		per_cpu_fixup(cpu);
	if (x)
		for_each_cpu(cpu, mask) per_cpu_fixup(cpu);
	done();
}
";
    let f = parse(src);
    let fun = func(&f, "fixup_all");
    let l = loops(&fun.body);
    assert_eq!(l.len(), 2);
    let Stmt::Loop { kind: LoopKind::Iterator { macro_name, args }, body, .. } = l[0] else { panic!() };
    assert_eq!(macro_name, "for_each_online_cpu");
    assert_eq!(args.len(), 1);
    assert_eq!(body.stmts.len(), 1);
    assert_eq!(calls(body)[0].callee, Callee::Direct("per_cpu_fixup".into()));
    let Stmt::Loop { kind: LoopKind::Iterator { macro_name, .. }, .. } = l[1] else { panic!() };
    assert_eq!(macro_name, "for_each_cpu");
    // `done()` stays outside the loops, in order.
    let names: Vec<_> = calls(&fun.body).iter().map(|c| c.callee.display()).collect();
    assert_eq!(names, ["per_cpu_fixup", "per_cpu_fixup", "done"]);
    let last = fun.body.stmts.last().unwrap();
    assert!(matches!(last, Stmt::Simple { .. }));
}

#[test]
fn short_iterator_name_still_a_loop() {
    let src = "void f(void)\n{\n\tfoo(a, b) {\n\t\tbar(a);\n\t}\n}\n";
    let f = parse(src);
    let l = loops(&func(&f, "f").body);
    let Stmt::Loop { kind: LoopKind::Iterator { macro_name, args }, .. } = l[0] else { panic!() };
    assert_eq!(macro_name, "foo");
    assert_eq!(args.len(), 2);
}

#[test]
fn guard_and_scoped_guard() {
    let src = "\
static int enable_all(void)
{
	guard(mutex)(&kvm_usage_lock);

	scoped_guard(spinlock_irqsave, &kvm->lock) {
		kvm_usage_count++;
	}
	return 0;
}
";
    let f = parse(src);
    let fun = func(&f, "enable_all");
    let c = calls(&fun.body);
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].callee, Callee::Direct("guard".into()));
    assert_eq!(at(src, c[0].callee_span), "guard(mutex)");
    assert_eq!(at(src, c[0].span), "guard(mutex)(&kvm_usage_lock)");
    let a: Vec<_> = c[0].args.iter().map(|a| (a.text.as_str(), a.ident.as_deref(), a.address_of)).collect();
    assert_eq!(a, [("mutex", Some("mutex"), false), ("&kvm_usage_lock", Some("kvm_usage_lock"), true)]);
    let Stmt::ScopedGuard { guard_type, args, body, span } = &fun.body.stmts[1] else {
        panic!("{:?}", fun.body.stmts[1])
    };
    assert_eq!(guard_type, "spinlock_irqsave");
    assert_eq!(args.len(), 1);
    assert_eq!(args[0].ident.as_deref(), Some("kvm->lock"));
    assert!(at(src, *span).starts_with("scoped_guard("));
    let ev = events(body);
    assert!(matches!(ev[0], Event::Access(Access { name, kind: AccessKind::Write, .. }) if name == "kvm_usage_count"));
}

#[test]
fn annotations_become_attributes() {
    let src = "\
int __weak kvm_arch_hook(struct kvm *kvm)
{
	return 0;
}

static int __init vmx_setup(void)
{
	return 0;
}

static void __exit vmx_teardown(void) { }

noinstr void enter_guest(struct kvm_vcpu __user *v) { }

static __always_inline bool is_on(void) { return true; }

__visible bool kvm_rebooting;
struct kvm_x86_ops kvm_x86_ops __read_mostly;
void cleanup(void) __releases(kvm_lock);
";
    let f = parse(src);
    let hook = func(&f, "kvm_arch_hook");
    assert!(hook.is_weak());
    assert_eq!(at(src, hook.span).lines().next(), Some("int __weak kvm_arch_hook(struct kvm *kvm)"));
    assert_eq!(at(src, hook.name_span), "kvm_arch_hook");
    assert_eq!(hook.return_type, "int");
    assert_eq!(hook.params, [Param { name: "kvm".into(), type_text: "struct kvm *".into() }]);
    let setup = func(&f, "vmx_setup");
    assert!(setup.is_init() && setup.is_static);
    assert_eq!(func(&f, "vmx_teardown").attributes, ["__exit"]);
    let enter = func(&f, "enter_guest");
    assert_eq!(enter.attributes, ["noinstr"]);
    assert!(at(src, enter.span).starts_with("noinstr void"));
    assert_eq!(enter.params[0].type_text, "struct kvm_vcpu __user *");
    let on = func(&f, "is_on");
    assert!(on.is_inline && on.attributes == ["__always_inline"]);
    let g = f.globals.iter().find(|g| g.name == "kvm_rebooting").unwrap();
    assert_eq!((g.type_text.as_str(), g.attributes.as_slice()), ("bool", &["__visible".to_string()][..]));
    assert!(at(src, g.span).starts_with("__visible bool"));
    let g = f.globals.iter().find(|g| g.name == "kvm_x86_ops").unwrap();
    assert_eq!(g.type_text, "struct kvm_x86_ops");
    assert_eq!(g.attributes, ["__read_mostly"]);
    let p = f.prototypes.iter().find(|p| p.name == "cleanup").unwrap();
    assert_eq!(p.attributes, ["__releases(kvm_lock)"]);
}

#[test]
fn defining_macros_are_globals() {
    let src = "\
DEFINE_MUTEX(kvm_lock);
static DEFINE_RAW_SPINLOCK(kvm_count_lock);
static DEFINE_SPINLOCK(irq_lock);
LIST_HEAD(vm_list);
static DECLARE_RWSEM(slots_sem);
static DEFINE_PER_CPU(bool, hw_enabled);
DEFINE_PER_CPU_ALIGNED(struct kvm_vcpu *, current_vcpu);
DEFINE_STATIC_KEY_FALSE(kvm_has_noapic_vcpu);
DEFINE_SRCU(kvm_srcu);
static cpumask_var_t cpus_enabled;
static atomic_t hw_failed;
static int usage_count;
";
    let f = parse(src);
    let get = |n: &str| f.globals.iter().find(|g| g.name == n).unwrap_or_else(|| panic!("no {n}"));
    let cases = [
        ("kvm_lock", Some("DEFINE_MUTEX"), "struct mutex", false),
        ("kvm_count_lock", Some("DEFINE_RAW_SPINLOCK"), "raw_spinlock_t", true),
        ("irq_lock", Some("DEFINE_SPINLOCK"), "spinlock_t", true),
        ("vm_list", Some("LIST_HEAD"), "struct list_head", false),
        ("slots_sem", Some("DECLARE_RWSEM"), "struct rw_semaphore", true),
        ("hw_enabled", Some("DEFINE_PER_CPU"), "bool", true),
        ("current_vcpu", Some("DEFINE_PER_CPU_ALIGNED"), "struct kvm_vcpu *", false),
        ("kvm_has_noapic_vcpu", Some("DEFINE_STATIC_KEY_FALSE"), "struct static_key_false", false),
        ("kvm_srcu", Some("DEFINE_SRCU"), "struct srcu_struct", false),
        ("cpus_enabled", None, "cpumask_var_t", true),
        ("hw_failed", None, "atomic_t", true),
        ("usage_count", None, "int", true),
    ];
    for (name, mac, ty, st) in cases {
        let g = get(name);
        assert_eq!(g.define_macro.as_deref(), mac, "{name}");
        assert_eq!(g.type_text, ty, "{name}");
        assert_eq!(g.is_static, st, "{name}");
        assert_eq!(at(src, g.name_span), name);
        assert!(at(src, g.span).ends_with(';'), "{name}: {:?}", at(src, g.span));
    }
    assert_eq!(at(src, get("kvm_count_lock").span), "static DEFINE_RAW_SPINLOCK(kvm_count_lock);");
    assert_eq!(f.globals.len(), cases.len());
    assert!(f.top_level_macros.is_empty());
}

#[test]
fn top_level_macros() {
    let src = "\
static int __init vmx_init(void) { return 0; }
module_init(vmx_init);
EXPORT_SYMBOL_GPL(kvm_rebooting);
module_param(enable_vpid, bool, 0444);
KVM_X86_OP(hardware_enable)
KVM_X86_OP(hardware_disable)
";
    let f = parse(src);
    let names: Vec<_> = f.top_level_macros.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["module_init", "EXPORT_SYMBOL_GPL", "module_param", "KVM_X86_OP", "KVM_X86_OP"]);
    let mi = &f.top_level_macros[0];
    assert_eq!(at(src, mi.span), "module_init(vmx_init);");
    assert_eq!(mi.args[0].ident.as_deref(), Some("vmx_init"));
    assert_eq!(at(src, mi.args[0].span), "vmx_init");
    let mp = &f.top_level_macros[2];
    assert_eq!(mp.args.iter().map(|a| a.text.as_str()).collect::<Vec<_>>(), ["enable_vpid", "bool", "0444"]);
    assert_eq!(at(src, f.top_level_macros[4].span), "KVM_X86_OP(hardware_disable)");
    assert_eq!(f.functions.len(), 1);
}

#[test]
fn calls_through_static_calls_and_ops() {
    let src = "\
int kvm_arch_enable(void)
{
	int r;

	r = static_call(kvm_x86_hardware_enable)();
	kvm_x86_call(enable_virtualization_cpu)();
	static_call_cond(kvm_x86_vcpu_blocking)(vcpu);
	kvm_x86_ops.hardware_enable();
	kvm_mips_callbacks->hardware_enable(vcpu, 1);
	(*handler)(vcpu);
	return r;
}
";
    let f = parse(src);
    let c = calls(&func(&f, "kvm_arch_enable").body);
    let callees: Vec<_> = c.iter().map(|c| c.callee.clone()).collect();
    assert_eq!(
        callees,
        [
            Callee::StaticCall { key: "kvm_x86_hardware_enable".into(), via_macro: None },
            Callee::StaticCall { key: "enable_virtualization_cpu".into(), via_macro: Some("kvm_x86_call".into()) },
            Callee::StaticCall { key: "kvm_x86_vcpu_blocking".into(), via_macro: None },
            Callee::OpsMember { base: "kvm_x86_ops".into(), field: "hardware_enable".into() },
            Callee::OpsMember { base: "kvm_mips_callbacks".into(), field: "hardware_enable".into() },
            Callee::Indirect("(*handler)".into()),
        ]
    );
    assert_eq!(at(src, c[0].callee_span), "static_call(kvm_x86_hardware_enable)");
    assert_eq!(c[4].args.len(), 2);
    // r = static_call(...)() is a LocalAssign with the call as value.
    let ev = events(&func(&f, "kvm_arch_enable").body);
    let la = ev
        .iter()
        .find_map(|e| match e {
            Event::LocalAssign(l) => Some(l),
            _ => None,
        })
        .unwrap();
    assert_eq!(la.name, "r");
    assert_eq!(la.value_call.as_deref(), Some("static_call(kvm_x86_hardware_enable)"));
}

#[test]
fn accesses_locals_and_assignments() {
    let src = "\
static void hardware_enable_nolock(void *junk)
{
	int cpu = raw_smp_processor_id();
	int r;

	if (cpumask_test_cpu(cpu, cpus_hardware_enabled))
		return;
	kvm_usage_count++;
	hw_count += 2;
	r = kvm_arch_hardware_enable();
	kvm_preempt_ops.sched_in = kvm_sched_in;
	on_each_cpu(hardware_enable_nolock, NULL, 1);
	atomic_inc(&hardware_enable_failed);
}
";
    let f = parse(src);
    let fun = func(&f, "hardware_enable_nolock");
    let ev = events(&fun.body);
    let la: Vec<_> = ev
        .iter()
        .filter_map(|e| match e {
            Event::LocalAssign(l) => Some((l.name.as_str(), l.value_call.as_deref())),
            _ => None,
        })
        .collect();
    assert_eq!(la, [("cpu", Some("raw_smp_processor_id")), ("r", Some("kvm_arch_hardware_enable"))]);
    let acc: Vec<_> = ev
        .iter()
        .filter_map(|e| match e {
            Event::Access(a) => Some((a.name.as_str(), a.kind)),
            _ => None,
        })
        .collect();
    assert_eq!(
        acc,
        [
            ("cpus_hardware_enabled", AccessKind::Read),
            ("kvm_usage_count", AccessKind::Write),
            ("hw_count", AccessKind::Write),
            ("kvm_sched_in", AccessKind::Read),
            ("kvm_preempt_ops", AccessKind::Write),
            ("hardware_enable_nolock", AccessKind::Read),
            ("hardware_enable_failed", AccessKind::AddressOf),
        ]
    );
    let fa = ev
        .iter()
        .find_map(|e| match e {
            Event::FieldAssign(f) => Some(f),
            _ => None,
        })
        .unwrap();
    assert_eq!((fa.base.as_str(), fa.field.as_str()), ("kvm_preempt_ops", "sched_in"));
    assert_eq!(fa.value_ident.as_deref(), Some("kvm_sched_in"));
    let Stmt::If { cond_text, then_branch, .. } = &fun.body.stmts[2] else { panic!() };
    assert_eq!(cond_text, "cpumask_test_cpu(cpu, cpus_hardware_enabled)");
    assert!(matches!(then_branch.stmts[0], Stmt::Return { .. }));
    let oe = calls(&fun.body).into_iter().find(|c| c.callee.display() == "on_each_cpu").unwrap();
    assert_eq!(oe.args[0].ident.as_deref(), Some("hardware_enable_nolock"));
    assert_eq!(oe.args[1].ident, None);
}

#[test]
fn preprocessor_inside_and_around_functions() {
    let src = "\
#ifdef CONFIG_KVM_GENERIC_HARDWARE_ENABLING
static int enable(void)
{
#ifdef CONFIG_X86_64
	long_mode_setup();
#else
	legacy_setup();
#endif
	return 0;
}
#else
static int enable(void) { return 0; }
#endif

#if defined(CONFIG_A) && !defined(CONFIG_B)
int only_a(void) { return 1; }
#elif IS_ENABLED(CONFIG_C)
int only_c(void) { return 2; }
#endif

#ifndef CONFIG_D
int no_d(void) { return 3; }
#endif
";
    let f = parse(src);
    let en: Vec<_> = f.functions.iter().filter(|x| x.name == "enable").collect();
    assert_eq!(en.len(), 2);
    assert_eq!(en[0].condition, ["CONFIG_KVM_GENERIC_HARDWARE_ENABLING"]);
    assert_eq!(en[1].condition, ["!CONFIG_KVM_GENERIC_HARDWARE_ENABLING"]);
    let Stmt::Preproc { branches, .. } = &en[0].body.stmts[0] else { panic!("{:?}", en[0].body.stmts) };
    assert_eq!(branches.len(), 2);
    assert_eq!(branches[0].condition, "CONFIG_X86_64");
    assert_eq!(branches[1].condition, "else");
    assert_eq!(calls(&branches[0].body)[0].callee.display(), "long_mode_setup");
    let c1 = calls(&branches[1].body)[0];
    assert_eq!(c1.callee.display(), "legacy_setup");
    assert_eq!(c1.condition, ["!CONFIG_X86_64"]);
    assert_eq!(func(&f, "only_a").condition, ["defined(CONFIG_A) && !defined(CONFIG_B)"]);
    assert_eq!(func(&f, "only_c").condition, ["!(defined(CONFIG_A) && !defined(CONFIG_B))", "IS_ENABLED(CONFIG_C)"]);
    assert_eq!(func(&f, "no_d").condition, ["!CONFIG_D"]);
}

#[test]
fn split_if_else_across_ifdef() {
    let src = "\
static void *map(u64 pfn)
{
	void *hva = NULL;

	if (pfn_valid(pfn)) {
		hva = kmap(pfn);
#ifdef CONFIG_HAS_IOMEM
	} else {
		hva = memremap(pfn);
#endif
	}
	if (a ||
#ifdef CONFIG_SMM
	    b ||
#endif
	    c)
		return hva;
	return NULL;
}
";
    let f = parse(src);
    let fun = func(&f, "map");
    let c: Vec<_> = calls(&fun.body).iter().map(|c| (c.callee.display(), c.condition.clone())).collect();
    assert_eq!(
        c,
        [
            ("pfn_valid".to_string(), vec![]),
            ("kmap".to_string(), vec![]),
            ("memremap".to_string(), vec!["CONFIG_HAS_IOMEM".to_string()]),
        ]
    );
}

#[test]
fn designated_initializers() {
    let src = "\
static struct syscore_ops kvm_syscore_ops = {
	.suspend = kvm_suspend,
	.resume = kvm_resume,
};

static struct kvm_x86_init_ops vmx_init_ops __initdata = {
	.hardware_setup = hardware_setup,
	.runtime_ops = &vmx_x86_ops,
	.pmu_ops = &(struct kvm_pmu_ops){ .refresh = intel_refresh },
	.limits = { .max = 4 },
#ifdef CONFIG_X86_64
	.wide = true,
#endif
};

static const struct file_operations fops[] = {
	{ .open = a_open },
	{ .open = b_open },
};
";
    let f = parse(src);
    let get = |n: &str| f.initializers.iter().find(|i| i.var_name == n).unwrap_or_else(|| panic!("no {n}"));
    let s = get("kvm_syscore_ops");
    assert_eq!(s.struct_type, "syscore_ops");
    let fl: Vec<_> = s.fields.iter().map(|b| (b.field.as_str(), b.value_ident.as_deref())).collect();
    assert_eq!(fl, [("suspend", Some("kvm_suspend")), ("resume", Some("kvm_resume"))]);
    assert_eq!(at(src, s.fields[0].span), ".suspend = kvm_suspend");
    let v = get("vmx_init_ops");
    let rt = v.fields.iter().find(|b| b.field == "runtime_ops").unwrap();
    assert_eq!((rt.value_text.as_str(), rt.value_ident.as_deref()), ("&vmx_x86_ops", Some("vmx_x86_ops")));
    let wide = v.fields.iter().find(|b| b.field == "wide").unwrap();
    assert_eq!(wide.condition, ["CONFIG_X86_64"]);
    let pmu = get("vmx_init_ops.pmu_ops");
    assert_eq!(pmu.struct_type, "kvm_pmu_ops");
    assert_eq!(pmu.fields[0].value_ident.as_deref(), Some("intel_refresh"));
    assert_eq!(get("vmx_init_ops.limits").fields[0].field, "max");
    assert_eq!(get("fops[1]").fields[0].value_ident.as_deref(), Some("b_open"));
    assert_eq!(get("fops[0]").struct_type, "file_operations");
    let g = f.globals.iter().find(|g| g.name == "vmx_init_ops").unwrap();
    assert_eq!(g.attributes, ["__initdata"]);
}

#[test]
fn goto_labels_switch() {
    let src = "\
int create(int type)
{
	int r;

	switch (type) {
	case 1:
	case 2 ... 4:
		r = setup();
		break;
	default:
		goto out;
	}
	if (r)
		goto out_err;
	return 0;
out_err:
	undo();
out:
#ifdef CONFIG_X
	extra();
#endif
	return r;
}
";
    let f = parse(src);
    let fun = func(&f, "create");
    let Stmt::Switch { body, .. } = &fun.body.stmts[1] else { panic!() };
    let kinds: Vec<_> = body
        .stmts
        .iter()
        .map(|s| match s {
            Stmt::Case { span } => format!("case:{}", at(src, *span)),
            Stmt::Simple { .. } => "simple".into(),
            Stmt::Break { .. } => "break".into(),
            Stmt::Goto { label, .. } => format!("goto {label}"),
            o => format!("{o:?}"),
        })
        .collect();
    assert_eq!(kinds, ["case:case 1:", "case:case 2 ... 4:", "simple", "break", "case:default:", "goto out"]);
    let labels: Vec<_> = fun
        .body
        .stmts
        .iter()
        .filter_map(|s| match s {
            Stmt::Label { name, span } => Some((name.as_str(), at(src, *span))),
            _ => None,
        })
        .collect();
    assert_eq!(labels, [("out_err", "out_err"), ("out", "out")]);
    assert!(fun.body.stmts.iter().any(|s| matches!(s, Stmt::Preproc { .. })));
}

#[test]
fn enums_with_values() {
    let src = "\
enum cpuhp_state {
	CPUHP_INVALID = -1,
	CPUHP_OFFLINE = 0,
	CPUHP_AP_KVM_STARTING,
#ifdef CONFIG_X
	CPUHP_AP_X,
#endif
	CPUHP_AP_ONLINE,
	CPUHP_AP_ONLINE_DYN,
	CPUHP_AP_ONLINE_DYN_END = CPUHP_AP_ONLINE_DYN + 30,
};
";
    let f = parse(src);
    let e = &f.enums[0];
    assert_eq!(e.name, "cpuhp_state");
    let names: Vec<_> = e.enumerators.iter().map(|x| x.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "CPUHP_INVALID",
            "CPUHP_OFFLINE",
            "CPUHP_AP_KVM_STARTING",
            "CPUHP_AP_X",
            "CPUHP_AP_ONLINE",
            "CPUHP_AP_ONLINE_DYN",
            "CPUHP_AP_ONLINE_DYN_END"
        ]
    );
    assert_eq!(e.enumerators[0].value_text.as_deref(), Some("-1"));
    assert_eq!(e.enumerators[6].value_text.as_deref(), Some("CPUHP_AP_ONLINE_DYN + 30"));
    assert_eq!(e.enumerators[3].condition, ["CONFIG_X"]);
}

#[test]
fn crlf_spans_are_exact() {
    let src = "static DEFINE_MUTEX(lock_a);\r\nint f(void)\r\n{\r\n\tlist_for_each_entry(p, &head, node) {\r\n\t\tg(p);\r\n\t}\r\n\treturn 0;\r\n}\r\n";
    let f = parse(src);
    let fun = func(&f, "f");
    assert_eq!(at(src, fun.name_span), "f");
    assert_eq!(fun.name_span.line, 2);
    let c = calls(&fun.body);
    assert_eq!(at(src, c[0].span), "g(p)");
    assert_eq!((c[0].span.line, c[0].span.col), (5, 3));
    assert_eq!(at(src, f.globals[0].name_span), "lock_a");
}

#[test]
fn measured_variant_counts_plain_errors() {
    let src = "static DEFINE_PER_CPU(bool, x);\nint __weak f(void)\n{\n\tfor_each_online_cpu(cpu) {\n\t\tg();\n\t}\n\treturn 0;\n}\n";
    let f = parse_file_with("t.c", Some("x86"), src.as_bytes(), ParseOptions { measure_plain: true });
    assert!(f.parse_quality.error_nodes_plain > 0);
    assert_eq!(f.parse_quality.error_nodes_recovered, 0);
    assert_eq!(f.arch.as_deref(), Some("x86"));
}

#[test]
fn remaining_errors_are_diagnosed_and_rest_extracted() {
    let src = "int ok1(void) { return 1; }\nint broken(void) { x = = ; }\nint ok2(void) { return 2; }\n";
    let f = parse_file("t.c", None, src.as_bytes());
    assert!(!f.diagnostics.is_empty());
    assert_eq!(f.diagnostics[0].span.line, 2);
    assert!(f.parse_quality.error_nodes_recovered > 0);
    assert!(f.functions.iter().any(|x| x.name == "ok1"));
    assert!(f.functions.iter().any(|x| x.name == "ok2"));
}
