"""The deployment's example request: valid for each use case's schema, and the curl command printed with
it sends the bearer token only when the service has one."""

from headliner.deploy.deployment import curl_command
from headliner.model.onnx_packaging import example_inputs, feature_schema
from headliner.serving.payloads import FeatureRules


def test_example_request_is_valid_for_the_schema(jukebox_spec, wine_spec):
    for spec in (jukebox_spec, wine_spec):
        schema = feature_schema(spec)
        example = example_inputs(schema)
        assert list(example) == spec.feature_names
        assert FeatureRules(schema).songs_matrix(example, 1).shape == (1, len(spec.feature_names))
    jukebox = example_inputs(feature_schema(jukebox_spec))
    assert jukebox["key"] == 5 and isinstance(jukebox["key"], int) and jukebox["tempo"] == 122.0
    assert "Authorization: Bearer $HEADLINER_API_TOKEN" in curl_command("http://h:1", jukebox, token="t")
    assert "Authorization" not in curl_command("http://h:1", jukebox, token=None)


def test_the_local_daemon_runs_the_workers_of_its_config(tmp_path):
    from uuid import uuid4

    from zenml.integrations.bentoml.services import BentoMLLocalDeploymentConfig

    from headliner.deploy.bento_daemon import BentoServiceDaemon

    config = BentoMLLocalDeploymentConfig(
        model_name="jukebox",
        model_version="3",
        model_uri=str(tmp_path),
        bento_tag="headliner:v3",
        working_dir=str(tmp_path),
        workers=3,
        port=3999,
        root_runtime_path=str(tmp_path / "runtime"),
    )
    # the daemon's environment: BentoML's arbiter imports serving/service.py there and starts that many workers
    _, env = BentoServiceDaemon(uuid=uuid4(), config=config)._get_daemon_cmd()
    assert env["HEADLINER_WORKERS"] == "3"
