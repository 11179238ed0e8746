"""One PVC shared by tasks at the root, inside a condition and inside a loop (kfp-kubernetes): the settings
of the nested tasks name the root's CreatePVC task or a pipeline parameter directly. The volume is kept
(no DeletePVC) so that the test can look at what each task wrote."""
from kfp import compiler, dsl, kubernetes


@dsl.container_component
def touch(name: str):
    return dsl.ContainerSpec(image="alpine", command=["sh", "-c", 'touch "/vol/$0"'], args=[name])


@dsl.pipeline(name="pvc-nested")
def pvc_nested(vol: str = "shared-vol", flag: bool = True):
    pvc = kubernetes.CreatePVC(pvc_name=vol, access_modes=["ReadWriteOnce"], size="1Gi")
    root = touch(name="root")
    kubernetes.mount_pvc(root, pvc_name=pvc.outputs["name"], mount_path="/vol")
    with dsl.If(flag == True):  # noqa: E712 (kfp needs the comparison)
        cond = touch(name="cond").after(root)
        kubernetes.mount_pvc(cond, pvc_name=pvc.outputs["name"], mount_path="/vol")
    with dsl.ParallelFor(["a", "b"]) as item:
        each = touch(name=item).after(root)
        kubernetes.mount_pvc(each, pvc_name=vol, mount_path="/vol")


if __name__ == "__main__":
    compiler.Compiler().compile(pvc_nested, __file__.replace(".py", ".yaml"))
