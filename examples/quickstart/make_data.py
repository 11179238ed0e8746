#!/usr/bin/env python3
"""Writes data/customers.csv, the quickstart's small churn dataset (standard library only, fixed seed).

600 rows: numeric and categorical features, ~3% empty cells in feature columns, and a 0/1 `churned` label
that depends on them (plus noise). Usage: python3 make_data.py [OUT.csv]
"""
import math
import random
import sys


def main(path):
    rng = random.Random(20261123)
    plans = ["basic", "standard", "premium"]
    regions = ["north", "south", "east", "west"]
    rows = []
    for i in range(600):
        tenure = rng.randint(1, 72)
        monthly = round(rng.uniform(15, 120), 2)
        support_calls = min(int(rng.expovariate(0.6)), 12)
        plan = rng.choices(plans, weights=[0.5, 0.3, 0.2])[0]
        region = rng.choice(regions)
        score = (-0.05 * tenure + 0.02 * monthly + 0.45 * support_calls
                 + {"basic": 0.6, "standard": 0.0, "premium": -0.7}[plan] + rng.gauss(0, 0.8))
        churned = 1 if 1 / (1 + math.exp(-score)) > 0.5 else 0
        cells = [str(i + 1), str(tenure), f"{monthly:.2f}", str(support_calls), plan, region]
        for j in range(1, 6):  # leave ~3% of feature cells empty
            if rng.random() < 0.03:
                cells[j] = ""
        rows.append(cells + [str(churned)])
    with open(path, "w", newline="\n") as f:
        f.write("customer_id,tenure_months,monthly_charges,support_calls,plan,region,churned\n")
        for cells in rows:
            f.write(",".join(cells) + "\n")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "data/customers.csv")
