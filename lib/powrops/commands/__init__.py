"""Subcommand groups of the ``powrops`` CLI that live outside ``cli.py``.

Each module has ``register(sub)`` adding its parsers; handlers import what they need when they
run, so that registering costs nothing at start.
"""
