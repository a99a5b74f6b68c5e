// vm_list walks outside kvm_lock (the intra-procedural core of kvmtk's
// HW001 unguarded-list-walk), for bench/run.sh's side-by-side with kvmtk.
//
// Reports every list_for_each_entry(..., &vm_list, ...) whose function does
// not take kvm_lock before it on some path (mutex_lock(&kvm_lock) with no
// mutex_unlock(&kvm_lock) in between). Intra-procedural only: a lock held
// by the caller is not seen, which kvmtk's contexts analysis does see.
//
//   spatch --sp-file bench/vm_list_walk.cocci --dir TREE -j 2 --no-includes --very-quiet
//
// Output: one `file:line:col: function: vm_list walk without kvm_lock` line
// per walk (python scripting), sorted by the caller if needed.

@locked exists@
iterator name list_for_each_entry;
symbol kvm_lock, vm_list;
expression e1, e2;
statement S;
position p;
@@
mutex_lock(&kvm_lock);
... when != mutex_unlock(&kvm_lock)
    when any
list_for_each_entry@p(e1, &vm_list, e2) S

@unlocked@
iterator name list_for_each_entry;
symbol vm_list;
expression e1, e2;
statement S;
position p != locked.p;
identifier fn;
@@
fn(...) {
<+...
list_for_each_entry@p(e1, &vm_list, e2) S
...+>
}

@script:python depends on unlocked@
p << unlocked.p;
fn << unlocked.fn;
@@
print("%s:%s:%d: %s: vm_list walk without kvm_lock" % (p[0].file, p[0].line, int(p[0].column) + 1, fn))
