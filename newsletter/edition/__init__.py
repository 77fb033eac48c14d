"""The edition pipeline, one module per stage: load (files -> Edition), render (Markdown, Jinja, html2text),
inline (premailer), verify (the checks no edition goes out without), compose (one recipient's exact message
bytes); `importer` turns a blog post into an article, `pipeline` runs the stages end to end.

Imports: base, audience.
"""
