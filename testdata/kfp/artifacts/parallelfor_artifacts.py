"""ParallelFor over a list of artifacts (kfp compiles it to an `artifactIterator`): one iteration per
artifact, the item handed to the body as an artifact input, the body's outputs collected in order."""
from typing import List

from kfp import compiler, dsl
from kfp.dsl import Artifact, Dataset, Input


@dsl.component
def make_dataset(text: str) -> Dataset:
    ds = Dataset(uri=dsl.get_uri(), metadata={'chars': len(text)})
    with open(ds.path, 'w') as f:
        f.write(text)
    return ds


@dsl.pipeline
def make_datasets(texts: List[str]) -> List[Dataset]:
    with dsl.ParallelFor(texts) as text:
        made = make_dataset(text=text)
    return dsl.Collected(made.output)


@dsl.component
def describe(item: Input[Artifact], prefix: str) -> str:
    with open(item.path) as f:
        return f'{prefix}{f.read()}:{item.metadata["chars"]}'


@dsl.component
def summarize(descriptions: List[str]) -> str:
    return ','.join(descriptions)


@dsl.pipeline
def describe_all(datasets: Input[List[Dataset]]) -> List[str]:
    """Loops over a list of artifacts that arrives as an input of a nested pipeline."""
    with dsl.ParallelFor(items=datasets) as item:
        d = describe(item=item, prefix='nested ')
    return dsl.Collected(d.output)


@dsl.pipeline(name='parallelfor-over-artifacts')
def pipeline(texts: List[str] = ['red', 'green', 'blue'], prefix: str = '#'):
    datasets = make_datasets(texts=texts)
    with dsl.ParallelFor(items=datasets.output, parallelism=2) as item:
        d = describe(item=item, prefix=prefix)
    summarize(descriptions=dsl.Collected(d.output))
    nested = describe_all(datasets=datasets.output)
    summarize(descriptions=nested.output).set_display_name('summarize-nested')


if __name__ == '__main__':
    compiler.Compiler().compile(pipeline, __file__.replace('.py', '.yaml'))
