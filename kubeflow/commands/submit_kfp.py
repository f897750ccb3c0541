"""`simsiam-tfx submit-kfp`: submits a bare KFP v2 package to an open-source Kubeflow Pipelines endpoint."""

from __future__ import annotations

import argparse
import os
import re
import sys
import warnings
from typing import Any

from kubeflow.config import ConfigError

ENDPOINT_ENV = "KF_PIPELINES_ENDPOINT"
HELP = "submit a pipeline compiled with compile-kubeflow --target kfp to a Kubeflow Pipelines endpoint"
DESCRIPTION = """\
Uploads and runs a `compile-kubeflow --target kfp` package with kfp.Client(host=...).
create_run_from_pipeline_package, in an experiment, and prints the run's ID and link. The endpoint
is the KFP API (the UI's address for a port-forwarded KFP, or the address of ml-pipeline-ui).

example:
  kubectl -n kubeflow port-forward svc/ml-pipeline-ui 8080:80 &
  simsiam-tfx submit-kfp --pipeline simsiam.yaml --host http://localhost:8080 --experiment simsiam
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pipeline", required=True, help="the .yaml written by compile-kubeflow --target kfp")
    p.add_argument(
        "--host",
        default=os.environ.get(ENDPOINT_ENV),
        help=f"the KFP API endpoint, e.g. http://localhost:8080 (default: ${ENDPOINT_ENV}, as kfp.Client reads it)",
    )
    p.add_argument("--experiment", default="simsiam-tfx", help="(default: %(default)s)")
    p.add_argument("--run-name", help="default: the pipeline name and the time")
    p.add_argument("--namespace", help="the Kubernetes namespace of a multi-user KFP")
    p.add_argument("--no-cache", action="store_true", help="run every step again, even with a cached result")


def load_package(path: str) -> dict[str, Any]:
    """The package as a dict; ConfigError (one line) when it is not a KFP v2 pipeline package."""
    import yaml

    if not path.endswith((".yaml", ".yml")):
        raise ConfigError(f"--pipeline {path}: kfp.Client takes a .yaml package; compile with --target kfp")
    try:
        with open(path, encoding="utf-8") as f:
            package = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"--pipeline {path}: {str(err).splitlines()[0]}") from None
    if not isinstance(package, dict) or not {"root", "deploymentSpec", "defaultPipelineRoot"} <= set(package):
        raise ConfigError(f"--pipeline {path} is not a KFP package (no defaultPipelineRoot); use --target kfp")
    return package


def submit(args: argparse.Namespace) -> Any:
    """Sends the run; ConfigError (one line) when the endpoint cannot be reached or refuses it."""
    import kfp_server_api
    import urllib3

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # "only works with KFP v2.0.0-beta.2 and later"
        import kfp

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            client = kfp.Client(host=args.host, namespace=args.namespace)
        return client.create_run_from_pipeline_package(
            args.pipeline,
            arguments={},
            run_name=args.run_name,
            experiment_name=args.experiment,
            namespace=args.namespace,
            enable_caching=False if args.no_cache else None,
        )
    except (urllib3.exceptions.HTTPError, OSError, TimeoutError) as err:
        reason = re.sub(r"^<[^>]*>: ", "", str(getattr(err, "reason", None) or err).splitlines()[0])
        raise ConfigError(f"cannot reach Kubeflow Pipelines at {args.host}: {reason}") from None
    except kfp_server_api.ApiException as err:
        raise ConfigError(f"Kubeflow Pipelines at {args.host} refused the run: {err.status} {err.reason}") from None


def run(args: argparse.Namespace) -> int:
    import logging

    logging.getLogger("urllib3").setLevel(logging.ERROR)  # its retry warnings; the error line says it all
    try:
        load_package(args.pipeline)
        if not args.host:
            raise ConfigError(f"no Kubeflow Pipelines endpoint: give --host URL or set {ENDPOINT_ENV}")
        result = submit(args)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"submitted run {result.run_id}\n  {args.host.rstrip('/')}/#/runs/details/{result.run_id}")
    return 0
