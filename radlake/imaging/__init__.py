"""Imaging: series geometry and voxel volumes, the one implementation every part of the system uses.

* :mod:`~radlake.imaging.series_geometry`: slice normal, slice order, spacing, gaps and the volume
  geometry of a series from its instances' Image Plane attributes.
* :mod:`~radlake.imaging.volume`: the one :class:`~radlake.imaging.volume.Volume` type and the assembly
  of DICOM slices into it (Modality LUT rescale, slice order, regular grid).
* :mod:`~radlake.imaging.event_records`: record types whose fields are those of a ``lake_schemas`` event
  model, so the records that mirror events are derived from the contract instead of re-declared.

Only numpy, pydicom, ``lake_schemas`` and ``radlake`` are imported here (no infrastructure client).
"""
