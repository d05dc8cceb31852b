"""The payment portal: :func:`create_app` builds the Flask application."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from flask import Flask
from sqlalchemy.orm import configure_mappers
from werkzeug.middleware.proxy_fix import ProxyFix

from portal import logs
from portal.config import ROOT, Settings
from portal.database import configure_sqlite

__all__ = ["create_app"]


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app from ``PORTAL_*`` environment variables, overridden by ``config``.

    ``config`` keys may be Settings field names (``database_url``) or Flask
    config keys (``TESTING``).
    """
    settings = Settings.from_env()
    config = config or {}
    settings.override(**{k: v for k, v in config.items() if k in Settings.model_fields})
    extra = {k: v for k, v in config.items() if k not in Settings.model_fields}
    settings.validate()

    app = Flask(
        __name__,
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "static"),
        instance_path=str(ROOT / "instance"),
    )
    app.config.update(settings.as_flask_config())
    app.config.update(extra)
    app.extensions["portal_settings"] = settings
    logs.configure(settings.log_format)
    if settings.proxy_hops:
        # Client address, scheme and host as the proxies saw them; never trust more hops.
        hops = settings.proxy_hops
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]
    app.json.sort_keys = False  # type: ignore[attr-defined]

    from portal import observability, security, transactions, web
    from portal.extensions import babel, csrf, db, init_migrations, limiter

    db.init_app(app)
    with app.app_context():
        configure_sqlite(db.engine)
    init_migrations(app, str(ROOT / "migrations"))
    babel.init_app(app, locale_selector=web.select_locale)
    csrf.init_app(app)
    app.after_request(web.retry_after_only_when_waiting)  # before the limiter: runs after it
    limiter.init_app(app)

    import portal.jobs.handlers
    import portal.models  # noqa: F401 - registers models and job handlers
    from portal.api.reference import bp as api_reference_bp
    from portal.api.views import bp as api_bp
    from portal.cli import register_cli
    from portal.customer.account import bp as account_bp
    from portal.customer.views import bp as customer_bp
    from portal.customer.views import short_bp
    from portal.devtools import views as devtools
    from portal.merchant_console.views import bp as merchant_console_bp
    from portal.reminders.views import bp as reminders_bp
    from portal.support.views import bp as support_bp
    from portal.webhooks.views import bp as webhooks_bp

    # Work every process would otherwise do on its first request: configure the ORM
    # mappers, and import the Stripe SDK (it pulls in aiohttp) when Stripe is in use.
    configure_mappers()
    if settings.payment_provider == "stripe":
        importlib.import_module("portal.providers.stripe")

    app.register_blueprint(api_bp)
    app.register_blueprint(customer_bp)
    app.register_blueprint(account_bp)
    app.register_blueprint(reminders_bp)
    app.register_blueprint(short_bp)
    app.register_blueprint(webhooks_bp)
    app.register_blueprint(support_bp)
    app.register_blueprint(merchant_console_bp)
    app.register_blueprint(api_reference_bp)
    devtools.init_app(app)  # development only
    csrf.exempt(api_bp)
    security.init_app(app)
    web.init_app(app)
    observability.init_app(app)
    register_cli(app)
    transactions.init_app(app)  # last: the commit runs before the other after-request hooks
    if settings.embedded_worker:
        from portal.jobs.worker import start_embedded_on_first_request

        start_embedded_on_first_request(app)
    return app
