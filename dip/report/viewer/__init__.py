"""The results viewer: `write` builds the page's data and writes the page, `caps` its size caps (light, for
`dip viewer --help`), `images` its PNGs and frame sprites; `page/` is the page itself (package data)."""
