# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Driver identity (/sys/module) and origin (modules.dep) of the KAE modules, and their parity between hosts."""

from __future__ import annotations

import lzma

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.openeuler.kae.lab import simsysfs
from ansible_collections.openeuler.kae.plugins.filter.device_parity import FilterModule
from ansible_collections.openeuler.kae.plugins.module_utils import _drivers
from ansible_collections.openeuler.kae.plugins.module_utils._sysfs import Sysfs
from ansible_collections.openeuler.kae.plugins.modules import device_info

device_parity = FilterModule().filters()["device_parity"]
RELEASE = "6.6.0-28.0.0.34.oe2403.aarch64"
OTHER_BUILD = "0123456789ABCDEF0123456"


@pytest.fixture
def release(monkeypatch):
    monkeypatch.setattr(_drivers, "kernel_release", lambda: RELEASE)
    return RELEASE


def host_facts(kae_host, uri, name, **build):
    facts = device_info.gather(kae_host(**build), uri)
    facts["host"] = name
    return facts


def test_identity_of_every_module_on_the_path(kae_host, empty_uri, release):
    facts = device_info.gather(kae_host(vfs=1), empty_uri)
    assert facts["kernel_release"] == RELEASE
    assert sorted(facts["drivers"]) == sorted(_drivers.REPORTED_MODULES)
    assert facts["drivers"]["hisi_zip"] == {
        "loaded": True, "builtin": False, "version": None, "srcversion": simsysfs.default_srcversion("hisi_zip"), "taint": "",
        "file": None, "origin": None, "file_srcversion": None}
    assert facts["drivers"]["hisi_migration"]["loaded"] is False
    assert facts["modules_dep"] is False and facts["driver_origin_problems"] == []


def test_builtin_module_is_told_from_a_loaded_one(tmp_path):
    (tmp_path / "module/vfio_pci/parameters").mkdir(parents=True)
    assert _drivers.read_module(Sysfs(str(tmp_path)), "vfio_pci") == {
        "loaded": True, "builtin": True, "version": None, "srcversion": None, "taint": None}
    assert _drivers.describe(_drivers.read_module(Sysfs(str(tmp_path)), "vfio_pci"), RELEASE) == "built into kernel " + RELEASE


def test_same_builds_have_no_mismatch(kae_host, empty_uri, release):
    src, dst = host_facts(kae_host, empty_uri, "hv-a"), host_facts(kae_host, empty_uri, "hv-b")
    assert device_parity(src, dst) == []


def test_one_differing_srcversion_is_refused_naming_both_hosts_and_values(kae_host, empty_uri, release):
    src = host_facts(kae_host, empty_uri, "hv-a")
    dst = host_facts(kae_host, empty_uri, "hv-b", modules={"hisi_sec2": {"srcversion": OTHER_BUILD}})
    assert device_parity(src, dst) == [
        "hisi_sec2 differs: source hv-a srcversion %s (kernel %s), destination hv-b srcversion %s (kernel %s): run the same "
        "build of hisi_sec2 on both hosts (the VF migration stream changed between driver builds: a newer driver accepts "
        "the older stream, an older one rejects the newer)" % (simsysfs.default_srcversion("hisi_sec2"), RELEASE, OTHER_BUILD, RELEASE)]
    # Nothing tells which build is newer: the option cannot allow it.
    assert len(device_parity(src, dst, allow_newer_destination=True)) == 1
    assert device_parity(src, dst, allow_newer_destination=True, warnings=True) == []


def test_a_newer_destination_build_may_be_allowed_one_way(kae_host, empty_uri, release):
    old = {"hisi_qm": {"version": "1.3.11", "srcversion": "AAAAAAAAAAAAAAAAAAAAAAA"}}
    new = {"hisi_qm": {"version": "2.0.2", "srcversion": "BBBBBBBBBBBBBBBBBBBBBBB"}}
    older, newer = host_facts(kae_host, empty_uri, "hv-old", modules=old), host_facts(kae_host, empty_uri, "hv-new", modules=new)
    assert device_parity(older, newer, allow_newer_destination=True) == []
    warnings = device_parity(older, newer, allow_newer_destination=True, warnings=True)
    assert warnings == [
        "hisi_qm differs: source hv-old srcversion AAAAAAAAAAAAAAAAAAAAAAA (version 1.3.11, kernel %s), destination hv-new "
        "srcversion BBBBBBBBBBBBBBBBBBBBBBB (version 2.0.2, kernel %s): allowed for a one-way move to the newer destination "
        "build (a newer driver accepts the older migration stream; a move back would be refused)" % (RELEASE, RELEASE)]
    # The way back is refused, option or not.
    back = device_parity(newer, older, allow_newer_destination=True)
    assert len(back) == 1 and back[0].startswith("hisi_qm differs: source hv-new srcversion BBBBBBBBBBBBBBBBBBBBBBB (version 2.0.2")


