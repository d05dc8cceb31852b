"""Phone numbers and country codes, by the ``phonenumbers`` library.

The library (1.1 MB with its tables) is imported at the first number or country checked:
a web worker that only serves link pages never holds it (bench/README.md, "Memory").
"""

from __future__ import annotations


def e164(value: str, region: str | None = None, *, dialable: bool = False) -> str | None:
    """``0470 12 34 56`` in ``BE`` → ``+32470123456``; None when it does not parse, or
    with ``dialable`` when no such number can be dialled (a search looks up what was
    typed; a number to send to must exist)."""
    import phonenumbers

    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        return None
    if dialable and not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def is_country(code: str) -> bool:
    """A two-letter code the phone plan knows (``BE``; ISO 3166-1 alpha-2, upper case)."""
    import phonenumbers

    return code in phonenumbers.SUPPORTED_REGIONS
