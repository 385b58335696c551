"""Write examples/churn.csv: a synthetic customer table for the README's "Use it on your data" walk-through.

Realistic on purpose: an id column, text categories (with a missing region now and then), integers, floats, a
yes/no column, a sign-up date (ISO text, as a CSV has it), missing values, and a text target `churned` (yes/no)
that depends on several of them (customers who signed up in a December promotion leave more often). Seeded, so the
file is the same on every machine:  python examples/make_churn_csv.py [rows]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd


def churn_table(rows: int = 2000, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    plan = rng.choice(["basic", "plus", "pro"], rows, p=[0.5, 0.3, 0.2])
    region = rng.choice(["north", "south", "east", "west"], rows).astype(object)
    tenure = rng.integers(1, 72, rows).astype(float)
    charges = np.round(rng.normal(60, 20, rows).clip(10, 150) + (plan == "pro") * 25, 2)
    calls = rng.poisson(1.5, rows)
    partner = rng.choice(["yes", "no"], rows)
    signup = pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 4 * 365, rows), unit="D")
    risk = 2 * (
        -1.8
        - 0.05 * tenure
        + 0.03 * charges
        + 0.6 * calls
        + 1.0 * (plan == "basic")
        - 0.8 * (partner == "yes")
        + 0.7 * (region == "south")
        + 0.8 * (signup.month == 12)
    )
    churned = np.where(rng.random(rows) < 1 / (1 + np.exp(-risk)), "yes", "no")
    signup_date = pd.Series(signup.strftime("%Y-%m-%d"), dtype=object)
    signup_date[rng.random(rows) < 0.02] = None
    region[rng.random(rows) < 0.05] = None
    tenure[rng.random(rows) < 0.03] = np.nan
    return pd.DataFrame(
        {
            "customer_id": [f"C{i:05d}" for i in range(rows)],
            "plan": plan,
            "region": region,
            "tenure_months": tenure,
            "monthly_charges": charges,
            "support_calls": calls,
            "has_partner": partner,
            "signup_date": signup_date,
            "churned": churned,
        }
    )


if __name__ == "__main__":
    table = churn_table(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)
    path = Path(__file__).with_name("churn.csv")
    table.to_csv(path, index=False)
    print(f"wrote {len(table)} rows to {path} (churn rate {(table['churned'] == 'yes').mean():.2f})")
