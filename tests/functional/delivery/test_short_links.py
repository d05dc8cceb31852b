"""SMS that fits (issue 17 item 6): segments counted as carriers count them, short links
``/s/<code>`` with the rules of ``/p/``, and a link SMS in one segment in every language."""

from __future__ import annotations

import re
import threading

import pytest

from portal.delivery import shortlinks
from portal.delivery.models import ShortLink
from portal.delivery.services import one_segment_sms, send_link, sms_text
from portal.delivery.sms import fit_one_segment, gsm7_name, recent_sms, sms_segments
from portal.extensions import db
from portal.jobs.worker import run_due_jobs
from portal.links import link_token
from portal.logs import mask
from portal.payment_requests.services import void_request
from tests.conftest import _empty
from tests.factories import make_merchant, make_request, statement_body, wallet_body
from tests.functional.security.test_key_rotation import NEW, OLD, use_keys

LOCALES = ("en", "fr", "nl", "de")
NOT_AVAILABLE = {"en": "This link is not available", "fr": "Ce lien n", "nl": "Deze link",
                 "de": "Dieser Link"}  # fmt: skip


# --- segments -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "encoding", "units", "count"),
    [
        ("", "gsm7", 0, 1),
        ("a" * 160, "gsm7", 160, 1),
        ("a" * 161, "gsm7", 161, 2),  # 153 + 8
        ("a" * 306, "gsm7", 306, 2),
        ("a" * 307, "gsm7", 307, 3),
        ("€" * 80, "gsm7", 160, 1),  # the extension table: 2 septets each
        ("€" * 81, "gsm7", 162, 2),
        ("a" * 152 + "€" + "a" * 10, "gsm7", 164, 2),  # 152+2 > 153: the € moves on
        ("a" * 152 + "[" + "a" * 152, "gsm7", 306, 3),  # an escape pair is never split
        ("Überweisung für Zoë: ça coûte 5 €", "ucs2", 33, 1),  # ç, û, ë: not GSM-7
        ("ç" * 70, "ucs2", 70, 1),
        ("ç" * 71, "ucs2", 71, 2),  # 67 + 4
        ("ç" * 134, "ucs2", 134, 2),
        ("ç" * 135, "ucs2", 135, 3),
        ("🙂" * 35, "ucs2", 70, 1),  # outside the BMP: a surrogate pair, 2 units
        ("ç" * 66 + "🙂" + "ç", "ucs2", 69, 1),
        ("ç" * 66 + "🙂" + "ç" * 3, "ucs2", 71, 2),  # the pair moves whole to part 2
    ],
)
def test_segments_are_counted_as_carriers_count_them(text, encoding, units, count):
    got = sms_segments(text)
    assert (got.encoding, got.units, got.count) == (encoding, units, count)


def test_a_shops_name_is_written_in_gsm7_and_cut_to_fit():
    typographic = "Ça Chêne «Noël» \u2013 l\u2019atelier\u2026"
    assert gsm7_name(typographic) == "Ça Chene Noel - l'atelier..."
    assert gsm7_name("🙂") == ""
    render = "{}: please pay €12.50 here: https://pay.example/s/AAAAAAAAAAAAAAAA".format
    assert fit_one_segment(render, "Short") == render("Short")
    long = fit_one_segment(render, "Boulangerie " * 30)
    assert sms_segments(long).count == 1 and sms_segments(long).units >= 155
    assert long.split(":")[0].endswith(".")
    # Even a wording that cannot fit stops at the shortest name tried.
    assert fit_one_segment(lambda n: n + "x" * 200, "Name of a shop").startswith("Nam.")


# --- link SMS in one segment ----------------------------------------------------------

LONG_NAME = "Boulangerie-Pâtisserie Française « Au Cœur Gourmand » & Fils \u2013 Épicerie " * 3


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("kind", ["statement", "wallet"])
def test_a_link_sms_is_one_gsm7_segment_in_every_language(app, locale, kind):
    app.config["PORTAL_BASE_URL"] = "https://payments.example-portal.com"
    m = make_merchant(name=LONG_NAME[:200], ceiling="50000.00")
    body = statement_body()
    if kind == "wallet":
        body = wallet_body(amount=4_999_999)
        del body["wallet"]
    pr = make_request(m, body)
    url = shortlinks.short_url(pr.id)
    text = sms_text(pr, locale, url)
    segments = sms_segments(text)
    assert (segments.encoding, segments.count) == ("gsm7", 1), text
    assert text.endswith(url)
    name = text.split(":")[0].strip()
    assert name.endswith(".") and LONG_NAME.startswith(name[:8])
    short = make_merchant(name="Chez Zoé", ceiling="50000.00")
    pr = make_request(short, body)
    assert sms_text(pr, locale, url).startswith("Chez Zoé")  # é is GSM-7: kept


