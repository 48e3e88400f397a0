"""The LDAP source against a real OpenLDAP slapd (started for the session from tests/fixtures/ldap/openldap.ldif)."""

from __future__ import annotations

import pytest

from entitlements.connectors.files import ACCESS_COLUMNS, IDENTITY_COLUMNS
from entitlements.connectors.ldap import LdapSource
from entitlements.connectors.sources import SourceError, SourceTimeout, SourceUnreachable, source_class
from tests import ldap_servers

READER = "cn=reader,ou=system,dc=example,dc=com"
READER_PASSWORD = "reader-secret-2026"
PEOPLE = "ou=people,dc=example,dc=com"
GROUPS = "ou=groups,dc=example,dc=com"


def config(slapd, **changes):
    base = {
        "url": slapd.url,
        "flavour": "openldap",
        "base_dn": slapd.base_dn,
        "bind_dn": READER,
        "service_filter": "(employeeType=service)",
        "privileged_groups": ["ledger-admins", f"cn=cycle-b,{GROUPS}"],
        "identities": True,
        "timeout": 10,
    }
    return {**base, **changes}


def read(slapd, password=READER_PASSWORD, **changes):
    """(identities, access rows) from a fresh source, closed afterwards as the framework does."""
    cfg = config(slapd, **changes)
    assert LdapSource.validate(cfg, {"bind_password"}) == []
    source = LdapSource(cfg, {"bind_password": password})
    try:
        return list(source.identities()), list(source.access())
    finally:
        source.close()


def grants(access):
    return {(row["account_name"], row["entitlement_name"]) for row in access if row["entitlement_id"]}


def test_the_framework_finds_the_source_by_kind():
    assert source_class("ldap") is LdapSource
    assert LdapSource.secret_names == {"bind_password"}


def test_first_read_yields_identities_and_grants_in_the_file_columns(slapd):
    identities, access = read(slapd)
    assert all(set(row) == set(IDENTITY_COLUMNS) for row in identities)
    assert all(set(row) <= set(ACCESS_COLUMNS) and "application" not in row for row in access)

    people = {row["employee_id"]: row for row in identities}
    assert people["E1002"] == {
        "employee_id": "E1002",
        "email": "bokoro@example.com",
        "display_name": "Ben Okoro",
        "department": "Accounting",
        "title": "GL Accountant",
        "manager_employee_id": "E1001",  # the manager DN, turned into the manager's employee id
        "status": "active",
        "termination_date": "",
        "kind": "human",
        "owner_employee_id": "",
    }
    # Ann's admin account shares her employee number: one identity, from her ordinary account.
    assert [row["email"] for row in identities if row["employee_id"] == "E1003"] == ["alee@example.com"]
    # The service account is non-human, owned by its manager; the one without an owner gets no identity.
    assert people["svc-gl"]["kind"] == "service" and people["svc-gl"]["owner_employee_id"] == "E1001"
    assert "svc-orphan" not in people
    assert len(identities) == 5 + 20 + 1

    expected = {
        ("bokoro", "gl-posters"),
        ("alee", "gl-posters"),
        # finance-all holds gl-posters: its members are granted finance-all too; reporting holds finance-all.
        ("cdiaz", "finance-all"),
        ("bokoro", "finance-all"),
        ("alee", "finance-all"),
        ("cdiaz", "reporting"),
        ("bokoro", "reporting"),
        ("alee", "reporting"),
        ("alee", "ap-clerks"),  # groupOfUniqueNames
        ("dpatel", "ap-clerks"),  # a uniqueMember with the optional UID suffix
        ("adm-alee", "ledger-admins"),  # posixGroup memberUid (the unknown memberUid is ignored)
        # cycle-a and cycle-b contain each other: both grant both members, and reading ends.
        ("cdiaz", "cycle-a"),
        ("dpatel", "cycle-a"),
        ("cdiaz", "cycle-b"),
        ("dpatel", "cycle-b"),
        ("svc-gl", "batch"),
    } | {(f"staff{n:02d}", "everyone") for n in range(1, 21)}
    assert grants(access) == expected
    assert len([row for row in access if row["entitlement_id"]]) == len(expected)  # no row twice

    rows = {(row["account_name"], row["entitlement_name"]): row for row in access}
    assert rows[("adm-alee", "ledger-admins")]["privileged"] == "true"  # privileged by name
    assert rows[("cdiaz", "cycle-b")]["privileged"] == "true"  # privileged by DN
    assert rows[("cdiaz", "cycle-a")]["privileged"] == "false"
    assert (
        rows[("bokoro", "gl-posters")]["last_used_at"] == "2026-11-20T08:15:00+00:00"
    )  # ppolicy pwdLastSuccess
    assert rows[("bokoro", "gl-posters")]["entitlement_type"] == "group"
    # The locked account (ppolicy pwdAccountLockedTime 000001010000Z) is disabled and, holding no group, still
    # an account; so is the unowned service account.
    assert rows[("gone", "")]["account_status"] == "disabled"
    assert rows[("gone", "")]["employee_id"] == "E1006"
    assert rows[("svc-orphan", "")]["account_status"] == "enabled"
    assert rows[("cdiaz", "cycle-a")]["account_status"] == "enabled"
    # Accounts and groups are keyed by entryUUID: stable when someone is renamed or moved.
    assert len({row["account_id"] for row in access}) == 5 + 1 + 2 + 20
    assert all(len(row["account_id"]) == 36 for row in access)


