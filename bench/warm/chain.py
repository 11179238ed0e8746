"""Writes the P2 benchmark pipelines with the kfp SDK: a 10-step chain of trivial `inc(x) -> x + 1`
components, and a FANOUT-task fan-out of the same component.
Usage: python chain.py OUT_DIR [FANOUT]"""
import os
import sys

from kfp import compiler, dsl


@dsl.component(base_image="python:3.11")
def inc(x: int) -> int:
    return x + 1


@dsl.pipeline(name="chain10")
def chain10(x: int = 0) -> int:
    t = inc(x=x)
    for _ in range(9):
        t = inc(x=t.output)
    return t.output


def fanout(n: int):
    @dsl.pipeline(name=f"fanout{n}")
    def p(x: int = 0):
        for _ in range(n):
            inc(x=x).set_caching_options(False)
    return p


if __name__ == "__main__":
    out = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    compiler.Compiler().compile(chain10, os.path.join(out, "chain10.yaml"))
    compiler.Compiler().compile(fanout(n), os.path.join(out, "fanout.yaml"))
