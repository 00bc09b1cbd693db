"""The agent on the primary: git source, triggers, loop, status store, LEDs.

Installed as picl.reconciler. One module per step or concern: source (fetch), verify, loop
(one cycle), status and store (what is recorded), triggers, strips (the LEDs' records),
control (suspend, resume, reconcile), agent (the wiring), install and wheelhouse.
"""
