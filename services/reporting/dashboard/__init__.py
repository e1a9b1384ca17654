"""The dashboard at the reporting service's `/`: one HTML shell, its own script and style
(served from `static/` at `/static/dashboard/`), and the choices its filters offer. Every
figure it shows comes from the reports' own routes, read by the browser with the session."""
