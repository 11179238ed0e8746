"""The pipeline a monitor rule starts: import the logged window (a CSV path in `source`), describe it, and
refit a random forest on it. The window holds the served inputs and the model's `prediction`; a real
retraining joins the ground truth posted as feedback (or fetches fresh labelled data) instead.

Compile: python examples/monitoring/retrain.py   (writes retrain.yaml beside this file)
"""
import os

from kfp import compiler, components, dsl

HERE = os.path.dirname(os.path.abspath(__file__))
COMPONENTS = os.path.join(HERE, "..", "..", "components")


def load(name):
    return components.load_component_from_file(os.path.join(COMPONENTS, f"{name}.yaml"))


statistics, train_random_forest = load("statistics"), load("train_random_forest")


@dsl.pipeline(name="secondrow-monitoring-retrain", description="Refit on the window a monitor rule logged.")
def retrain(source: str, label: str = "prediction"):
    # Tasks read files given to them as artifacts (the task sandbox): the window comes in by an importer,
    # from the rule's namespace's own files under the artifact root (no `--import-root` needed).
    window = dsl.importer(artifact_uri=source, artifact_class=dsl.Dataset)
    statistics(data=window.output)
    train_random_forest(train_data=window.output, label=label, n_estimators=50)


if __name__ == "__main__":
    compiler.Compiler().compile(retrain, os.path.join(HERE, "retrain.yaml"))
