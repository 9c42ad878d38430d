"""Schemathesis hooks: generators for the document's custom string formats.

Some rules the server keeps depend on data tables no JSON Schema keyword can carry, so the
document names them as a `format` and describes the rule (schemathesis's remedy for
"validation_mismatch": extend the generators to match the runtime rules). This module
teaches the generator those formats; the test suite imports it, and the README's `st run`
loads it with `SCHEMATHESIS_HOOKS=tests.api.schemathesis_hooks`.

- `phone`: a number libphonenumber holds valid, in E.164 or the international form, or in the
  national form of the default region (Germany). Drawn from libphonenumber's own example
  numbers per region and number type, with the last digits varied while the number stays
  valid. Only positive generation uses a format; negative cases still break the pattern.
- `contact-text`: text without control, format, surrogate, private-use or unassigned
  characters, not blank (`vault.subjects.contact`).
- `webhook-url`: https URLs on public host names (example.org's subdomains).
- `future-date-time`: a time after the server's clock (a consent's expiry), from a day to
  ten years ahead.
- `campaign-window-start`, `campaign-window-end`: a campaign's send window, whose end must
  follow its start within the same basket month. Starts are drawn from the 2nd to the 13th
  and ends from the 16th to the 27th of the month after next, so any start and any end make
  a window the server accepts.
- `followup-due-from`, `followup-due-until`: a follow-up window's ends, relative to the
  server's clock and to each other. Starts are drawn from the next day and ends from the
  two to thirty days after, so any start and any end make a window the server accepts.

And one hook on every call (`before_call`): a fresh `Idempotency-Key`, as a client sends.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

import phonenumbers
import schemathesis
from hypothesis import strategies as st
from phonenumbers import PhoneNumberFormat, PhoneNumberType

from api.campaigns.schemas import WINDOW_END_FORMAT, WINDOW_START_FORMAT
from api.outreach.schemas import DUE_FROM_FORMAT, DUE_UNTIL_FORMAT
from api.recipients.schemas import WEBHOOK_URL_FORMAT
from api.schemas import CONTACT_TEXT_FORMAT, FUTURE_FORMAT, PHONE_FORMAT, PHONE_PATTERN
from vault.subjects.contact import DEFAULT_PHONE_REGION

_SHAPE = re.compile(PHONE_PATTERN)
#: Number types a person is reached on (the rest, e.g. premium rate, work the same way).
_TYPES = (
    PhoneNumberType.FIXED_LINE,
    PhoneNumberType.MOBILE,
    PhoneNumberType.FIXED_LINE_OR_MOBILE,
    PhoneNumberType.VOIP,
)


def _valid(text: str) -> bool:
    """What the server accepts (`vault.subjects.contact.normalise_phone`), in the shape the
    document's pattern gives."""
    if not (3 <= len(text) <= 40 and _SHAPE.match(text)):
        return False
    try:
        number = phonenumbers.parse(text, DEFAULT_PHONE_REGION)
    except phonenumbers.NumberParseException:
        return False
    return phonenumbers.is_valid_number(number)


def _example_numbers() -> list[phonenumbers.PhoneNumber]:
    numbers = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for kind in _TYPES:
            number = phonenumbers.example_number_for_type(region, kind)
            if number is not None:
                numbers.append(number)
    return numbers


def _written(number: phonenumbers.PhoneNumber) -> list[str]:
    forms = [
        phonenumbers.format_number(number, PhoneNumberFormat.E164),
        phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL),
    ]
    if phonenumbers.region_code_for_number(number) == DEFAULT_PHONE_REGION:
        forms.append(phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL))
    return [form for form in forms if _valid(form)]


_EXAMPLES = _example_numbers()


@st.composite
def valid_phones(draw: st.DrawFn) -> str:
    """An example number with its last two digits redrawn when that keeps it valid."""
    number = draw(st.sampled_from(_EXAMPLES))
    national = str(number.national_number)
    tail = draw(st.integers(0, 99))
    varied = phonenumbers.PhoneNumber(
        country_code=number.country_code,
        national_number=int(national[:-2] + f"{tail:02d}") if len(national) > 4 else 0,
        italian_leading_zero=number.italian_leading_zero,
        number_of_leading_zeros=number.number_of_leading_zeros,
    )
    forms = _written(varied) if phonenumbers.is_valid_number(varied) else []
    return draw(st.sampled_from(forms or _written(number)))


def from_now(earliest: timedelta, latest: timedelta) -> st.SearchStrategy[str]:
    """RFC 3339 times between `earliest` and `latest` from the moment of drawing (the
    server compares with its clock when the request arrives, a moment later)."""
    seconds = st.integers(int(earliest.total_seconds()), int(latest.total_seconds()))
    return seconds.map(
        lambda s: (datetime.now(UTC) + timedelta(seconds=s)).isoformat(timespec="seconds")
    )


def in_month_after_next(first_day: int, last_day: int) -> st.SearchStrategy[str]:
    """RFC 3339 times (UTC) between the `first_day` and the end of the `last_day` of the month
    after next: days well inside one basket month whatever its time zone."""
    today = datetime.now(UTC)
    year, month = divmod(today.year * 12 + today.month - 1 + 2, 12)
    start = datetime(year, month + 1, first_day, tzinfo=UTC)
    span = int(timedelta(days=last_day - first_day + 1).total_seconds()) - 1
    return st.integers(0, span).map(
        lambda s: (start + timedelta(seconds=s)).isoformat(timespec="seconds")
    )


#: What contact text may hold: any character outside the refused categories.
_CONTACT_CHARACTERS = st.characters(exclude_categories=["Cc", "Cf", "Cs", "Co", "Cn"])

schemathesis.openapi.format(PHONE_FORMAT, valid_phones())
schemathesis.openapi.format(
    CONTACT_TEXT_FORMAT,
    st.text(_CONTACT_CHARACTERS, min_size=1).filter(lambda text: not text.isspace()),
)
schemathesis.openapi.format(
    WEBHOOK_URL_FORMAT,
    st.builds(
        "https://{}.example.org/{}".format,
        st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True),
        st.from_regex(r"[a-z0-9/_-]{0,40}", fullmatch=True),
    ),
)
schemathesis.openapi.format(FUTURE_FORMAT, from_now(timedelta(days=1), timedelta(days=3650)))
schemathesis.openapi.format(WINDOW_START_FORMAT, in_month_after_next(2, 13))
schemathesis.openapi.format(WINDOW_END_FORMAT, in_month_after_next(16, 27))
schemathesis.openapi.format(DUE_FROM_FORMAT, from_now(timedelta(hours=1), timedelta(days=1)))
schemathesis.openapi.format(DUE_UNTIL_FORMAT, from_now(timedelta(days=2), timedelta(days=30)))


#: A key the server takes (the document's pattern for `Idempotency-Key`).
_IDEMPOTENCY_KEY = re.compile(r'"[\x21\x23-\x7e]{1,255}"|[\x21-\x7e]{1,255}')


@schemathesis.hook
def before_call(context: schemathesis.HookContext, case: schemathesis.Case, kwargs: dict) -> None:
    """A client sends a new `Idempotency-Key` with every new request; schemathesis draws the
    same few values for different bodies, which the server rightly refuses (422: the key
    was used for another request). A generated key is replaced by a fresh one of the same
    validity: a valid one by a new UUID, an invalid one is kept (its refusal is checked)."""
    headers = case.headers or {}
    key = headers.get("Idempotency-Key")
    if key is not None and _IDEMPOTENCY_KEY.fullmatch(key):
        case.headers = {**headers, "Idempotency-Key": str(uuid.uuid4())}
