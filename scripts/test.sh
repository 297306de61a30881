#!/usr/bin/env bash
# Run one test stage, or all of them:  scripts/test.sh units|sanity|lint|package|integration|all [EXTRA ARGS]
#   units        pytest tests/unit
#   sanity       ansible-test sanity on a copy of the collection (extra args go to ansible-test,
#                for example: scripts/test.sh sanity --test pylint plugins/modules/x.py)
#   lint         ansible-lint --profile production
#   package      the built tarball through Galaxy's importer, the docs through antsibull-docs' linter,
#                the execution environment's build context through ansible-builder
#   integration  pytest tests/lab against the two-host lab (as root)
#   all          every stage in order, each one even if an earlier one failed, then a summary
# Extra args for units and integration go to pytest. Run scripts/bootstrap.sh first (make does).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PACKAGE_VENV="$ROOT/.venv-package"
STAGES=(units sanity lint package integration)
# Module code runs on Python 3.9 (openEuler 22.03) too; sanity checks 3.9 as well when it is installed.
MODULE_PYTHON_EXTRA=3.9

log() { printf 'test.sh: %s\n' "$*"; }
die() { printf 'test.sh: ERROR: %s\n' "$*" >&2; exit 2; }

usage() {
    sed -n '2,10s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
}

# Sets TARGETS for pytest: test files or directories among the arguments select tests; without any,
# the whole DEFAULT_DIR runs.
pytest_targets() {
    local default_dir="$1" arg
    shift
    TARGETS=("$default_dir")
    for arg in "$@"; do
        case "$arg" in "$default_dir"/*) TARGETS=() ;; esac
    done
}

stage_units() {
    pytest_targets tests/unit "$@"
    "$VENV/bin/pytest" "${TARGETS[@]}" "$@"
}

# ansible-test wants the tree at .../ansible_collections/NAMESPACE/NAME and reads every file there,
# so it runs on a copy of the files git would commit (tracked, plus new files not ignored).
copy_collection() {
    local dest="$1"
    mkdir -p "$dest"
    git -C "$ROOT" ls-files -z --cached --others --exclude-standard \
        | while IFS= read -r -d '' path; do [ -e "$ROOT/$path" ] && printf '%s\0' "$path"; done \
        | rsync -a --from0 --files-from=- "$ROOT/" "$dest/"
}

# Directory holding a working pythonX.Y (a pyenv shim for an unselected version does not count).
python_dir() {
    local version="$1" exe
    for exe in "$(command -v "python$version" 2>/dev/null || true)" "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$version".*/bin/python"$version"; do
        if [ -x "$exe" ] && "$exe" -c 'import ensurepip' >/dev/null 2>&1; then
            dirname "$exe"
            return 0
        fi
    done
    return 1
}

