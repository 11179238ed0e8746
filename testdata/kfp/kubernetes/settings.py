"""Secrets and config maps as environment variables and files, a timeout, and settings only Kubernetes
applies (labels, annotations, node selector, tolerations, image pull secrets), with kfp-kubernetes."""
from kfp import compiler, dsl, kubernetes

# Prints hashes of what arrived (never the secret itself into an output), the config values, the secret
# file's mode, and the secret on stdout so that the test can check it is redacted from the logs.
SCRIPT = """
set -e
mkdir -p "$(dirname "$0")"
h() { printf %s "$1" | sha256sum | cut -c1-16; }
echo "the password is $PASSWORD"
touch /scratch/probe
printf "%s|%s|%s|%s|%s|%s|%s" "$(h "$PASSWORD")" "$(h "$(cat /etc/creds/password)")" "$MODE" "$(cat /etc/conf/mode)" \
  "$(stat -c %a /etc/creds/password)" "$NS" "$(ls /scratch)" > "$0"
"""


@dsl.container_component
def show(out: dsl.OutputPath(str)):
    return dsl.ContainerSpec(image="alpine", command=["sh", "-c", SCRIPT], args=[out])


@dsl.component
def py_check() -> str:
    import hashlib
    import os
    return hashlib.sha256(os.environ["PASSWORD"].encode()).hexdigest()[:16]


@dsl.pipeline(name="platform-settings")
def platform_settings(config_name: str = "app-conf") -> str:
    t = show()
    kubernetes.use_secret_as_env(t, secret_name="db-creds", secret_key_to_env={"password": "PASSWORD"})
    kubernetes.use_secret_as_volume(t, secret_name="db-creds", mount_path="/etc/creds")
    kubernetes.use_config_map_as_env(t, config_map_name=config_name, config_map_key_to_env={"mode": "MODE"})
    kubernetes.use_config_map_as_volume(t, config_map_name=config_name, mount_path="/etc/conf")
    kubernetes.empty_dir_mount(t, volume_name="scratch", mount_path="/scratch")
    kubernetes.use_field_path_as_env(t, env_name="NS", field_path="metadata.namespace")
    kubernetes.add_pod_label(t, label_key="team", label_value="ml")
    kubernetes.add_pod_annotation(t, annotation_key="note", annotation_value="x")
    kubernetes.set_image_pull_secrets(t, secret_names=["regcred"])
    kubernetes.add_node_selector(t, label_key="disktype", label_value="ssd")
    kubernetes.add_toleration(t, key="gpu", operator="Equal", value="true", effect="NoSchedule")
    kubernetes.set_image_pull_policy(t, "IfNotPresent")
    kubernetes.set_timeout(t, 120)
    p = py_check()
    kubernetes.use_secret_as_env(p, secret_name="db-creds", secret_key_to_env={"password": "PASSWORD"})
    return t.output


@dsl.container_component
def sleeper():
    return dsl.ContainerSpec(image="alpine", command=["sh", "-c", "echo started; sleep 30"])


@dsl.pipeline(name="timeout")
def timeout_pipeline():
    t = sleeper()
    kubernetes.set_timeout(t, 1)


if __name__ == "__main__":
    compiler.Compiler().compile(platform_settings, __file__.replace(".py", ".yaml"))
    compiler.Compiler().compile(timeout_pipeline, __file__.replace("settings.py", "timeout.yaml"))
