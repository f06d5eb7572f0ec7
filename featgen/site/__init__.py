"""The gallery generator: plan, render cache, jinja2 templates (autoescaped), mkdocs pages."""
