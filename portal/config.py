"""Typed settings read from ``PORTAL_*`` (and ``STRIPE_*``) environment variables.

Every setting has an embedded default that makes ``make run`` work on a fresh
machine (SQLite, sandbox payments, mail to a folder). In production
(``PORTAL_ENV=production``) the app refuses to start with missing or default
secrets.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

DEV_SECRET = "dev-only-secret-change-me"  # noqa: S105 - the documented development default


class ConfigError(RuntimeError):
    """Raised when the settings are unusable (e.g. default secrets in production)."""


def _bool(value: str | None, default: bool = False) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _list(value: str | None) -> list[str]:
    return [item.strip() for item in (value or "").split(",") if item.strip()]


@dataclass
class Settings:
    env: str = "development"
    database_url: str = f"sqlite:///{ROOT / 'instance' / 'portal.db'}"
    # Newest first: the first key signs, every key verifies (rotation).
    secret_keys: list[str] = field(default_factory=lambda: [DEV_SECRET])
    base_url: str = "http://127.0.0.1:5000"
    payment_provider: str = "sandbox"
    mail_url: str = f"file://{ROOT / 'var' / 'mail'}"
    mail_from: str = "payments@portal.localhost"
    sms_url: str = "console"
    # Where console SMS are kept for the start page ("" = var/sms.log in development only).
    sms_log: str = ""
    default_ceiling: str = "10000.00"
    allow_private_callbacks: bool = False
    embedded_worker: bool = False
    redis_url: str = ""
    # Flask-Limiter storage: memory:// (one process) or redis://… (shared by every instance).
    ratelimit_storage_url: str = ""
    rate_limits: bool = True
    # Reverse proxies in front of the portal that set X-Forwarded-For/-Proto/-Host.
    proxy_hops: int = 0
    log_format: str = ""  # text or json; json by default in production
    metrics_token: str = ""
    ready_max_job_age: int = 600
    # Seconds a PostgreSQL statement may run (0: no limit); below gunicorn's 30 s timeout.
    db_statement_timeout: int = 20
    job_lease_seconds: int = 60
    worker_threads: int = 4
    callback_timeout: float = 15.0
    # Seconds before each try: about 0 s, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h.
    callback_schedule: list[int] = field(
        default_factory=lambda: [0, 5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400]
    )
    api_rate_limit: str = "100 per second"
    link_rate_limit: str = "120 per minute"
    pay_rate_limit: str = "20 per 10 minutes"
    login_rate_limit: str = "10 per minute"
    login_account_rate_limit: str = "20 per hour"
    webhook_rate_limit: str = "600 per minute"
    console_rate_limit: str = "300 per minute"
    # Seconds a form's CSRF token stays valid: the customer's pay forms (a tab left open
    # overnight still pays), the support console's forms (docs/security.md).
    csrf_time_limit: int = 86400
    console_csrf_time_limit: int = 3600
    stripe_secret_key: str = ""
    stripe_publishable_key: str = ""
    stripe_webhook_secret: str = ""
    stripe_api_base: str = ""
    # Seconds to wait for Stripe per try (read; connecting: at most 3 s). With the one
    # retry, a call gives up within about 2 x 8 s, below gunicorn's 30 s WEB_TIMEOUT.
    stripe_timeout: float = 8.0
    stripe_js_url: str = "https://js.stripe.com/v3/"
    stripe_payment_method_types: list[str] = field(default_factory=list)
    debug: bool = False  # from FLASK_DEBUG; refused in production

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        s = cls()
        simple = {
            "env": "PORTAL_ENV",
            "database_url": "PORTAL_DATABASE_URL",
            "base_url": "PORTAL_BASE_URL",
            "payment_provider": "PORTAL_PAYMENT_PROVIDER",
            "mail_url": "PORTAL_MAIL_URL",
            "mail_from": "PORTAL_MAIL_FROM",
            "sms_url": "PORTAL_SMS_URL",
            "sms_log": "PORTAL_SMS_LOG",
            "default_ceiling": "PORTAL_DEFAULT_CEILING",
            "redis_url": "PORTAL_REDIS_URL",
            "api_rate_limit": "PORTAL_API_RATE_LIMIT",
            "link_rate_limit": "PORTAL_LINK_RATE_LIMIT",
            "pay_rate_limit": "PORTAL_PAY_RATE_LIMIT",
            "login_rate_limit": "PORTAL_LOGIN_RATE_LIMIT",
            "login_account_rate_limit": "PORTAL_LOGIN_ACCOUNT_RATE_LIMIT",
            "webhook_rate_limit": "PORTAL_WEBHOOK_RATE_LIMIT",
            "console_rate_limit": "PORTAL_CONSOLE_RATE_LIMIT",
            "ratelimit_storage_url": "PORTAL_RATELIMIT_STORAGE_URL",
            "log_format": "PORTAL_LOG_FORMAT",
            "metrics_token": "PORTAL_METRICS_TOKEN",
            "stripe_secret_key": "STRIPE_SECRET_KEY",
            "stripe_publishable_key": "STRIPE_PUBLISHABLE_KEY",
            "stripe_webhook_secret": "STRIPE_WEBHOOK_SECRET",
            "stripe_api_base": "STRIPE_API_BASE",
            "stripe_js_url": "STRIPE_JS_URL",
        }
        for attr, name in simple.items():
            if env.get(name):
                setattr(s, attr, env[name])
        if env.get("PORTAL_SECRET_KEYS"):
            s.secret_keys = _list(env["PORTAL_SECRET_KEYS"])
        if env.get("STRIPE_PAYMENT_METHOD_TYPES"):
            s.stripe_payment_method_types = _list(env["STRIPE_PAYMENT_METHOD_TYPES"])
        s.allow_private_callbacks = _bool(env.get("PORTAL_ALLOW_PRIVATE_CALLBACKS"))
        s.embedded_worker = _bool(env.get("PORTAL_EMBEDDED_WORKER"))
        s.rate_limits = _bool(env.get("PORTAL_RATE_LIMITS"), default=True)
        for attr, name in (
            ("proxy_hops", "PORTAL_PROXY_HOPS"),
            ("ready_max_job_age", "PORTAL_READY_MAX_JOB_AGE"),
            ("db_statement_timeout", "PORTAL_DB_STATEMENT_TIMEOUT"),
            ("job_lease_seconds", "PORTAL_JOB_LEASE_SECONDS"),
            ("worker_threads", "PORTAL_WORKER_THREADS"),
            ("csrf_time_limit", "PORTAL_CSRF_TIME_LIMIT"),
            ("console_csrf_time_limit", "PORTAL_CONSOLE_CSRF_TIME_LIMIT"),
        ):
            if env.get(name):
                setattr(s, attr, int(env[name]))
        if env.get("PORTAL_CALLBACK_TIMEOUT"):
            s.callback_timeout = float(env["PORTAL_CALLBACK_TIMEOUT"])
        if env.get("PORTAL_STRIPE_TIMEOUT"):
            s.stripe_timeout = float(env["PORTAL_STRIPE_TIMEOUT"])
        if env.get("PORTAL_CALLBACK_SCHEDULE"):
            s.callback_schedule = [int(x) for x in _list(env["PORTAL_CALLBACK_SCHEDULE"])]
        s.base_url = s.base_url.rstrip("/")
        s.debug = _bool(env.get("FLASK_DEBUG"))
        if not s.log_format:
            s.log_format = "json" if s.env == "production" else "text"
        return s

    def validate(self) -> None:
        """Fail fast on settings that would be unsafe or unusable."""
        if self.env not in {"development", "test", "production"}:
            raise ConfigError(
                f"PORTAL_ENV must be development, test or production, not {self.env!r}"
            )
        if not self.secret_keys:
            raise ConfigError("PORTAL_SECRET_KEYS is empty")
        if self.log_format not in {"text", "json"}:
            raise ConfigError("PORTAL_LOG_FORMAT must be text or json")
        if self.proxy_hops < 0:
            raise ConfigError("PORTAL_PROXY_HOPS must be 0 or more")
        if self.db_statement_timeout < 0:
            raise ConfigError("PORTAL_DB_STATEMENT_TIMEOUT must be 0 (no limit) or more")
        if self.payment_provider not in {"sandbox", "stripe"}:
            raise ConfigError("PORTAL_PAYMENT_PROVIDER must be 'sandbox' or 'stripe'")
        if self.env == "production":
            if self.debug:
                raise ConfigError("debug mode (FLASK_DEBUG) is not allowed in production")
            if not self.base_url.startswith("https://"):
                raise ConfigError("PORTAL_BASE_URL must be an https:// address in production")
            weak = [k for k in self.secret_keys if k == DEV_SECRET or len(k) < 32]
            if weak:
                raise ConfigError(
                    "PORTAL_SECRET_KEYS must be set in production, each key at least 32 "
                    "characters and none the development default"
                )
            if self.payment_provider == "stripe" and not (
                self.stripe_secret_key and self.stripe_webhook_secret
            ):
                raise ConfigError("STRIPE_SECRET_KEY and STRIPE_WEBHOOK_SECRET are required")
            if self.allow_private_callbacks:
                raise ConfigError("PORTAL_ALLOW_PRIVATE_CALLBACKS is not allowed in production")
            if self.payment_provider == "sandbox":
                # Fake cards would settle real requests and tell real ledgers they were paid.
                raise ConfigError("the sandbox payment provider is not allowed in production")
            if not self.database_url.startswith("postgresql"):
                # SQLite serializes every writer in one file: right for development and
                # tests, not for web and worker processes on several machines.
                raise ConfigError("PORTAL_DATABASE_URL must be a PostgreSQL URL in production")

    def as_flask_config(self) -> dict[str, object]:
        values = {f"PORTAL_{f.name.upper()}": getattr(self, f.name) for f in fields(self)}
        values.update(
            SECRET_KEY=self.secret_keys[0],
            # Rotation: the first key signs, the older ones still verify sessions and CSRF
            # tokens until they are removed from the list.
            SECRET_KEY_FALLBACKS=self.secret_keys[1:],
            # itsdangerous signs with the last key of a list and verifies with them all.
            WTF_CSRF_SECRET_KEY=list(reversed(self.secret_keys)),
            SQLALCHEMY_DATABASE_URI=self.database_url,
            SQLALCHEMY_ENGINE_OPTIONS=_engine_options(self.database_url, self.db_statement_timeout),
            TESTING=self.env == "test",
            WTF_CSRF_TIME_LIMIT=self.csrf_time_limit,
            # Pages send Referrer-Policy: strict-origin, so browsers send our origin as
            # Referer and Flask-WTF's https check (origins only) passes.
            WTF_CSRF_SSL_STRICT=True,
            BABEL_TRANSLATION_DIRECTORIES=str(ROOT / "translations"),
            BABEL_DEFAULT_LOCALE="en",
            MAX_CONTENT_LENGTH=1024 * 1024,
            SESSION_COOKIE_SECURE=self.env == "production",
            SESSION_COOKIE_SAMESITE="Lax",
            SESSION_COOKIE_HTTPONLY=True,
            # Tests turn limits on where they test them: counters would leak between apps.
            RATELIMIT_ENABLED=self.rate_limits and self.env != "test",
            RATELIMIT_STORAGE_URI=self.ratelimit_storage_url or self.redis_url or "memory://",
            RATELIMIT_HEADERS_ENABLED=True,
            # Redis unreachable: fail open to this process's own counters (every limit
            # still applies, per process), log it once, retry Redis with a backoff
            # (docs/deploy.md). A dead Redis costs at most the short timeouts below.
            RATELIMIT_IN_MEMORY_FALLBACK_ENABLED=True,
            RATELIMIT_SWALLOW_ERRORS=True,
            RATELIMIT_STORAGE_OPTIONS=_ratelimit_storage_options(
                self.ratelimit_storage_url or self.redis_url
            ),
        )
        return values


def _ratelimit_storage_options(url: str) -> dict[str, object]:
    if not url.startswith(("redis://", "rediss://")):
        return {}
    return {"socket_connect_timeout": 0.5, "socket_timeout": 0.5}


def _engine_options(url: str, statement_timeout: int = 0) -> dict[str, object]:
    if url.startswith("sqlite"):
        # A busy writer makes others wait instead of failing at once.
        return {"connect_args": {"timeout": 30}}
    # A dead connection is replaced before use (database restarts, failovers), and an
    # unreachable server fails a request in seconds instead of hanging its thread.
    connect_args: dict[str, object] = {"connect_timeout": 5}
    if statement_timeout:
        # A runaway query or a lock wait ends with an error the request answers as a 503,
        # before gunicorn would kill the whole worker. Migrations lift it (migrations/env.py).
        connect_args["options"] = f"-c statement_timeout={statement_timeout * 1000}"
    return {"pool_pre_ping": True, "connect_args": connect_args}
