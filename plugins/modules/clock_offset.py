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
    description: How long to wait for each answer, in seconds; a finite number greater than 0 and at most 60.
    type: float
    default: 2
  samples:
    description: Requests sent to each server, from 1 to 100; the answer with the smallest delay is kept.
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

from ansible.module_utils import basic
from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.openeuler.kae.plugins.module_utils import _migration
from ansible_collections.openeuler.kae.plugins.module_utils import _validate

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


ARGUMENT_SPEC = dict(
    servers=dict(type="list", elements="str", required=True),
    version=dict(type="int", default=3, choices=[1, 2, 3, 4]),
    timeout_s=dict(type="float", default=2.0),
    samples=dict(type="int", default=4),
)


def check_params(params):
    """Refuse servers that are no names and numbers out of range, naming the option."""
    servers = params["servers"]
    if not servers:
        raise _validate.InputError("servers must list at least one NTP server (host name or address), got %r" % (servers,))
    for index, server in enumerate(servers):
        _validate.text(server, "servers[%d]" % index)
    _validate.positive(params["timeout_s"], "timeout_s", maximum=60)
    _validate.number(params["samples"], "samples", minimum=1, maximum=100, integer=True)


def main():
    spec, problem = _validate.screen_number_options(basic._load_params(), ARGUMENT_SPEC)
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    if problem:
        module.fail_json(msg=problem)
    try:
        check_params(module.params)
    except _validate.InputError as exc:
        module.fail_json(msg=str(exc))
    if ntplib is None:
        module.fail_json(msg=missing_required_lib("ntplib (python3-ntplib)"), exception=NTPLIB_IMPORT_ERROR)
    client = ntplib.NTPClient()
    results = [
        query_server(client, server, module.params["version"], module.params["timeout_s"], module.params["samples"])
        for server in module.params["servers"]
    ]
    chosen = _migration.choose_server(results)
    if chosen is None:
        module.fail_json(msg=_migration.no_answer_message(results), results=results)
    module.exit_json(changed=False, offset_ms=chosen["offset_ms"], delay_ms=chosen["delay_ms"], server=chosen["server"], results=results)


if __name__ == "__main__":
    main()
