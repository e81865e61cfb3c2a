"""Hyperparameter search: Optuna studies over Hydra-composed training configs (`make tune`)."""
