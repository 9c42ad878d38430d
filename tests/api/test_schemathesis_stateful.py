"""Schemathesis's stateful phase over the document's links, on both databases.

The document links each answer to the operations it feeds (`api.openapi_links`): a created
subject's id to its consents, preferences, rectification (with the contact data's `ETag` as
`If-Match`) and lookup, a recorded consent to the lookup for its purpose. Schemathesis builds a
state machine from those links and runs chains of calls, each checked with all its default
checks, including the stateful ones (a resource just created is found; no use after free).
The chain crosses roles: the writer creates the subject and its consent, the lookup client
looks it up, the DPO reads the consent's proof (`schemathesis_app.RoleKeyAuth`).

The chains run through schemathesis's engine (what `st run --phases stateful` runs), not
through Hypothesis's `run_state_machine_as_test`: the answers depend on the database the
earlier chains changed, so Hypothesis, replaying a choice sequence, sees other rules become
possible and stops with `FlakyStrategyDefinition`; the engine expects that and carries on.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar import Litestar
from schemathesis.engine import events, from_schema

from api.app import create_app
from tests.api.schemathesis_app import BACKENDS, backend_settings, load_schema
from vault.settings import Settings

#: Chains per backend (scenarios) and the most calls in one: enough to walk every link a
#: few times within about a minute per database on a loaded machine.
SCENARIOS = int(os.environ.get("TRESOR_ST_SCENARIOS", "40"))
STEPS = 8
CREATE_CONSENT = (
    "POST /v1/subjects -> [201] RecordConsent -> POST /v1/subjects/{subject_id}/consents"
)


@pytest.fixture(scope="module", params=BACKENDS)
def backend(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    sqlite_template: Path,
) -> Settings:
    """A fresh database per backend, as a new integrator's vault would be."""
    return backend_settings(request, tmp_path_factory, sqlite_template)


@pytest.fixture(scope="module")
def asgi_app(backend: Settings) -> Iterator[Litestar]:
    from schemathesis.python.asgi import shutdown_lifespans

    yield create_app(backend, configure_logs=False)
    shutdown_lifespans()  # runs the app's shutdown hook, which closes the vault it opened


def _failures(event: events.EngineEvent) -> list[str]:
    """What went wrong in one engine event: failed checks with the answer and the calls that
    reproduce it, or an error of the run itself (an unusable link, an exception)."""
    if isinstance(event, events.ScenarioFinished):
        found = []
        for case_id, checks in event.recorder.checks.items():
            interaction = event.recorder.interactions.get(case_id)
            response = interaction.response if interaction else None
            answer = f"{response.status_code} {response.text[:300]}" if response else "-"
            found += [
                f"{check.name}: {check.failure_info.failure.title} ({answer})\n"
                f"{check.failure_info.code_sample}"
                for check in checks
                if check.failure_info is not None
            ]
        return found
    if isinstance(event, events.NonFatalError | events.FatalError):
        return [f"{type(event).__name__}: {event.info.format()}"]
    return []


def _links_followed(event: events.ScenarioFinished) -> list[str]:
    """The links a chain followed with the earlier answer's values (`source -> [status]
    name -> target`); a step that drew its own values instead is not counted."""
    return [
        node.transition.id
        for node in event.recorder.cases.values()
        if node.transition is not None and node.is_transition_applied
    ]


def test_linked_operations_hold_together(asgi_app):
    """Chains that follow the document's links (create subject, record its consent, look it
    up, rectify with the ETag, read and set preferences) pass every default check."""
    schema = load_schema()
    schema.app = asgi_app
    schema.config.phases.update(phases=["stateful"])
    stateful = schema.config.phases.stateful
    # The document's own links only: schemathesis would also infer links between any two
    # operations whose names look related, a different run (each operation alone is
    # covered by test_schemathesis.py).
    stateful.inference.algorithms = []
    stateful.max_steps = STEPS
    stateful.generation.max_examples = SCENARIOS
    failures: list[str] = []
    walked: Counter[str] = Counter()
    for event in from_schema(schema).execute():
        failures += _failures(event)
        if isinstance(event, events.ScenarioFinished):
            walked.update(_links_followed(event))
    assert not failures, "\n\n".join(failures)
    # The links were followed: a consent recorded on the subject just created, and a lookup
    # of a subject by the id a link passed (after its creation or after its consent; which
    # of the two a run reaches depends on how many generated consents the server takes).
    lookups = sum(n for link, n in walked.items() if link.endswith(" -> POST /v1/lookup"))
    assert walked[CREATE_CONSENT] and lookups, walked
