#!/usr/bin/env python3
"""The one-off script people write instead of idgraph: join the exports with dicts.

Usage: python3 bench/oneoff.py DIR

DIR is an idgraph-synth output directory (or any directory with an idgraph.toml whose
sources are files). Applies the matching rules of SPEC section 2 and prints the number
of findings by kind as one JSON object, e.g. {"orphaned_db_user": 123, ...}.

Python 3.11+ standard library only; deliberately plain (json.load every file, dicts keyed
by lower-cased name/email/id), as a baseline for the benchmark in bench/reconcile.py.
"""

import csv
import json
import os
import sys
import tomllib


def primary(entries, value_key, primary_key):
    """The value marked primary, else the first one with a value."""
    values = [e for e in entries or [] if e.get(value_key)]
    for e in values:
        if e.get(primary_key) is True or str(e.get(primary_key)).lower() == "true":
            return e[value_key]
    return values[0][value_key] if values else None


def is_active(user):
    active = user.get("active")  # SCIM: a user without `active` is active
    if active is None:
        return True
    if isinstance(active, str):
        return active.lower() == "true"
    return bool(active)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: oneoff.py DIR")
    base = sys.argv[1]
    with open(os.path.join(base, "idgraph.toml"), "rb") as f:
        config = tomllib.load(f)
    mapping = config.get("mapping", {})
    prefixes = mapping.get("prefixes", ["IAM:", "IAMA:", "IAMR:", "AWSIDC:"])
    role_prefixes = mapping.get("role_prefixes", ["IAMR:"])
    match_on = mapping.get("match_on", ["user_name", "email"])
    system_users = set(mapping.get("system_users", ["rdsdb"]))
    allowlist = set(mapping.get("local_allowlist", []))

    # --- IdP users (a SCIM ListResponse, or a plain array of User resources)
    with open(os.path.join(base, config["idp"]["path"]), encoding="utf-8-sig") as f:
        scim = json.load(f)
    idp_users = scim["Resources"] if isinstance(scim, dict) else scim
    idp_by_ext, idp_by_id, idp_by_name, idp_by_email = {}, {}, {}, {}
    for u in idp_users:
        if u["id"] in idp_by_id:
            continue  # listed twice: keep the first
        idp_by_id[u["id"]] = u
        if u.get("externalId"):
            idp_by_ext.setdefault(u["externalId"], u)
        idp_by_name.setdefault(u["userName"].lower(), u)
        email = primary(u.get("emails"), "value", "primary")
        if email:
            idp_by_email.setdefault(email.lower(), u)

    # --- Identity Center users (`aws identitystore list-users` output)
    path = os.path.join(base, config["identity_center"]["path"])
    with open(path, encoding="utf-8-sig") as f:
        ic_users = json.load(f)["Users"]
    ic_by_name, ic_by_email, ic_seen = {}, {}, set()
    counts = {"orphaned_db_user": 0, "unmanaged_db_user": 0,
              "stale_identity_center_user": 0, "ambiguous_mapping": 0}
    ic_idp = {}  # UserId -> the linked IdP user, or None
    for u in ic_users:
        if u["UserId"] in ic_seen:
            continue
        ic_seen.add(u["UserId"])
        ext_ids = [e["Id"] for e in u.get("ExternalIds") or []]
        idp = (next((idp_by_ext[x] for x in ext_ids if x in idp_by_ext), None)
               or next((idp_by_id[x] for x in ext_ids if x in idp_by_id), None)
               or idp_by_name.get(u["UserName"].lower()))
        email = primary(u.get("Emails"), "Value", "Primary")
        if idp is None and email:
            idp = idp_by_email.get(email.lower())
        ic_idp[u["UserId"]] = idp
        if idp is None or not is_active(idp):
            counts["stale_identity_center_user"] += 1
        ic_by_name.setdefault(u["UserName"].lower(), []).append(u["UserId"])
        if email:
            ic_by_email.setdefault(email.lower(), []).append(u["UserId"])

    # --- database users, target by target
    for target in config.get("targets", []):
        master = target.get("master_user")
        with open(os.path.join(base, target["path"]), newline="", encoding="utf-8-sig") as f:
            rows = list(csv.DictReader(f))
        for row in rows:
            name = row["usename"]
            if name in system_users or name == master or name in allowlist:
                continue
            # longest configured prefix, compared case-insensitively
            prefix = max((p for p in prefixes + role_prefixes
                          if name.lower().startswith(p.lower())), key=len, default=None)
            if prefix and prefix.lower() in (r.lower() for r in role_prefixes):
                continue  # an IAM role: no source covers it
            rest = name[len(prefix):] if prefix else name
            matches = []
            for rule in match_on:
                index = ic_by_name if rule == "user_name" else ic_by_email
                matches = index.get(rest.lower(), [])
                if matches:
                    break
            if len(matches) > 1:
                counts["ambiguous_mapping"] += 1
            elif not matches:
                kind = "orphaned_db_user" if prefix else "unmanaged_db_user"
                counts[kind] += 1
            else:
                idp = ic_idp[matches[0]]
                if idp is None or not is_active(idp):
                    counts["orphaned_db_user"] += 1

    print(json.dumps({k: v for k, v in counts.items() if v}, sort_keys=True))


if __name__ == "__main__":
    main()
