"""De-identification: DICOM PS3.15 Annex E Basic Application Level Confidentiality Profile.

Table E.1-1 is data (``ps3_15_table_e1_1.csv``); pseudonyms are keyed HMACs computed by Vault Transit;
every released instance passes a blocking verification scan. See ``docs/deid.md``.
"""

from radlake.deid.confidentiality_profile import STANDARD_EDITION, TABLE_VERSION, Action, Option, Profile
from radlake.deid.errors import DeidError, ProfileError, PseudonymError, QuarantineReason

__all__ = [
    "STANDARD_EDITION",
    "TABLE_VERSION",
    "Action",
    "DeidError",
    "Option",
    "Profile",
    "ProfileError",
    "PseudonymError",
    "QuarantineReason",
]
