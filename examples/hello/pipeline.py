"""A first SecondRow pipeline, written with the kfp SDK: data → stats (Python) → report (shell), with a
loop, a condition and a metrics artifact. Compile with `python pipeline.py`, run with `secondrow run`."""
from typing import List

from kfp import compiler, dsl
from kfp.dsl import Dataset, Input, Markdown, Metrics, Output


@dsl.component(base_image="python:3.11")
def make_numbers(n: int, data: Output[Dataset]):
    with open(data.path, "w") as f:
        f.write("\n".join(str(i * i) for i in range(1, n + 1)))
    data.metadata["rows"] = n


@dsl.component(base_image="python:3.11")
def stats(data: Input[Dataset], metrics: Output[Metrics]) -> float:
    values = [float(line) for line in open(data.path)]
    mean = sum(values) / len(values)
    metrics.log_metric("mean", mean)
    metrics.log_metric("max", max(values))
    return mean


@dsl.component(base_image="python:3.11")
def scale(x: int, factor: float) -> float:
    return x * factor


@dsl.component(base_image="python:3.11")
def total(xs: List[float], report: Output[Markdown]) -> float:
    s = float(sum(xs))
    with open(report.path, "w") as f:
        f.write(f"# Scaled total\n\n{len(xs)} items, total **{s}**\n")
    return s


@dsl.container_component
def shout(msg: str, out: dsl.OutputPath(str)):
    return dsl.ContainerSpec(image="alpine", command=["sh", "-c", 'printf "%s!" "$0" | tr a-z A-Z > "$1"'],
                             args=[msg, out])


@dsl.pipeline(name="hello-secondrow", description="A first pipeline: Python and shell steps, a loop, a condition")
def hello(n: int = 10, factor: float = 0.5) -> float:
    data = make_numbers(n=n)
    mean = stats(data=data.outputs["data"])
    with dsl.ParallelFor([1, 2, 3], parallelism=2) as x:
        scaled = scale(x=x, factor=factor)
    t = total(xs=dsl.Collected(scaled.output))
    with dsl.If(mean.outputs["Output"] > 20.0, name="big-mean"):
        shout(msg="the mean is big")
    return t.outputs["Output"]


if __name__ == "__main__":
    compiler.Compiler().compile(hello, __file__.replace(".py", ".yaml"))
