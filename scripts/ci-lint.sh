#!/usr/bin/env bash
# Lint the commits of a pull request (merge request) with kvmtk: the steps
# that docs/ci-lint.yml (GitHub Actions) and docs/ci-lint.gitlab-ci.yml
# (GitLab CI) run, as one script so that they run, and are tested
# (tests/ci_lint_script.rs), the same everywhere.
#
#   scripts/ci-lint.sh BASE HEAD
#
# BASE is the target branch's commit, HEAD the last commit to lint; run it in
# the repository's work tree. It
#   1. makes sure the clone holds HEAD, BASE and their merge base, fetching
#      them from $KVMTK_REMOTE (shallow clones are deepened, a few commits at
#      a time, never to the whole history); it fails with exit 2 and says so
#      when they cannot be had;
#   2. lints every commit from the merge base to HEAD against its parent
#      (only what a commit introduces is reported), printing GitHub
#      annotations (github) or the text report (gitlab, plain) to the log;
#   3. writes the new findings as SARIF ($KVMTK_OUT/kvmtk.sarif) and, on
#      GitLab, as a Code Quality report ($KVMTK_OUT/gl-code-quality-report.json);
#      on GitHub it appends the text report to the job summary.
#
# Environment (all optional):
#   KVMTK            the kvmtk binary (default: kvmtk from PATH)
#   KVMTK_CI         github | gitlab | plain (default: github under GitHub
#                    Actions, gitlab under GitLab CI, else plain)
#   KVMTK_OUT        directory for the reports (default: .)
#   KVMTK_CACHE_DIR  kvmtk's cache directory (read by kvmtk; keep it across runs)
#   KVMTK_BASELINE   accepted findings (default: .kvmtk-baseline.json when present)
#   KVMTK_FAIL_ON    note | warning | error (default: warning)
#   KVMTK_REMOTE     the remote to fetch from (default: origin)
#   KVMTK_DEEPEN     commits to deepen a shallow clone by at a time (default: 50)
#   KVMTK_MAX_FETCHES  deepening attempts before giving up (default: 10)
#
# Exit status: kvmtk lint's: 0 when no commit introduces a finding at or
# above KVMTK_FAIL_ON, 1 when one does, 2 on a usage or input error
# (including a range this clone cannot resolve).

set -euo pipefail

die() {
	echo "ci-lint: error: $*" >&2
	exit 2
}

[ $# -eq 2 ] || die "usage: $0 BASE HEAD (commits, branches or tags)"
base=$1
head=$2
kvmtk=${KVMTK:-kvmtk}
out=${KVMTK_OUT:-.}
fail_on=${KVMTK_FAIL_ON:-warning}
remote=${KVMTK_REMOTE:-origin}
deepen=${KVMTK_DEEPEN:-50}
max_fetches=${KVMTK_MAX_FETCHES:-10}
ci=${KVMTK_CI:-}
if [ -z "$ci" ]; then
	if [ "${GITHUB_ACTIONS:-}" = true ]; then
		ci=github
	elif [ "${GITLAB_CI:-}" = true ]; then
		ci=gitlab
	else
		ci=plain
	fi
fi
case $ci in
github | gitlab | plain) ;;
*) die "KVMTK_CI=$ci: expected github, gitlab or plain" ;;
esac
command -v "$kvmtk" >/dev/null || die "kvmtk not found (\`$kvmtk\`); install it or set KVMTK"
git rev-parse --git-dir >/dev/null 2>&1 || die "$(pwd) is not a git repository; run this in the clone to lint"

have() { git cat-file -e "$1^{commit}" 2>/dev/null; }
shallow() { [ "$(git rev-parse --is-shallow-repository)" = true ]; }

# 1. HEAD, BASE and their merge base in the clone.
# The commit id of $1, fetched from the remote when the clone lacks it.
resolve() {
	if ! have "$1"; then
		echo "ci-lint: fetching $1 from $remote" >&2
		git fetch --quiet --no-tags --depth=1 "$remote" "$1" ||
			die "$1 is not in this clone and cannot be fetched from $remote"
		if ! have "$1"; then
			git rev-parse --verify FETCH_HEAD
			return
		fi
	fi
	git rev-parse --verify "$1^{commit}"
}
head=$(resolve "$head")
base=$(resolve "$base")
fetches=0
until merge_base=$(git merge-base "$base" "$head" 2>/dev/null); do
	shallow || die "$base and $head have no common ancestor: nothing to lint against"
	[ "$fetches" -lt "$max_fetches" ] ||
		die "no merge base of $base and $head after deepening this shallow clone by $((fetches * deepen)) commits; fetch more history (KVMTK_DEEPEN, KVMTK_MAX_FETCHES, or the checkout's fetch depth)"
	fetches=$((fetches + 1))
	echo "ci-lint: deepening the clone by $deepen commits to find the merge base of $base and $head" >&2
	git fetch --quiet --no-tags --deepen="$deepen" "$remote" "$base" "$head" ||
		die "cannot deepen the clone from $remote"
done
range="$merge_base..$head"
echo "ci-lint: linting $(git rev-list --count "$range") commit(s) $range" >&2

# 2. and 3. Lint; the reports from the same run's cache.
args=(lint --repo . "$range" --fail-on "$fail_on")
baseline=${KVMTK_BASELINE:-}
if [ -z "$baseline" ] && [ -f .kvmtk-baseline.json ]; then
	baseline=.kvmtk-baseline.json
fi
if [ -n "$baseline" ]; then
	args+=(--baseline "$baseline")
fi
mkdir -p "$out"
status=0
case $ci in
github) "$kvmtk" "${args[@]}" --format github || status=$? ;;
*) "$kvmtk" "${args[@]}" --format text --color=never || status=$? ;;
esac
[ "$status" -le 1 ] || exit "$status"

# A report's own status repeats the log's: only an error (2) counts.
report() {
	local s=0
	"$kvmtk" "${args[@]}" --quiet "$@" || s=$?
	[ "$s" -le 1 ] || exit "$s"
}
report --format sarif --output "$out/kvmtk.sarif"
if [ "$ci" = gitlab ]; then
	report --format gitlab --output "$out/gl-code-quality-report.json"
fi
if [ "$ci" = github ] && [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then
	{
		echo '### kvmtk lint'
		echo
		echo '```'
		"$kvmtk" "${args[@]}" --format text --color=never 2>&1 || true
		echo '```'
	} >>"$GITHUB_STEP_SUMMARY"
fi
exit "$status"
