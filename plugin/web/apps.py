"""`/apps/<connector>/<page>`: pages a platform opens or calls besides webhooks — a Bitrix24
local application's install handler and frame. The connector answers; the view only
translates between Flask and `connectors.base.PageRequest` / `PageReply`."""

from __future__ import annotations

from flask import Blueprint, Response, abort, current_app, request
from flask.typing import ResponseReturnValue

from connectors.base import PageRequest
from plugin.web.errors import no_connector

apps = Blueprint("apps", __name__)


@apps.route("/apps/<name>/<page>", methods=["GET", "POST"])
def connector_page(name: str, page: str) -> ResponseReturnValue:
    connector = current_app.extensions["clientguard.connectors"].get(name)
    if connector is None:
        abort(404, no_connector(name))
    handler = connector.pages.get(page)
    if handler is None:
        abort(404, f"the {name} connector has no page {page!r}")
    body = request.get_data(cache=True)  # first: reading the form first would empty it
    reply = handler(PageRequest(
        method=request.method,
        query=request.args.to_dict(flat=True),
        form=request.form.to_dict(flat=True),
        headers={key.lower(): value for key, value in request.headers.items()},
        body=body,
    ))
    return Response(reply.body, status=reply.status, content_type=reply.content_type,
                    headers=dict(reply.headers))
