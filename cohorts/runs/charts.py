"""What pages drawing Plotly charts need from the Content Security Policy.

plotly.js adds two <style> elements to the page, which a policy without 'unsafe-inline' blocks. Those pages alone
allow them by their SHA-256: exactly that text and nothing else, so injected markup still can neither run code nor
add style rules, and no 'unsafe-inline' is needed anywhere.
"""

from __future__ import annotations

from csp.decorators import csp_update

#: The <style> elements of plotly.js (an empty one it fills through the CSSOM, and its base rules). They belong to
#: the plotly.js of the pinned plotly package; a version that changes them shows up as a console error in the
#: browser tests, which fail on any.
PLOTLY_STYLE_HASHES = [
    "'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='",
    "'sha256-ji27qzEtxXZW+7dun6UwjHXJ18e6WAin1VvNtkzIE/o='",
]

#: Decorate the views whose page loads plotly.js.
plotly_page = csp_update({"style-src-elem": ["'self'", *PLOTLY_STYLE_HASHES]})
