"""Components that fail in the ways users' components do: an exception, and sys.exit(1) after printing an
error, and sys.exit(1) with nothing on stderr, so cold and warm runs can be compared."""
from kfp import compiler, dsl


@dsl.component
def raises(n: int) -> int:
    if n > 0:
        raise ValueError(f'n must not be positive, got {n}')
    return n


@dsl.component
def exits(n: int) -> int:
    import sys
    if n > 0:
        print('starting the check')
        print(f'error: quota exceeded for n={n}', file=sys.stderr)
        sys.exit(1)
    return n


@dsl.component
def exits_quietly(n: int) -> int:
    import sys
    if n > 0:
        print(f'giving up on n={n}')
        sys.exit(1)
    return n


@dsl.pipeline(name='failures')
def pipeline(n: int = 1, which: str = 'raises'):
    with dsl.If(which == 'raises'):
        raises(n=n).set_caching_options(False)
    with dsl.If(which == 'exits'):
        exits(n=n).set_caching_options(False)
    with dsl.If(which == 'quiet'):
        exits_quietly(n=n).set_caching_options(False)


if __name__ == '__main__':
    compiler.Compiler().compile(pipeline, __file__.replace('.py', '.yaml'))
