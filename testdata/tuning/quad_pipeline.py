"""A kfp pipeline tuned as a trial (`secondrow/v1 Pipeline`): it scores x and y on a known function and logs
the loss as a Metrics artifact, where the tuner reads the objective. Compile: python quad_pipeline.py"""

from kfp import compiler, dsl
from kfp.dsl import Metrics, Output


@dsl.component(base_image="python:3.11")
def score(x: float, y: float, metrics: Output[Metrics]):
    loss = (x - 1.0) ** 2 + (y + 2.0) ** 2
    metrics.log_metric("loss", loss)
    print(f"loss={loss}")


@dsl.pipeline(name="quad-pipeline")
def quad_pipeline(x: float = 0.0, y: float = 0.0):
    score(x=x, y=y)


if __name__ == "__main__":
    compiler.Compiler().compile(quad_pipeline, __file__.replace(".py", ".yaml"))
