from tests.integration.conftest import isolated, kafka_url  # noqa: F401 - shared fixtures
