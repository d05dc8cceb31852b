"""The baseline: a bare Flask app rendering a comparable static Jinja page.

It is served by the same gunicorn configuration as the portal, in the same run,
so every portal figure can be given as a ratio to it. The page has what the
customer's statement page has (a layout, a 20-line table, a total), with no
database, no session, no translations and no extensions.
"""

from __future__ import annotations

from pathlib import Path

from flask import Flask, render_template

LINES = [
    {
        "date": f"2026-10-{day:02d}",
        "description": f"Purchase at the counter, ticket {1000 + day}",
        "reference": f"T-{1000 + day}",
        "amount": f"{(day * 137) % 90 + 10},{day * 7 % 100:02d} €",
    }
    for day in range(1, 21)
]


def create_app() -> Flask:
    app = Flask(__name__, template_folder=str(Path(__file__).parent / "templates"))

    @app.get("/")
    def page() -> str:
        return render_template(
            "baseline.html",
            merchant="Bakkerij Janssens",
            customer="Jan Peeters",
            period="1 October 2026 - 31 October 2026",
            lines=LINES,
            balance="1.234,56 €",
            due="1.234,56 €",
        )

    @app.get("/healthz")
    def healthz() -> str:
        return "ok"

    return app


app = create_app()
