"""Lookup type-ahead: the records whose display name starts with what was typed.

The combobox of a lookup field (``static/lookup.js``) asks here as the person types.
The search goes through the query builder and the display field's search index;
without scripts the form sends the typed name and the server resolves it.
"""

from __future__ import annotations

import json

from flask import request
from flask_login import login_required
from werkzeug.wrappers import Response

from ..query import LOOKUP_LIMIT, lookup_matches
from ._blueprint import web
from ._context import web_session

# Longer text cannot be the start of a display name worth searching for.
MAX_QUERY = 200
# JSON that never reads as markup, even to a client that sniffs it: the three
# characters HTML cares about become escapes, which every JSON parser reads back.
HTML_SAFE = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"})


@web.get("/app/<entity_name>/lookup")
@login_required
def lookup_search(entity_name: str) -> Response:
    """Answer ``[{"id": 12, "name": "Acme"}, ...]``, at most ten, by name.

    ``q`` is the typed text; case is ignored, and blank text lists the first
    records by name.
    """
    text = request.args.get("q", "")[:MAX_QUERY]
    with web_session() as session:
        entity = session.catalog.entity(entity_name)
        found = lookup_matches(session.connection, entity, text, limit=LOOKUP_LIMIT)
    body = json.dumps(
        [{"id": record_id, "name": name} for record_id, name in found],
        ensure_ascii=False,
    )
    response = Response(body.translate(HTML_SAFE), mimetype="application/json")
    response.headers["Cache-Control"] = "no-store"
    return response
