#!/usr/bin/python3
# check.py - for tests/t_sarif.sh: validates a SARIF log against the SARIF 2.1.0 JSON
# schema (Debian's python3-jsonschema; the schema file shipped with the SARIF multitool),
# and prints the facts the test compares, one "name value" per line.
#   check.py schema LOG SCHEMA   "valid", or each violation (exit 1)
#   check.py facts LOG           per result: rule, uri, line, related sites, fingerprint...
#   check.py errors LOG          the error-level results of a multitool validate log
import json
import sys


def schema(log, schema_file):
    import jsonschema
    with open(schema_file) as f:
        s = json.load(f)
    with open(log) as f:
        d = json.load(f)
    v = jsonschema.Draft202012Validator(s)
    errs = list(v.iter_errors(d))
    for e in errs:
        print("violation at %s: %s" % ("/".join(str(p) for p in e.absolute_path), e.message[:300]))
    if not errs:
        print("valid")
    return 1 if errs else 0


def loc_text(loc):
    pl = loc.get("physicalLocation")
    if not pl:
        return "-"
    al = pl["artifactLocation"]
    line = pl.get("region", {}).get("startLine", 0)
    return "%s%s:%d" % (al.get("uriBaseId", "") + ":" if al.get("uriBaseId") else "", al["uri"], line)


def facts(log):
    with open(log) as f:
        d = json.load(f)
    run = d["runs"][0]
    print("runs", len(d["runs"]))
    print("results", len(run["results"]))
    print("rules", ",".join(r["id"] for r in run["tool"]["driver"]["rules"]))
    print("srcroot", run.get("originalUriBaseIds", {}).get("SRCROOT", {}).get("uri", "-"))
    for i, r in enumerate(run["results"]):
        p = "r%d." % i
        print(p + "rule", r["ruleId"])
        print(p + "rule_ok", run["tool"]["driver"]["rules"][r["ruleIndex"]]["id"] == r["ruleId"])
        print(p + "level", r["level"])
        print(p + "message", r["message"]["text"])
        print(p + "location", loc_text(r["locations"][0]))
        ll = r["locations"][0].get("logicalLocations", [{}])[0].get("fullyQualifiedName", "-")
        print(p + "function", ll)
        for rl in r.get("relatedLocations", []):
            print(p + "related%d" % rl["id"], loc_text(rl), "|", rl["message"]["text"])
        for k, v in sorted(r.get("partialFingerprints", {}).items()):
            print(p + "fingerprint", k, v)
        for k, v in sorted(r.get("properties", {}).items()):
            print(p + "prop." + k, v)
        flows = r.get("codeFlows", [{}])[0].get("threadFlows", [])
        print(p + "threadflows", len(flows))
        for j, tf in enumerate(flows):
            locs = tf["locations"]
            last = locs[-1]["location"]
            print(p + "flow%d" % j, tf["id"], len(locs),
                  last.get("logicalLocations", [{}])[0].get("fullyQualifiedName", "-"),
                  loc_text(last))
    return 0


def errors(log):
    with open(log) as f:
        d = json.load(f)
    n = 0
    for run in d["runs"]:
        for r in run.get("results", []):
            if r.get("level", "warning") == "error":
                n += 1
                print(r.get("ruleId"), r["message"].get("text", r["message"].get("id")),
                      r["message"].get("arguments", ""))
    return 1 if n else 0


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "schema":
        sys.exit(schema(sys.argv[2], sys.argv[3]))
    if cmd == "facts":
        sys.exit(facts(sys.argv[2]))
    if cmd == "errors":
        sys.exit(errors(sys.argv[2]))
    sys.exit("usage: check.py schema|facts|errors LOG [SCHEMA]")
