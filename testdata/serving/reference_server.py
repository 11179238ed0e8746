"""Reference server: KServe's own Python model server serving a scikit-learn model.

This is the baseline that SecondRow's serving is compared against (see the
serving section of README.md and bench/serve). It mirrors what KServe's
`sklearnserver` does (that server is not published on PyPI, only the `kserve`
package is): a `kserve.Model` subclass whose `predict` calls
`kserve.utils.utils.get_predict_input`, the sklearn model's `predict`, then
`get_predict_response`, so V1 `:predict` and V2 `/infer` take the same code path
as in KServe's sklearn runtime.

The model is a LogisticRegression (or, with --model-kind forest, a 100-tree
RandomForestClassifier) trained at start-up on synthetic data
(sklearn.datasets.make_classification, fixed seed) with --features features (20).

Install (tested with kserve 0.21.0, scikit-learn 1.9.1, Python 3.11):
    python3 -m venv servevenv          # any scratch location outside the repository
    servevenv/bin/pip install kserve==0.21.0 scikit-learn
Run:
    servevenv/bin/python reference_server.py --port 8080 --model-name lr
    # --quiet turns off the per-request log lines (access log, latency log, timing
    # middleware, and FastAPI's per-request ORJSONResponse deprecation warning)
    # --save-model PATH also writes the trained model with joblib, for other servers to load

KServe's REST server binds 0.0.0.0 unconditionally; this script patches it to
listen on --host (default 127.0.0.1) and turns the gRPC server off.
"""

import argparse
import logging
import os
import sys
from importlib import metadata


def parse_args():
    # Option names must not collide with (or be prefixes of) kserve's own
    # argparse options, which kserve parses from sys.argv at import time.
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--model-name", default="lr")
    p.add_argument("--model-kind", choices=["logreg", "forest"], default="logreg")
    p.add_argument("--features", type=int, default=20)
    p.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    p.add_argument("--quiet", action="store_true", help="no per-request log lines")
    p.add_argument("--save-model", default=None, help="also joblib.dump the model here")
    args, _unknown = p.parse_known_args()
    return args


ARGS = parse_args()
if ARGS.quiet:
    # Read by kserve at import time: silences the kserve and kserve.trace
    # loggers (per-request latency line and TimingMiddleware line).
    os.environ["KSERVE_LOGLEVEL"] = "WARNING"

import numpy as np  # noqa: E402
from sklearn.datasets import make_classification  # noqa: E402
from sklearn.ensemble import RandomForestClassifier  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402

from kserve import Model, ModelServer  # noqa: E402
from kserve import logging as kserve_logging  # noqa: E402
from kserve.errors import InferenceError  # noqa: E402
from kserve.protocol.rest import server as rest_server  # noqa: E402
from kserve.utils.utils import get_predict_input, get_predict_response  # noqa: E402

if ARGS.quiet:
    # Module level on purpose: with --workers > 1 kserve starts its workers with
    # multiprocessing "spawn", which re-imports this file but does not run main().
    # Each worker then applies KSERVE_LOG_CONFIG, so the access log level goes there.
    kserve_logging.KSERVE_LOG_CONFIG["loggers"]["uvicorn.access"]["level"] = "WARNING"
    # Recent FastAPI (0.136.3 in KServe's lock file, 0.165.0 tested) warns that
    # ORJSONResponse, which kserve 0.21.0 uses, is deprecated: on every V1 and V2
    # response, not once.
    import warnings  # noqa: E402

    from fastapi.exceptions import FastAPIDeprecationWarning  # noqa: E402

    warnings.filterwarnings("ignore", category=FastAPIDeprecationWarning)


def train(kind: str, n_features: int):
    x, y = make_classification(
        n_samples=2000, n_features=n_features, n_informative=10, random_state=0
    )
    if kind == "forest":
        model = RandomForestClassifier(n_estimators=100, random_state=0)
    else:
        model = LogisticRegression(max_iter=1000)
    model.fit(x.astype(np.float32), y)
    return model


class SKLearnModel(Model):
    """Same predict path as kserve's sklearnserver.SKLearnModel (python/sklearnserver)."""

    def __init__(self, name: str, estimator, n_features: int):
        super().__init__(name)
        self._model = estimator
        self._n_features = n_features
        self.ready = False

    def load(self) -> bool:
        self.ready = True
        return self.ready

    # KServe's sklearnserver does not override these, so its V2 metadata has
    # empty "inputs"/"outputs"; we fill them in so metadata can be checked.
    def get_input_types(self):
        return [{"name": "input-0", "datatype": "FP32", "shape": [-1, self._n_features]}]

    def get_output_types(self):
        return [{"name": "output-0", "datatype": "INT64", "shape": [-1]}]

    def predict(self, payload, headers=None):
        try:
            instances = get_predict_input(payload)
            result = self._model.predict(instances)
            return get_predict_response(payload, result, self.name)
        except Exception as e:  # as in sklearnserver: any failure is an InferenceError (500)
            raise InferenceError(str(e))


def main():
    args = ARGS

    # Bind to --host instead of kserve's hard-coded 0.0.0.0.
    original_init = rest_server.RESTServer.__init__

    def init_on_host(self, *a, **kw):
        original_init(self, *a, **kw)
        self.config.host = args.host

    rest_server.RESTServer.__init__ = init_on_host

    estimator = train(args.model_kind, args.features)
    if args.save_model:
        import joblib

        joblib.dump(estimator, args.save_model)
    model = SKLearnModel(args.model_name, estimator, args.features)
    model.load()

    server = ModelServer(
        http_port=args.port,
        workers=args.workers,
        enable_grpc=False,
        enable_latency_logging=not args.quiet,
    )
    if args.quiet:
        # The uvicorn access log line is the remaining per-request line.
        logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    print(
        f"kserve {metadata.version('kserve')} "
        f"serving {args.model_kind} '{args.model_name}' on http://{args.host}:{args.port}",
        file=sys.stderr,
        flush=True,
    )
    server.start([model])


if __name__ == "__main__":
    main()
