"""Contract check: every request the Jira client sends to a Cloud platform path must be valid
against Atlassian's OpenAPI spec (path, method, path/query parameters, JSON body).

The spec is the vendored `swagger-v3.v3.json` (../shared, see its README). It is loaded and
built once per test session: it is 2.4 MB. Two adjustments, both about the spec file and not
about our requests:

- `servers` becomes `https://{site}.atlassian.net` so any test site matches (the file says
  `https://your-domain.atlassian.net`);
- the spec itself is not validated: Atlassian's file fails openapi-spec-validator (e.g. a
  `default: ''` outside its enum in the project-classification schema) and would only cost time.

Routes outside that spec are listed one by one: `NOT_IN_CLOUD_PLATFORM_SPEC` (either flavour,
each with the reason) and `DATA_CENTER_ONLY` (not on an `*.atlassian.net` site); a request
matching neither the spec's prefix nor those lists fails the test.
"""

from __future__ import annotations

import functools
import json
import re
import warnings
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import requests
from openapi_core import Config, OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIRequest
from openapi_core.templating.paths.finders import APICallPathFinder

SPEC_PATH = (Path(__file__).resolve().parents[3].parent
             / "shared" / "vendor" / "jira-openapi" / "swagger-v3.v3.json")
CLOUD_PLATFORM_PREFIX = "/rest/api/3/"

_ADMIN_WEBHOOKS = ("Admin webhooks (Cloud and DC): the webhooks plugin's own resource, outside "
                   "the platform spec (whose /rest/api/3/webhook is for Connect/OAuth apps)")
NOT_IN_CLOUD_PLATFORM_SPEC: dict[tuple[str, str], str] = {
    ("POST", r"/rest/servicedeskapi/request/[^/]+/comment"):
        "JSM REST API (servicedeskapi, Cloud and DC): a separate spec, not vendored",
    ("GET", r"/rest/webhooks/1\.0/webhook"): _ADMIN_WEBHOOKS,
    ("POST", r"/rest/webhooks/1\.0/webhook"): _ADMIN_WEBHOOKS,
}
"""Every endpoint the client can call on either flavour that the Cloud platform spec does
not describe, and why."""

DATA_CENTER_ONLY: frozenset[tuple[str, str]] = frozenset({
    ("GET", r"/rest/api/2/issue/[^/]+"),
    ("GET", r"/rest/api/2/issue/[^/]+/comment"),
    ("GET", r"/rest/api/2/issue/[^/]+/comment/[^/]+"),
    ("POST", r"/rest/api/2/issue/[^/]+/comment"),
    ("PUT", r"/rest/api/2/issue/[^/]+/comment/[^/]+"),
    ("DELETE", r"/rest/api/2/issue/[^/]+/comment/[^/]+"),
    ("PUT", r"/rest/api/2/comment/[^/]+/properties/[^/]+"),
    ("GET", r"/rest/api/2/issue/[^/]+/worklog"),
    ("GET", r"/rest/api/2/search"),
    ("GET", r"/rest/api/2/field"),
    ("GET", r"/rest/api/2/myself"),
    ("GET", r"/rest/api/2/mypermissions"),
    ("GET", r"/rest/api/2/status"),
    ("GET", r"/rest/api/2/group/member"),
})
"""The Data Center REST API v2 resources the client calls (the Cloud ones under
`/rest/api/2`): Atlassian publishes no OpenAPI spec for it, so only these routes are
allowed, and only on a site that is not Cloud."""


@functools.cache
def jira_cloud_spec() -> dict:
    """The vendored spec as JSON, read once per session."""
    return json.loads(SPEC_PATH.read_text(encoding="utf-8"))


@functools.cache
def jira_cloud_openapi() -> OpenAPI:
    """The Cloud platform spec, built once per session."""
    spec = {**jira_cloud_spec(), "servers": [{"url": "https://{site}.atlassian.net",
                                              "variables": {"site": {"default": "your-domain"}}}]}
    return OpenAPI.from_dict(spec, config=Config(spec_validator_cls=None))


@functools.cache
def _path_finder() -> APICallPathFinder:
    return APICallPathFinder(jira_cloud_openapi().spec)


def assert_valid_jira_request(request: requests.PreparedRequest) -> None:
    """Fail unless `request` is valid against the Cloud spec, or is a listed exemption.

    Beyond openapi-core: every query parameter must be one the operation declares (it
    ignores unknown ones), and the operation must not be deprecated (Atlassian marks
    removed APIs such as `GET /rest/api/3/search` so; they answer 410)."""
    url = urlsplit(request.url)
    path = url.path
    cloud = (url.hostname or "").endswith(".atlassian.net")
    if not path.startswith(CLOUD_PLATFORM_PREFIX):
        exempt = set(NOT_IN_CLOUD_PLATFORM_SPEC) | (set() if cloud else DATA_CENTER_ONLY)
        # a Data Center site may live under a context path (https://host/jira)
        context = "" if cloud else r"(?:/[\w.-]+)?"
        assert any(method == request.method and re.fullmatch(context + pattern, path)
                   for method, pattern in exempt), (
            f"{request.method} {url.hostname}{path}: not in the Cloud spec and not listed "
            f"as exempt{' on Cloud' if cloud else ''}")
        return
    with warnings.catch_warnings():
        # openapi-core warns that it cannot check the spec's OAuth2 scheme; basic auth is.
        warnings.filterwarnings("ignore", "Unsupported scheme type", UserWarning)
        result = jira_cloud_openapi().unmarshal_request(RequestsOpenAPIRequest(request))
    assert not result.errors, f"{request.method} {path}: {result.errors!r}"
    sent = {name for name, _ in parse_qsl(url.query)}
    undeclared = sent - set(result.parameters.query)
    assert not undeclared, f"{request.method} {path}: undeclared query parameters {undeclared}"
    method = request.method.lower()
    found = _path_finder().find(method, url._replace(query="").geturl())
    template = found.path_result.pattern
    operation = jira_cloud_spec()["paths"][template][method]
    assert not operation.get("deprecated"), f"{request.method} {template} is deprecated"


def assert_calls_match_spec(requests_sent: Iterable[requests.PreparedRequest]) -> None:
    """`assert_valid_jira_request` for every request a test sent."""
    for request in requests_sent:
        assert_valid_jira_request(request)
