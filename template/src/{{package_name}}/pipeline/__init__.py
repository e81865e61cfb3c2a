"""The training pipeline: its definition (definition.py), steps (steps/) and the local runner.

`python -m <package>.pipeline run` runs it here; see `__main__.py` for the command line.
Importing this package imports nothing heavy: orchestrator adapters read `definition` alone.
"""
