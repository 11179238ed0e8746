"""An importer of an S3 object that does not exist, feeding a container task: the launcher's download of
that input fails, and the task's error names the artifact."""
from kfp import compiler, dsl
from kfp.dsl import Dataset, Input


@dsl.container_component
def show(data: Input[Dataset]):
    return dsl.ContainerSpec(image="alpine", command=["cat", data.path])


@dsl.pipeline(name="missing-input")
def missing_input(uri: str = "s3://k8s-artifacts/runs/no-such-object"):
    imported = dsl.importer(artifact_uri=uri, artifact_class=Dataset, reimport=False)
    show(data=imported.output)


if __name__ == "__main__":
    compiler.Compiler().compile(missing_input, __file__.replace(".py", ".yaml"))
