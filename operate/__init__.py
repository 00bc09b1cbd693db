"""The day-2 commands: a command on every node, health checks, reboot and shutdown.

Installed as picl.operate. Above deploy (a check reads what the spec mounts, as deploy
renders it), beside the reconciler; nodes are reached through picl.transport.
"""
