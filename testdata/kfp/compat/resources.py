"""Resource settings taken from pipeline parameters and task outputs."""
from kfp import compiler, dsl


@dsl.component
def memory() -> str:
    return "512Mi"


@dsl.container_component
def work(msg: str):
    return dsl.ContainerSpec(image="alpine", command=["echo"], args=[msg])


@dsl.pipeline(name="resources")
def pipeline(cpu: str = "500m", gpu_type: str = "nvidia.com/gpu", gpus: str = "1"):
    m = memory()
    t = work(msg="sized")
    t.set_cpu_limit(cpu).set_memory_limit(m.output).set_cpu_request(cpu).set_memory_request("256Mi")
    t.set_accelerator_type(gpu_type).set_accelerator_limit(gpus)
    work(msg="constant").set_cpu_limit("2").set_memory_limit("1G")


if __name__ == "__main__":
    compiler.Compiler().compile(pipeline, "resources.yaml")
