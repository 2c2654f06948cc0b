"""Fixtures for the template tests: the parsed templates, the code's permissions, and a moto server (127.0.0.1, a
free port)."""

from __future__ import annotations

import boto3
import pytest
from moto.server import ThreadedMotoServer

import kg_template


@pytest.fixture(scope="session")
def template():
    return kg_template.load_template()


@pytest.fixture(scope="session")
def member():
    return kg_template.load_template(kg_template.MEMBER_TEMPLATE)


@pytest.fixture(scope="session")
def code_actions():
    return kg_template.code_permissions()


@pytest.fixture(scope="session")
def member_actions():
    return kg_template.code_permissions("--member")


@pytest.fixture(scope="module")
def moto_endpoint():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def _client(endpoint: str, service: str, **credentials):
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",
        **(
            credentials
            or {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "aws_session_token": "testing"}
        ),
    )


@pytest.fixture(scope="module")
def aws(moto_endpoint):
    """Client factory bound to the moto server, with dummy credentials (nothing can reach real AWS)."""

    def client(service: str):
        return _client(moto_endpoint, service)

    return client


@pytest.fixture(scope="module")
def aws_account(moto_endpoint, aws):
    """Client factory for another account of the moto server: STS AssumeRole into that account id gives
    credentials whose calls land in that account's own backends (moto does not check the role or its trust)."""

    def client(account: str, service: str):
        creds = aws("sts").assume_role(RoleArn=f"arn:aws:iam::{account}:role/test", RoleSessionName="test")["Credentials"]
        return _client(
            moto_endpoint,
            service,
            aws_access_key_id=creds["AccessKeyId"],
            aws_secret_access_key=creds["SecretAccessKey"],
            aws_session_token=creds["SessionToken"],
        )

    return client
