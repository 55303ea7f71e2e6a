"""Stores report artifacts (`headliner.reports.html.HtmlReport` subclasses) as JSON through the artifact
store, with their attachments (e.g. Evidently's interactive page) as files beside it, and shows their
static HTML rendering in the ZenML dashboard."""

from __future__ import annotations

import os
from typing import Any, ClassVar

from zenml.enums import ArtifactType, VisualizationType
from zenml.materializers.base_materializer import BaseMaterializer
from zenml.metadata.metadata_types import MetadataType

from headliner.reports.html import HtmlReport

REPORT_FILE = "report.json"
VISUALIZATION_FILE = "report.html"


class HtmlReportMaterializer(BaseMaterializer):
    ASSOCIATED_TYPES: ClassVar[tuple[type[Any], ...]] = (HtmlReport,)
    ASSOCIATED_ARTIFACT_TYPE: ClassVar[ArtifactType] = ArtifactType.DATA_ANALYSIS

    def load(self, data_type: type[HtmlReport]) -> HtmlReport:
        with self.artifact_store.open(os.path.join(self.uri, REPORT_FILE), "r") as handle:
            return data_type.model_validate_json(handle.read())

    def save(self, data: HtmlReport) -> None:
        with self.artifact_store.open(os.path.join(self.uri, REPORT_FILE), "w") as handle:
            handle.write(data.model_dump_json(indent=2))
        # in the artifact's folder, which the dashboard's Download fetches; never shown as a visualization
        for name, text in data.attachments().items():
            with self.artifact_store.open(os.path.join(self.uri, name), "w") as handle:
                handle.write(text)

    def save_visualizations(self, data: HtmlReport) -> dict[str, VisualizationType]:
        path = os.path.join(self.uri, VISUALIZATION_FILE)
        with self.artifact_store.open(path, "w") as handle:
            handle.write(data.to_html())
        visualizations = {path: VisualizationType.HTML}
        for stem, png in data.png_images().items():
            image_path = os.path.join(self.uri, f"{stem}.png")
            with self.artifact_store.open(image_path, "wb") as handle:
                handle.write(png)
            visualizations[image_path] = VisualizationType.IMAGE
        return visualizations

    def extract_metadata(self, data: HtmlReport) -> dict[str, MetadataType]:
        return dict(data.summary_metadata())
