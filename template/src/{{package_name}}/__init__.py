"""Golden-path training package: data/, models/ (family-specific), training/, tracking/."""
