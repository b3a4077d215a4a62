"""Reports: self-contained HTML (no CDN) built from Jinja2 templates and Plotly figures."""
