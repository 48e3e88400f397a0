"""Real directory servers for the LDAP source's tests and benchmark: a temporary OpenLDAP slapd and a Samba AD DC.

Both run as child processes on loopback, from a temporary directory, and are stopped by the fixture that
started them. slapd listens on a free port on 127.0.0.1; Samba has no setting for its LDAP port, so it gets a
loopback address of its own (127.0.0.x) with the standard ports.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import ldap

FIXTURES = Path(__file__).parent / "fixtures" / "ldap"
SLAPD = shutil.which("slapd") or "/usr/sbin/slapd"
SLAPADD = shutil.which("slapadd") or "/usr/sbin/slapadd"
SAMBA = shutil.which("samba") or "/usr/sbin/samba"
SAMBA_TOOL = shutil.which("samba-tool") or "/usr/bin/samba-tool"
SCHEMA_DIR = Path("/etc/ldap/schema")
MODULE_DIR = Path("/usr/lib/ldap")

OPENLDAP_SUFFIX = "dc=example,dc=com"
OPENLDAP_ROOT_DN = f"cn=admin,{OPENLDAP_SUFFIX}"
OPENLDAP_ROOT_PASSWORD = "root-secret-2026"
AD_REALM = "SOXTEST.LOCAL"
AD_DOMAIN = "SOXTEST"
AD_BASE_DN = "DC=soxtest,DC=local"
AD_ADMIN_PASSWORD = "Adm1n-Pass-2026!"


def slapd_available() -> bool:
    return Path(SLAPD).exists() and Path(SLAPADD).exists() and (MODULE_DIR / "back_mdb.so").exists()


def samba_available() -> bool:
    return Path(SAMBA).exists() and Path(SAMBA_TOOL).exists()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(url: str, process: subprocess.Popen, log: Path, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited ({process.returncode}): {log.read_text()[-2000:]}")
        conn = ldap.initialize(url)
        conn.set_option(ldap.OPT_NETWORK_TIMEOUT, 1)
        try:
            conn.search_s("", ldap.SCOPE_BASE, "(objectClass=*)", ["1.1"])
            return
        except ldap.LDAPError:
            time.sleep(0.2)
        finally:
            with contextlib.suppress(ldap.LDAPError):
                conn.unbind_s()
    raise RuntimeError(f"the server did not answer on {url} within {seconds} s: {log.read_text()[-2000:]}")


def _answering(directory: Directory, log: Path, timeout: float) -> Directory:
    """The directory once it answers a search; stopped, with its log in the error, if it never does."""
    try:
        _wait_for(directory.url, directory.process, log, timeout)
    except RuntimeError:
        directory.stop()
        raise
    return directory


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class Directory:
    url: str
    base_dn: str
    admin_dn: str
    admin_password: str
    process: subprocess.Popen
    root: Path
    ldaps_url: str = ""
    ca_file: Path | None = None

    def admin(self):
        """A connection bound as the directory's administrator, to change the directory during a test."""
        conn = ldap.initialize(self.url)
        conn.set_option(ldap.OPT_REFERRALS, 0)
        conn.simple_bind_s(self.admin_dn, self.admin_password)
        return conn

    @contextlib.contextmanager
    def changed(self, *changes):
        """Apply changes as the administrator: (dn, "add", attributes) or (dn, "modify", [(MOD_ADD|MOD_DELETE,
        attribute, values)]); undone afterwards, so the session's other tests see the fixture."""
        conn = self.admin()
        undo = []
        try:
            for dn, action, data in changes:
                if action == "add":
                    conn.add_s(dn, data)
                    undo.append(lambda dn=dn: conn.delete_s(dn))
                else:
                    conn.modify_s(dn, data)
                    inverse = [
                        ({ldap.MOD_ADD: ldap.MOD_DELETE, ldap.MOD_DELETE: ldap.MOD_ADD}[op], attr, value)
                        for op, attr, value in data
                    ]
                    undo.append(lambda dn=dn, inverse=inverse: conn.modify_s(dn, inverse))
            yield
        finally:
            for step in reversed(undo):
                step()
            conn.unbind_s()

    def stop(self) -> None:
        _stop(self.process)


