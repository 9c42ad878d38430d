"""Descriptions of the operations whose handlers give a summary only.

An operation's description says what a client needs beyond its summary: what it changes,
who may call it, what is audited and how it fails. Handlers with a longer description keep
it in their decorator; these operations' texts are kept here, by operationId, and
`api.openapi_docs.document_operations` writes them into the document.
tests/api/test_openapi.py fails when an operation has no description.
"""

from __future__ import annotations

#: operationId -> description.
DESCRIPTIONS: dict[str, str] = {
    "listCampaigns": "The campaigns, optionally of one basket month (`month`), in the order "
    "they are served: priority, then rank. For planners (marketing, writer, admin) and the "
    "DPO. Campaign records hold no customer; audience sizes are counts.",
    "getCampaign": "One campaign with its state, window and audience kind. An unknown id is a 404.",
    "cancelCampaign": "Cancels a draft or booked campaign: the points its bookings hold go "
    "back to the members' baskets at once. Audited. A campaign already sent or cancelled "
    "is a 409.",
    "markCampaignSent": "Marks a booked campaign as sent: holds its lookups did not use are "
    "given back to the baskets. Audited. A campaign that is not booked is a 409.",
    "health": "Liveness: answers 200 while the process serves requests. It checks nothing "
    "else (see `/ready`); no credentials, nothing audited.",
    "metrics": "Prometheus text exposition of request, lookup, audit and delivery metrics. "
    "Labels hold operation names, purposes, client names and statuses, never contact data.",
    "ready": "Readiness: 200 when the database answers and the keyring can be opened, 503 "
    "(with the failing check named in `checks`) when not. For load balancers.",
    "selfWithdrawConsent": "The signed-in person withdraws one of their own consents. The "
    "withdrawal takes effect at once (lookups for the purpose are denied from now on), is "
    "audited, and recipients that received the data are told. A consent of another person "
    "is a 404; a basis that is not a consent (a contract) is a 409.",
    "selfExport": "Everything stored about the signed-in person (contact data, bases, "
    "preferences, requests, who read their data) as one JSON document, in a structured, "
    "machine-readable form (Art. 15 and Art. 20 GDPR). The export is audited.",
    "selfCancelFollowup": "The signed-in person cancels an open follow-up (an agreed call "
    "or reply). A cancelled follow-up can no longer carry a contact; the cancellation is "
    "audited. A follow-up of another person is a 404, one already closed a 409.",
    "selfGetPreferences": "The signed-in person's contact preferences (preferred channels, "
    "quiet times, monthly cap) and every change to them, oldest first.",
    "selfGetRequest": "One of the signed-in person's data-subject requests: its state, "
    "legal deadline, extension and outcome. A request of another person is a 404.",
    "selfEndSession": "Ends the session of the bearer token on every node at once. The "
    "token cannot be used again; signing out is audited.",
    "auditPublicKey": "The Ed25519 public key (PEM) of the audit chain's checkpoints, for "
    "verifying an exported trail offline (`tresor audit verify --public-key`).",
    "listClients": "Every API client with its role, purposes, quotas, key issue and last "
    "use, and revocation. Keys themselves are never shown again after creation.",
    "createClient": "Creates an API client with a role (and purposes for `lookup`) and "
    "optional quotas. The API key is in this response only; the vault keeps a keyed hash. "
    "A name already taken is a 409. Audited without key material.",
    "listUnusedClients": "Active clients whose key was not used for `days` days (default "
    "90), so unused keys can be revoked.",
    "updateClient": "Changes a client's quotas: `rate` (such as `200/s`, or `off`) and "
    "`daily_lookups` (0 for none). Takes effect on every node within the quota lease; "
    "audited. An unknown client is a 404.",
    "revokeClient": "Revokes a client: its key (and a previous key in its grace period) "
    "stops working on every node at once. Audited; cannot be undone (create a new client "
    "instead).",
    "rotateClientKey": "Issues a new API key (in this response only). The old key keeps "
    "working for the grace period (at most 90 days) so callers can switch over. Audited "
    "without key material.",
    "confirmConsent": "Confirms a double opt-in consent with the token from the link mailed "
    "to the person: the consent becomes `granted` and lookups for its purpose may use it. "
    "Public (the token is the credential); an unknown or expired token is a 404, a consent "
    "no longer awaiting confirmation a 409.",
    "getFollowup": "One follow-up (an agreed contact with its due window) for a purpose the "
    "client may use; a follow-up of another purpose is a 404, as if it did not exist.",
    "acknowledgeNotification": "A recipient that received a notice about a change "
    "(withdrawal, erasure, rectification) confirms what it did with the subject's data. "
    "The acknowledgement completes the request waiting for it; audited.",
    "closeNotification": "The data-protection officer closes a notice the recipient never "
    "acknowledged, giving the reason; the waiting request can then complete. Audited.",
    "listRecipients": "Every recipient of change notices with its transport, target, "
    "subscriptions and whether it is paused. Signing secrets are never shown again.",
    "createRecipient": "Registers a recipient of change notices: an API client (told about "
    "the subjects it read) or an external system (webhook or NATS). A webhook's signing "
    "secret is in this response only. Webhook URLs must be https (http only to loopback) "
    "and may not point into private networks.",
    "listRecipientDeliveries": "How many of a recipient's notices are in each delivery "
    "state, and its newest notices with attempts and last error (a class, never a payload).",
    "pauseRecipient": "Pauses deliveries to a recipient: its notices are kept in order and "
    "wait until it is resumed. Audited.",
    "replayRecipient": "Queues a recipient's notices since a time again, with their "
    "original ids (receivers de-duplicate by `webhook-id`). Audited.",
    "resumeRecipient": "Resumes deliveries to a paused recipient, oldest notice first. Audited.",
    "rotateRecipientSecret": "Issues a new webhook signing secret (in this response only). "
    "The previous one signs along for the overlap, then is destroyed. Audited.",
    "setRecipientSubscriptions": "Replaces a recipient's subscriptions (event types, each "
    "with its scope). A client recipient may only receive notices about subjects it read "
    "(`received`); `all` is for external recipients (422 otherwise).",
    "listRequests": "Data-subject requests with their legal deadlines, overdue first, then "
    "by due date; filtered by state, type or due date.",
    "getRequest": "One data-subject request with its state, deadline, extension, outcome "
    "and every step of its history.",
    "completeRequest": "Closes a verified request that was carried out by other means (a "
    "letter, a manual correction), with an optional note. Audited; a request in another "
    "state is a 409.",
    "rejectRequest": "Rejects an open request with the reason the person is told (Art. "
    "12(4) GDPR). Audited; a closed request is a 409.",
    "verifyRequest": "Records that the requester's identity was verified; the request moves "
    "to review. Audited; a request not awaiting verification is a 409.",
    "createSubject": "Stores a new data subject: each contact field is encrypted under the "
    "subject's own key and findable only through keyed blind indexes. At least one field "
    "is required; a conflict with a stored subject is a 409. The answer holds the subject "
    "id and no contact data. Audited.",
    "listConsents": "Every consent and other lawful basis of a subject, newest first, each "
    "with its history (granted, confirmed, withdrawn, expired). Shows no contact data.",
    "withdrawConsent": "Withdraws a consent (or ends another basis) on the person's behalf. "
    "Effective at once: lookups for the purpose are denied from now on, and recipients "
    "that received the data are told. Audited.",
    "getPreferences": "A customer's contact preferences and every change to them. Reading "
    "them is audited.",
}
