import time, base64, json
import pytest
from soxgov.pagination import keyset_paginate, InvalidCursor
from entitlements.models import Identity

def enc(d):
    return base64.urlsafe_b64encode(json.dumps(d).encode()).decode().rstrip("=")

@pytest.mark.parametrize("cur", [enc({"d":"n","v":["a","abc"]}), enc({"d":"n","v":["a",10**30]}), enc({"d":"n","v":[5,"x"]}), enc({"d":"p","v":["a","abc"]})])
def test_probe(company, cur):
    try:
        p = keyset_paginate(Identity.objects.all(), ordering=("display_name","id"), cursor=cur, page_size=2)
        print("OK", p)
    except Exception as e:
        print(type(e), e)

@pytest.mark.parametrize("cur", [enc({"d":"n","v":["abc"]}), enc({"d":"n","v":[10**30]}), enc({"d":"n","v":[-10**30]}), enc({"d":"p","v":[10**30]}), enc({"d":"n","v":[2**63]})])
def test_probe2(company, cur):
    from evidence.models import EvidenceEvent
    try:
        p = keyset_paginate(EvidenceEvent.objects.all(), ordering=("-sequence",), cursor=cur, page_size=2)
        print("OK", p)
    except Exception as e:
        print(type(e), e)
