"""A PVC created by CreatePVC, written by one task, read by the next, then deleted (kfp-kubernetes)."""
from kfp import compiler, dsl, kubernetes


@dsl.container_component
def writer(text: str):
    return dsl.ContainerSpec(image="alpine", command=["sh", "-c", 'echo "$0" > /data/note.txt'], args=[text])


@dsl.container_component
def reader(out: dsl.OutputPath(str)):
    return dsl.ContainerSpec(
        image="alpine",
        command=["sh", "-c", 'mkdir -p "$(dirname "$0")" && cat /data/note.txt > "$0"'],
        args=[out],
    )


@dsl.pipeline(name="pvc-roundtrip")
def pvc_roundtrip(text: str = "hello volume") -> str:
    pvc = kubernetes.CreatePVC(
        pvc_name_suffix="-scratch",
        access_modes=["ReadWriteOnce"],
        size="1Gi",
        storage_class_name="standard",
    )
    w = writer(text=text)
    kubernetes.mount_pvc(w, pvc_name=pvc.outputs["name"], mount_path="/data")
    r = reader().after(w)
    kubernetes.mount_pvc(r, pvc_name=pvc.outputs["name"], mount_path="/data")
    kubernetes.DeletePVC(pvc_name=pvc.outputs["name"]).after(r)
    return r.output


if __name__ == "__main__":
    compiler.Compiler().compile(pvc_roundtrip, __file__.replace(".py", ".yaml"))
