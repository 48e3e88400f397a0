"""The LDAP source's Active Directory semantics against a real Samba AD DC (provisioned for the session, ~12 s)."""

from __future__ import annotations

import pytest

from entitlements.connectors.ldap import LdapSource
from entitlements.connectors.sources import SourceUnreachable
from tests import ldap_servers

STAFF = f"OU=Staff,{ldap_servers.AD_BASE_DN}"
ADMIN_UPN = "Administrator@soxtest.local"


def config(samba, **changes):
    return {
        "url": samba.url,
        "flavour": "active_directory",
        "base_dn": samba.base_dn,
        "bind_dn": ADMIN_UPN,
        "service_filter": "(employeeType=service)",
        "privileged_groups": ["Ledger Admins"],
        "identities": True,
        "timeout": 20,
        **changes,
    }


def read(samba, password=ldap_servers.AD_ADMIN_PASSWORD, **changes):
    cfg = config(samba, **changes)
    assert LdapSource.validate(cfg, {"bind_password"}) == []
    source = LdapSource(cfg, {"bind_password": password})
    try:
        return list(source.identities()), list(source.access()), source
    finally:
        source.close()


def by_account(access):
    rows = {}
    for row in access:
        rows.setdefault(row["account_name"], {})[row["entitlement_name"]] = row
    return rows


def test_first_read_of_active_directory(samba):
    identities, access, _ = read(samba)
    rows = by_account(access)

    # Nested groups are granted as the outer group: Finance All holds GL Posters.
    assert set(rows["bokoro"]) == {"GL Posters", "Finance All", "Domain Users", "Users"}
    assert set(rows["cdiaz"]) == {"Finance All", "Domain Users", "Users"}
    # The primary group (Domain Users) is not in its member attribute but is a membership; builtin Users holds
    # Domain Users, so everyone is also in Users.
    assert "Domain Users" in rows["svc-backup"] and "Users" in rows["svc-backup"]
    # Domain Admins is privileged by default (by its RID), and so is Administrators (adminCount=1), which holds
    # Domain Admins; Ledger Admins is privileged by configuration; Finance All is not.
    assert rows["adm-alee"]["Domain Admins"]["privileged"] == "true"
    assert rows["adm-alee"]["Administrators"]["privileged"] == "true"
    assert rows["adm-alee"]["Ledger Admins"]["privileged"] == "true"
    assert rows["Administrator"]["Schema Admins"]["privileged"] == "true"
    assert rows["Administrator"]["Enterprise Admins"]["privileged"] == "true"
    assert rows["cdiaz"]["Finance All"]["privileged"] == "false"
    # userAccountControl bit 2: disabled.
    assert {row["account_status"] for row in rows["fgone"].values()} == {"disabled"}
    assert {row["account_status"] for row in rows["cdiaz"].values()} == {"enabled"}
    # lastLogonTimestamp, from Ben's sign-in in the fixture.
    assert rows["bokoro"]["GL Posters"]["last_used_at"].endswith("+00:00")
    assert rows["cdiaz"]["Finance All"]["last_used_at"] == ""
    # objectGUID as a GUID string, the same for every row of an account.
    guids = {row["account_id"] for row in rows["bokoro"].values()}
    assert len(guids) == 1 and len(next(iter(guids))) == 36
    # The computer is an account (in Domain Computers through its primary group, and in Workstations).
    assert set(rows["WS01$"]) == {"Domain Computers", "Workstations"}

    people = {row["employee_id"]: row for row in identities}
    assert people["E1002"]["manager_employee_id"] == "E1001"
    assert people["E1002"]["department"] == "Accounting" and people["E1002"]["title"] == "GL Accountant"
    # Computers are systems owned through managedBy; service users are services owned through manager.
    assert people["WS01$"]["kind"] == "system" and people["WS01$"]["owner_employee_id"] == "E1001"
    assert people["svc-backup"]["kind"] == "service" and people["svc-backup"]["owner_employee_id"] == "E1004"
    # Ann's two accounts are one person; the DC's own machine account has no owner, so no identity.
    assert [row["email"] for row in identities if row["employee_id"] == "E1003"] == ["alee@soxtest.local"]
    assert "DC1$" not in people and "DC1$" in rows
    assert rows["adm-alee"]["Domain Admins"]["employee_id"] == "E1003"


def test_a_changed_domain_read_again(samba):
    import ldap

    _, before, _ = read(samba)
    conn = samba.admin()
    ben, dev, eve = (f"CN={cn},{STAFF}" for cn in ("Ben Okoro", "Dev Patel", "Eve New"))
    changes = [
        (f"CN=GL Posters,{STAFF}", [(ldap.MOD_DELETE, "member", [ben.encode()])]),
        (f"CN=Finance All,{STAFF}", [(ldap.MOD_DELETE, "member", [f"CN=GL Posters,{STAFF}".encode()])]),
        (dev, [(ldap.MOD_REPLACE, "userAccountControl", [b"546"])]),
    ]
    try:
        for dn, mods in changes:
            conn.modify_s(dn, mods)
        conn.add_s(
            eve,
            [
                ("objectClass", [b"user"]),
                ("sAMAccountName", [b"enew"]),
                ("employeeID", [b"E1007"]),
                ("manager", [dev.encode()]),
                ("userAccountControl", [b"544"]),
            ],
        )
        conn.modify_s(f"CN=GL Posters,{STAFF}", [(ldap.MOD_ADD, "member", [eve.encode()])])
        identities, after, _ = read(samba)
    finally:
        conn.modify_s(f"CN=GL Posters,{STAFF}", [(ldap.MOD_ADD, "member", [ben.encode()])])
        conn.modify_s(
            f"CN=Finance All,{STAFF}", [(ldap.MOD_ADD, "member", [f"CN=GL Posters,{STAFF}".encode()])]
        )
        conn.modify_s(dev, [(ldap.MOD_REPLACE, "userAccountControl", [b"544"])])
        conn.delete_s(eve)
        conn.unbind_s()

    def grants(access):
        return {(r["account_name"], r["entitlement_name"]) for r in access}

    assert grants(before) - grants(after) == {
        ("bokoro", "GL Posters"),
        ("bokoro", "Finance All"),
        ("alee", "Finance All"),  # GL Posters left Finance All
    }
    assert grants(after) - grants(before) == {
        ("enew", "GL Posters"),
        ("enew", "Domain Users"),
        ("enew", "Users"),
    }
    assert {r["account_status"] for r in after if r["account_name"] == "dpatel"} == {"disabled"}
    assert any(r["employee_id"] == "E1007" and r["manager_employee_id"] == "E1004" for r in identities)
    assert grants(read(samba)[1]) == grants(before)


def test_pages_of_two_read_the_same_domain(samba):
    _, whole, _ = read(samba)
    _, paged, source = read(samba, page_size=2)
    assert sorted(map(sorted, (r.items() for r in paged))) == sorted(map(sorted, (r.items() for r in whole)))
    assert source.pages_read > source.entries_read // 2


def test_a_wrong_password_is_unreachable_without_the_password(samba):
    wrong = "Wr0ng-Pass-2026!"
    with pytest.raises(SourceUnreachable) as caught:
        read(samba, password=wrong)
    assert str(caught.value).startswith(f"authentication failed for {ADMIN_UPN}")
    assert wrong not in str(caught.value) and ldap_servers.AD_ADMIN_PASSWORD not in str(caught.value)
