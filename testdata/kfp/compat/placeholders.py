"""Every pipeline-level runtime placeholder kfp 2.14 emits, in a container command and as a parameter."""
from kfp import compiler, dsl


@dsl.container_component
def show(job_name: str, resource_name: str, job_uuid: str, task_name: str, task_uuid: str,
         create_time: str, schedule_time: str, root: str, out: dsl.OutputPath(str)):
    return dsl.ContainerSpec(
        image="alpine",
        command=["sh", "-c", 'printf "%s\\n" "$@" > "$0"'],
        args=[out, job_name, resource_name, job_uuid, task_name, task_uuid, create_time, schedule_time, root],
    )


@dsl.pipeline(name="placeholders", pipeline_root="")
def pipeline():
    show(
        job_name=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
        resource_name=dsl.PIPELINE_JOB_RESOURCE_NAME_PLACEHOLDER,
        job_uuid=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
        task_name=dsl.PIPELINE_TASK_NAME_PLACEHOLDER,
        task_uuid=dsl.PIPELINE_TASK_ID_PLACEHOLDER,
        create_time=dsl.PIPELINE_JOB_CREATE_TIME_UTC_PLACEHOLDER,
        schedule_time=dsl.PIPELINE_JOB_SCHEDULE_TIME_UTC_PLACEHOLDER,
        root=dsl.PIPELINE_ROOT_PLACEHOLDER,
    ).set_caching_options(False)


if __name__ == "__main__":
    compiler.Compiler().compile(pipeline, "placeholders.yaml")
