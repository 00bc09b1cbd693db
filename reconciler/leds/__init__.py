"""The LEDs: the cluster's state on each node's Blinkt! strip (installed as picl.reconciler.leds).

frames (the pure renderer), record (the state file the agent writes), drivers (blinkt,
terminal, none) and service (the node's LED service) use only the standard library and each
other: apply ships this package as-is to every node (service.shipped), where it runs with the
system python3 as `python3 -m leds`.
"""