SLAPD_CONF = """\
include {schema}/core.schema
include {schema}/cosine.schema
include {schema}/nis.schema
include {schema}/inetorgperson.schema
pidfile {root}/slapd.pid
modulepath {modules}
moduleload back_mdb
moduleload ppolicy
sizelimit unlimited
{tls}

database mdb
suffix "{suffix}"
rootdn "{rootdn}"
rootpw {rootpw}
directory {root}/db
maxsize 4294967296
{indexes}
# ppolicy's account lock (pwdAccountLockedTime) is how OpenLDAP disables an account.
overlay ppolicy
# The pager may read 10 entries in a search without paging and pages of at most 5: only a paged read gets all.
limits dn.exact="cn=pager,ou=system,{suffix}" size.soft=10 size.hard=10 size.pr=5 size.prtotal=unlimited
access to attrs=userPassword by anonymous auth by * none
# Exact DNs: a dn.regex here costs slapd ~0.4 ms an entry (a 100k-user read took 41 s instead of 3 s).
access to * by dn.exact="cn=reader,ou=system,{suffix}" read by dn.exact="cn=pager,ou=system,{suffix}" read by * none
"""


def make_certificates(root: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1 it signed: (ca.pem, server.pem, server-key.pem)."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)

    def certificate(subject, issuer, public_key, signing_key, *, ca: bool):
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False,
            )
        return builder.sign(signing_key, hashes.SHA256())

    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = certificate("SOXGov test CA", "SOXGov test CA", ca_key.public_key(), ca_key, ca=True)
    server = certificate("127.0.0.1", "SOXGov test CA", server_key.public_key(), ca_key, ca=False)
    paths = root / "ca.pem", root / "server.pem", root / "server-key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return paths


