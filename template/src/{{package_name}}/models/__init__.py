"""Models: the network (team-owned), its Lightning module, evaluation plots and MLflow export."""
