# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This is a private doc fragment of openeuler.kae: it may change at any time.

from __future__ import annotations


class ModuleDocFragment:
    """The sysfs root option, shared by every module that reads the host's KAE devices (declared in module_utils/_args.py)."""

    DOCUMENTATION = r"""
options:
  sysfs_root:
    description:
      - Root of the sysfs tree the host's PCI devices are read from (and, for modules that change state, written
        to). Symlinks inside it are followed relative to this root, so a sysfs-shaped copy (a test fixture or the
        lab's simulated tree) works like C(/sys); nothing outside it is read.
      - The same option in every module of the collection, so a play can set it once for all of them with
        C(module_defaults) and the action group C(group/openeuler.kae.host) (see the collection's README).
    type: path
    default: /sys
"""