def test_in_box_modules_compare_by_kernel_release():
    builtin = {"loaded": True, "builtin": True, "version": None, "srcversion": None, "taint": None}
    src = {"drivers": dict((n, builtin) for n in _drivers.REPORTED_MODULES), "kernel_release": "5.10.0-153.oe2203sp1.aarch64",
           "host": "a", "migration_drivers": ["vfio-pci"]}
    dst = dict(src, kernel_release="5.10.0-182.oe2203sp3.aarch64", host="b")
    problems, warnings = _drivers.parity(src, dst)
    assert [p.split(":")[0] for p in problems] == ["hisi_qm differs", "hisi_zip differs", "hisi_sec2 differs", "hisi_hpre differs",
                                                   "vfio_pci differs", "hisi_migration differs"]
    assert problems[0].startswith("hisi_qm differs: source a built into kernel 5.10.0-153.oe2203sp1.aarch64, destination b built "
                                  "into kernel 5.10.0-182.oe2203sp3.aarch64") and warnings == []
    problems, warnings = _drivers.parity(src, dst, allow_newer_destination=True)
    assert problems == [] and len(warnings) == 6


def test_a_migration_driver_on_one_host_only_is_refused(kae_host, empty_uri, release):
    src = host_facts(kae_host, empty_uri, "hv-a")
    dst = host_facts(kae_host, empty_uri, "hv-b", migration_driver="vfio-pci")
    mismatches = device_parity(src, dst)
    assert mismatches[0].startswith("hisi_acc_vfio_pci differs: source hv-a srcversion %s (kernel %s), destination hv-b not loaded"
                                    % (simsysfs.default_srcversion("hisi_acc_vfio_pci"), RELEASE))
    assert mismatches[1].startswith("hisi_migration differs: source hv-a not loaded, destination hv-b srcversion ")
    assert len(mismatches) == 2, "vfio_pci is the same build on both"


def test_device_lists_compare_no_drivers(kae_host, empty_uri, release):
    src = host_facts(kae_host, empty_uri, "hv-a")
    dst = host_facts(kae_host, empty_uri, "hv-b", modules={"hisi_zip": {"srcversion": OTHER_BUILD}})
    assert device_parity(src["devices"], dst["devices"]) == []


@pytest.mark.parametrize("kwargs", [{"allow_newer_destination": "yes"}, {"warnings": 1}])
def test_bad_options_name_the_filter(kwargs):
    with pytest.raises(AnsibleFilterError, match=r"openeuler.kae.device_parity: (allow_newer_destination|warnings) must be true or false"):
        device_parity([], [], **kwargs)


# ------------------------------------------------------------------ origin

def modinfo_bytes(srcversion):
    """A stand-in module file: the ELF magic, other .modinfo strings and the srcversion entry."""
    return b"\x7fELF\x02\x01\x01" + b"\x00" * 40 + b"license=GPL v2\x00srcversion=" + srcversion.encode() + b"\x00depends=hisi_qm\x00"


@pytest.fixture
def modules_root(tmp_path):
    """/lib/modules/RELEASE with hisi_zip and hisi_qm from extra/, hisi_sec2 (xz) and hisi_hpre from kernel/."""
    root = tmp_path / "lib-modules"
    tree = root / RELEASE
    files = {
        "extra/hisi_zip.ko": modinfo_bytes(simsysfs.default_srcversion("hisi_zip")),
        "extra/hisi_qm.ko": modinfo_bytes(OTHER_BUILD),
        "kernel/drivers/crypto/hisilicon/sec2/hisi_sec2.ko.xz": lzma.compress(modinfo_bytes(simsysfs.default_srcversion("hisi_sec2"))),
        "kernel/drivers/crypto/hisilicon/hpre/hisi_hpre.ko.zst": b"(zstd, not read)",
        "extra/hisi_acc_vfio_pci.ko": modinfo_bytes(simsysfs.default_srcversion("hisi_acc_vfio_pci")),
    }
    for rel, data in files.items():
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        (tree / rel).write_bytes(data)
    (tree / "modules.dep").write_text("".join("%s: extra/hisi_qm.ko\n" % rel for rel in files))
    (tree / "modules.builtin").write_text("kernel/drivers/vfio/pci/vfio-pci.ko\n")
    return str(root)


