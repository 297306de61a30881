#!/bin/sh
# The lab hosts that run now, for Ansible's script inventory plugin: `lab/kaelab.py up --hosts N --guests M` records
# the lab's size and `kaelab.py inventory` turns it into hosts of kae_hypervisors (address, simulated sysfs tree,
# the guests started there) and the group variable kae_lab_fleet_guests. hosts.yml names the default two hosts
# whether the lab runs or not; this adds kae-lab-c and the rest of a bigger lab.
exec python3 "$(dirname "$0")/../../lab/kaelab.py" inventory "$@"
