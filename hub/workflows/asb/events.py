"""The ASB Case Review event types (schemas in ``hub/schemas``)."""

from __future__ import annotations

__all__ = [
    "ACK_TYPE",
    "ACTION_TYPE",
    "ALERT_TYPE",
    "APPEAL_TYPE",
    "APPLICATION_TYPE",
    "ASB_PREFIX",
    "ASB_TYPES",
    "COMPLAINTS_TYPE",
    "OUTCOME_TYPE",
    "THRESHOLD_TYPE",
]

ASB_PREFIX = "uk.csp.asb.review."
#: the coordinator records an application (a resident, or someone acting for them)
APPLICATION_TYPE = "uk.csp.asb.review.application.v1"
#: the coordinator acknowledged the application to the applicant
ACK_TYPE = "uk.csp.asb.review.acknowledged.v1"
#: a relevant body's answer: its complaints about the location or the applicant
COMPLAINTS_TYPE = "uk.csp.asb.review.complaints.v1"
#: the hub's threshold decision, with its reasons
THRESHOLD_TYPE = "uk.csp.asb.review.threshold.v1"
#: the review's (or the appeal's) outcome and recommendations
OUTCOME_TYPE = "uk.csp.asb.review.outcome.v1"
#: a body acknowledges or completes a recommended action
ACTION_TYPE = "uk.csp.asb.review.action.v1"
#: the applicant appealed (to the PCC): the case reopens
APPEAL_TYPE = "uk.csp.asb.review.appeal.v1"
#: the hub escalates a missed deadline
ALERT_TYPE = "uk.csp.asb.review.alert.v1"

ASB_TYPES = (
    APPLICATION_TYPE,
    ACK_TYPE,
    COMPLAINTS_TYPE,
    THRESHOLD_TYPE,
    OUTCOME_TYPE,
    ACTION_TYPE,
    APPEAL_TYPE,
    ALERT_TYPE,
)