def test_identities_are_left_out_unless_configured(slapd):
    source = LdapSource(config(slapd, identities=False), {"bind_password": READER_PASSWORD})
    assert source.feeds_identities is False
    assert LdapSource(config(slapd), {}).feeds_identities is True


def test_a_changed_directory_read_again(slapd):
    _, before = read(slapd)
    with slapd.changed(*ldap_servers.OPENLDAP_CHANGE):
        identities, after = read(slapd)

    assert grants(before) - grants(after) == ldap_servers.OPENLDAP_CHANGE_REMOVES
    assert grants(after) - grants(before) == ldap_servers.OPENLDAP_CHANGE_ADDS
    # Ben holds no group now, but his account is still there.
    assert [row["entitlement_id"] for row in after if row["account_name"] == "bokoro"] == [""]
    assert {row["account_status"] for row in after if row["account_name"] == "dpatel"} == {"disabled"}
    assert {row["account_status"] for row in before if row["account_name"] == "dpatel"} == {"enabled"}
    new_hire = next(row for row in identities if row["employee_id"] == "E1007")
    assert new_hire["manager_employee_id"] == "E1004" and new_hire["display_name"] == "Eve New"
    # The directory is back as it was (the session's other tests see the fixture).
    assert grants(read(slapd)[1]) == grants(before)


def test_paged_reads_go_beyond_the_page_size_and_the_servers_limits(slapd):
    import ldap

    pager = "cn=pager,ou=system,dc=example,dc=com"
    # slapd lets the pager read at most 10 entries without paging, in pages of at most 5:
    conn = ldap.initialize(slapd.url)
    conn.simple_bind_s(pager, "pager-secret-2026")
    with pytest.raises(ldap.SIZELIMIT_EXCEEDED):
        conn.search_s(PEOPLE, ldap.SCOPE_SUBTREE, "(objectClass=person)", ["1.1"])
    conn.unbind_s()

    cfg = config(slapd, bind_dn=pager, page_size=4)
    source = LdapSource(cfg, {"bind_password": "pager-secret-2026"})
    seen = []
    source.progress = lambda **counts: seen.append(counts["read"])
    try:
        _, paged = list(source.identities()), list(source.access())
    finally:
        source.close()
    _, whole = read(slapd)
    assert grants(paged) == grants(whole)
    assert {row["account_name"] for row in paged} == {row["account_name"] for row in whole}
    # 28 accounts and 9 groups in pages of 4 (the service_filter search is paged too)
    assert source.pages_read >= 28 // 4 + 9 // 4
    assert seen == sorted(seen) and seen[-1] == source.entries_read


