"""The mkdocs glue: the hooks file named in mkdocs.yml, the tutorials' staleness logic, and the
mkdocs-gallery image scraper for ``featgen.show_image``."""
