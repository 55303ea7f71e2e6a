"""The BentoML service of Headliner and its bentofile."""
