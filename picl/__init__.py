"""picl: keep a small cluster of single-board computers in the state written in cluster.toml."""

__version__ = "0.1.0"
