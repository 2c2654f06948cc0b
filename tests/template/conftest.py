"""Fixtures for the template tests: the parsed template and a moto server (127.0.0.1, a free port)."""

from __future__ import annotations

import boto3
import pytest
from moto.server import ThreadedMotoServer

import kg_template


@pytest.fixture(scope="session")
def template():
    return kg_template.load_template()


@pytest.fixture(scope="module")
def moto_endpoint():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="module")
def aws(moto_endpoint):
    """Client factory bound to the moto server, with dummy credentials (nothing can reach real AWS)."""

    def client(service: str):
        return boto3.client(
            service,
            endpoint_url=moto_endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            aws_session_token="testing",
        )

    return client
