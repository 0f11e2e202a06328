"""Uploaded pictures: their real format and size, and a small thumbnail (Pillow).

A decompression bomb is a small file that claims a huge picture (a 50 KB PNG of
50,000 x 50,000 pixels needs gigabytes once decoded). Pillow reads only the header on
``open``, so the pixel count is checked against ``files.max_image_pixels`` before a single
pixel is decoded; Pillow's own bomb error (past twice its ``MAX_IMAGE_PIXELS``) is refused
the same way. The thumbnail then decodes at a reduced scale where the format allows it
(JPEG's DCT scaling through ``draft``). Runs in a worker thread: it is CPU work.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps

from sferumd.services.filetypes import Refused

# Pillow warns past its own default pixel limit; ours (files.max_image_pixels) is checked
# before decoding, so the warning would only be noise on the daemon's JSON log.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)

THUMBNAIL_FORMAT = "WEBP"  # small, keeps transparency, shown by every current browser
THUMBNAIL_TYPE = "image/webp"
THUMBNAIL_QUALITY = 80
EXIF_ORIENTATION = 0x0112
TURNED = (5, 6, 7, 8)  # orientations that swap width and height


@dataclass(frozen=True, slots=True)
class Picture:
    width: int  # as shown, after the EXIF orientation
    height: int


def inspect(path: Path, pillow_format: str, max_pixels: int, thumb_px: int, thumb: Path) -> Picture:
    """Checks the picture and writes its thumbnail (at most ``thumb_px`` on its longer side)
    to ``thumb``; raises ``Refused`` for a bomb, another format or an undecodable file."""
    try:
        with Image.open(path, formats=[pillow_format]) as im:  # no other parser runs
            width, height = im.size
            if width * height > max_pixels:
                raise _too_big(width, height, max_pixels)
            if im.format != pillow_format:
                raise Refused(
                    415,
                    "type_mismatch",
                    f"the content is a {im.format} picture, not {pillow_format}",
                )
            turned = im.getexif().get(EXIF_ORIENTATION) in TURNED
            im.draft("RGB", (thumb_px, thumb_px))
            im.thumbnail((thumb_px, thumb_px))
            small = ImageOps.exif_transpose(im)
            small = small.convert("RGBA" if _has_alpha(small) else "RGB")
            small.save(thumb, THUMBNAIL_FORMAT, quality=THUMBNAIL_QUALITY)
    except Refused:
        raise
    except Image.DecompressionBombError:
        raise Refused(
            413, "image_too_large", f"the picture has more than {max_pixels} pixels"
        ) from None
    except Exception as exc:  # Pillow raises many kinds for damaged or truncated files
        raise Refused(422, "bad_image", f"the picture could not be decoded: {exc}") from None
    return Picture(height, width) if turned else Picture(width, height)


def _too_big(width: int, height: int, max_pixels: int) -> Refused:
    return Refused(
        413,
        "image_too_large",
        f"the picture is {width}x{height} pixels; at most {max_pixels} pixels are allowed",
    )


def _has_alpha(im: Image.Image) -> bool:
    return im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info)
