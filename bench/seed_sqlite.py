"""Seeds the SQLite benchmark database like seed.sql does PostgreSQL.
Usage: seed_sqlite.py DB_FILE TENANT_ID N EXTRA GROUP_ID"""
import json
import sqlite3
import sys
import uuid

db, tenant, n, extra, gid = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
ENT = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


def doc(k, name):
    return {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENT],
        "userName": name, "externalId": f"ext-{k}", "active": True, "displayName": f"Benchmark User {k}",
        "title": "Senior Tour Guide", "userType": "Employee", "preferredLanguage": "en-US", "locale": "en-US",
        "timezone": "America/Los_Angeles",
        "name": {"givenName": f"Given{k}", "familyName": f"Family{k}", "formatted": f"Given{k} Family{k}", "middleName": "Jane"},
        "emails": [{"value": f"{name}@example.com", "type": "work", "primary": True}, {"value": f"{name}@home.example.org", "type": "home"}],
        "phoneNumbers": [{"value": f"+1 555 010 {k % 10000:04d}", "type": "work"}, {"value": f"+1 555 020 {k % 10000:04d}", "type": "mobile"}],
        "addresses": [{"type": "work", "streetAddress": "100 Universal City Plaza", "locality": "Hollywood", "region": "CA",
                       "postalCode": "91608", "country": "US", "formatted": "100 Universal City Plaza\nHollywood, CA 91608 US", "primary": True}],
        ENT: {"employeeNumber": str(k), "costCenter": "4130", "organization": "Universal Studios", "division": "Theme Park",
              "department": "Tour Operations", "manager": {"value": "26118915-6090-4610-87e4-49d8ca9f808d"}},
    }


con = sqlite3.connect(db, timeout=60)
con.execute("PRAGMA busy_timeout = 60000")
rows, members = [], []
for k in range(1, n + extra + 1):
    uid = str(uuid.uuid4())
    name = f"u{k}"
    rows.append((tenant, uid, name, name, f"ext-{k}", 1, f"Benchmark User {k}", f"benchmark user {k}", 1, 0, 0,
                 json.dumps(doc(k, name), separators=(",", ":"), sort_keys=True)))
    if k <= n:
        members.append((tenant, gid, uid, "User"))
with con:
    con.executemany(
        "INSERT INTO users (tenant_id, id, user_name, user_name_lower, external_id, active, display_name, display_name_lower, "
        "version, created_at, modified_at, doc) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", rows)
    con.executemany("INSERT INTO group_members (tenant_id, group_id, member_id, member_type) VALUES (?,?,?,?)", members)
con.execute("ANALYZE")
with open(sys.argv[1] + ".ids", "w") as f:
    for r in rows:
        if int(r[2][1:]) <= n + extra:
            f.write(f"{r[1]} {r[2]}\n")
