"""What the website's browser test shares: where the site is, how it is served, the Chromium to use."""
from __future__ import annotations
import configparser, os, sys
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: what the browser suites share
from chromium import LOCAL_HOSTS, is_local, chromium_path as _chromium_path

REPO = Path(__file__).resolve().parents[2]
SITE = Path(os.environ.get('SITE_DIR') or REPO/'_site').resolve()
SHOTS = Path(os.environ.get('SITE_SHOTS') or Path(__file__).resolve().parent/'artifacts')
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

def chromium_path() -> str: return _chromium_path('SITE_CHROMIUM', 'E2E_CHROMIUM')
