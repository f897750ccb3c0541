"""`simsiam-tfx submit-vertex`: submits a compiled pipeline JSON to Vertex AI Pipelines (Vertex AI SDK)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from typing import Any

from kubeflow.config import ConfigError, check_location

HELP = "submit a pipeline compiled by compile-kubeflow to Vertex AI Pipelines"
DESCRIPTION = """\
Submits a compile-kubeflow JSON as a Vertex AI PipelineJob and prints its console link.
Needs Google Cloud credentials (`gcloud auth application-default login`, or a service-account
key in GOOGLE_APPLICATION_CREDENTIALS) with the Vertex AI User role in PROJECT.

example:
  simsiam-tfx submit-vertex --pipeline simsiam.json --project PROJECT --region us-central1 \\
      --service-account pipelines@PROJECT.iam.gserviceaccount.com
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pipeline", required=True, help="the JSON written by compile-kubeflow")
    p.add_argument("--project", required=True, help="Google Cloud project")
    p.add_argument("--region", required=True, help="Vertex AI region, e.g. us-central1")
    p.add_argument("--service-account", help="the service account the steps run as (default: Compute Engine's)")
    p.add_argument("--display-name", help="default: the pipeline name")
    p.add_argument("--no-cache", action="store_true", help="run every step again, even with a cached result")
    p.add_argument("--wait", action="store_true", help="block until the run finishes; exit 1 if it fails")


def load_job(path: str) -> dict[str, Any]:
    """The compiled PipelineJob dict; ConfigError (one line) when the file is not one."""
    if not os.path.isfile(path):
        raise ConfigError(f"--pipeline {path} does not exist; write it with `simsiam-tfx compile-kubeflow`")
    try:
        with open(path, encoding="utf-8") as f:
            job = json.load(f)
    except (OSError, ValueError) as err:
        raise ConfigError(f"--pipeline {path} is not JSON: {err}") from err
    if not isinstance(job, dict) or "pipelineSpec" not in job:
        raise ConfigError(f"--pipeline {path} is not a compiled pipeline job (no pipelineSpec)")
    root = job.get("runtimeConfig", {}).get("gcsOutputDirectory", "")
    if not root.startswith("gs://"):
        raise ConfigError(f"--pipeline {path} has no gs:// pipeline root; compile it with --pipeline-root gs://...")
    return job


def default_credentials() -> Any:
    """Application Default Credentials; ConfigError with what to do when there are none."""
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError

    try:
        credentials, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
    except DefaultCredentialsError as err:
        raise ConfigError(
            "no Google Cloud credentials found: run `gcloud auth application-default login` "
            "or set GOOGLE_APPLICATION_CREDENTIALS to a service-account key file"
        ) from err
    return credentials


def build_job(
    path: str,
    project: str,
    region: str,
    credentials: Any,
    display_name: str | None = None,
    enable_caching: bool | None = None,
) -> Any:
    """The Vertex AI SDK's PipelineJob for the compiled file (nothing is sent yet)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # google.api_core's notice about Python 3.10
        from google.cloud import aiplatform

    job = load_job(path)
    return aiplatform.PipelineJob(
        display_name=display_name or job["pipelineSpec"]["pipelineInfo"]["name"],
        template_path=path,
        enable_caching=enable_caching,
        credentials=credentials,
        project=project,
        location=region,
    )


def run(args: argparse.Namespace) -> int:
    try:
        load_job(args.pipeline)
        check_location(args.project, args.region)
        credentials = default_credentials()
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    job = build_job(
        args.pipeline,
        args.project,
        args.region,
        credentials,
        args.display_name,
        enable_caching=False if args.no_cache else None,
    )
    job.submit(service_account=args.service_account)
    print(
        f"submitted {job.resource_name}\n  https://console.cloud.google.com/vertex-ai/locations/{args.region}"
        f"/pipelines/runs/{job.name}?project={args.project}"
    )
    if not args.wait:
        return 0
    try:
        job.wait()
    except RuntimeError as err:  # the SDK's "Job failed with: ..."
        print(f"error: the run failed: {str(err).splitlines()[-1]}", file=sys.stderr)
        return 1
    print(f"finished: {job.state.name}")
    return 0
