"""``/docs/api``: the API reference, rendered in the browser from ``/api/v1/openapi.json``.

The viewer is Swagger UI (the ``swagger-ui-dist`` package), vendored unchanged under
``static/vendor/`` and pinned by version (in the folder name) and by Subresource
Integrity: the browser refuses a file whose hash differs, and a test checks the files,
this table and docs/security.md's script inventory against each other. It runs under
the portal's usual policy (scripts from our origin with the page's nonce, no inline
script or style, no eval), like every page. To upgrade: unpack the new package's two
files into a new folder, update VIEWER and INTEGRITY, and docs/security.md.
"""

from __future__ import annotations

from flask import Blueprint, current_app, render_template, url_for

bp = Blueprint("api_reference", __name__)

VIEWER = "vendor/swagger-ui-dist-5.35.0"
INTEGRITY = {
    "swagger-ui-bundle.js": (
        "sha384-gjRm0bEPMeTmMh5jT2cHccIwCUZSTd8YC+j0d0sXw0MdGEfScduGpSyF3ZSSLkX9"
    ),
    "swagger-ui.css": "sha384-WlYgdmXYOOBWL5apwjDEZwN+U3HmXSSu5R6V5aGxEcf7z+KuRNwBhoxKVN1i3D5I",
}


@bp.get("/docs/api")
def reference() -> str:
    return render_template(
        "api_reference.html",
        viewer=VIEWER,
        integrity=INTEGRITY,
        spec_url=url_for("api.openapi"),
        start_url=url_for("devtools.start") if "devtools" in current_app.blueprints else None,
    )
