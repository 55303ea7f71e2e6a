"""Step: pack the model version's ONNX file (and its model card) into a bento of the serving/ service."""

from typing import Annotated

import onnx
from bentoml import Bento
from zenml import log_metadata, step
from zenml.integrations.bentoml.materializers.bentoml_bento_materializer import BentoMaterializer  # noqa: F401

from headliner.deploy.deployment import build_bento as build_service_bento
from headliner.deploy.deployment import registered_model_card, save_bento_model
from headliner.labels import Artifact


@step(enable_cache=False)
def build_bento(onnx_model: onnx.ModelProto) -> Annotated[Bento, Artifact.BENTO]:
    model_bytes = onnx_model.SerializeToString()
    model_tag = save_bento_model(model_bytes, registered_model_card(model_bytes))  # the card: GET /model-card
    bento = build_service_bento(model_tag)
    log_metadata(metadata={"bento_tag": str(bento.tag), "bento_model": model_tag}, infer_artifact=True)
    return bento
