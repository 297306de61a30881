# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Driver identity in the playbook's parity pre-flight, against the lab hosts' simulated /sys/module."""

from __future__ import annotations

import pytest

from ansible_collections.openeuler.kae.lab import simsysfs

MODULE = "hisi_zip"
OTHER_BUILD = "0DDB01D0000000000000001"


def module_dir(lab, host):
    return lab.kaelab.STATE / "hosts" / host / "sysfs" / "module" / MODULE


@pytest.fixture
def differing_srcversion(lab):
    """kae-lab-b's tree shows another build of hisi_zip than kae-lab-a's; both trees are restored afterwards.

    A tree laid out before /sys/module carried a loaded module's files gets them for the test (the simulated build
    on kae-lab-a), and loses them again afterwards.
    """
    files = [module_dir(lab, host) / name for host in ("kae-lab-a", "kae-lab-b") for name in ("initstate", "srcversion")]
    saved = dict((path, path.read_text() if path.exists() else None) for path in files)
    for host in ("kae-lab-a", "kae-lab-b"):
        if saved[module_dir(lab, host) / "initstate"] is None:
            (module_dir(lab, host) / "initstate").write_text("live\n")
    source = module_dir(lab, "kae-lab-a") / "srcversion"
    if saved[source] is None:
        source.write_text(simsysfs.default_srcversion(MODULE) + "\n")
    (module_dir(lab, "kae-lab-b") / "srcversion").write_text(OTHER_BUILD + "\n")
    try:
        yield source.read_text().strip(), OTHER_BUILD
    finally:
        for path, text in saved.items():
            if text is None:
                path.unlink(missing_ok=True)
            else:
                path.write_text(text)


def test_parity_preflight_refuses_another_driver_build_naming_both(lab, ansible_playbook, differing_srcversion):
    kae_lab_a_build, kae_lab_b_build = differing_srcversion
    run = ansible_playbook("playbooks/kae_migrate.yml", "--tags", "host,migration_preflight")
    output = run.stdout + run.stderr
    assert run.returncode != 0, output
    assert "nothing was migrated" in output
    # The sentence is in migration order, which depends on where the earlier tests left the guest.
    assert "KAE parity of kae-lab-" in output
    assert "%s differs: source kae-lab-" % MODULE in output
    assert "kae-lab-a srcversion %s (kernel " % kae_lab_a_build in output
    assert "kae-lab-b srcversion %s (kernel " % kae_lab_b_build in output
    assert "run the same build of %s on both hosts" % MODULE in output
    # What the host phase says in the lab about the modules' files, instead of pretending to check them.
    assert "host_lab: the KAE kernel modules do not exist in the lab" in output


def test_restored_trees_pass_the_parity_preflight(lab, ansible_playbook):
    # The guest phase first: the pre-flight also wants the guest's trace arguments, which another test may have removed.
    run = ansible_playbook("playbooks/kae_migrate.yml", "--tags", "guest,migration_preflight")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "KAE devices of kae-lab-a and kae-lab-b match (simulated)" in run.stdout
