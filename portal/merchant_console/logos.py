"""Logo uploads: PNG or JPEG only (never SVG), size and dimension limits, re-encoded.

The upload is decoded by Pillow, which reads only raster formats; anything else
(SVG, GIF, a script named .png) is refused. The image is converted, scaled down to at
most 512 px a side and written again as PNG, so no metadata, script or trailing bytes of
the upload survive. It is stored named by the SHA-256 of the new bytes and served at
``/merchant/logos/<digest>.png`` with a year of cache life (the name changes with it).
"""

from __future__ import annotations

import hashlib
import io
import warnings
from typing import TYPE_CHECKING

from flask import current_app

from portal.errors import Invalid
from portal.extensions import db
from portal.merchant_console.accounts import audit
from portal.merchant_console.models import MerchantLogo, MerchantUser

if TYPE_CHECKING:
    from PIL import Image

MAX_BYTES = 512 * 1024
MAX_SIDE_IN = 4000  # what may be uploaded
MIN_SIDE = 16
MAX_SIDE_OUT = 512  # what is kept
FORMATS = ("PNG", "JPEG")


def _decode(data: bytes) -> Image.Image:
    # Pillow (2 MB of every worker's memory) is imported by the upload that needs it.
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise Invalid("logo_missing", "Choose a PNG or JPEG file.", "logo")
    if len(data) > MAX_BYTES:
        raise Invalid("logo_too_large", "At most 512 KB.", "logo")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=list(FORMATS))
            if max(image.size) > MAX_SIDE_IN or min(image.size) < MIN_SIDE:
                raise Invalid("logo_dimensions", "Between 16 and 4000 pixels a side.", "logo")
            image.load()
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombWarning,
            Image.DecompressionBombError):  # fmt: skip
        raise Invalid("logo_format", "Only PNG and JPEG images.", "logo") from None
    return image


def reencode(data: bytes) -> tuple[bytes, int, int]:
    """(PNG bytes, width, height) of the upload, or :class:`Invalid`."""
    image = _decode(data)
    image = image.convert("RGBA")
    image.thumbnail((MAX_SIDE_OUT, MAX_SIDE_OUT))
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue(), image.width, image.height


def set_logo(user: MerchantUser, data: bytes) -> MerchantLogo:
    png, width, height = reencode(data)
    digest = hashlib.sha256(png).hexdigest()
    logo = db.session.get(MerchantLogo, digest)
    if logo is None or logo.merchant_id != user.merchant_id:
        if logo is not None:  # the very same image for another shop: keep theirs apart
            digest = hashlib.sha256(user.merchant_id.encode() + png).hexdigest()
        logo = db.session.get(MerchantLogo, digest) or MerchantLogo(
            digest=digest, merchant_id=user.merchant_id, data=png, width=width, height=height
        )
        db.session.add(logo)
    base = current_app.config["PORTAL_BASE_URL"]
    user.merchant.logo_url = f"{base}/merchant/logos/{logo.digest}.png"
    db.session.flush()
    audit(user, "settings.logo", user.merchant_id, digest=logo.digest, width=width, height=height)
    return logo


def logo(digest: str) -> MerchantLogo | None:
    return db.session.get(MerchantLogo, digest) if len(digest) == 64 else None
