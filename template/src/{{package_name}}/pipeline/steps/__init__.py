"""The pipeline's steps: one module each, one plain function each (see ../definition.py).

A step function takes its declared input and output artifacts as paths (inputs to read,
outputs to write) and the composed config as `cfg`. It logs to the step's MLflow run when a
runner made one (`tracking.current_run_id()`).
"""
