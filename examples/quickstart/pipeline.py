"""SecondRow quickstart: ingest → validate → split → transform → train → evaluate, built from the
built-in components in components/ (each runs `secondrow component NAME`).

Compile:  .venv-test/bin/python examples/quickstart/pipeline.py   (writes pipeline.yaml beside this file)
Run:      secondrow run examples/quickstart/pipeline.yaml -p source=$PWD/examples/quickstart/data/customers.csv

The transformer is fitted on the training part only and stored inside each model, so `evaluate` (and
serving) take raw rows.
"""
import json
import os

from kfp import compiler, components, dsl

HERE = os.path.dirname(os.path.abspath(__file__))
COMPONENTS = os.path.join(HERE, "..", "..", "components")


def load(name):
    return components.load_component_from_file(os.path.join(COMPONENTS, f"{name}.yaml"))


ingest = load("ingest")
statistics = load("statistics")
validate = load("validate")
split = load("split")
transform = load("transform")
train_random_forest = load("train_random_forest")
train_logistic_regression = load("train_logistic_regression")
evaluate = load("evaluate")

SCHEMA = json.dumps({
    "columns": [
        {"name": "customer_id", "type": "integer", "min": 1},
        {"name": "tenure_months", "type": "integer", "min": 0, "max": 120, "max_missing_ratio": 0.1},
        {"name": "monthly_charges", "type": "number", "min": 0, "max": 500, "max_missing_ratio": 0.1},
        {"name": "support_calls", "type": "integer", "min": 0, "max_missing_ratio": 0.1},
        {"name": "plan", "type": "string", "allowed": ["basic", "standard", "premium"], "max_missing_ratio": 0.1},
        {"name": "region", "type": "string", "allowed": ["north", "south", "east", "west"], "max_missing_ratio": 0.1},
        {"name": "churned", "type": "integer", "min": 0, "max": 1, "max_missing_ratio": 0.0},
    ],
    "allow_extra_columns": False,
})

TRANSFORMS = json.dumps([
    {"op": "drop", "columns": ["customer_id"]},
    {"op": "impute", "strategy": "median", "columns": ["tenure_months", "monthly_charges", "support_calls"]},
    {"op": "standardize", "columns": ["tenure_months", "monthly_charges", "support_calls"]},
    {"op": "impute", "strategy": "most_frequent", "columns": ["plan", "region"]},
    {"op": "one_hot", "columns": ["plan", "region"]},
])


@dsl.pipeline(name="secondrow-quickstart", description="Churn model from a CSV with SecondRow's built-in components.")
def quickstart(source: str, label: str = "churned", n_estimators: int = 100, seed: int = 0):
    data = ingest(source=source).set_display_name("ingest")
    statistics(data=data.outputs["dataset"]).set_display_name("statistics")
    checked = validate(data=data.outputs["dataset"], schema_json=SCHEMA).set_display_name("validate")
    parts = split(data=data.outputs["dataset"], test_fraction=0.25, seed=seed, stratify=label).after(checked)
    fitted = transform(data=parts.outputs["train"], spec=TRANSFORMS, label=label).set_display_name("transform")
    forest = train_random_forest(train_data=parts.outputs["train"], label=label, transformer=fitted.outputs["transformer"],
                                 n_estimators=n_estimators, seed=seed).set_display_name("train-random-forest")
    logistic = train_logistic_regression(train_data=parts.outputs["train"], label=label,
                                         transformer=fitted.outputs["transformer"]).set_display_name("train-logistic-regression")
    evaluate(data=parts.outputs["test"], model=forest.outputs["model"]).set_display_name("evaluate-random-forest")
    evaluate(data=parts.outputs["test"], model=logistic.outputs["model"]).set_display_name("evaluate-logistic-regression")


if __name__ == "__main__":
    compiler.Compiler().compile(quickstart, os.path.join(HERE, "pipeline.yaml"))
