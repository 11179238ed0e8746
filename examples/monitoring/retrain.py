"""The pipeline a monitor rule starts: import the logged window (a CSV path in `source`), describe it, and
refit a random forest on it. The window holds the served inputs and the model's `prediction`; a real
retraining joins the ground truth posted as feedback (or fetches fresh labelled data) instead.

Compile: python examples/monitoring/retrain.py   (writes retrain.yaml beside this file)
"""
import json
import os

from kfp import compiler, components, dsl

HERE = os.path.dirname(os.path.abspath(__file__))
COMPONENTS = os.path.join(HERE, "..", "..", "components")


def load(name):
    return components.load_component_from_file(os.path.join(COMPONENTS, f"{name}.yaml"))


statistics, transform, train_random_forest = load("statistics"), load("transform"), load("train_random_forest")

# Served requests have missing values like the training data: the same preparation as the quickstart's.
TRANSFORMS = json.dumps([
    {"op": "drop", "columns": ["customer_id"]},
    {"op": "impute", "strategy": "median", "columns": ["tenure_months", "monthly_charges", "support_calls"]},
    {"op": "standardize", "columns": ["tenure_months", "monthly_charges", "support_calls"]},
    {"op": "impute", "strategy": "most_frequent", "columns": ["plan", "region"]},
    {"op": "one_hot", "columns": ["plan", "region"]},
])


@dsl.pipeline(name="secondrow-monitoring-retrain", description="Refit on the window a monitor rule logged.")
def retrain(source: str, label: str = "prediction"):
    # Tasks read files given to them as artifacts (the task sandbox): the window comes in by an importer,
    # from the rule's namespace's own files under the artifact root (no `--import-root` needed).
    window = dsl.importer(artifact_uri=source, artifact_class=dsl.Dataset)
    statistics(data=window.output)
    fitted = transform(data=window.output, spec=TRANSFORMS, label=label)
    train_random_forest(train_data=window.output, label=label, transformer=fitted.outputs["transformer"], n_estimators=50)


if __name__ == "__main__":
    compiler.Compiler().compile(retrain, os.path.join(HERE, "retrain.yaml"))
