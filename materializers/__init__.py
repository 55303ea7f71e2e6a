"""Custom ZenML materializers; importing this package registers them."""

from materializers.html_report_materializer import HtmlReportMaterializer
from materializers.onnx_materializer import OnnxModelMaterializer

__all__ = ["HtmlReportMaterializer", "OnnxModelMaterializer"]