def test_a_wrong_password_is_unreachable_and_never_shows_the_password(slapd):
    wrong = "Not-The-Password-7731"
    with pytest.raises(SourceUnreachable) as caught:
        read(slapd, password=wrong)
    message = str(caught.value)
    assert message.startswith(f"authentication failed for {READER}")
    assert wrong not in message and READER_PASSWORD not in message
    assert not caught.value.transient


def test_an_empty_password_is_refused_before_an_anonymous_bind(slapd):
    with pytest.raises(SourceUnreachable, match="bind_password secret is empty"):
        read(slapd, password="")


def test_nothing_listening_is_unreachable_and_transient(slapd):
    port = ldap_servers.free_port()
    with pytest.raises(SourceUnreachable) as caught:
        read(slapd, url=f"ldap://127.0.0.1:{port}", timeout=3)
    assert f"127.0.0.1:{port}" in str(caught.value)
    assert caught.value.transient and not isinstance(caught.value, SourceTimeout)


def test_a_server_that_does_not_answer_times_out(slapd):
    import socket

    # A socket that accepts connections (the kernel's backlog) but never speaks LDAP.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(5)
        port = silent.getsockname()[1]
        with pytest.raises(SourceTimeout) as caught:
            read(slapd, url=f"ldap://127.0.0.1:{port}", timeout=1)
    assert caught.value.transient and "no answer within 1 s" in str(caught.value)


def test_ldaps_and_start_tls_verify_the_server_against_the_ca_file(slapd):
    _, plain = read(slapd)
    _, over_ldaps = read(slapd, url=slapd.ldaps_url, ca_file=str(slapd.ca_file))
    _, over_start_tls = read(slapd, start_tls=True, ca_file=str(slapd.ca_file))
    assert grants(over_ldaps) == grants(over_start_tls) == grants(plain) != set()


@pytest.mark.parametrize("how", ["ldaps", "start_tls"])
def test_a_server_certificate_from_an_unknown_ca_is_refused(slapd, tmp_path, how):
    other_ca, _, _ = ldap_servers.make_certificates(
        tmp_path
    )  # a CA that did not sign the server's certificate
    changes = {"url": slapd.ldaps_url} if how == "ldaps" else {"start_tls": True}
    with pytest.raises(SourceUnreachable) as caught:
        read(slapd, ca_file=str(other_ca), **changes)
    assert "127.0.0.1" in str(caught.value) and READER_PASSWORD not in str(caught.value)
    assert not caught.value.transient  # retrying does not make a certificate trusted


def test_a_base_dn_that_does_not_exist_is_named(slapd):
    with pytest.raises(SourceError, match=r"base_dn: 'ou=nowhere,dc=example,dc=com' does not exist"):
        read(slapd, base_dn="ou=nowhere,dc=example,dc=com")


def test_a_filter_the_server_refuses_is_named(slapd):
    with pytest.raises(SourceError, match=r"^group_filter: the server refused the filter") as caught:
        read(slapd, group_filter="(=groupOfNames)")
    assert not isinstance(caught.value, SourceUnreachable)


