"""Tracking: what every run records in MLflow, besides what Lightning's MLFlowLogger logs."""
