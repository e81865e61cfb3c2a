"""The pipeline's steps: one module each, one plain function each (see ../definition.py).

A step function takes its declared input and output artifacts as paths (inputs to read, outputs
to write) and a `context` (../context.py): its config, its MLflow run, its working folder.
"""
