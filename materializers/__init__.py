"""Custom ZenML materializers; importing this package registers them."""

from materializers.html_report_materializer import HtmlReportMaterializer

__all__ = ["HtmlReportMaterializer"]
