"""The churn data set: its columns and a seeded generator of a realistic example.

Team-owned: `copier update` never touches this file. To train on your own data, keep the
three names the platform code reads (`TARGET`, `NUMERIC_FEATURES` with each number's valid
range, `CATEGORICAL_FEATURES` with each category's values) and either point `data.source`
(configs/data/) at a CSV or Parquet file, or make `generate_dataset` return your table (read
it from your warehouse, an API, ...). Training writes what it returns to `data/raw/` once and
fingerprints that file; the pipeline, where the project has one, calls it on every run. Either
way data/schema.py checks the table before training.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .ranges import Range

TARGET = "churned"
# Each number with the values it may take (inclusive). Training data, requests and batch files
# outside these ranges are refused, and the monitor counts them: set what is valid, not what
# the training data happens to hold (the monitor compares with that on its own).
NUMERIC_FEATURES: dict[str, Range] = {
    "age": Range(18, 120, integer=True),
    "tenure_months": Range(0, 600, integer=True),
    "monthly_charges": Range(0, 10_000),
    "total_charges": Range(0, 10_000_000),
    "support_calls": Range(0, 1_000, integer=True),
    "num_products": Range(1, 100, integer=True),
}
# Fixed vocabularies: the one-hot columns do not depend on which values a split happens to hold.
CATEGORICAL_FEATURES: dict[str, tuple[str, ...]] = {
    "contract": ("month_to_month", "one_year", "two_year"),
    "payment_method": ("electronic_check", "mailed_check", "bank_transfer", "credit_card"),
    "internet_service": ("dsl", "fiber_optic", "no_internet"),
    "paperless_billing": ("no", "yes"),
}


def generate_dataset(n_rows: int = 10_000, seed: int = 0) -> pd.DataFrame:
    """A synthetic customer table in which churn follows a noisy logistic relation.

    Short tenure, month-to-month contracts, electronic checks, fibre (more outages) and
    support calls raise the churn risk; long contracts and more products lower it.
    """
    rng = np.random.default_rng(seed)
    contract = rng.choice(CATEGORICAL_FEATURES["contract"], size=n_rows, p=[0.55, 0.25, 0.20])
    long_contract = contract != "month_to_month"
    tenure = np.clip(rng.gamma(2.0, np.where(long_contract, 18.0, 8.0)), 0, 72).round()
    internet = rng.choice(
        CATEGORICAL_FEATURES["internet_service"], size=n_rows, p=[0.35, 0.45, 0.20]
    )
    num_products = rng.integers(1, 6, size=n_rows)
    base_charge = np.select([internet == "fiber_optic", internet == "dsl"], [75.0, 50.0], 20.0)
    monthly = np.clip(base_charge + 5.0 * num_products + rng.normal(0, 8, n_rows), 18, 120)
    total = monthly * tenure * rng.normal(1.0, 0.05, n_rows)
    payment = rng.choice(
        CATEGORICAL_FEATURES["payment_method"], size=n_rows, p=[0.35, 0.20, 0.22, 0.23]
    )
    paperless = rng.choice(CATEGORICAL_FEATURES["paperless_billing"], size=n_rows, p=[0.4, 0.6])
    age = rng.integers(18, 80, size=n_rows)
    support_calls = rng.poisson(np.where(internet == "fiber_optic", 2.0, 0.8))

    contract_effect = np.select(
        [contract == "month_to_month", contract == "one_year"], [0.9, -0.6], -1.6
    )
    logit = (
        -1.5
        + contract_effect
        - 0.045 * tenure
        + 0.02 * (monthly - 65.0)
        + 0.5 * (payment == "electronic_check")
        + 0.4 * (internet == "fiber_optic")
        + 0.35 * support_calls
        - 0.15 * (num_products - 1)
        + 0.2 * (paperless == "yes")
        + 0.01 * (age - 45)
        + rng.normal(0.0, 1.2, n_rows)  # what the features cannot explain
    )
    churned = rng.random(n_rows) < 1.0 / (1.0 + np.exp(-logit))

    return pd.DataFrame(
        {
            "customer_id": [f"C{i:06d}" for i in range(n_rows)],
            "age": age,
            "tenure_months": tenure.astype(int),
            "monthly_charges": monthly.round(2),
            "total_charges": total.round(2),
            "support_calls": support_calls,
            "num_products": num_products,
            "contract": contract,
            "payment_method": payment,
            "internet_service": internet,
            "paperless_billing": paperless,
            TARGET: churned.astype(int),
        }
    )