def start_slapd(
    root: Path, ldif: Path | None = None, *, indexes: str = "", tls: bool = False, timeout: float = 30
) -> Directory:
    """A slapd on a free loopback port, its mdb database loaded offline from ``ldif`` with slapadd; with ``tls``
    also StartTLS and an ldaps:// port, with a certificate from a CA of its own (``Directory.ca_file``)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "db").mkdir(exist_ok=True)
    ca_file = tls_conf = None
    if tls:
        ca_file, cert, key = make_certificates(root)
        tls_conf = f"TLSCACertificateFile {ca_file}\nTLSCertificateFile {cert}\nTLSCertificateKeyFile {key}"
    conf = root / "slapd.conf"
    conf.write_text(
        SLAPD_CONF.format(
            schema=SCHEMA_DIR,
            modules=MODULE_DIR,
            root=root,
            suffix=OPENLDAP_SUFFIX,
            rootdn=OPENLDAP_ROOT_DN,
            rootpw=OPENLDAP_ROOT_PASSWORD,
            indexes=indexes,
            tls=tls_conf or "",
        )
    )
    if ldif is not None:
        # -q: no checks beyond the schema, the fast way to load a large file; the fixture is known good.
        subprocess.run([SLAPADD, "-q", "-f", str(conf), "-l", str(ldif)], check=True, capture_output=True)
    url = f"ldap://127.0.0.1:{free_port()}"
    ldaps_url = f"ldaps://127.0.0.1:{free_port()}" if tls else ""
    listen = f"{url}/ {ldaps_url}/" if tls else f"{url}/"
    log = root / "slapd.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [SLAPD, "-d", "0", "-f", str(conf), "-h", listen], stdout=out, stderr=subprocess.STDOUT
        )
    directory = Directory(
        url, OPENLDAP_SUFFIX, OPENLDAP_ROOT_DN, OPENLDAP_ROOT_PASSWORD, process, root, ldaps_url, ca_file
    )
    return _answering(directory, log, timeout)


def _bindable(address: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((address, port))
        except OSError:
            return False
    return True


def _free_loopback_address() -> str:
    """A 127.0.0.x address nobody listens on at port 389 (Samba's LDAP port cannot be changed)."""
    for last in range(60, 250):
        address = f"127.0.0.{last}"
        if all(_bindable(address, port) for port in (389, 636, 3268, 3269)):
            return address
    raise RuntimeError(
        "no loopback address 127.0.0.60-249 has ports 389, 636, 3268 and 3269 free for Samba: is a system slapd "
        "or samba listening on all addresses? (service slapd stop)"
    )


SAMBA_PYTHON = "/usr/bin/python3"  # samba-tool's interpreter, which has the samba bindings
LOAD_LDIF = """
import sys
from samba.auth import system_session
from samba.param import LoadParm
from samba.samdb import SamDB
lp = LoadParm()
lp.load(sys.argv[1])
samdb = SamDB(url=sys.argv[2], session_info=system_session(), lp=lp)
samdb.modify_ldif(open(sys.argv[3]).read())
"""


def start_samba(root: Path, ldif_template: Path | None = None, *, timeout: float = 60) -> Directory:
    """A Samba AD DC provisioned into ``root`` (about 10 s), loaded offline from ``ldif_template`` (DOMAINDN
    replaced by the domain's DN), serving LDAP only on a loopback address of its own."""
    address = _free_loopback_address()
    options = [f"--option=interfaces={address}/8", "--option=bind interfaces only=yes"]
    subprocess.run(
        [
            SAMBA_TOOL,
            "domain",
            "provision",
            f"--targetdir={root}",
            f"--realm={AD_REALM}",
            f"--domain={AD_DOMAIN}",
            f"--adminpass={AD_ADMIN_PASSWORD}",
            "--server-role=dc",
            "--dns-backend=NONE",
            "--use-rfc2307",
            "--host-name=dc1",
            *options,
        ],
        check=True,
        capture_output=True,
    )
    conf = root / "etc" / "smb.conf"
    if ldif_template is not None:
        ldif = root / "fixture.ldif"
        ldif.write_text(ldif_template.read_text().replace("DOMAINDN", AD_BASE_DN))
        # Samba's own Python bindings (the interpreter samba-tool runs on) write straight into sam.ldb, as the
        # system: no network, no password rules for the accounts that never sign in.
        subprocess.run(
            [SAMBA_PYTHON, "-c", LOAD_LDIF, str(conf), str(root / "private" / "sam.ldb"), str(ldif)],
            check=True,
            capture_output=True,
        )
    (root / "run").mkdir(exist_ok=True)
    log = root / "samba.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [
                SAMBA,
                "--foreground",
                "--no-process-group",
                "--debug-stdout",
                "-M",
                "single",
                "-s",
                str(conf),
                *options,
                "--option=server services=ldap",
                f"--option=pid directory={root / 'run'}",
                f"--option=log file={log}",
                # The tests bind with a password over plain LDAP on loopback; production binds use ldaps or start_tls.
                "--option=ldap server require strong auth=no",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"ldap://{address}"
    directory = Directory(
        url, AD_BASE_DN, f"CN=Administrator,CN=Users,{AD_BASE_DN}", AD_ADMIN_PASSWORD, process, root
    )
    return _answering(directory, log, timeout)


# One change to the OpenLDAP fixture, read by the source test and pulled by the end-to-end test, and what it
# does to the grants: Ben leaves gl-posters (losing finance-all and reporting, which he had only through it),
# gl-posters is taken out of finance-all (Ann keeps gl-posters but loses finance-all and reporting), Dev is locked
# (disabled), and a new hire, Eve, joins ap-clerks.
_PEOPLE = f"ou=people,{OPENLDAP_SUFFIX}"
_GROUPS = f"ou=groups,{OPENLDAP_SUFFIX}"
OPENLDAP_CHANGE = (
    (f"cn=gl-posters,{_GROUPS}", "modify", [(ldap.MOD_DELETE, "member", [f"uid=bokoro,{_PEOPLE}".encode()])]),
    (
        f"cn=finance-all,{_GROUPS}",
        "modify",
        [(ldap.MOD_DELETE, "member", [f"cn=gl-posters,{_GROUPS}".encode()])],
    ),
    (f"uid=dpatel,{_PEOPLE}", "modify", [(ldap.MOD_ADD, "pwdAccountLockedTime", [b"000001010000Z"])]),
    (
        f"uid=enew,{_PEOPLE}",
        "add",
        [
            ("objectClass", [b"inetOrgPerson"]),
            ("uid", [b"enew"]),
            ("cn", [b"Eve New"]),
            ("sn", [b"New"]),
            ("employeeNumber", [b"E1007"]),
            ("mail", [b"enew@example.com"]),
            ("manager", [f"uid=dpatel,{_PEOPLE}".encode()]),
        ],
    ),
    (f"cn=ap-clerks,{_GROUPS}", "modify", [(ldap.MOD_ADD, "uniqueMember", [f"uid=enew,{_PEOPLE}".encode()])]),
)
OPENLDAP_CHANGE_REMOVES = {
    ("bokoro", "gl-posters"),
    ("bokoro", "finance-all"),
    ("bokoro", "reporting"),
    ("alee", "finance-all"),
    ("alee", "reporting"),
}
OPENLDAP_CHANGE_ADDS = {("enew", "ap-clerks")}
