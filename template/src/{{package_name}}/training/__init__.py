"""Training: config discovery and the Hydra entry point (`python -m <package>.training.train`)."""
