"""The image-bomb guard: image files are measured from their header before a model decodes them.

A 20000x20000 PNG is a few hundred kilobytes on the wire and 1.2 GB once decoded inside the
graph. The server does not know which inputs a model decodes as images, so every binary input
that Pillow recognises as an image is checked; anything else is left for the model to judge.
"""

from __future__ import annotations

import io

from PIL import Image, UnidentifiedImageError

from app.errors import PayloadTooLarge

Image.MAX_IMAGE_PIXELS = None  # only headers are read here; the limit below is the one that holds


def check_image_size(data: bytes, max_pixels: int, where: str) -> None:
    """Raise `PayloadTooLarge` when `data` is an image of more than `max_pixels` pixels."""
    try:
        with Image.open(io.BytesIO(data)) as image:  # reads the header only
            width, height = image.size
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return  # not an image Pillow can read: the model decides
    if width * height > max_pixels:
        raise PayloadTooLarge(f"{where}: image of {width}x{height} pixels exceeds the limit of "
                              f"{max_pixels} pixels")
