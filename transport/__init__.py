"""How picl reaches nodes over SSH: connection settings, and commands on many nodes at once.

Installed as picl.transport. It knows nodes only by name and address: deploy, the day-2
commands and the agent all reach nodes through it.
"""
