# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This is a private module_util of openeuler.kae: its interface may change at any time.

"""The options several modules share, declared once.

One concept has one option name in every module of the collection, so that a play can set it once with
``module_defaults`` (the action groups of meta/runtime.yml) and a reader meets one word for one thing:

- ``uri``: the libvirt connection of the host the module runs on (doc fragment ``openeuler.kae._libvirt``);
  only live_migration, which opens two connections, names them ``source_uri`` and ``destination_uri``;
- ``sysfs_root``: the root of the sysfs tree read for the KAE devices (doc fragment ``openeuler.kae._sysfs``);
- ``domain``: the libvirt domain (the guest) a module works on;
- ``log_path``: a domain's QEMU log file;
- timeouts are seconds, as floats, named ``timeout_s`` or ``WHAT_timeout_s``.

Each ``*_option`` function returns a new argument_spec piece; a module builds its spec with ``merge``, which
refuses an option declared twice. ``check_shared`` checks the values of the shared options a module has.
"""

from __future__ import annotations

from ansible_collections.openeuler.kae.plugins.module_utils import _validate

DEFAULT_URI = "qemu:///system"
DEFAULT_SYSFS_ROOT = "/sys"


def libvirt_option():
    """``uri``: the libvirt connection URI (documented by the doc fragment openeuler.kae._libvirt)."""
    return {"uri": {"type": "str", "default": DEFAULT_URI}}


def sysfs_option():
    """``sysfs_root``: root of the sysfs tree (documented by the doc fragment openeuler.kae._sysfs)."""
    return {"sysfs_root": {"type": "path", "default": DEFAULT_SYSFS_ROOT}}


def host_options():
    """The options of a module that reads the host's KAE devices and asks libvirt who holds them."""
    return merge(sysfs_option(), libvirt_option())


def domain_option(required=True):
    """``domain``: name of the libvirt domain; optional where the module can take the guest from elsewhere."""
    return {"domain": {"type": "str", "required": required}}


def log_path_option():
    """``log_path``: a QEMU log file; without it modules derive the domain's log from ``domain``."""
    return {"log_path": {"type": "path"}}


def merge(*specs):
    """One argument_spec from SPECS, in order; ValueError when an option is declared twice (a spec is never overridden)."""
    merged = {}
    for spec in specs:
        twice = sorted(set(merged) & set(spec))
        if twice:
            raise ValueError("option %s is declared twice in one argument_spec" % ", ".join(twice))
        merged.update(spec)
    return merged


# What each shared option must hold, named in the error message.
_SHARED_FORMS = (
    ("uri", "uri (a libvirt connection URI such as qemu:///system)"),
    ("sysfs_root", "sysfs_root (the root of a sysfs tree such as /sys)"),
)


def check_shared(params):
    """PARAMS with their shared options checked (those the module has); InputError names the first bad one."""
    for name, described in _SHARED_FORMS:
        if name in params:
            _validate.text(params[name], described)
    if params.get("domain") is not None:
        _validate.domain_name(params["domain"], "domain")
    if params.get("log_path") is not None:
        _validate.text(params["log_path"], "log_path (the path of a QEMU log file)")
    return params
