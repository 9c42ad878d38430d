"""The catalogue's part of an export (`vault.rights.export`): each purpose with its lawful
basis, retention and third-country transfers (Art. 15(1)(a), (d), Art. 15(2)), and the
controller and its DPO (Art. 13(1)(a), (b))."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vault.catalogue.controller import Party
from vault.rights.export_texts import LAWFUL_BASIS_TITLES

if TYPE_CHECKING:
    from vault.context import VaultContext


def _retention_text(days: int) -> dict[str, str]:
    return {
        "de": f"Wir löschen die Daten {days} Tage nach Ende der Rechtsgrundlage.",
        "en": f"We erase the data {days} days after the lawful basis ends.",
    }


def purpose_entry(ctx: VaultContext, purpose_id: str) -> dict[str, Any]:
    """One purpose as the catalogue describes it; one no longer in it is named only."""
    purpose = ctx.catalogue.get(purpose_id)
    if purpose is None:
        return {"id": purpose_id, "in_catalogue": False}
    days = purpose.retention_after_end.days
    return {
        "id": purpose.id,
        "in_catalogue": True,
        "title": {"de": purpose.title_de, "en": purpose.title_en},
        "description": {"de": purpose.description_de, "en": purpose.description_en},
        "lawful_basis": purpose.lawful_basis.value,
        "lawful_basis_title": LAWFUL_BASIS_TITLES[purpose.lawful_basis.value],
        "fields": list(purpose.fields),
        "channel": purpose.channel,
        "communication_type": purpose.communication_type.value,
        "data_use": purpose.data_use,
        "retention_after_end_days": days,
        "retention": _retention_text(days),
        "third_country_transfers": [
            {
                "country": t.country,
                "recipient": t.recipient,
                "safeguard": t.safeguard,
                "safeguard_reference": t.safeguard_reference,
            }
            for t in ctx.controller.transfers_of(purpose.id)
        ],
    }


def controller_entry(ctx: VaultContext) -> dict[str, Any]:
    """Who is responsible for the data and how to reach its DPO (Art. 13(1)(a), (b): the
    customer asking what is held should learn whom to ask)."""

    def party(p: Party) -> dict[str, Any]:
        out = {"name": p.name, "email": p.email, "address": p.address}
        if p.representative:
            out["representative"] = p.representative
        return out

    return {**party(ctx.controller.controller), "dpo": party(ctx.controller.dpo)}
