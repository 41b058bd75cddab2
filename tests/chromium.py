"""What the two browser suites (tests/e2e, tests/site) share: finding the system's Chromium, and telling local URLs from
the rest (both suites refuse anything that is not on this machine)."""
from __future__ import annotations
import os, shutil
from pathlib import Path
from urllib.parse import urlsplit

LOCAL_HOSTS = {'127.0.0.1', 'localhost', '::1'}

def chromium_path(*env_names:str) -> str:
    "The system Chromium: the first of the variables `env_names` that is set, else `chromium` or `chromium-browser` on the PATH"
    p = next((os.environ[k] for k in env_names if os.environ.get(k)), None) or shutil.which('chromium') or shutil.which('chromium-browser')
    if not p or not Path(p).exists():
        raise FileNotFoundError(f"No Chromium found: install it (Debian: apt-get install -y chromium) or set {env_names[0] if env_names else 'E2E_CHROMIUM'} "
                                "to its path; Playwright's own browser download is not used")
    return p

def is_local(url:str) -> bool:
    "Whether `url` stays on this machine (loopback, or data/blob/about URLs)"
    u = urlsplit(url)
    return u.scheme in ('data', 'blob', 'about') or (u.hostname or '') in LOCAL_HOSTS
