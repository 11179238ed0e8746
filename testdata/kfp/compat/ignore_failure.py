"""ignore_upstream_failure(): kfp's docstring example; the downstream input falls back to its default."""
from kfp import compiler, dsl


@dsl.component
def fail_op(message: str) -> str:
    import sys
    print(message)
    sys.exit(1)
    return message


@dsl.component
def print_op(message: str = "default"):
    print(message)


@dsl.pipeline(name="ignore-upstream-failure")
def pipeline():
    task = fail_op(message="failing")
    print_op(message=task.output).set_caching_options(False).ignore_upstream_failure()


if __name__ == "__main__":
    compiler.Compiler().compile(pipeline, "ignore_failure.yaml")
