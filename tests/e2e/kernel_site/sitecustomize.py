"""The browser tests' network guard, loaded by every Python process JupyterLab starts (the server, the kernels and any
Python they start in turn), because the suite puts this folder first on their PYTHONPATH and sets E2E_NETLOG.

A Python audit hook (PEP 578) sees every socket operation that can reach another machine, whichever library makes it
(urllib, requests, torch.hub, fastai's `untar_data`, pip...): `socket.connect`, `socket.sendto`, `socket.sendmsg` and the
name lookups (`socket.getaddrinfo`, `socket.gethostbyname[_ex]`, `socket.gethostbyaddr`, `socket.getnameinfo`). When
the target is not this machine (loopback addresses, `localhost`, unix sockets and binding addresses are), the hook
1. appends one JSON line to `$E2E_NETLOG/<pid>.jsonl` (what, where, which notebook from `JPY_SESSION_NAME`, which
   process, the last frames of the stack), so the suite sees the attempt even if the code catches the error, and
2. raises `NetworkBlocked` (an `OSError`), so the download fails at once instead of waiting for a timeout, and the
   notebook shows the error.
An audit hook cannot be removed once added, and it sees the socket module's C calls too, so it holds even for code
that imports `_socket` itself. It does not see programs that are not Python (`curl` started with `!curl`) nor C
libraries that open their own sockets (libzmq, which the kernels use on 127.0.0.1); the empty TORCH_HOME/FASTAI_HOME
folders the suite also sets make sure a weights or data set download would be needed, so it would be tried in Python.
Without E2E_NETLOG this file does nothing but hand over to the next `sitecustomize` on the path, if any.
"""
import os, sys

class NetworkBlocked(OSError):
    "A connection or name lookup to another machine, refused by the browser tests' network guard"

def _install(logdir):
    import errno, ipaddress, json, socket, traceback
    local_names = {'localhost', 'localhost.localdomain', 'ip6-localhost', 'ip6-loopback'}
    try: local_names.add(socket.gethostname().lower())   # this machine's own name (`socket.getfqdn()` looks it up)
    except OSError: pass

    def is_local(host):
        if host is None: return True
        if isinstance(host, bytes): host = host.decode(errors='replace')
        if isinstance(host, int): host = str(ipaddress.ip_address(host)) if host >= 0 else ''
        host = str(host).strip('[]')
        if host in ('', '<broadcast>') or host.lower() in local_names: return host != '<broadcast>'
        try: ip = ipaddress.ip_address(host.split('%')[0])
        except ValueError: return False      # a name other than localhost: looking it up asks a name server
        return ip.is_loopback or ip.is_unspecified

    def target(event, args):
        "The host `event` wants to reach, and a description of it; None for a local socket (unix, netlink...)"
        if event in ('socket.connect', 'socket.sendto', 'socket.sendmsg'):
            addr = args[1]
            if not isinstance(addr, tuple) or not addr or not isinstance(addr[0], (str, bytes)): return None, None
            return addr[0], f'{addr[0]}:{addr[1]}' if len(addr) > 1 else str(addr[0])
        if event == 'socket.getaddrinfo': return args[0], f'{args[0]}:{args[1]}'
        if event == 'socket.getnameinfo': return args[0][0], str(args[0][0])
        return args[0], str(args[0])      # gethostbyname, gethostbyname_ex, gethostbyaddr

    watched = {'socket.connect', 'socket.sendto', 'socket.sendmsg', 'socket.getaddrinfo', 'socket.gethostbyname',
               'socket.gethostbyname_ex', 'socket.gethostbyaddr', 'socket.getnameinfo'}
    busy = [False]
    # frames left out of the recorded stack: how a cell gets run, not what it does
    machinery = ('/IPython/', '/ipykernel/', '/asyncio/', '/tornado/', '/traitlets/', '/runpy.py', '/threading.py')

    def hook(event, args):
        if event not in watched or busy[0]: return
        try: host, what = target(event, args)
        except Exception: return
        if host is None or is_local(host): return
        busy[0] = True
        try:
            frames = [f'{f.filename}:{f.lineno} {f.name}' for f in traceback.extract_stack()[:-1]
                      if not any(m in f.filename for m in machinery)][-30:]
            rec = {'event': event, 'target': what, 'session': os.environ.get('JPY_SESSION_NAME'), 'pid': os.getpid(),
                   'argv': sys.argv[:4], 'stack': frames}
            with open(os.path.join(logdir, f'{os.getpid()}.jsonl'), 'a', encoding='utf-8') as f: f.write(json.dumps(rec) + '\n')
        except Exception: pass
        finally: busy[0] = False
        raise NetworkBlocked(errno.ENETUNREACH, f'the browser tests block network access ({event} to {what}): '
                             'a notebook must not download anything')

    sys.addaudithook(hook)

if os.environ.get('E2E_NETLOG'): _install(os.environ['E2E_NETLOG'])

def _next_sitecustomize():
    "Run the `sitecustomize` this one hides (Debian's Python has one), so the processes start as they would without us"
    import importlib.machinery, importlib.util
    here = os.path.dirname(os.path.abspath(__file__))
    for d in sys.path:
        if os.path.abspath(d or '.') == here: continue
        spec = importlib.machinery.PathFinder.find_spec('sitecustomize', [d or '.'])
        if spec and spec.loader:
            mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod); return

_next_sitecustomize()
