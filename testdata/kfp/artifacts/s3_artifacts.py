"""Artifacts of every shape for the S3 artifact-store tests: a dataset of `size_mb` MiB (large ones are
uploaded in parts), a folder of files, a metrics artifact (metadata only), their consumers, and (when
`escape_to_bucket` is given) a task that points its output outside the artifact root."""
from kfp import compiler, dsl
from kfp.dsl import Artifact, Dataset, Input, Metrics, Output


@dsl.component
def make_data(size_mb: int, data: Output[Dataset]):
    import random

    rng = random.Random(7)
    block = rng.randbytes(1 << 20)
    with open(data.path, "wb") as f:
        for i in range(size_mb):
            f.write(block[i % 251:] + block[: i % 251])
    data.metadata["size_mb"] = size_mb


@dsl.component
def make_folder(folder: Output[Artifact], scores: Output[Metrics]):
    import os

    os.makedirs(os.path.join(folder.path, "sub"))
    with open(os.path.join(folder.path, "a.txt"), "w") as f:
        f.write("alpha")
    with open(os.path.join(folder.path, "sub", "b.txt"), "w") as f:
        f.write("beta")
    scores.log_metric("accuracy", 0.9)


@dsl.component
def digest(data: Input[Dataset]) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(data.path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dsl.component
def read_folder(folder: Input[Artifact]) -> str:
    import os

    found = []
    for root, _, files in os.walk(folder.path):
        for name in files:
            path = os.path.join(root, name)
            with open(path) as f:
                found.append(os.path.relpath(path, folder.path) + "=" + f.read())
    return ",".join(sorted(found))


@dsl.component
def escape(bucket: str, out: Output[Artifact]):
    out.uri = "s3://" + bucket + "/pfx/../../elsewhere/secret"


@dsl.pipeline(name="s3-artifacts")
def s3_artifacts(size_mb: int = 1, escape_to_bucket: str = ""):
    d = make_data(size_mb=size_mb)
    digest(data=d.outputs["data"])
    f = make_folder()
    read_folder(folder=f.outputs["folder"])
    with dsl.If(escape_to_bucket != ""):
        escape(bucket=escape_to_bucket)


if __name__ == "__main__":
    compiler.Compiler().compile(s3_artifacts, __file__.replace(".py", ".yaml"))
