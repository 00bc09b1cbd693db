"""The agent on the primary: git source, triggers, loop, status store, LEDs (installed as picl.reconciler)."""
