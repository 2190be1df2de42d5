"""Bad input never makes a 500: every /api endpoint of the OpenAPI document, signed in, gets odd values for
each of its parameters (and none at all)."""

from __future__ import annotations

import json

import pytest_twisted
import treq

from tests.conftest import http_url
from tests.heihei.conftest import heihei_extra
from tests.heihei.helpers import sign_in

ODD_VALUES = ["", "x", "-1", "0", "99999999999999999999", "1.5", "[]", "{", "\u0000", "中文", "a" * 3000,
              "../../etc/passwd", "1,2,,3"]


@pytest_twisted.ensureDeferred
async def test_no_endpoint_answers_500_to_odd_parameters(nodes, outside, tmp_path):
    node = await nodes.start("a", heihei_extra(outside, uploads={"storage_dir": str(tmp_path / "up"),
                                                                 "secret": "0123456789abcdef0123"}))
    token, uid = await sign_in(node, outside, "13900009999")
    document = json.loads(await (await treq.get(http_url(node, "/api/openapi.json"))).text())
    skip = {"/api/user/sign-out"}  # it would end the session the rest of the test uses
    checked = 0
    for path, operations in document["paths"].items():
        if not path.startswith("/api/") or path in skip or path == "/api/openapi.json":
            continue
        names = set()
        for operation in operations.values():
            names |= {p["name"] for p in operation.get("parameters", ())}
            for content in operation.get("requestBody", {}).get("content", {}).values():
                names |= set(content["schema"].get("properties", {}))
        names.discard("token")
        # nothing; each odd value everywhere; and each parameter odd while the others look right ("1")
        attempts = [{}] + [{name: value for name in names} for value in ODD_VALUES]
        attempts += [{**{n: "1" for n in names}, name: value} for name in sorted(names) for value in ODD_VALUES]
        for params in attempts:
            response = await treq.post(http_url(node, path), data={"token": token, **params})
            body = json.loads(await response.text("utf-8"))
            assert response.code < 500 and body["errorcode"] not in (500, 503), (path, params, body)
            checked += 1
    assert checked > 100 * len(ODD_VALUES)
