"""Data: the data set definition (team-owned), its preprocessing and the Lightning data module."""
