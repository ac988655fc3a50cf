"""ASB Case Review (the Community Trigger): ASB, Crime and Policing Act 2014 s104, Sch 4.

``days``: working days in England and Wales; ``threshold``: the protocol's local threshold
applied to the relevant bodies' answers; ``cases``: stages and deadlines of one case;
``register``: the cases the hub tracks (SQLite); ``sweep``: threshold decisions and escalations
the hub publishes; ``report``: status and the yearly figures for scrutiny.
"""

from hub.workflows.asb.events import (
    ACK_TYPE,
    ACTION_TYPE,
    ALERT_TYPE,
    APPEAL_TYPE,
    APPLICATION_TYPE,
    ASB_TYPES,
    COMPLAINTS_TYPE,
    OUTCOME_TYPE,
    THRESHOLD_TYPE,
)

__all__ = [
    "ACK_TYPE",
    "ACTION_TYPE",
    "ALERT_TYPE",
    "APPEAL_TYPE",
    "APPLICATION_TYPE",
    "ASB_TYPES",
    "COMPLAINTS_TYPE",
    "OUTCOME_TYPE",
    "THRESHOLD_TYPE",
]
