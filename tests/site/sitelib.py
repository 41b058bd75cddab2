"""What the website's browser test shares: where the site is, how it is served, the Chromium to use."""
from __future__ import annotations
import configparser, os, shutil
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parents[2]
SITE = Path(os.environ.get('SITE_DIR') or REPO/'_site').resolve()
SHOTS = Path(os.environ.get('SITE_SHOTS') or Path(__file__).resolve().parent/'artifacts')
LOCAL_HOSTS = {'127.0.0.1', 'localhost', '::1'}
CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-quic', '--no-first-run',
                 '--disable-background-networking', '--disable-component-update', '--disable-sync',
                 '--disable-default-apps', '--disable-extensions', '--no-default-browser-check',
                 # anything not on this machine goes to a closed port, and no name is looked up
                 '--proxy-server=http://127.0.0.1:9', '--proxy-bypass-list=<-loopback>;127.0.0.1;localhost',
                 '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1']
SUMMARY: dict = {}

def base_path() -> str:
    "The path the site is published under: `doc_baseurl` of settings.ini (`/pets_course/`)"
    cp = configparser.ConfigParser(); cp.read(REPO/'settings.ini')
    return '/' + cp['DEFAULT'].get('doc_baseurl', '').strip('/') + '/' if cp['DEFAULT'].get('doc_baseurl', '').strip('/') else '/'

def chromium_path() -> str:
    p = (os.environ.get('SITE_CHROMIUM') or os.environ.get('E2E_CHROMIUM') or shutil.which('chromium')
         or shutil.which('chromium-browser'))
    if not p or not Path(p).exists():
        raise FileNotFoundError('No Chromium found: install it (Debian: apt-get install -y chromium) or set SITE_CHROMIUM '
                                'to its path; Playwright\'s own browser download is not used')
    return p

def is_local(url:str) -> bool:
    u = urlsplit(url)
    return u.scheme in ('data', 'blob', 'about') or (u.hostname or '') in LOCAL_HOSTS
