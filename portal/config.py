"""Typed settings read from ``PORTAL_*`` (and ``STRIPE_*``) environment variables.

Every setting has an embedded default that makes ``make run`` work on a fresh
machine (SQLite, sandbox payments, mail to a folder). In production
(``PORTAL_ENV=production``) the app refuses to start with missing or default
secrets.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from limits import parse_many
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    ValidationError,
)

ROOT = Path(__file__).resolve().parent.parent

DEV_SECRET = "dev-only-secret-change-me"  # noqa: S105 - the documented development default


class ConfigError(RuntimeError):
    """Raised when the settings are unusable (e.g. default secrets in production)."""


def _comma_list(value: Any) -> Any:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def _rate_limit(value: str) -> str:
    """Flask-Limiter's own parser: what it cannot read would limit nothing."""
    try:
        parse_many(value)
    except ValueError as exc:
        raise ValueError(f"not a rate limit such as '100 per second' ({exc})") from None
    return value


def _amount(value: str) -> str:
    if not re.fullmatch(r"\d{1,12}(\.\d{1,3})?", value):
        raise ValueError("not an amount such as 10000.00")
    return value


CommaList = Annotated[list[str], BeforeValidator(_comma_list)]
RateLimit = Annotated[str, AfterValidator(_rate_limit)]
# Variables whose name is not PORTAL_ + the field's name.
ENV_NAMES = {
    "debug": "FLASK_DEBUG",
    **{
        name: name.upper()
        for name in (
            "stripe_secret_key",
            "stripe_publishable_key",
            "stripe_webhook_secret",
            "stripe_api_base",
            "stripe_js_url",
            "stripe_payment_method_types",
        )
    },
}


def env_name(field: str) -> str:
    """The environment variable of a setting (``proxy_hops`` → ``PORTAL_PROXY_HOPS``)."""
    return ENV_NAMES.get(field, f"PORTAL_{field.upper()}")


