"""Custom pyinfra facts that read a node's live state (installed as picl.facts)."""
