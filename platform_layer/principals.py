"""The names of the platform's Vault principals (no imports: the NiFi edge's runtime reads them too).

What each may do is in :mod:`platform_layer.vault`.
"""

from __future__ import annotations

ADMIN_ROLE = ADMIN_POLICY = "radlake-admin"
EDGE_TOKEN_ROLE = "radlake-edge"
RUN_TOKEN_ROLE = "radlake-deid-run"
