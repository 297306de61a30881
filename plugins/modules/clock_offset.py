#!/usr/bin/python
# Copyright: openEuler KAE collection contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: clock_offset
short_description: Measure this host's clock offset and round-trip delay against NTP servers
version_added: 0.1.0
description:
  - Queries each NTP server O(samples) times from the managed host and keeps, per server, the sample with the
    smallest round-trip delay (the least distorted one, as NTP's own clock filter does).
  - Returns the offset of the answering server with the smallest delay. The offset is the server's time minus
    this host's time, so for two hosts measured against the same server, "destination clock minus source clock"
    is C(offset_source - offset_destination).
  - Only reads the clock; it never sets it (unlike C(ntpdate SERVER)).
author:
  - openEuler KAE collection contributors (@openeuler)
requirements:
  - ntplib (python3-ntplib) on the managed host
extends_documentation_fragment:
  - openeuler.kae.attributes
  - openeuler.kae.attributes.INFO_MODULE
options:
  servers:
    description: NTP servers to query (host names or addresses).
    type: list
    elements: str
    required: true
  version:
    description: NTP protocol version of the requests.
    type: int
    default: 3
    choices: [1, 2, 3, 4]
  timeout_s:
    description: How long to wait for each answer, in seconds.
    type: float
    default: 2
  samples:
    description: Requests sent to each server; the answer with the smallest delay is kept.
    type: int
    default: 4
notes:
  - The module fails, naming every server and its error, when no server answers.
seealso:
  - module: openeuler.kae.live_migration
"""

EXAMPLES = r"""
- name: Measure both hypervisors against the site's NTP server
  openeuler.kae.clock_offset:
    servers:
      - 10.77.231.1
  register: clock

- name: Refuse a host whose clock is more than 10 ms off
  ansible.builtin.assert:
    that: clock.offset_ms | abs <= 10
    fail_msg: "{{ inventory_hostname }} is {{ clock.offset_ms }} ms off {{ clock.server }}"
"""

RETURN = r"""
offset_ms:
  description: Server time minus this host's time, in milliseconds, from the chosen server.
  returned: success
  type: float
  sample: -0.412
delay_ms:
  description: Round-trip delay of the kept sample of the chosen server, in milliseconds.
  returned: success
  type: float
  sample: 0.173
server:
  description: The server whose figures are returned (the answering one with the smallest delay).
  returned: success
  type: str
  sample: 10.77.231.1
results:
  description: One entry per server, in the order given.
  returned: always
  type: list
  elements: dict
  contains:
    server:
      description: The server.
      type: str
      sample: 10.77.231.1
    answered:
      description: How many of the O(samples) requests it answered.
      type: int
      sample: 4
    offset_ms:
      description: Offset of its best sample in milliseconds; null when it did not answer.
      type: float
      sample: -0.412
    delay_ms:
      description: Delay of its best sample in milliseconds; null when it did not answer.
      type: float
      sample: 0.173
    error:
      description: Why it did not answer; null when it answered.
      type: str
      sample: No response received from 10.77.231.9.
"""

import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.openeuler.kae.plugins.module_utils import _migration

try:
    import ntplib
except ImportError:
    ntplib = None
    NTPLIB_IMPORT_ERROR = traceback.format_exc()
else:
    NTPLIB_IMPORT_ERROR = None


def query_server(client, server, version, timeout_s, samples):
    """Ask SERVER SAMPLES times; return its result entry."""
    answers = []
    errors = []
    for _sample in range(samples):
        try:
            response = client.request(server, version=version, timeout=timeout_s)
        except (ntplib.NTPException, OSError) as exc:
            # OSError covers unknown host names and unreachable networks.
            errors.append(str(exc))
            continue
        answers.append((response.offset, response.delay))
    return _migration.server_result(server, answers, errors)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            servers=dict(type="list", elements="str", required=True),
            version=dict(type="int", default=3, choices=[1, 2, 3, 4]),
            timeout_s=dict(type="float", default=2.0),
            samples=dict(type="int", default=4),
        ),
        supports_check_mode=True,
    )
    servers = module.params["servers"]
    if not servers or not all(servers):
        module.fail_json(msg="servers must list at least one NTP server (host name or address), got %r" % (servers,))
    if module.params["samples"] < 1 or module.params["timeout_s"] <= 0:
        module.fail_json(msg="samples must be at least 1 and timeout_s greater than 0, got samples=%s, timeout_s=%s"
                         % (module.params["samples"], module.params["timeout_s"]))
    if ntplib is None:
        module.fail_json(msg=missing_required_lib("ntplib (python3-ntplib)"), exception=NTPLIB_IMPORT_ERROR)
    client = ntplib.NTPClient()
    results = [
        query_server(client, server, module.params["version"], module.params["timeout_s"], module.params["samples"])
        for server in servers
    ]
    chosen = _migration.choose_server(results)
    if chosen is None:
        module.fail_json(msg=_migration.no_answer_message(results), results=results)
    module.exit_json(changed=False, offset_ms=chosen["offset_ms"], delay_ms=chosen["delay_ms"], server=chosen["server"], results=results)


if __name__ == "__main__":
    main()
