"""The web layer shared by the two browser surfaces, the privacy centre (`/privacy`) and the
DPO console (`/dpo`): security headers (`headers`), signed session cookies and the CSRF
check (`cookies`), dates as each language writes them (`dates`) and error pages (`errors`).

The surfaces differ only in their cookie names, paths and secret labels (a `Surface` each)
and in their templates; everything that decides how a cookie is protected, how a form is
checked or what status an error page has is written once, here.
"""
