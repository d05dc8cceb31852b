from __future__ import annotations

import pytest

from portal import create_app
from portal.config import DEV_SECRET, ConfigError, Settings


def test_from_env_reads_prefixed_variables():
    s = Settings.from_env(
        {
            "PORTAL_DATABASE_URL": "postgresql://db/portal",
            "PORTAL_SECRET_KEYS": "new-key , old-key",
            "PORTAL_BASE_URL": "https://pay.example.com/",
            "PORTAL_PAYMENT_PROVIDER": "stripe",
            "PORTAL_MAIL_URL": "smtp://u:p@mail:587",
            "PORTAL_DEFAULT_CEILING": "100000.00",
            "PORTAL_ALLOW_PRIVATE_CALLBACKS": "1",
        }
    )
    assert s.database_url == "postgresql://db/portal"
    assert s.secret_keys == ["new-key", "old-key"]
    assert s.base_url == "https://pay.example.com"
    assert s.payment_provider == "stripe"
    assert s.mail_url == "smtp://u:p@mail:587"
    assert s.default_ceiling == "100000.00"
    assert s.allow_private_callbacks is True


# Everything production needs: each unsafe case below changes one thing.
PRODUCTION = {
    "PORTAL_ENV": "production",
    "PORTAL_SECRET_KEYS": "k" * 40,
    "PORTAL_BASE_URL": "https://pay.example.com",
    "PORTAL_PAYMENT_PROVIDER": "stripe",
    "STRIPE_SECRET_KEY": "sk_live_x",
    "STRIPE_WEBHOOK_SECRET": "whsec_x",
    "PORTAL_DATABASE_URL": "postgresql+psycopg://portal@db.internal/portal",
}


def test_the_production_baseline_is_valid():
    settings = Settings.from_env(PRODUCTION)
    settings.validate()
    assert settings.log_format == "json"


@pytest.mark.parametrize(
    "env",
    [
        {"PORTAL_ENV": "production"},
        {"PORTAL_ENV": "production", "PORTAL_SECRET_KEYS": DEV_SECRET},
        {"PORTAL_ENV": "production", "PORTAL_SECRET_KEYS": "short"},
        {"PORTAL_ENV": "production", "PORTAL_SECRET_KEYS": "k" * 40 + "," + DEV_SECRET},
        {
            "PORTAL_ENV": "production",
            "PORTAL_SECRET_KEYS": "k" * 40,
            "PORTAL_PAYMENT_PROVIDER": "stripe",
        },
        {
            "PORTAL_ENV": "production",
            "PORTAL_SECRET_KEYS": "k" * 40,
            "PORTAL_ALLOW_PRIVATE_CALLBACKS": "1",
        },
        {"PORTAL_ENV": "production", "PORTAL_SECRET_KEYS": "k" * 40},  # sandbox payments
        {**PRODUCTION, "PORTAL_BASE_URL": "http://pay.example.com"},
        {**PRODUCTION, "FLASK_DEBUG": "1"},
        {**PRODUCTION, "PORTAL_LOG_FORMAT": "xml"},
        {**PRODUCTION, "PORTAL_PROXY_HOPS": "-1"},
        {**PRODUCTION, "PORTAL_DATABASE_URL": "sqlite:////var/lib/portal.db"},
        {"PORTAL_ENV": "staging"},
        {"PORTAL_PAYMENT_PROVIDER": "paypal"},
    ],
)
def test_unsafe_settings_refuse_to_start(env):
    with pytest.raises(ConfigError):
        Settings.from_env(env).validate()


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for name in ("PORTAL_ALLOW_PRIVATE_CALLBACKS", "PORTAL_PAYMENT_PROVIDER", "PORTAL_ENV"):
        monkeypatch.delenv(name, raising=False)


def test_production_with_real_secrets_starts(monkeypatch, tmp_path):
    monkeypatch.setenv("PORTAL_ENV", "production")
    monkeypatch.setenv("PORTAL_SECRET_KEYS", "k" * 40)
    monkeypatch.setenv("PORTAL_BASE_URL", "https://pay.example.com")
    monkeypatch.setenv("PORTAL_LOG_FORMAT", "text")
    monkeypatch.setenv("PORTAL_DATABASE_URL", "postgresql+psycopg://portal@127.0.0.1:1/portal")
    monkeypatch.setenv("PORTAL_PAYMENT_PROVIDER", "stripe")
    monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_live_x")
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", "whsec_x")
    app = create_app()
    assert app.config["PORTAL_ENV"] == "production"
    assert app.config["SECRET_KEY"] == "k" * 40
    assert app.config["SESSION_COOKIE_SECURE"] is True


def test_create_app_refuses_production_default_secret(monkeypatch):
    monkeypatch.setenv("PORTAL_ENV", "production")
    monkeypatch.delenv("PORTAL_SECRET_KEYS", raising=False)
    with pytest.raises(ConfigError):
        create_app()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        # Each of these used to start quietly with the setting off or unread.
        ("PORTAL_RATE_LIMITS", "nope"),
        ("PORTAL_API_RATE_LIMIT", "lots"),
        ("PORTAL_LINK_RATE_LIMIT", "120 per fortnight"),
        ("PORTAL_PROXY_HOPS", "two"),
        ("PORTAL_EMBEDDED_WORKER", "maybe"),
        ("PORTAL_WORKER_THREADS", "0"),
        ("PORTAL_CALLBACK_TIMEOUT", "fast"),
        ("PORTAL_CALLBACK_SCHEDULE", "0,5,soon"),
        ("PORTAL_READY_MAX_JOB_AGE", "10m"),
        ("PORTAL_DEFAULT_CEILING", "1e6"),
        ("PORTAL_LOG_FORMAT", "xml"),
        ("FLASK_DEBUG", "sometimes"),
    ],
)
def test_a_typo_stops_start_up_naming_the_variable(name, value):
    with pytest.raises(ConfigError) as refused:
        Settings.from_env({name: value})
    assert str(refused.value).startswith(f"{name}: ")
    assert repr(value.split(",")[-1]) in str(refused.value)  # what could not be read


def test_values_that_may_hold_secrets_are_not_echoed():
    with pytest.raises(ConfigError) as refused:
        Settings.from_env({"PORTAL_SECRET_KEYS": " , "})
    assert str(refused.value).startswith("PORTAL_SECRET_KEYS: ")
    assert "got" not in str(refused.value)


def test_typed_values_are_read():
    s = Settings.from_env(
        {
            "PORTAL_RATE_LIMITS": "off",
            "PORTAL_PROXY_HOPS": "2",
            "PORTAL_API_RATE_LIMIT": "50/second;1000 per hour",
            "PORTAL_CALLBACK_SCHEDULE": "0, 10, 60",
            "PORTAL_CALLBACK_TIMEOUT": "2.5",
            "STRIPE_PAYMENT_METHOD_TYPES": "card, bancontact",
        }
    )
    assert s.rate_limits is False
    assert s.proxy_hops == 2
    assert s.api_rate_limit == "50/second;1000 per hour"
    assert s.callback_schedule == [0, 10, 60]
    assert s.callback_timeout == 2.5
    assert s.stripe_payment_method_types == ["card", "bancontact"]


def test_create_app_checks_its_overrides_like_the_environment():
    with pytest.raises(ConfigError, match="PORTAL_PROXY_HOPS"):
        create_app({"proxy_hops": -1, "env": "test"})