class Settings(BaseModel):
    """Every setting, typed. Read from the environment by :meth:`from_env`, which stops
    the process with the variable's name on a value it cannot read (``PORTAL_PROXY_HOPS=two``,
    ``PORTAL_RATE_LIMITS=nope``, ``PORTAL_API_RATE_LIMIT=lots``)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    env: Literal["development", "test", "production"] = "development"
    database_url: str = f"sqlite:///{ROOT / 'instance' / 'portal.db'}"
    # Newest first: the first key signs, every key verifies (rotation).
    secret_keys: Annotated[CommaList, Field(min_length=1)] = [DEV_SECRET]
    base_url: Annotated[str, AfterValidator(lambda v: v.rstrip("/"))] = "http://127.0.0.1:5000"
    payment_provider: Literal["sandbox", "stripe"] = "sandbox"
    mail_url: str = f"file://{ROOT / 'var' / 'mail'}"
    mail_from: str = "payments@portal.localhost"
    sms_url: str = "console"
    # Where console SMS are kept for the start page ("" = var/sms.log in development only).
    sms_log: str = ""
    default_ceiling: Annotated[str, AfterValidator(_amount)] = "10000.00"
    # The highest ceiling a merchant may set itself (console, PATCH /merchant), major units.
    max_ceiling: Annotated[str, AfterValidator(_amount)] = "50000.00"
    allow_private_callbacks: bool = False
    embedded_worker: bool = False
    redis_url: str = ""
    # Flask-Limiter storage: memory:// (one process) or redis://… (shared by every instance).
    ratelimit_storage_url: str = ""
    rate_limits: bool = True
    # Reverse proxies in front of the portal that set X-Forwarded-For/-Proto/-Host.
    proxy_hops: NonNegativeInt = 0
    log_format: Literal["", "text", "json"] = ""  # json by default in production
    metrics_token: str = ""
    ready_max_job_age: PositiveInt = 600  # seconds
    # Seconds a PostgreSQL statement may run (0: no limit); below gunicorn's 30 s timeout.
    db_statement_timeout: NonNegativeInt = 20
    # Link opens are written by a thread of each web process this often (0: in the page's
    # own transaction, as always on SQLite); portal/customer/opens.py.
    open_count_flush_seconds: Annotated[float, Field(ge=0)] = 1.0
    # Statement lines tables kept rendered per worker process (0: rendered on every view);
    # about 9 KB each with 20 lines, and a miss costs a tenth of a page (bench/README.md).
    statement_cache_size: NonNegativeInt = 256
    job_lease_seconds: PositiveInt = 60
    worker_threads: PositiveInt = 4
    callback_timeout: PositiveFloat = 15.0  # seconds
    # Seconds before each try: about 0 s, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h.
    callback_schedule: Annotated[list[NonNegativeInt], BeforeValidator(_comma_list)] = Field(
        default=[0, 5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400], min_length=1
    )
    api_rate_limit: RateLimit = "100 per second"
    link_rate_limit: RateLimit = "120 per minute"
    pay_rate_limit: RateLimit = "20 per 10 minutes"
    renewal_rate_limit: RateLimit = "5 per hour"
    login_rate_limit: RateLimit = "10 per minute"
    login_account_rate_limit: RateLimit = "20 per hour"
    # Stripe sends every merchant's events from a few addresses: the limit is that of one
    # busy provider address, not one shop (a forged body costs one HMAC, no write).
    webhook_rate_limit: RateLimit = "100 per second"
    console_rate_limit: RateLimit = "300 per minute"
    # Seconds a form's CSRF token stays valid: the customer's pay forms (a tab left open
    # overnight still pays), the support console's forms (docs/security.md).
    csrf_time_limit: PositiveInt = 86400
    console_csrf_time_limit: PositiveInt = 3600
    stripe_secret_key: str = ""
    stripe_publishable_key: str = ""
    stripe_webhook_secret: str = ""
    stripe_api_base: str = ""
    # Seconds to wait for Stripe per try (read; connecting: at most 3 s). With the one
    # retry, a call gives up within about 2 x 8 s, below gunicorn's 30 s WEB_TIMEOUT.
    stripe_timeout: PositiveFloat = 8.0
    stripe_js_url: str = "https://js.stripe.com/v3/"
    stripe_payment_method_types: CommaList = []
    # Apple Pay's domain association file (as Stripe hands it out), or ``@/path/to/file``.
    apple_pay_domain_association: str = ""
    debug: bool = False  # from FLASK_DEBUG; refused in production

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The settings from ``environ`` (the process environment by default); an empty
        variable means its default."""
        env = os.environ if environ is None else environ
        given = {f: env[env_name(f)] for f in cls.model_fields if env.get(env_name(f))}
        try:
            settings = cls.model_validate(given)
        except ValidationError as exc:
            raise ConfigError(_explain(exc)) from None
        if not settings.log_format:
            settings.log_format = "json" if settings.env == "production" else "text"
        return settings

    def override(self, **values: Any) -> None:
        """Set fields as ``create_app(config)`` does, each value checked like the
        environment's."""
        try:
            for name, value in values.items():
                setattr(self, name, value)
        except ValidationError as exc:
            raise ConfigError(_explain(exc)) from None

    def validate(self) -> None:  # type: ignore[override]
        """Fail fast on combinations that would be unsafe (each value is already typed)."""
        if self.env == "production":
            problem = next(iter(self._production_problems()), None)
            if problem:
                raise ConfigError(problem)

    def _production_problems(self) -> list[str]:
        weak = [k for k in self.secret_keys if k == DEV_SECRET or len(k) < 32]
        checks = [
            (self.debug, "debug mode (FLASK_DEBUG) is not allowed in production"),
            (
                not self.base_url.startswith("https://"),
                "PORTAL_BASE_URL must be an https:// address in production",
            ),
            (
                bool(weak),
                "PORTAL_SECRET_KEYS must be set in production, each key at least 32 "
                "characters and none the development default",
            ),
            (
                self.payment_provider == "stripe"
                and not (self.stripe_secret_key and self.stripe_webhook_secret),
                "STRIPE_SECRET_KEY and STRIPE_WEBHOOK_SECRET are required",
            ),
            (
                self.allow_private_callbacks,
                "PORTAL_ALLOW_PRIVATE_CALLBACKS is not allowed in production",
            ),
            # Fake cards would settle real requests and tell real ledgers they were paid.
            (
                self.payment_provider == "sandbox",
                "the sandbox payment provider is not allowed in production",
            ),
            # SQLite serializes every writer in one file: right for development and tests,
            # not for web and worker processes on several machines.
            (
                not self.database_url.startswith("postgresql"),
                "PORTAL_DATABASE_URL must be a PostgreSQL URL in production",
            ),
        ]
        return [message for failed, message in checks if failed]

    def as_flask_config(self) -> dict[str, object]:
        values: dict[str, object] = {
            f"PORTAL_{name.upper()}": getattr(self, name) for name in type(self).model_fields
        }
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


def _explain(exc: ValidationError) -> str:
    """``PORTAL_PROXY_HOPS: Input should be a valid integer (got 'two')`` for each error."""
    lines = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else ""
        name = env_name(field) if field in Settings.model_fields else field
        # Never echo what may hold a secret (keys, tokens, URLs with passwords).
        shown = "" if re.search("key|secret|token|url", field) else f" (got {error['input']!r})"
        lines.append(f"{name}: {error['msg']}{shown}")
    return "; ".join(lines)


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
