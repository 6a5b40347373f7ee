"""CT instances with identifiers of *other* persons planted in every free-text place a header has.

:mod:`radlake.synthetic.phi_dicom` plants the patient's own values in the attributes Table E.1-1
lists; real descriptors also name relatives, doctors and contacts, with their phones, addresses,
dates and IDs ("CT CHEST for <name>", "Call daughter <name> before visit", "per Dr <name>"). This
generator writes such values into ten descriptors the table cleans, a local code's Code Meaning in
Procedure Code Sequence (0008,1032), and TEXT, PNAME and DATE items of a Content Sequence
(0040,A730), and records each identifying value in a :class:`~radlake.synthetic.phi_dicom.Plant`
(names as ``Family^Given``, so each part is searched alone; addresses by street, town and postcode).
Only these free-text values are recorded: the patient's own PHI is the business of ``phi_dicom``.

Everything is ASCII and Explicit VR Little Endian, so both de-identification paths take the files.
:data:`CLINICAL_DESCRIPTIONS_FILE` names the list of identifier-free descriptions the cleaner's false
removals are measured on.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from radlake.synthetic import phi_dicom

CLINICAL_DESCRIPTIONS_FILE = Path(__file__).with_name("clinical_descriptions.txt")

# Invented names, none of them a clinical word (the cleaner cannot tell "Dr Head" from anatomy in capitals
# without the honorific; docs/deid.md). At least four letters: the leak scanner ignores shorter forms.
OTHER_PERSONS = (
    ("Gerald", "Pemberton"), ("Anneliese", "Vandermeer"), ("Oluwaseun", "Adeyemi"), ("Priyanka", "Raghunathan"),
    ("Mateusz", "Kowalczyk"), ("Siobhan", "Gallagher"), ("Hiroshi", "Takahashi"), ("Lucinda", "Whitcombe"),
    ("Bartholomew", "Finch"), ("Ingrid", "Solberg"), ("Thaddeus", "Okonkwo"), ("Marisol", "Echeverria"),
    ("Cornelius", "Blackwood"), ("Yevgenia", "Petrovna"), ("Dashiell", "Harcourt"), ("Rosalind", "Featherstone"),
    ("Ezekiel", "Montgomery"), ("Philippa", "Ashdown"), ("Leopold", "Sinclair"), ("Genevieve", "Thornbury"),
)
STREETS = ("Larchmont Road", "Wexford Lane", "Copperfield Avenue", "Haverleigh Close", "Bramblewood Drive")
TOWNS = ("Eastbury", "Kingsholme", "Marlowford", "Westerhaven", "Oakminster")
POSTCODES = ("EB4 7QT", "KH12 9RW", "MF3 2LP", "WH7 5NX", "OK9 1JD")
PHONES = ("+44 20 7946 0958", "(555) 301-4477", "020 7946 0183", "555-0142", "07700 900461")
TEXT_DATES = ("12/03/2021", "2022-08-19", "March 14, 2023", "3 Feb 2020", "27.11.2019")

# attribute tag, VR, templates ({g} given, {f} family, {G}/{F} in capitals, {phone}, {email}, {date}, {mrn}, {address})
DESCRIPTORS: tuple[tuple[int, str, tuple[str, ...]], ...] = (
    (0x00081030, "LO", ("CT CHEST for {g} {f}", "CT ABD PEL W CONTRAST per Dr {f}", "MR BRAIN FOR {G} {F}")),
    (0x0008103E, "LO", ("AXIAL 1.0 B30f {g} {f}", "Lung 1.0 per Dr {f}", "{f}^{g} COR MPR")),
    (0x00181030, "LO", ("CHEST ROUTINE Dr {f}", "{f} research protocol", "HEAD STROKE call {phone}")),
    (0x00204000, "LT", ("Reviewed by Dr {g} {f} on {date}", "Images sent to {email}", "Tech {g} {f}, ref {mrn}")),
    (0x00321060, "LO", ("CT CHEST for {g} {f}", "CTA HEAD per Dr {f} ext {phone}", "CT CHEST {mrn}")),
    (0x001021B0, "LT", ("Lives with spouse {g} {f}", "Mother {g} {f} has similar symptoms",
                        "Referred by Dr {f} on {date}")),
    (0x00104000, "LT", ("Call daughter {g} before visit", "Contact neighbour {g} {f} at {phone}",
                        "Lives at {address}")),
    (0x00102180, "SH", ("Nanny {f}", "Carer for {g}", "Driver {f}")),
    (0x00400254, "LO", ("CT CHEST {mrn}", "Scan by {g} {f}", "Sister {f} {date}")),
    (0x00324000, "LT", ("Results to Dr {f} {phone}", "Copy to {email}", "Husband {g} {f} consented {date}")),
)
CONTENT_TEXT = "Discussed with Dr {g} {f} ({phone}) on {date}"
LOCAL_CODE_MEANING = "CT CHEST per Dr {f}"


def _person(rng: random.Random) -> tuple[str, str]:
    return OTHER_PERSONS[rng.randrange(len(OTHER_PERSONS))]


def _fill(template: str, rng: random.Random, plant: Plant, tag: int, within: tuple[int, ...], vr: str) -> str:
    """The template with fresh values; each identifying value it uses is planted. A short-string VR (SH)
    gets persons whose names fit its 16 characters."""
    given, family = _person(rng)
    while vr == "SH" and len(template.format(g=given, f=family)) > 16:
        given, family = _person(rng)
    k = rng.randrange(5)
    mrn = f"MRN{rng.randrange(10_000_000, 99_999_999)}"
    values = {
        "g": given, "f": family, "G": given.upper(), "F": family.upper(), "phone": PHONES[k],
        "email": f"{given.lower()}.{family.lower()}@example-hospital.org", "date": TEXT_DATES[k], "mrn": mrn,
        "address": f"{10 + k} {STREETS[k]}, {TOWNS[k]} {POSTCODES[k]}",
    }
    text = template.format(**values)
    if "{g}" in template or "{G}" in template or "{f}" in template or "{F}" in template or "{email}" in template:
        if "{g}" in template or "{G}" in template:
            plant.add(tag, within, given, "PN")
        if "{f}" in template or "{F}" in template or "{email}" in template:
            plant.add(tag, within, family, "PN")
    for key in ("phone", "email", "date", "mrn"):
        if "{" + key + "}" in template:
            plant.add(tag, within, values[key], "LO")
    if "{address}" in template:
        for part in (f"{10 + k} {STREETS[k]}", TOWNS[k], POSTCODES[k]):
            plant.add(tag, within, part, "LO")
    return text


Plant = phi_dicom.Plant


def free_text_instance(index: int, *, study: int = 1, size: int = 64, seed: int = 0,
                       plant: Plant | None = None, pixels: np.ndarray | None = None) -> Dataset:
    """One CT image whose free text names other persons; what was planted goes into ``plant``."""
    plant = plant if plant is not None else Plant()
    rng = random.Random(seed * 1_000_003 + study * 10_007 + index)
    patient = phi_dicom.Patient(patient_id=f"MRN{48213377 + study}")
    ds = phi_dicom.ct_instance(index, patient=patient, study=study, series=1, size=size, pixels=pixels,
                               only=frozenset())
    for tag, vr, templates in DESCRIPTORS:
        template = templates[(index + tag) % len(templates)]
        ds.add(DataElement(tag, vr, _fill(template, rng, plant, tag, (), vr)))
    code = Dataset()
    code.CodeValue = f"CTCH{index % 90 + 10}"
    code.CodingSchemeDesignator = "99LOCAL"
    code.CodeMeaning = _fill(LOCAL_CODE_MEANING, rng, plant, 0x00080104, (0x00081032,), "LO")
    ds.add(DataElement(0x00081032, "SQ", Sequence([code])))  # Procedure Code Sequence
    ds.add(DataElement(0x0040A730, "SQ", Sequence(_content_items(rng, plant))))  # Content Sequence
    return ds


def _concept(value: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = "DCM"
    item.CodeMeaning = meaning
    return item


def _content_items(rng: random.Random, plant: Plant) -> list[Dataset]:
    """A TEXT, a PNAME and a DATE content item (PS3.3 C.17.3), each with a value naming someone else."""
    within = (0x0040A730,)
    text = Dataset()
    text.RelationshipType = "CONTAINS"
    text.ValueType = "TEXT"
    text.ConceptNameCodeSequence = Sequence([_concept("121106", "Comment")])
    text.TextValue = _fill(CONTENT_TEXT, rng, plant, 0x0040A160, within, "UT")
    person = Dataset()
    person.RelationshipType = "CONTAINS"
    person.ValueType = "PNAME"
    person.ConceptNameCodeSequence = Sequence([_concept("121008", "Person Observer Name")])
    given, family = _person(rng)
    person.PersonName = f"{family}^{given}"
    plant.add(0x0040A123, within, f"{family}^{given}", "PN")
    date = Dataset()
    date.RelationshipType = "CONTAINS"
    date.ValueType = "DATE"
    date.ConceptNameCodeSequence = Sequence([_concept("111060", "Study Date")])
    date.Date = f"2019{rng.randrange(1, 13):02d}{rng.randrange(1, 29):02d}"
    plant.add(0x0040A121, within, date.Date, "DA")
    return [text, person, date]


def free_text_series(count: int, *, study: int = 1, size: int = 64, seed: int = 0) -> tuple[list[Dataset], Plant]:
    """``count`` instances of one series and everything planted in them."""
    plant = Plant()
    return [free_text_instance(i, study=study, size=size, seed=seed, plant=plant) for i in range(count)], plant


def clinical_descriptions(path: Path = CLINICAL_DESCRIPTIONS_FILE) -> list[str]:
    """The identifier-free descriptions (study/series descriptions, protocol names) of the false-removal check."""
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line and not line.startswith("#")]
