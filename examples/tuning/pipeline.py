"""The trial pipeline of the tuning example: the quickstart's data preparation and random forest, with the
forest's hyperparameters as pipeline parameters; `evaluate` logs the test accuracy as a Metrics artifact,
which is the experiment's objective (experiment.yaml).

Compile:  .venv-test/bin/python examples/tuning/pipeline.py   (writes pipeline.yaml beside this file)
"""
import json
import os

from kfp import compiler, components, dsl

HERE = os.path.dirname(os.path.abspath(__file__))
COMPONENTS = os.path.join(HERE, "..", "..", "components")


def load(name):
    return components.load_component_from_file(os.path.join(COMPONENTS, f"{name}.yaml"))


ingest = load("ingest")
split = load("split")
transform = load("transform")
train_random_forest = load("train_random_forest")
evaluate = load("evaluate")

# The quickstart's transforms (examples/quickstart/pipeline.py).
TRANSFORMS = json.dumps([
    {"op": "drop", "columns": ["customer_id"]},
    {"op": "impute", "strategy": "median", "columns": ["tenure_months", "monthly_charges", "support_calls"]},
    {"op": "standardize", "columns": ["tenure_months", "monthly_charges", "support_calls"]},
    {"op": "impute", "strategy": "most_frequent", "columns": ["plan", "region"]},
    {"op": "one_hot", "columns": ["plan", "region"]},
])


@dsl.pipeline(name="tune-random-forest", description="One trial: the quickstart's random forest with given hyperparameters.")
def tune_random_forest(source: str, label: str = "churned", n_estimators: int = 100, max_depth: int = 10,
                       min_samples_leaf: int = 1, max_features: str = "auto", seed: int = 0):
    data = ingest(source=source).set_display_name("ingest")
    parts = split(data=data.outputs["dataset"], test_fraction=0.25, seed=seed, stratify=label)
    fitted = transform(data=parts.outputs["train"], spec=TRANSFORMS, label=label).set_display_name("transform")
    forest = train_random_forest(train_data=parts.outputs["train"], label=label, transformer=fitted.outputs["transformer"],
                                 n_estimators=n_estimators, max_depth=max_depth, min_samples_leaf=min_samples_leaf,
                                 max_features=max_features, seed=seed).set_display_name("train-random-forest")
    evaluate(data=parts.outputs["test"], model=forest.outputs["model"]).set_display_name("evaluate")


if __name__ == "__main__":
    compiler.Compiler().compile(tune_random_forest, os.path.join(HERE, "pipeline.yaml"))
