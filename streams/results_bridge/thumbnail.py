"""A Grad-CAM map (gzipped NIfTI-1, what the inference workers store) as a small PNG a browser shows: the
maximum-intensity projection along the volume's third axis (axial for the workers' RAS maps), scaled to 0-1 and
coloured with a dark-to-warm ramp. PNG written with zlib alone: no imaging library for one picture."""

from __future__ import annotations

import gzip
import struct
import zlib

import nibabel as nib
import numpy as np

from streams.errors import StreamsError

# black -> purple -> orange -> pale yellow: reads as "more attention" without a legend
_RAMP = np.array([[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]], dtype=np.float64)


class ThumbnailError(StreamsError):
    """The object is not a NIfTI-1 volume this module can draw."""


def _colour(values: np.ndarray) -> np.ndarray:
    """(H, W) in [0, 1] -> (H, W, 3) uint8 along :data:`_RAMP`."""
    position = np.clip(values, 0.0, 1.0) * (len(_RAMP) - 1)
    low = np.floor(position).astype(int).clip(0, len(_RAMP) - 2)
    fraction = (position - low)[..., None]
    return (_RAMP[low] * (1 - fraction) + _RAMP[low + 1] * fraction).round().astype(np.uint8)


def png(rgb: np.ndarray) -> bytes:
    """An 8-bit RGB PNG of an (H, W, 3) uint8 array."""
    height, width, _ = rgb.shape
    rows = b"".join(b"\x00" + rgb[y].tobytes() for y in range(height))  # filter type 0 on every row

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows, 6)) + chunk(b"IEND", b"")


def projection_png(volume: np.ndarray, scale: int = 4) -> bytes:
    """The maximum-intensity projection of a 3-D map along its last axis, each pixel ``scale`` times enlarged."""
    if volume.ndim != 3 or min(volume.shape) == 0:
        raise ThumbnailError(f"a Grad-CAM map is a 3-D volume, not shape {volume.shape}")
    projection = np.nan_to_num(volume.astype(np.float64)).max(axis=2).T[::-1]  # rows: anterior at the top
    low, high = float(projection.min()), float(projection.max())
    normalised = (projection - low) / (high - low) if high > low else np.zeros_like(projection)
    enlarged = np.kron(normalised, np.ones((scale, scale)))
    return png(_colour(enlarged))


def gradcam_png(nifti_gz: bytes, scale: int = 4) -> bytes:
    try:
        image = nib.Nifti1Image.from_bytes(gzip.decompress(nifti_gz))
        volume = np.asarray(image.dataobj)
    except (OSError, EOFError, ValueError, nib.filebasedimages.ImageFileError) as err:
        raise ThumbnailError(f"not a gzipped NIfTI-1 volume: {err}") from err
    return projection_png(volume, scale)