def test_the_sms_carries_the_short_link_which_opens_the_page(app, client, tmp_path):
    app.config["PORTAL_SMS_LOG"] = str(tmp_path / "sms.log")
    m = make_merchant()
    body = statement_body()
    body["customer"]["phone"] = "+32 470 12 34 56"
    pr = make_request(m, body)
    send_link(pr, "sms")
    db.session.commit()
    run_due_jobs()
    (sent,) = recent_sms(tmp_path / "sms.log")
    text = sent["body"]
    assert sms_segments(text).count == 1
    code = re.search(r"/s/([0-9A-Za-z]{16})$", text).group(1)
    assert db.session.get(ShortLink, code).request_id == pr.id
    assert shortlinks.short_code(pr.id) == code  # one code per request
    opened = client.get(f"/s/{code}")
    assert opened.status_code == 303 and opened.headers["Location"] == f"/p/{link_token(pr.id)}"
    assert opened.headers["Cache-Control"] == "no-store"
    assert opened.headers["Referrer-Policy"] == "no-referrer"
    page = client.get(opened.headers["Location"])
    assert page.status_code == 200 and "Test Shop" in page.text
    # voided: the short link leads to the same closed page as the long one
    void_request(m.merchant, pr.id)
    db.session.commit()
    closed = client.get(f"/s/{code}", follow_redirects=True)
    assert closed.status_code == 410


@pytest.mark.parametrize("locale", LOCALES)
def test_forged_unknown_and_malformed_codes_get_the_friendly_page(app, client, locale):
    pr = make_request(make_merchant())
    good = shortlinks.short_code(pr.id)
    db.session.commit()
    unknown = shortlinks.new_code()  # signed, never stored
    forged = good[:10] + ("A" if good[10] != "A" else "B") + good[11:]
    candidates = [unknown, forged, good[:-1], good + "A", good[:8] + "\u200b" + good[8:],
                  good[:8] + "é" + good[9:], good[:8] + "." + good[9:], "x" * 300,
                  good.lower() if good.lower() != good else good.upper()]  # fmt: skip
    for code in candidates:
        resp = client.get(f"/s/{code}", query_string={"lang": locale})
        assert resp.status_code == 404, code
        assert NOT_AVAILABLE[locale] in resp.text, (locale, code)
        assert resp.headers["Cache-Control"] == "no-store"
    assert client.get(f"/s/{good}").status_code == 303


def test_codes_survive_a_key_rotation_while_the_old_key_is_listed(app, client):
    use_keys(app, OLD)
    pr = make_request(make_merchant())
    code = shortlinks.short_code(pr.id)
    db.session.commit()
    use_keys(app, NEW, OLD)
    assert client.get(f"/s/{code}").status_code == 303
    assert shortlinks.new_code() != code and shortlinks.signed(shortlinks.new_code())
    use_keys(app, NEW)
    assert client.get(f"/s/{code}").status_code == 404


def test_two_jobs_asking_at_once_get_the_same_code(app):
    pr = make_request(make_merchant())
    request_id = pr.id
    db.session.commit()
    start = threading.Barrier(2)
    codes: list[str] = []

    def one() -> None:
        with app.app_context():
            start.wait()
            codes.append(shortlinks.short_code(request_id))
            db.session.commit()
            db.session.remove()

    threads = [threading.Thread(target=one) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(codes)) == 1 and db.session.query(ShortLink).count() == 1


def test_short_link_paths_are_masked_in_logs():
    assert mask("GET /s/AbCdEfGhIj123456 200") == "GET /s/… 200"
    assert mask("GET /s/ 404") == "GET /s/ 404"
    assert "AbCd" not in mask('"https://pay.example/s/AbCdEfGhIj123456?lang=fr"')


def test_short_links_share_the_link_rate_limit(database_url):
    from tests.functional.api.test_rate_limit import _limited

    app = _limited(database_url, link_rate_limit="2 per minute")
    with app.app_context():
        pr = make_request(make_merchant())
        code = shortlinks.short_code(pr.id)
        token = link_token(pr.id)
        db.session.commit()
        db.session.remove()
    client = app.test_client()
    ip = {"REMOTE_ADDR": "10.7.7.8"}
    assert client.get(f"/s/{code}", environ_base=ip).status_code == 303
    assert client.get(f"/p/{token}", environ_base=ip).status_code == 200
    limited = client.get(f"/s/{code}", environ_base=ip)
    assert limited.status_code == 429 and limited.headers["Cache-Control"] == "no-store"
    _empty(app)


def test_another_sms_wording_goes_through_the_same_rule(app):
    """What the reminders call: their own wording, the short link, one segment."""
    m = make_merchant(name=LONG_NAME[:200])
    pr = make_request(m)
    url = shortlinks.short_url(pr.id)

    def reminder(name: str, amount: str | None, link: str) -> str:
        return f"{name}: reminder, {amount} is due on 3 December: {link}"

    text = one_segment_sms(pr, "en", reminder, url)
    assert sms_segments(text).count == 1 and text.endswith(url) and "€125.00" in text
