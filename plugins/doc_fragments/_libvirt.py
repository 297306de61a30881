# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This is a private doc fragment of openeuler.kae: it may change at any time.

from __future__ import annotations


class ModuleDocFragment:
    """The libvirt connection option, shared by every module that opens one connection (declared in module_utils/_args.py)."""

    DOCUMENTATION = r"""
options:
  uri:
    description:
      - libvirt connection URI of the hypervisor, opened on the host the module runs on, for example
        V(qemu:///system) (the local system instance) or V(qemu+ssh://root@HOST/system).
      - The same option in every module of the collection, so a play can set it once for all of them with
        C(module_defaults) and the action group C(group/openeuler.kae.libvirt) (see the collection's README).
    type: str
    default: qemu:///system
"""
