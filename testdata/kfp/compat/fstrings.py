"""f-strings of pipeline parameters and task outputs, in a plain DAG, a condition, nested conditions and a loop."""
from kfp import compiler, dsl


@dsl.component
def produce(text: str) -> str:
    return text


@dsl.component
def echo(text: str) -> str:
    print(text)
    return text


@dsl.component
def show_list(items: list) -> str:
    return "|".join(items)


@dsl.component
def show_dict(d: dict) -> str:
    return "|".join(f"{k}={v}" for k, v in d.items())


@dsl.container_component
def shout(text: str, out: dsl.OutputPath(str)):
    return dsl.ContainerSpec(image="alpine", command=["sh", "-c", 'printf "%s" "$0" > "$1"'], args=[text, out])


@dsl.container_component
def shout_number(x: float, out: dsl.OutputPath(str)):
    return dsl.ContainerSpec(image="alpine", command=["sh", "-c", 'printf "%s" "$0" > "$1"'], args=[x, out])


@dsl.pipeline(name="fstrings")
def pipeline(name: str = "world", count: int = 3, ratio: float = 0.5, flag: bool = True,
             items: list = [1, 2], conf: dict = {"a": 1}, whole: float = 2.0):
    p = produce(text="up")
    echo(text=f"hello {name}, {p.output}!").set_display_name("plain")
    echo(text=f"n={count} r={ratio} f={flag} l={items} d={conf}").set_display_name("typed")
    shout(text=f"container {name} {p.output}").set_display_name("container")
    shout_number(x=whole).set_display_name("number")
    with dsl.If(p.output == "up"):
        c = echo(text=f"in condition {name} {p.output}").set_display_name("cond")
        with dsl.If(name == "world"):
            echo(text=f"nested {c.output} {count}").set_display_name("nested")
    show_list(items=[f"Hello {name}", f"{p.output} {count}"]).set_display_name("list")
    show_dict(d={f"Hello {name}": f"How are you, {name}?"}).set_display_name("dict")
    with dsl.ParallelFor(items=[1, 2]) as item:
        echo(text=f"item {item} of {name}").set_display_name("loop")
        show_list(items=[f"{item}-{name}"]).set_display_name("looplist")
    with dsl.ParallelFor(items=[{"a": "x", "b": 1}, {"a": "y", "b": 2}]) as obj:
        echo(text=f"field {obj.a}/{obj.b} of {name}").set_display_name("loopfield")


if __name__ == "__main__":
    compiler.Compiler().compile(pipeline, "fstrings.yaml")
