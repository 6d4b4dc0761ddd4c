"""schemathesis over a real server's /openapi.json: generated requests, valid and
invalid, to every operation (a bounded number each). Not one answer is a 5xx, and every
answer conforms to the document (status codes, content types, headers, the response
and error schemas), invalid requests are refused.

Left out: `positive_data_acceptance` (a schema-valid request must get a 2xx). park checks
what a JSON schema cannot say: a spec by its kind, ids that must exist, one parameter
against another; such requests are rightly a 4xx naming the field."""

from __future__ import annotations

from pathlib import Path

import hypothesis.strategies as st
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import positive_data_acceptance

from tests.support import ParkServer, free_port

EXAMPLES = 8  # per operation and mode: some 600 requests in all


@pytest.mark.slow
def test_generated_requests_get_no_server_error_and_conforming_answers(tmp_path: Path) -> None:
    server = ParkServer(data_dir=tmp_path / "park-data", port=free_port()).start()
    try:
        schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
        operations = [
            result.ok() for result in schema.exclude(path_regex=r"/stream$").get_all_operations()
        ]  # (streams never end; everything else answers at once)
        assert len(operations) > 20
        strategy = st.one_of(
            op.as_strategy(generation_mode=mode) for op in operations for mode in GenerationMode
        )

        @settings(
            max_examples=EXAMPLES * len(operations) * 2, deadline=None, derandomize=True,
            database=None, suppress_health_check=list(HealthCheck),
        )  # fmt: skip
        @given(case=strategy)
        def conforming(case: schemathesis.Case) -> None:
            case.call_and_validate(excluded_checks=[positive_data_acceptance], timeout=30)

        conforming()
    finally:
        server.stop()
