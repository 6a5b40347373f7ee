"""``radlake revoke USER DATASET``: end a user's grants of a dataset (see ``apps/grant.py``)."""

from apps.grant import revoke_main as main

__all__ = ["main"]
