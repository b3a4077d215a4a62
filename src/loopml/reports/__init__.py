"""Reports: HTML pages (no CDN) built from Jinja2 templates and Plotly figures."""
