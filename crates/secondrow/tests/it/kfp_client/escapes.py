"""Pipelines for the remote tests: artifacts that try to leave the artifact root, a folder artifact, a
failing task. Compiled with the real SDK into the working directory.

usage: escapes.py   (writes escapes.yaml, fails.yaml and folders.yaml)
"""
from kfp import compiler, dsl
from kfp.dsl import Artifact, Output


@dsl.component(base_image="python:3.11")
def reassign(secret: str, out: Output[Artifact]):
    # User code may point an output anywhere; executor_output.json carries the new uri.
    out.uri = secret


@dsl.component(base_image="python:3.11")
def link_in_dir(secret: str, out: Output[Artifact]):
    import os
    os.makedirs(out.path, exist_ok=True)
    with open(os.path.join(out.path, "ok.txt"), "w") as f:
        f.write("fine")
    os.symlink(secret, os.path.join(out.path, "leak"))


@dsl.component(base_image="python:3.11")
def link_file(secret: str, out: Output[Artifact]):
    import os
    os.makedirs(os.path.dirname(out.path), exist_ok=True)
    os.symlink(secret, out.path)


@dsl.component(base_image="python:3.11")
def tree(out: Output[Artifact]):
    import os
    os.makedirs(os.path.join(out.path, "sub"), exist_ok=True)
    with open(os.path.join(out.path, "a.txt"), "w") as f:
        f.write("A")
    with open(os.path.join(out.path, "sub", "b.bin"), "wb") as f:
        f.write(bytes(range(256)) * 1000)
    print("tree written")


@dsl.pipeline(name="escapes")
def escapes(secret: str):
    reassign(secret=secret)
    link_in_dir(secret=secret)
    link_file(secret=secret)
    tree()


@dsl.pipeline(name="folders")
def folders():
    tree()


@dsl.component(base_image="python:3.11")
def boom(msg: str):
    print("about to fail:", msg)
    raise SystemExit(3)


@dsl.pipeline(name="fails")
def fails(msg: str = "x"):
    boom(msg=msg)


if __name__ == "__main__":
    compiler.Compiler().compile(escapes, "escapes.yaml")
    compiler.Compiler().compile(fails, "fails.yaml")
    compiler.Compiler().compile(folders, "folders.yaml")
