"""The console's one script: copy buttons next to shortened ids.

Ids are shown short (the first eight characters, the whole id in the title) so tables do
not break mid-word; the button beside each copies the whole id. The script is served from
the console's own path, so the console's policy allows `script-src 'self'` and nothing
inline. Without script the whole id is still in the title and the link.
"""

from __future__ import annotations

from litestar import Response, get

from api.dpo.pages import DpoPages

COPY_JS = """\
document.addEventListener("click", function (event) {
  var button = event.target.closest("button[data-copy]");
  if (!button) { return; }
  var done = function () {
    button.setAttribute("data-copied", "1");
    button.textContent = button.getAttribute("data-copied-text");
  };
  if (navigator.clipboard && navigator.clipboard.writeText) {
    navigator.clipboard.writeText(button.getAttribute("data-copy")).then(done, done);
  } else {
    done();
  }
});
"""


class DpoScriptPages(DpoPages):
    """The console's script, public like the sign-in page (it holds no data)."""

    @get("/copy.js", operation_id="dpoCopyScript")
    async def copy_script(self) -> Response[str]:
        return Response(
            COPY_JS,
            media_type="text/javascript",
            headers={"Cache-Control": "no-store"},
        )
