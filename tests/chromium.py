"""What the two browser suites (tests/e2e, tests/site) share: finding the system's Chromium, the flags it runs with, and
telling local URLs from the rest (both suites refuse anything that is not on this machine)."""
from __future__ import annotations
import os, shutil
from pathlib import Path
from urllib.parse import urlsplit

LOCAL_HOSTS = {'127.0.0.1', 'localhost', '::1'}

CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-quic', '--no-first-run',
                 '--disable-background-networking', '--disable-component-update', '--disable-sync',
                 '--disable-default-apps', '--disable-extensions', '--metrics-recording-only', '--no-default-browser-check',
                 '--disable-features=Translate,OptimizationHints,MediaRouter,AutofillServerCommunication',
                 # anything not on this machine goes to a closed port and no name is looked up
                 '--proxy-server=http://127.0.0.1:9', '--proxy-bypass-list=<-loopback>;127.0.0.1;localhost',
                 '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1']

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
