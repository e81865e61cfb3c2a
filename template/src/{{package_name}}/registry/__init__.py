"""Model registry: scoring a model on held-out data and the evaluation gate to `challenger`."""
