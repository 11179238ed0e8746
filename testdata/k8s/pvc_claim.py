"""CreatePVC -> a task writing into the claim -> a task reading it back -> DeletePVC, for the Kubernetes
executor's tests (kfp-kubernetes). Paths reach the commands as arguments, so the test kubelet can map the
claim's mount path to its folder. The writer waits for the file `gate` (the test creates it once it has
looked at the claim) so the claim is seen while the run is running."""
from kfp import compiler, dsl, kubernetes


@dsl.container_component
def writer(text: str, data: str, gate: str):
    return dsl.ContainerSpec(
        image="alpine",
        command=[
            "sh",
            "-c",
            'echo "$0" > "$1/note.txt"; i=0; while [ ! -e "$2" ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done',
        ],
        args=[text, data, gate],
    )


@dsl.container_component
def reader(data: str, out: dsl.OutputPath(str)):
    return dsl.ContainerSpec(
        image="alpine",
        command=["sh", "-c", 'mkdir -p "$(dirname "$0")" && cat "$1/note.txt" > "$0"'],
        args=[out, data],
    )


@dsl.pipeline(name="pvc-claim")
def pvc_claim(text: str = "hello claim", size: str = "1Gi", gate: str = "/nonexistent") -> str:
    pvc = kubernetes.CreatePVC(
        pvc_name_suffix="-scratch",
        access_modes=["ReadWriteOnce"],
        size=size,
        storage_class_name="standard",
        annotations={"team": "ml"},
    )
    w = writer(text=text, data="/data", gate=gate)
    kubernetes.mount_pvc(w, pvc_name=pvc.outputs["name"], mount_path="/data")
    r = reader(data="/data").after(w)
    kubernetes.mount_pvc(r, pvc_name=pvc.outputs["name"], mount_path="/data")
    kubernetes.DeletePVC(pvc_name=pvc.outputs["name"]).after(r)
    return r.output


if __name__ == "__main__":
    compiler.Compiler().compile(pvc_claim, __file__.replace(".py", ".yaml"))
