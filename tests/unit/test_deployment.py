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
