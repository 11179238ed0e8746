"""Runs a sample pipeline with kfp's own local runner (SubprocessRunner, use_venv=False) and prints the
wall time in seconds. Usage: python kfp_local.py SAMPLE.py PIPELINE_FUNC [name=value ...]"""
import importlib.util
import sys
import tempfile
import time

import kfp.local

path, func = sys.argv[1], sys.argv[2]
args = dict(a.split("=", 1) for a in sys.argv[3:])
args = {k: int(v) if v.lstrip("-").isdigit() else v for k, v in args.items()}
spec = importlib.util.spec_from_file_location("sample", path)
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
with tempfile.TemporaryDirectory() as root:
    kfp.local.init(runner=kfp.local.SubprocessRunner(use_venv=False), pipeline_root=root)
    start = time.perf_counter()
    getattr(mod, func)(**args)
    print(f"{time.perf_counter() - start:.3f}")
