# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import gzip
import os

import pytest

from ansible_collections.openeuler.kae.plugins.module_utils._probes import ProbeError, analyse, analyse_fping, parse_fping

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")


def recorded(name):
    with open(os.path.join(FIXTURES, name), encoding="utf-8") as handle:
        return handle.read()


def series(*answers, start=100.0, interval_ms=1.0):
    """Probes 0..n-1 sent every INTERVAL_MS from START; ANSWERS gives each one's round trip in ms (None: lost)."""
    probes = []
    for seq, rtt in enumerate(answers):
        sent = start + seq * interval_ms / 1000.0
        probes.append({"seq": seq, "sent": sent if rtt is not None else None,
                       "received": sent + rtt / 1000.0 if rtt is not None else None})
    return probes


def test_recorded_fping_outage_gives_the_gap_and_the_losses():
    result = analyse_fping(recorded("fping-1ms-120ms-outage.txt"), 1.0)
    # fping's own statistics line: 500/384/23%.
    assert (result["probes_sent"], result["probes_lost"], result["probes_duplicated"]) == (500, 116, 0)
    # The address was gone for a sleep of 0.12 s; the answers on either side are 141.48 ms apart.
    assert result["network_downtime_ms"] == 141.48
    assert result["gap_started_at"] == 1796264260.89289 and result["gap_ended_at"] == 1796264261.03437
    assert result["lost_in_gap"] == 116 and result["sender_limited"] is False
    # The sender kept about its interval on a busy machine, with stalls of a few ms.
    assert 1.0 <= result["send_spacing_mean_ms"] < 1.5 and result["probe_jitter_ms"] == 4.252


def test_parse_fping_reads_answers_timeouts_duplicates_and_statistics():
    text = ("[100.00100] 10.0.0.2 : [0], 64 bytes, 0.500 ms (0.500 avg, 0% loss)\n"
            "[100.00300] 10.0.0.2 : duplicate for [0], 64 bytes, 2.50 ms\n"
            "[101.00200] 10.0.0.2 : [1], timed out (0.500 avg, 50% loss)\n"
            "\n10.0.0.2 : xmt/rcv/%loss = 2/1/50%, min/avg/max = 0.500/0.500/0.500\n")
    parsed = parse_fping(text)
    assert parsed["transmitted"] == 2
    assert parsed["probes"] == [{"seq": 0, "sent": 100.0005, "received": 100.001},
                                {"seq": 0, "sent": 100.0005, "received": 100.003},
                                {"seq": 1, "sent": None, "received": None}]


def test_ipv6_target_lines_are_read():
    parsed = parse_fping("[5.000100] fd00::2 : [3], 64 bytes, 0.100 ms (0.100 avg, 0% loss)\n")
    assert parsed["probes"] == [{"seq": 3, "sent": 5.0, "received": 5.0001}] and parsed["transmitted"] is None


def test_lost_probes_make_the_gap_between_the_answers_around_them():
    result = analyse(series(0.1, 0.1, None, None, None, None, 0.1, 0.1), 1.0)
    assert result["network_downtime_ms"] == 5.0  # answers of probes 1 and 6
    assert (result["probes_sent"], result["probes_lost"], result["lost_in_gap"]) == (8, 4, 4)
    assert result["sender_limited"] is False


def test_without_loss_the_figure_is_one_probe_interval():
    result = analyse(series(*[0.2] * 10, interval_ms=2.0), 2.0)
    assert result["network_downtime_ms"] == 2.0 and result["probes_lost"] == 0
    assert result["probe_jitter_ms"] == 0.0 and result["send_spacing_mean_ms"] == 2.0


def test_reordered_answers_are_taken_in_the_order_they_arrived():
    probes = series(0.1, 0.1, 0.1, 0.1)
    # Probe 1 answered late, after probe 3: the longest wait is from probe 0's answer to probe 2's.
    probes[1]["received"] = probes[3]["received"] + 0.0005
    probes.reverse()
    result = analyse(probes, 1.0)
    assert result["probes_lost"] == 0
    assert result["network_downtime_ms"] == 2.0


