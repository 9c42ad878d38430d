"""The routes of the bases area (`vault.bases`): consents and the other lawful bases
(`consents`), and the double opt-in confirmation, by API and as a public page
(`confirm_pages`, with the landing page).
"""
