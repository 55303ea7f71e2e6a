"""Headliner's library: one package per concern, imports pointing down (cli → stacks → deploy → monitoring →
serving → governance → model → data → spec, errors, labels, reports); pipelines and steps adapt it to ZenML."""