def test_duplicate_answers_count_once_and_are_reported():
    probes = series(0.1, 0.1, 0.1)
    probes.append(dict(probes[1], received=probes[1]["received"] + 0.0002))
    result = analyse(probes, 1.0)
    assert (result["probes_sent"], result["probes_lost"], result["probes_duplicated"]) == (3, 0, 1)
    assert result["network_downtime_ms"] == 1.0


def test_a_probe_listed_lost_and_answered_later_is_answered():
    probes = series(0.1, 0.1, 0.1) + [{"seq": 1, "sent": None, "received": None}]
    assert analyse(probes, 1.0)["probes_lost"] == 0


def test_one_sender_clock_a_constant_offset_changes_no_figure():
    shape = (0.1, None, None, 0.3, 0.1, 0.1)
    near = analyse(series(*shape, start=10.0), 1.0)
    far = analyse(series(*shape, start=1796264260.0), 1.0)
    for key in ("network_downtime_ms", "probes_lost", "lost_in_gap", "probe_jitter_ms"):
        assert near[key] == pytest.approx(far[key], abs=0.001)


def test_a_stalled_sender_is_told_apart_from_a_lost_guest():
    probes = series(0.1, 0.1, 0.1, 0.1)
    for probe in probes[2:]:  # the sender stopped for 50 ms before probe 2
        probe["sent"] += 0.05
        probe["received"] += 0.05
    result = analyse(probes, 1.0)
    assert result["network_downtime_ms"] == 51.0 and result["lost_in_gap"] == 0
    assert result["sender_limited"] is True and result["probe_jitter_ms"] == 50.0


def test_transmitted_counts_probes_sent_after_the_last_line():
    result = analyse(series(0.1, 0.1, 0.1), 1.0, transmitted=5)
    assert (result["probes_sent"], result["probes_lost"]) == (5, 2)


def test_a_guest_still_unreachable_at_the_end_gives_no_figure():
    with pytest.raises(ProbeError, match=r"last 300 probes .* still unreachable"):
        analyse(series(0.1, 0.1, 0.1, *[None] * 300), 1.0)


def test_answers_in_flight_at_the_end_are_not_an_open_gap():
    result = analyse(series(0.1, 0.1, 0.1, None, None), 1.0)
    assert result["probes_lost"] == 2 and result["network_downtime_ms"] == 1.0


@pytest.mark.parametrize("probes, message", [
    ([], "0 of 0 probes were answered"),
    (series(0.1, None, None), "1 of 3 probes were answered"),
    ("x", "must be a list"),
    ([{"seq": -1, "sent": None, "received": None}], "probe 1 seq must be at least 0"),
    ([{"seq": 0, "sent": 2.0, "received": 1.0}], "received 1.0 before it was sent 2.0"),
    ([{"seq": 0, "sent": "a", "received": 1.0}], "probe 1 sent must be a number"),
])
def test_bad_series_say_what_is_wrong(probes, message):
    with pytest.raises(ProbeError, match=message):
        analyse(probes, 1.0)


def test_interval_must_be_positive():
    with pytest.raises(ProbeError, match="interval_ms must be at least"):
        analyse(series(0.1, 0.1), 0)


def test_recorded_live_migration_is_the_gap_around_the_lost_probes():
    with gzip.open(os.path.join(FIXTURES, "fping-1ms-qemu-live-migration.txt.gz"), "rt", encoding="utf-8") as handle:
        result = analyse_fping(handle.read(), 1.0)
    assert (result["probes_sent"], result["probes_lost"]) == (3793, 8)
    # The answer to probe 2009 came at .66341, the next (probe 2018, 99.6 ms round trip) at .73180.
    assert result["network_downtime_ms"] == 68.39 and result["lost_in_gap"] == 8 and result["sender_limited"] is False
    # Under a real-time priority the sender kept its interval while the machine ran two TCG guests.
    assert result["probe_jitter_ms"] == 1.62 and result["send_spacing_mean_ms"] == 1.024