stage_sanity() {
    local work dest rc=0
    work="$(mktemp -d /tmp/kae-sanity.XXXXXX)"
    dest="$work/ansible_collections/openeuler/kae"
    if ! copy_collection "$dest"; then
        log "sanity FAILED: could not copy the collection to $dest"
        rm -rf "$work"
        return 1
    fi
    (
        cd "$dest"
        sanity_rc=0
        "$VENV/bin/ansible-test" sanity --color no --python 3.11 "$@" || sanity_rc=$?
        if [ $# -eq 0 ]; then
            if extra_dir="$(python_dir "$MODULE_PYTHON_EXTRA")"; then
                log "compile and import on Python $MODULE_PYTHON_EXTRA ($extra_dir)"
                PATH="$extra_dir:$PATH" "$VENV/bin/ansible-test" sanity --color no --python "$MODULE_PYTHON_EXTRA" \
                    --test compile --test import || sanity_rc=$?
            else
                log "python$MODULE_PYTHON_EXTRA not installed: compile and import checked on 3.11 only"
            fi
        fi
        exit "$sanity_rc"
    ) || rc=$?
    # Keep the results where CI and developers look for them.
    if [ -d "$dest/tests/output" ]; then
        mkdir -p "$ROOT/tests/output"
        rsync -a "$dest/tests/output/" "$ROOT/tests/output/"
    fi
    rm -rf "$work"
    if [ "$rc" -eq 0 ]; then log "sanity passed"; else log "sanity FAILED (exit $rc)"; fi
    return "$rc"
}

stage_lint() {
    local -a color=()
    [ -t 1 ] || color=(--nocolor)  # plain text in CI logs
    "$VENV/bin/ansible-lint" "${color[@]}" --profile production "$@"
}

# Galaxy's importer without the steps that need a container (ansible-test) or that the lint stage runs.
GALAXY_IMPORTER_CFG='[galaxy-importer]
RUN_ANSIBLE_TEST = False
RUN_ANSIBLE_LINT = False
RUN_FLAKE8 = False
CHECK_CHANGELOG = True
'

stage_package() {
    local work dest tarball rc=0
    work="$(mktemp -d /tmp/kae-package.XXXXXX)"
    dest="$work/ansible_collections/openeuler/kae"
    copy_collection "$dest" || { log "package FAILED: could not copy the collection"; rm -rf "$work"; return 1; }
    (
        # set -e does not hold here: "all" calls each stage as "stage || rc=$?", so every step checks itself.
        # shellcheck disable=SC2030  # the publishing tools come first in this stage's subshell only
        export PATH="$PACKAGE_VENV/bin:$PATH"
        cd "$dest" || exit 1
        ansible-galaxy collection build --force --output-path "$work" . >/dev/null || exit 1
        tarball="$(ls "$work"/openeuler-kae-*.tar.gz)" || exit 1
        log "Galaxy importer on $(basename "$tarball")"
        printf '%s' "$GALAXY_IMPORTER_CFG" >"$work/galaxy-importer.cfg" || exit 1
        GALAXY_IMPORTER_CONFIG="$work/galaxy-importer.cfg" python -m galaxy_importer.main "$tarball" >"$work/importer.log" 2>&1 \
            || { cat "$work/importer.log"; exit 1; }
        if grep -E '^(ERROR|WARNING)' "$work/importer.log"; then exit 1; fi
        log "antsibull-docs lint-collection-docs --plugin-docs"
        antsibull-docs lint-collection-docs --plugin-docs . || exit 1
        log "ansible-builder create (execution environment build context)"
        mkdir -p "$work/ee" || exit 1
        cp ee/execution-environment.yml ee/requirements.yml "$work/ee/" || exit 1
        cp "$tarball" "$work/ee/openeuler-kae.tar.gz" || exit 1
        ansible-builder create -f "$work/ee/execution-environment.yml" -c "$work/ee/context" >/dev/null || exit 1
        grep -q 'ansible-galaxy collection install' "$work/ee/context/Dockerfile" || exit 1
        # What ansible-builder's introspection will find in the installed collection: our own requirements.
        ansible-galaxy collection install -p "$work/installed" "$tarball" >/dev/null || exit 1
        ansible-builder introspect --sanitize "$work/installed" >"$work/introspect.txt" || exit 1
        grep -q "libvirt-python.*from collection openeuler.kae" "$work/introspect.txt" || exit 1
        grep -q "libvirt-devel.*from collection openeuler.kae" "$work/introspect.txt" || exit 1
    ) || rc=$?
    rm -rf "$work"
    if [ "$rc" -eq 0 ]; then log "package passed"; else log "package FAILED (exit $rc)"; fi
    return "$rc"
}

stage_integration() {
    if ! compgen -G "$ROOT/tests/lab/test_*.py" >/dev/null; then
        log "SKIPPED integration: tests/lab has no test_*.py files yet"
        return 0
    fi
    if [ "$(id -u)" -ne 0 ]; then
        log "integration FAILED: the lab tests must run as root"
        return 1
    fi
    # One lab, one run at a time: a second run waits instead of taking the lab down under the first.
    # flock -o keeps the lock out of the daemons the tests start (they outlive pytest).
    local lock=/run/lock/kae-lab-tests.lock
    mkdir -p "$(dirname "$lock")"
    flock -n "$lock" true || log "another lab test run holds $lock; waiting for it"
    pytest_targets tests/lab "$@"
    flock -o "$lock" "$VENV/bin/pytest" "${TARGETS[@]}" "$@"
}

run_all() {
    local stage start rc failed=0 begin=$SECONDS
    local -a results=()
    for stage in "${STAGES[@]}"; do
        log "===== $stage ====="
        start=$SECONDS
        rc=0
        "stage_$stage" || rc=$?
        results+=("$stage $rc $((SECONDS - start))")
        [ "$rc" -eq 0 ] || failed=1
    done
    printf '\n%-12s %-8s %8s\n' STAGE RESULT SECONDS
    local name code secs
    for stage in "${results[@]}"; do
        read -r name code secs <<<"$stage"
        printf '%-12s %-8s %8s\n' "$name" "$([ "$code" -eq 0 ] && echo passed || echo "FAILED")" "$secs"
    done
    printf '%-12s %-8s %8s\n' total "$([ "$failed" -eq 0 ] && echo passed || echo "FAILED")" "$((SECONDS - begin))"
    return "$failed"
}

main() {
    [ $# -ge 1 ] || { usage; exit 2; }
    local stage="$1"
    shift
    cd "$ROOT"
    [ -x "$VENV/bin/python" ] || die "$VENV is missing: run scripts/bootstrap.sh (or make bootstrap) first"
    # The tools call each other by name (ansible-lint runs ansible-playbook, ansible-test its helpers).
    # shellcheck disable=SC2031  # the package stage's subshell has its own PATH on purpose
    export PATH="$VENV/bin:$PATH"
    case "$stage" in
        all) [ $# -eq 0 ] || die "'all' takes no extra arguments"; run_all ;;
        units | sanity | lint | package | integration) "stage_$stage" "$@" ;;
        -h | --help) usage ;;
        *) usage; die "unknown stage '$stage'" ;;
    esac
}

main "$@"