def test_configurations_are_validated_naming_every_problem():
    assert LdapSource.validate([], set()) == ["configuration: must be a JSON object"]
    problems = LdapSource.validate(
        {
            "url": "http://dc1.example.com/dc=example",
            "flavour": "novell",
            "bind_dn": "reader",
            "base_dn": "example.com",
            "user_filter": "objectClass=person",
            "group_filter": "(|(objectClass=group)",
            "account_id_attribute": "not an attribute",
            "attributes": {"employee_id": "employee id", "shoe_size": "x"},
            "privileged_groups": "Domain Admins",
            "page_size": 0,
            "timeout": "soon",
            "identities": "yes",
            "colour": "blue",
        },
        {"password"},
    )
    assert problems == [
        "colour: is not a setting of an LDAP connector",
        "secrets: 'password' is not a secret of an LDAP connector (use bind_password)",
        "flavour: must be one of openldap, active_directory (got 'novell')",
        "url: 'http://dc1.example.com/dc=example' must be ldap://host[:port] or ldaps://host[:port] (no path; the base goes in base_dn)",
        "identities: must be true or false",
        "bind_dn: 'reader' is not a DN (Active Directory also takes user@domain)",
        "secrets: bind_password is required with bind_dn (an empty password binds anonymously)",
        "base_dn: 'example.com' is not a DN such as dc=example,dc=com",
        "user_filter: 'objectClass=person' is not an LDAP filter (it must be wrapped in balanced parentheses)",
        "group_filter: '(|(objectClass=group)' is not an LDAP filter (it must be wrapped in balanced parentheses)",
        "account_id_attribute: 'not an attribute' is not an attribute name",
        "attributes.employee_id: 'employee id' is not an attribute name",
        "attributes.shoe_size: unknown (use account_name, employee_id, email, manager, department, title, display_name, owner)",
        "privileged_groups: must be a list of group DNs or names",
        "page_size: must be a whole number of at least 1 (got 0)",
        "timeout: must be seconds between 1 and 3600 (got 'soon')",
    ]


@pytest.mark.parametrize(
    ("changes", "secrets", "problem"),
    [
        (
            {"page_size": 5000},
            {"bind_password"},
            "page_size: Active Directory returns at most 1000 entries a page",
        ),
        ({"url": "ldaps://dc1:636", "start_tls": True}, {"bind_password"}, "start_tls: not with ldaps://"),
        ({"url": "ldap://dc1:70000"}, {"bind_password"}, "url: port 70000 is not a TCP port"),
        ({"ca_file": "certs/ca.pem"}, {"bind_password"}, "ca_file: must be the absolute path"),
        ({"bind_dn": None}, {"bind_password"}, "bind_dn: is required when the secret bind_password is given"),
        (
            {"privileged_groups": ["cn=x,,dc=y"]},
            {"bind_password"},
            "privileged_groups: 'cn=x,,dc=y' looks like a DN",
        ),
    ],
)
def test_one_problem_each(changes, secrets, problem):
    cfg = {
        "url": "ldaps://dc1.example.com",
        "flavour": "active_directory",
        "bind_dn": "svc-soxgov@example.com",
        "base_dn": "DC=example,DC=com",
        **changes,
    }
    cfg = {k: v for k, v in cfg.items() if v is not None}
    problems = LdapSource.validate(cfg, secrets)
    assert len(problems) == 1 and problems[0].startswith(problem), problems


def test_a_valid_active_directory_configuration_has_no_problems():
    cfg = {
        "url": "ldap://dc1.example.com",
        "start_tls": True,
        "ca_file": "/etc/ssl/certs/corp-ca.pem",
        "flavour": "active_directory",
        "bind_dn": "EXAMPLE\\svc-soxgov",
        "base_dn": "DC=example,DC=com",
        "privileged_groups": ["CN=Finance Admins,OU=Groups,DC=example,DC=com", "SAP Basis"],
        "attributes": {"employee_id": "employeeNumber"},
        "page_size": 1000,
        "timeout": 60,
        "identities": True,
    }
    assert LdapSource.validate(cfg, {"bind_password"}) == []


@pytest.mark.parametrize("name", ["ldap-active-directory.json", "ldap-openldap.json"])
def test_the_documented_example_configurations_are_valid(name):
    import json
    from pathlib import Path

    example = json.loads((Path(__file__).parent.parent / "docs" / "examples" / name).read_text())
    assert LdapSource.validate(example, {"bind_password"}) == []
