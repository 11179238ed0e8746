"""What a local run cannot do as Kubernetes would: a container with no command (the image's entrypoint would
run), and a bash-only script run by `sh -c` (on Kubernetes /bin/sh is whatever the image has)."""
from kfp import compiler, dsl


@dsl.container_component
def entrypoint_only():
    return dsl.ContainerSpec(image='report-tool:1.0')


@dsl.container_component
def entrypoint_with_args(title: str):
    return dsl.ContainerSpec(image='report-tool:1.0', args=['--title', title])


@dsl.pipeline(name='no-command')
def no_command():
    entrypoint_only()


@dsl.pipeline(name='args-without-command')
def args_without_command(title: str = 'weekly'):
    entrypoint_with_args(title=title)


@dsl.container_component
def bash_script(n: int):
    return dsl.ContainerSpec(
        image='ubuntu:24.04',
        command=['sh', '-c', 'words=(alpha beta gamma); echo "${words[$0]}"'],
        args=[n],
    )


@dsl.container_component
def bash_test(path: str):
    return dsl.ContainerSpec(
        image='ubuntu:24.04',
        command=['sh', '-c', 'if [[ -e "$0" ]]; then echo exists; else echo missing >&2; exit 3; fi'],
        args=[path],
    )


@dsl.pipeline(name='bash-in-sh')
def bash_in_sh(n: int = 1, path: str = '/'):
    bash_script(n=n).set_caching_options(False)
    bash_test(path=path).set_caching_options(False)


if __name__ == '__main__':
    compiler.Compiler().compile(no_command, 'no_command.yaml')
    compiler.Compiler().compile(args_without_command, 'args_without_command.yaml')
    compiler.Compiler().compile(bash_in_sh, 'bash_in_sh.yaml')
