"""Fictional word lists for the North Worcestershire scenario.

Everything here is invented so the demo never carries a real person's data: names are common
given names and surnames combined at random, streets are generic, and phone numbers use local
numbers that begin with ``0`` after the area code, which Ofcom never allocates, so a number
cannot reach anyone. Towns, postcode districts and council districts are real because routing
depends on them (a MARAC flag reaches the council departments of the address's district).
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = [
    "BAN_FIRST_NAMES",
    "BAN_SURNAMES",
    "HANDLING_CONDITIONS",
    "INTEL_AREAS",
    "INTEL_SUMMARIES",
    "MARAC_CONTACTS",
    "MARAC_NOTES",
    "POSTCODE_LETTERS",
    "STREETS",
    "TOWNS",
    "UPDATE_REASONS",
    "WITHDRAWAL_NOTES",
    "Contact",
    "Town",
]


class Town(NamedTuple):
    """A town, its council district (a schema enum value) and its postcode districts."""

    name: str
    district: str
    outcodes: tuple[str, ...]
    weight: int


class Contact(NamedTuple):
    """A fictional MARAC or IDVA professional: the person a department should call."""

    name: str
    phone: str
    email: str


#: Most traffic is in the three North Worcestershire districts; a few addresses fall in South
#: Worcestershire so the demo shows a flag no North Worcestershire department receives.
TOWNS: tuple[Town, ...] = (
    Town("Redditch", "redditch", ("B97", "B98"), 30),
    Town("Bromsgrove", "bromsgrove", ("B60", "B61"), 22),
    Town("Kidderminster", "wyre_forest", ("DY10", "DY11"), 20),
    Town("Stourport-on-Severn", "wyre_forest", ("DY13",), 8),
    Town("Bewdley", "wyre_forest", ("DY12",), 6),
    Town("Worcester", "worcester", ("WR1", "WR3", "WR4", "WR5"), 3),
    Town("Droitwich Spa", "wychavon", ("WR9",), 2),
    Town("Evesham", "wychavon", ("WR11",), 2),
)

#: Inward-code letters: the Royal Mail never uses C, I, K, M, O or V there.
POSTCODE_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"

STREETS: tuple[str, ...] = (
    "Alderbrook Close",
    "Beechcroft Road",
    "Brackenfield Way",
    "Chapel Mead",
    "Coppice Walk",
    "Elmstone Drive",
    "Fernhill Grove",
    "Foxglove Court",
    "Hawthorn Rise",
    "Hollybank Lane",
    "Kestrel Gardens",
    "Larkspur Avenue",
    "Meadowsweet Crescent",
    "Millpond Row",
    "Orchard View",
    "Rowan Terrace",
    "Sandpiper Close",
    "Sorrel Drive",
    "Thistledown Road",
    "Willowbank Street",
)

#: Redditch and Bromsgrove share the 01527 code; Wyre Forest uses 01562.
MARAC_CONTACTS: dict[str, tuple[Contact, ...]] = {
    "01527": (
        Contact("Priya Castellane", "01527 000141", "priya.castellane@example.org.uk"),
        Contact("Tom Ashdown", "01527 000162", "tom.ashdown@example.org.uk"),
        Contact("Grace Okonedo-Bell", "01527 000187", "grace.okonedo-bell@example.org.uk"),
    ),
    "01562": (
        Contact("Helen Marwood", "01562 000215", "helen.marwood@example.org.uk"),
        Contact("Dan Pritchley", "01562 000238", "dan.pritchley@example.org.uk"),
    ),
}

#: Confidential-sounding narrative with no names: only the full-flag recipients see it.
MARAC_NOTES: tuple[str, ...] = (
    "Victim reports perpetrator damaged the front door lock; repair requested urgently.",
    "Controlling behaviour and threats to kill disclosed to IDVA; children in the household.",
    "Perpetrator released on bail with conditions not to attend the address.",
    "Non-fatal strangulation disclosed at A&E; victim engaging with IDVA.",
    "Victim fears perpetrator will locate new address; target hardening agreed.",
    "Third incident in twelve months; perpetrator has keys to the property.",
    "Financial abuse and isolation from family; victim declined police action for now.",
    "Stalking via social media after separation; safety plan in place.",
)

#: Why a flag changes, by the kind of change the scenario makes.
UPDATE_REASONS: dict[str, str] = {
    "review": "Review date extended after a further incident was reported.",
    "contact": "Case transferred to a new IDVA; new contact for departments.",
    "moved": "Victim moved within the area; flag follows the new address.",
    "risk": "Risk reassessed at MARAC review.",
}

#: Withdrawal reason (a schema enum value) and the note that goes with it.
WITHDRAWAL_NOTES: dict[str, str] = {
    "risk_reduced": "Risk reduced at MARAC review; no incidents since referral.",
    "case_closed": "Case closed at MARAC review; support continues through IDVA.",
    "moved_out_of_area": "Victim moved out of the partnership area; receiving MARAC informed.",
    "raised_in_error": "Flag raised against the wrong case; corrected record follows.",
}

INTEL_AREAS: dict[str, tuple[str, ...]] = {
    "redditch": ("Redditch town centre", "Redditch bus station area", "Redditch retail park"),
    "bromsgrove": ("Bromsgrove high street", "Bromsgrove railway station area"),
    "wyre_forest": ("Kidderminster town centre", "Stourport riverside", "Bewdley high street"),
    "worcester": ("Worcester city centre",),
    "wychavon": ("Droitwich town centre", "Evesham high street"),
}

#: SOCJAG summaries are sanitised: nothing that names a person or identifies a source.
INTEL_SUMMARIES: dict[str, tuple[str, ...]] = {
    "county_lines": (
        "Deal line believed to be running from a neighbouring force area; "
        "young runners seen arriving by train.",
        "Suspected cuckooing of a vulnerable tenant's flat; increased footfall at night.",
    ),
    "modern_slavery": (
        "Workers at a hand car wash appear to be transported to and from site in one vehicle.",
        "Multiple adults believed to be living at a single small address and working unpaid.",
    ),
    "child_exploitation": (
        "Teenagers seen being collected from school by unknown adults in a rotating car.",
        "Missing-from-home episodes linked to an address used for parties.",
    ),
    "ocg": (
        "Organised group believed to be laundering cash through a takeaway business.",
        "Series of high-value vehicle thefts linked to a group using cloned plates.",
    ),
    "illegal_vapes": (
        "Convenience store selling oversized disposable vapes to under-18s.",
        "Bulk deliveries of non-compliant vapes to a market stall from an unregistered supplier.",
    ),
    "other": (
        "Counterfeit goods stored at a lock-up; possible link to other SOCJAG matters.",
        "Suspected unlicensed money lending targeting tenants on one estate.",
    ),
}

HANDLING_CONDITIONS: tuple[str, ...] = (
    "Not to be disseminated further without the originator's consent.",
    "For tasking and planning only; no enforcement action without police consultation.",
    "Use only to inform safeguarding visits; do not disclose the existence of intelligence.",
)

BAN_FIRST_NAMES: tuple[str, ...] = (
    "Aaron", "Bethany", "Callum", "Demi", "Ethan", "Fern", "Gareth", "Holly", "Jordan",
    "Kayleigh", "Liam", "Megan", "Nathan", "Paige", "Reece", "Shannon", "Tyler", "Zoe",
)  # fmt: skip

BAN_SURNAMES: tuple[str, ...] = (
    "Ashworth", "Blakemore", "Cotterill", "Dunnock", "Ellery", "Farrant", "Gisborne",
    "Hemming", "Ingleby", "Jesson", "Kettley", "Lydiate", "Marchbank", "Nuttall", "Oakhill",
    "Pargeter", "Quenby", "Rudge", "Tolley", "Warrilow",
)  # fmt: skip
