"""gunicorn's settings beyond the command line; gunicorn reads ./gunicorn.conf.py by itself,
and the Procfile, the Docker image and docker compose all start it from the repository root.
"""

from __future__ import annotations

from deepfake_site.settings import PROXY_COUNT

# Behind a proxy (docker compose: nginx) gunicorn takes X-Forwarded-Proto from it, from any
# address: the proxy's address is not known in advance, and only the proxy can reach gunicorn
# because compose publishes nginx's port alone. Without one, only a local client is trusted,
# gunicorn's default.
forwarded_allow_ips = "*" if PROXY_COUNT else "127.0.0.1,::1"
