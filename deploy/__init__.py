"""The spec compiled to pyinfra operations, one module per concern (installed as picl.deploy)."""