def test_each_module_file_and_origin(kae_host, empty_uri, release, modules_root):
    drivers = device_info.gather(kae_host(vfs=0), empty_uri, modules_root)["drivers"]
    tree = modules_root + "/" + RELEASE
    assert {n: (d["origin"], d["file"], d["file_srcversion"]) for n, d in drivers.items()} == {
        "hisi_qm": ("extra", tree + "/extra/hisi_qm.ko", OTHER_BUILD),
        "hisi_zip": ("extra", tree + "/extra/hisi_zip.ko", simsysfs.default_srcversion("hisi_zip")),
        "hisi_sec2": ("kernel", tree + "/kernel/drivers/crypto/hisilicon/sec2/hisi_sec2.ko.xz", simsysfs.default_srcversion("hisi_sec2")),
        "hisi_hpre": ("kernel", tree + "/kernel/drivers/crypto/hisilicon/hpre/hisi_hpre.ko.zst", None),
        "hisi_acc_vfio_pci": ("extra", tree + "/extra/hisi_acc_vfio_pci.ko", simsysfs.default_srcversion("hisi_acc_vfio_pci")),
        "vfio_pci": ("builtin", None, None),
        "hisi_migration": (None, None, None),
    }


def test_modules_from_elsewhere_are_named_with_both_origins(kae_host, empty_uri, release, modules_root):
    facts = device_info.gather(kae_host(vfs=0), empty_uri, modules_root, driver_origin="extra")
    tree = modules_root + "/" + RELEASE
    assert facts["driver_origin_problems"] == [
        "the loaded hisi_qm (srcversion %s) is not %s/extra/hisi_qm.ko (srcversion %s): reload it while no VF is in use "
        "(modprobe -r, then modprobe)" % (simsysfs.default_srcversion("hisi_qm"), tree, OTHER_BUILD),
        "hisi_sec2 comes from kernel (%s/kernel/drivers/crypto/hisilicon/sec2/hisi_sec2.ko.xz), not from extra: install the "
        "extra build of hisi_sec2 and run depmod" % tree,
        "hisi_hpre comes from kernel (%s/kernel/drivers/crypto/hisilicon/hpre/hisi_hpre.ko.zst), not from extra: install the "
        "extra build of hisi_hpre and run depmod" % tree,
    ]


def test_a_module_missing_from_modules_dep_is_named(kae_host, empty_uri, release, modules_root):
    tree = modules_root + "/" + RELEASE
    with open(tree + "/modules.dep", "w") as handle:
        handle.write("extra/hisi_qm.ko:\n")
    problems = device_info.gather(kae_host(vfs=0), empty_uri, modules_root, driver_origin="extra")["driver_origin_problems"]
    assert "hisi_zip has no module file under %s (modules.dep does not list it): install it under %s/extra and run depmod" % (tree, tree) in problems
    assert not any(p.startswith("hisi_migration") for p in problems), "a migration driver this release does not use"


def test_no_module_tree_is_said_not_guessed(kae_host, empty_uri, release, tmp_path):
    facts = device_info.gather(kae_host(vfs=0), empty_uri, str(tmp_path / "none"), driver_origin="kernel")
    assert facts["modules_dep"] is False
    assert facts["driver_origin_problems"] == [
        "%s/none/%s/modules.dep does not exist: cannot tell where the KAE modules come from; install the kernel's modules "
        "(or run depmod), or leave driver_origin unset" % (tmp_path, RELEASE)]


@pytest.mark.parametrize("word", ["../kernel", "extra kernel", "", ".."])
def test_bad_driver_origin_fails_the_module_with_the_form(fail_module, kae_host, empty_uri, word):
    result = fail_module(device_info, {"sysfs_root": kae_host(vfs=0), "uri": empty_uri, "driver_origin": word})
    assert result["msg"] == ("driver_origin must name a directory under /lib/modules/RELEASE such as extra, kernel or updates "
                             "(or builtin), got %r" % word)
