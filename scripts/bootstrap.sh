#!/usr/bin/env bash
# Install what the tests, the lab and the demo need; safe to run again, and quick when everything is in place.
#   - Debian packages from requirements/debian.txt (only when some are missing; needs root)
#   - .venv from requirements/python.txt (re-installed when that file changes)
#   - .venv-package from requirements/package.txt: the publishing tools (Galaxy importer, antsibull-docs,
#     ansible-builder), kept apart because they pin versions of packages the test tools use too
#   - .collections/ansible_collections/openeuler/kae -> ../../.. (so Ansible and pytest find the collection)
#   - an offline pip bootstrap script for ansible-test (it cannot download its own here)
# Environment: KAE_PYTHON picks the interpreter for .venv (default: python3, which must be 3.11 or later).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PACKAGE_VENV="$ROOT/.venv-package"
DEBIAN_LIST="$ROOT/requirements/debian.txt"
PYTHON_LIST="$ROOT/requirements/python.txt"
PACKAGE_LIST="$ROOT/requirements/package.txt"

log() { printf 'bootstrap: %s\n' "$*"; }
die() { printf 'bootstrap: ERROR: %s\n' "$*" >&2; exit 1; }

# Package names from the list: comments and blank lines dropped.
debian_packages() {
    sed -e 's/#.*//' -e 's/[[:space:]]*$//' -e '/^[[:space:]]*$/d' "$DEBIAN_LIST"
}

missing_debian_packages() {
    local wanted installed
    wanted="$(debian_packages | sort -u)"
    # shellcheck disable=SC2046  # one word per package
    installed="$(dpkg-query -W -f='${Package} ${db:Status-Status}\n' $(debian_packages) 2>/dev/null \
        | awk '$2 == "installed" { print $1 }' | sort -u || true)"
    comm -23 <(printf '%s\n' "$wanted") <(printf '%s\n' "$installed")
}

install_debian_packages() {
    command -v dpkg-query >/dev/null || die "dpkg-query not found: this script supports Debian 12; install the packages in $DEBIAN_LIST by hand"
    local missing
    missing="$(missing_debian_packages)"
    [ -n "$missing" ] || return 0
    # shellcheck disable=SC2086  # one word per package
    log "installing Debian packages:" $missing
    [ "$(id -u)" -eq 0 ] || die "installing Debian packages needs root; run as root or install: ${missing//$'\n'/ }"
    # Package scripts must not start daemons: the lab starts its own, inside its namespaces.
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 0755 /usr/sbin/policy-rc.d
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086  # one word per package
    apt-get install -y -qq --no-install-recommends $missing
}

controller_python() {
    local python="${KAE_PYTHON:-python3}"
    command -v "$python" >/dev/null || die "$python not found; install Python 3.11 or set KAE_PYTHON"
    "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || die "$python is $("$python" --version 2>&1); ansible-core 2.19 needs Python 3.11 or later (set KAE_PYTHON)"
    printf '%s\n' "$python"
}

venv_works() {
    [ -x "$1/bin/python" ] && "$1/bin/python" -c '' 2>/dev/null
}

# install_venv DIR LIST: DIR holds LIST's packages (re-installed when LIST changes).
install_venv() {
    local venv="$1" list="$2" stamp="$1/.requirements.sha256" wanted python
    wanted="$(sha256sum "$list" | cut -d' ' -f1)"
    if venv_works "$venv" && [ "$(cat "$stamp" 2>/dev/null || true)" = "$wanted" ]; then
        return 0
    fi
    if ! venv_works "$venv"; then
        python="$(controller_python)"
        log "creating $venv with $python ($("$python" --version 2>&1))"
        rm -rf "$venv"
        "$python" -m venv "$venv"
    fi
    log "installing $list into $venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$list"
    printf '%s\n' "$wanted" >"$stamp"
}

link_collection() {
    local link="$ROOT/.collections/ansible_collections/openeuler/kae"
    [ "$(readlink "$link" 2>/dev/null || true)" = ../../.. ] && return 0
    mkdir -p "$(dirname "$link")"
    ln -sfn ../../.. "$link"
    log "linked $link -> ../../.."
}

# ansible-test puts pip into each fresh virtual environment by running get-pip.py, which it downloads
# unless ~/.ansible/test/cache/get_pip_<VERSION>.py exists. This stand-in uses ensurepip instead, then
# installs the requested packages (pip==VERSION) from the package index.
install_pip_bootstrap() {
    local script version cache
    script="$(cat <<'PY'
"""Offline stand-in for get-pip.py, written by scripts/bootstrap.sh: ensurepip, then pip install ARGS."""
import subprocess
import sys

# get-pip.py options that pip install does not know.
GET_PIP_ONLY = ('--no-setuptools', '--no-wheel')

args = [arg for arg in sys.argv[1:] if arg not in GET_PIP_ONLY]
subprocess.check_call([sys.executable, '-m', 'ensurepip', '--default-pip'])
if any(not arg.startswith('-') for arg in args):
    subprocess.check_call([sys.executable, '-m', 'pip', 'install'] + args)
PY
)"
    # The pip versions ansible-test asks for, over every Python it supports (one today).
    for version in $("$VENV/bin/python" - <<'PY'
import types
from ansible_test._internal.constants import SUPPORTED_PYTHON_VERSIONS
from ansible_test._internal.python_requirements import get_venv_packages
print(' '.join(sorted({get_venv_packages(types.SimpleNamespace(version=v))['pip'] for v in SUPPORTED_PYTHON_VERSIONS})))
PY
); do
        cache="$HOME/.ansible/test/cache/get_pip_${version//./_}.py"
        [ "$(cat "$cache" 2>/dev/null || true)" = "$script" ] && continue
        mkdir -p "$(dirname "$cache")"
        printf '%s\n' "$script" >"$cache"
        log "wrote offline pip $version bootstrap $cache"
    done
}

main() {
    install_debian_packages
    install_venv "$VENV" "$PYTHON_LIST"
    install_venv "$PACKAGE_VENV" "$PACKAGE_LIST"
    link_collection
    install_pip_bootstrap
    log "ready: $VENV with ansible-core $("$VENV/bin/python" -c 'from ansible.release import __version__; print(__version__)')"
}

main "$@"
