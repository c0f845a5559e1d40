"""The web dashboard: HTML pages, static assets (plain CSS and ES modules, no build step) and the
few public JSON routes only the pages need."""
