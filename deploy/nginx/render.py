"""Write a runnable nginx.conf around faceproof.conf.template, for the tests and CI.

    python deploy/nginx/render.py --prefix DIR --listen 127.0.0.1:8080 --upstream 127.0.0.1:8000

writes DIR/nginx.conf and prints its path; then `nginx -p DIR -e DIR/error.log -c DIR/nginx.conf`
runs it in the foreground, and with `-t` checks it. Everything nginx writes (pid,
logs, temporary bodies) stays under DIR, so neither needs root nor the system's nginx
configuration. Standard library only: CI runs it before any virtualenv exists.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from string import Template

TEMPLATE = Path(__file__).resolve().parent / "faceproof.conf.template"

# One process that keeps the invoking user's rights (no worker switching to an unprivileged
# account that could not write under a private DIR), in the foreground, so that the caller
# can stop it with a signal.
MAIN = """\
master_process off;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
events {{
    worker_connections 1024;
}}
http {{
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;

{site}
}}
"""


def render_site(*, listen: str, upstream: str) -> str:
    """The template with its placeholders filled, as the nginx image's envsubst fills them."""
    # safe_substitute leaves nginx's own $variables alone, as envsubst with a list does.
    return Template(TEMPLATE.read_text()).safe_substitute(
        FACEPROOF_LISTEN=listen, FACEPROOF_UPSTREAM=upstream
    )


def render(*, prefix: Path, listen: str, upstream: str) -> Path:
    prefix = prefix.resolve()
    prefix.mkdir(parents=True, exist_ok=True)
    path = prefix / "nginx.conf"
    path.write_text(MAIN.format(prefix=prefix, site=render_site(listen=listen, upstream=upstream)))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prefix", type=Path, required=True)
    parser.add_argument("--listen", default="127.0.0.1:8080")
    parser.add_argument("--upstream", default="127.0.0.1:8000")
    arguments = parser.parse_args()
    print(render(prefix=arguments.prefix, listen=arguments.listen, upstream=arguments.upstream))


if __name__ == "__main__":
    main()
