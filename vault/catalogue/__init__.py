"""The policy catalogues, loaded from `policies/*.toml` at start: the vocabulary above.

Owns the purposes (`purposes`: lawful basis, fields, channels, retention, which of them are
direct marketing), the touchpoints (`touchpoints`), the contact-pressure rules
(`contact_pressure`: points, basket, priorities and who is granted them (`grants`), the
brands (`brands`), and whether an announced contact fits its purpose), the contact channels
(`channels`: the built-in four and those the rules declare, with their factors, the fields
they need and their names), one reader and one error for the three files
(`source`: a `PolicyError` names file and line) and the call that loads them all
(`loader`). Immutable once loaded.

May use the kernel only: no database, no audit trail. Deciding and spending are the areas
above (`subjects.decision`, `outreach.basket`).
"""
