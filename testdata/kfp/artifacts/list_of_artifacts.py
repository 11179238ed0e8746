"""Lists of artifacts: dsl.Collected of a loop's datasets (returned by a nested pipeline, and collected in the
same pipeline), each handed to a Python component (Input[List[Dataset]]) and to a container command
({{$.inputs.artifacts['x']}})."""
from typing import List

from kfp import compiler, dsl
from kfp.dsl import Dataset, Input, Output, OutputPath


@dsl.component
def write_text(text: str, out: Output[Dataset]):
    out.metadata['chars'] = len(text)
    with open(out.path, 'w') as f:
        f.write(text)


@dsl.component
def join_texts(datasets: Input[List[Dataset]]) -> str:
    parts = []
    for d in datasets:
        with open(d.path) as f:
            parts.append(f'{f.read()}:{d.metadata["chars"]}')
    return '|'.join(parts)


@dsl.container_component
def list_as_json(datasets: Input[List[Dataset]], listed: OutputPath(str)):
    # The placeholder is the whole list; the command keeps it verbatim.
    return dsl.ContainerSpec(
        image='alpine',
        command=['sh', '-c', 'mkdir -p "$(dirname "$1")" && printf %s "$0" > "$1"'],
        args=[datasets, listed],
    )


@dsl.pipeline
def collected_texts(texts: List[str]) -> List[Dataset]:
    with dsl.ParallelFor(texts) as t:
        w = write_text(text=t)
    return dsl.Collected(w.outputs['out'])


@dsl.pipeline(name='list-of-artifacts')
def pipeline(texts: List[str] = ['alpha', 'beta', 'gamma', 'delta']):
    inner = collected_texts(texts=texts)
    join_texts(datasets=inner.output).set_caching_options(False)
    list_as_json(datasets=inner.output).set_caching_options(False)

    with dsl.ParallelFor(['one', 'two', 'three']) as word:
        w = write_text(text=word)
    join_texts(datasets=dsl.Collected(w.outputs['out'])).set_caching_options(False)
    list_as_json(datasets=dsl.Collected(w.outputs['out'])).set_caching_options(False)


if __name__ == '__main__':
    compiler.Compiler().compile(pipeline, __file__.replace('.py', '.yaml'))
