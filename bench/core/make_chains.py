"""Writes the P1 benchmark pipeline: CHAINS parallel chains of LENGTH shell tasks running `true`,
compiled with the kfp SDK. Usage: python make_chains.py OUT.yaml [CHAINS] [LENGTH]"""
import sys

from kfp import compiler, dsl


@dsl.container_component
def noop():
    return dsl.ContainerSpec(image="alpine", command=["true"])


def build(chains: int, length: int):
    @dsl.pipeline(name=f"chains-{chains}x{length}")
    def chains_pipeline():
        for _ in range(chains):
            prev = None
            for _ in range(length):
                t = noop()
                t.set_caching_options(False)
                if prev is not None:
                    t.after(prev)
                prev = t
    return chains_pipeline


if __name__ == "__main__":
    out = sys.argv[1]
    chains = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    length = int(sys.argv[3]) if len(sys.argv) > 3 else 10
    compiler.Compiler().compile(build(chains, length), out)
