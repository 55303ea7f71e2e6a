"""The Kubernetes objects that serve one model stage or version: a Deployment of the service image
(the model comes from the registry, so one image serves every version), a Service, a
HorizontalPodAutoscaler and a PodDisruptionBudget. Plain dicts, validated against the Kubernetes
schemas by `validate_manifests`, so they can be rendered and checked without a cluster."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, Field

from headliner.deploy.service_image import service_image

KUBERNETES_VERSION = "1.30"  # the API version the manifests are validated against
SERVICE_PORT = 3000


class ServingDeploymentSettings(BaseModel):
    """How the service runs on the cluster; credentials are named Kubernetes Secrets, never values."""

    namespace: str = Field("headliner", pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    image_repository: str = Field(
        "localhost:5001/headliner-service",
        description="Where the cluster pulls the service image from (serving/Dockerfile's `service` target, pushed).",
    )
    image_tag: str | None = Field(
        None, description="None: the tag `python run.py image build --registry` gives this checkout's image (src-…)."
    )
    zenml_server_url: str = Field(
        "http://zenml.headliner.svc.cluster.local:8080", description="The ZenML server the pods read the model from."
    )
    zenml_api_key_secret: str = Field(
        "headliner-zenml-api-key", description="Secret with key 'api-key': a ZenML service account's API key."
    )
    inference_log_secret: str = Field(
        "headliner-inference-log", description="Secret with key 'url': the inference log's database URL."
    )
    api_token_secret: str | None = Field(
        "headliner-api-token", description="Secret with key 'token': the bearer token clients send; None: no auth."
    )
    workers: int = Field(
        1,
        ge=1,
        le=64,
        description="Worker processes per pod, on its one port (HEADLINER_WORKERS); each loads the model, so raise "
        "cpu_request (and memory) with it: the autoscaler's utilization is of the request.",
    )
    drain_seconds: int = Field(
        20,
        ge=1,
        le=600,
        description="On SIGTERM, how long each worker lets requests in flight finish (HEADLINER_DRAIN_SECONDS); the "
        "pod's termination grace period is 10 s longer, so the inference log is flushed before any SIGKILL.",
    )
    min_replicas: int = Field(2, ge=1)
    max_replicas: int = Field(6, ge=1)
    target_cpu_utilization: int = Field(70, ge=1, le=100)
    cpu_request: str = "500m"
    memory_request: str = "1Gi"
    cpu_limit: str = "2"
    memory_limit: str = "2Gi"


def service_name(model_name: str, model_version: str) -> str:
    """'headliner-jukebox-production', 'headliner-jukebox-v3': a DNS-1035 label of at most 63 characters."""
    version = model_version if not model_version.isdigit() else f"v{model_version}"
    name = re.sub(r"[^a-z0-9-]+", "-", f"headliner-{model_name}-{version}".lower()).strip("-")
    return name[:63].rstrip("-")


def _secret_env(name: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def _probe(path: str, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }


def serving_manifests(settings: ServingDeploymentSettings, model_name: str, model_version: str) -> list[dict[str, Any]]:
    """The objects to apply for `model_name` at `model_version` (a number or a stage), in apply order."""
    name = service_name(model_name, model_version)
    labels = {
        "app.kubernetes.io/name": "headliner",
        "app.kubernetes.io/instance": name,
        "app.kubernetes.io/component": "model-server",
        "headliner/model": model_name,
        "headliner/model-version": model_version,
    }
    selector = {"app.kubernetes.io/instance": name}
    metadata = {"name": name, "namespace": settings.namespace, "labels": labels}
    env = [
        {"name": "HEADLINER_MODEL", "value": model_name},
        {"name": "HEADLINER_MODEL_VERSION", "value": model_version},
        {"name": "HEADLINER_WORKERS", "value": str(settings.workers)},
        {"name": "HEADLINER_DRAIN_SECONDS", "value": str(settings.drain_seconds)},
        {"name": "ZENML_STORE_URL", "value": settings.zenml_server_url},
        _secret_env("ZENML_STORE_API_KEY", settings.zenml_api_key_secret, "api-key"),
        _secret_env("HEADLINER_INFERENCE_LOG", settings.inference_log_secret, "url"),
    ]
    if settings.api_token_secret:
        env.append(_secret_env("HEADLINER_API_TOKEN", settings.api_token_secret, "token"))
    container = {
        "name": "model-server",
        "image": service_image(settings.image_repository, settings.image_tag),
        "imagePullPolicy": "IfNotPresent",
        # serving/__main__.py: `bentoml serve` of the service with the drain timeout
        "command": ["python", "-m", "serving", "--host", "0.0.0.0", "--port", str(SERVICE_PORT)],
        "ports": [{"name": "http", "containerPort": SERVICE_PORT, "protocol": "TCP"}],
        "env": env,
        "resources": {
            "requests": {"cpu": settings.cpu_request, "memory": settings.memory_request},
            "limits": {"cpu": settings.cpu_limit, "memory": settings.memory_limit},
        },
        # The Open Inference Protocol's health endpoints: ready once the model is loaded.
        "startupProbe": _probe("/v2/health/live", 2, 60),
        "livenessProbe": _probe("/v2/health/live", 10, 3),
        "readinessProbe": _probe("/v2/health/ready", 5, 2),
        "securityContext": {"runAsNonRoot": True, "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata,
        "spec": {
            "replicas": settings.min_replicas,
            "selector": {"matchLabels": selector},
            # A new version's pods must be ready before an old one stops: no request goes unanswered.
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/path": "/metrics",
                        "prometheus.io/port": str(SERVICE_PORT),
                    },
                },
                "spec": {
                    "containers": [container],
                    "terminationGracePeriodSeconds": settings.drain_seconds + 10,
                    "securityContext": {"runAsUser": 1000, "runAsGroup": 1000},
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata,
        "spec": {
            "type": "ClusterIP",
            "selector": selector,
            "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": "http", "protocol": "TCP"}],
        },
    }
    autoscaler = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": metadata,
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": settings.min_replicas,
            "maxReplicas": max(settings.max_replicas, settings.min_replicas),
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": settings.target_cpu_utilization},
                    },
                }
            ],
        },
    }
    disruption_budget = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata,
        "spec": {"minAvailable": 1, "selector": {"matchLabels": selector}},
    }
    return [deployment, service, autoscaler, disruption_budget]


def validate_manifests(manifests: list[dict[str, Any]], version: str = KUBERNETES_VERSION) -> None:
    """Check each manifest against the published Kubernetes JSON schemas, strictly (an unknown field is
    an error); raises ValueError naming the object and the field."""
    import kubernetes_validate

    for manifest in manifests:
        try:
            kubernetes_validate.validate(manifest, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = "/".join(str(part) for part in exc.path)
            raise ValueError(
                f"{manifest.get('kind')} '{manifest.get('metadata', {}).get('name')}': {where}: {exc.message}"
            ) from None
